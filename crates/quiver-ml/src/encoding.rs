//! How a feature value becomes a model input: the one rule that training, offline scoring
//! (`models predict`, `models score`) and `/predict` all apply.
//!
//! A model version stores an [`Encoding`] per input. Whatever holds the values (an Arrow column
//! of a training set, a CSV cell, a value read from the online store), the caller only says what
//! kind of value it has, as a [`FeatureValue`], and [`Encoding::encode`] turns it into the
//! number the model reads. Since there is a single implementation, a training set and a request
//! served online cannot encode the same value differently; the adapters that read storage types
//! into [`FeatureValue`]s live in `quiver-pipeline`'s `encoding` module.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How one model input is made from a feature value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Encoding {
    /// Numbers as f64 (booleans as 0/1); null is missing (NaN).
    Number,
    /// Strings (or integers) as category codes: the position in `vocabulary`. A value not in
    /// the vocabulary, and null, are missing (trees send them right, like unseen categories).
    Category {
        /// Categories seen in training, in code order.
        vocabulary: Vec<String>,
    },
    /// Strings (or integers) as their share of the training rows (frequency encoding, learned on
    /// the training split only, so no validation or test row leaks into it). A value not seen in
    /// training is 0; null is missing. Suits high-cardinality columns (sellers, merchants) whose
    /// codes would mean nothing to a tree.
    Frequency {
        /// Share of the training rows (non-null values) holding each value.
        frequencies: BTreeMap<String, f64>,
    },
    /// One component of a fixed-length vector feature (an embedding): a vector of n numbers is
    /// n inputs reading the same feature, component 0 to n - 1. A null vector, or one too short,
    /// is missing.
    Element {
        /// The component.
        index: usize,
    },
}

/// One feature value, as the encoding rule sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FeatureValue<'a> {
    /// Null, absent, stale, or a kind of value no model reads (timestamps, lists of text).
    Missing,
    /// A number; booleans are 0 and 1.
    Number(f64),
    /// An integer: a number to numeric inputs, its decimal text to text inputs (category codes,
    /// frequencies), so an integer id encodes the same whether it arrives as text or not.
    Integer(i64),
    /// Text.
    Text(&'a str),
    /// A vector of numbers (an embedding); a NaN component is missing.
    Vector(Components<'a>),
}

/// The components of a vector value, in the type they are stored in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Components<'a> {
    /// `list<float32>`.
    F32(&'a [f32]),
    /// `list<float64>`.
    F64(&'a [f64]),
    /// `list<int64>`.
    I64(&'a [i64]),
}

impl Components<'_> {
    /// Component `index` as f64; `None` past the end.
    pub fn get(&self, index: usize) -> Option<f64> {
        match self {
            Components::F32(v) => v.get(index).map(|x| f64::from(*x)),
            Components::F64(v) => v.get(index).copied(),
            Components::I64(v) => v.get(index).map(|x| *x as f64),
        }
    }
}

impl Encoding {
    /// The model input made from `value`: the one encoding rule.
    ///
    /// - [`Encoding::Number`]: numbers as they are, integers as f64.
    /// - [`Encoding::Category`] / [`Encoding::Frequency`]: text, or an integer's decimal text,
    ///   looked up in the training vocabulary (unknown: missing) or frequencies (unseen: 0).
    /// - [`Encoding::Element`]: component `index` of a vector (too short: missing); a plain
    ///   number is taken as the component itself (a CSV column `feature[i]`).
    ///
    /// Missing values, and values of a kind the input does not read (text for a number, a
    /// number for a category), are missing (NaN), which trees and linear models both handle.
    pub fn encode(&self, value: FeatureValue<'_>) -> f64 {
        match (self, value) {
            (_, FeatureValue::Missing) => f64::NAN,
            (Encoding::Number | Encoding::Element { .. }, FeatureValue::Number(x)) => x,
            (Encoding::Number, FeatureValue::Integer(i)) => i as f64,
            (Encoding::Category { vocabulary }, FeatureValue::Text(s)) => {
                Encoding::category_code(vocabulary, s)
            }
            (Encoding::Category { vocabulary }, FeatureValue::Integer(i)) => {
                Encoding::category_code(vocabulary, &i.to_string())
            }
            (Encoding::Frequency { frequencies }, FeatureValue::Text(s)) => {
                Encoding::frequency(frequencies, s)
            }
            (Encoding::Frequency { frequencies }, FeatureValue::Integer(i)) => {
                Encoding::frequency(frequencies, &i.to_string())
            }
            (Encoding::Element { index }, FeatureValue::Vector(c)) => {
                c.get(*index).unwrap_or(f64::NAN)
            }
            _ => f64::NAN,
        }
    }

    /// Encodes a category value (as text).
    pub fn category_code(vocabulary: &[String], value: &str) -> f64 {
        vocabulary
            .iter()
            .position(|v| v == value)
            .map_or(f64::NAN, |i| i as f64)
    }

    /// Encodes a value (as text) by its training frequency: 0 when unseen.
    pub fn frequency(frequencies: &BTreeMap<String, f64>, value: &str) -> f64 {
        frequencies.get(value).copied().unwrap_or(0.0)
    }

    /// Learns frequencies from the training values (nulls skipped).
    pub fn learn_frequencies<'a>(values: impl Iterator<Item = &'a str>) -> BTreeMap<String, f64> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut total = 0u64;
        for v in values {
            *counts.entry(v.to_string()).or_default() += 1;
            total += 1;
        }
        counts
            .into_iter()
            .map(|(k, c)| (k, c as f64 / total as f64))
            .collect()
    }

    /// Whether the input is read as text (category codes or frequencies).
    pub fn is_text(&self) -> bool {
        matches!(self, Encoding::Category { .. } | Encoding::Frequency { .. })
    }

    /// The model column of an input reading `feature`: the feature itself, or `feature[i]` for
    /// component `i` of a vector.
    pub fn column_name(&self, feature: &str) -> String {
        match self {
            Encoding::Element { index } => format!("{feature}[{index}]"),
            _ => feature.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_every_kind_of_value() {
        let category = Encoding::Category {
            vocabulary: vec!["12".into(), "a".into()],
        };
        assert_eq!(category.encode(FeatureValue::Text("a")), 1.0);
        assert_eq!(category.encode(FeatureValue::Integer(12)), 0.0);
        assert!(category.encode(FeatureValue::Text("zz")).is_nan());
        assert!(category.encode(FeatureValue::Number(12.0)).is_nan());
        let frequency = Encoding::Frequency {
            frequencies: Encoding::learn_frequencies(["7", "7", "x", "y"].into_iter()),
        };
        assert_eq!(frequency.encode(FeatureValue::Integer(7)), 0.5);
        assert_eq!(frequency.encode(FeatureValue::Text("unseen")), 0.0);
        assert!(frequency.encode(FeatureValue::Missing).is_nan());
        assert_eq!(Encoding::Number.encode(FeatureValue::Integer(-3)), -3.0);
        assert_eq!(Encoding::Number.encode(FeatureValue::Number(0.5)), 0.5);
        assert!(Encoding::Number.encode(FeatureValue::Text("1")).is_nan());
        let second = Encoding::Element { index: 1 };
        let v = [1.5f32, 2.5];
        assert_eq!(
            second.encode(FeatureValue::Vector(Components::F32(&v))),
            2.5
        );
        assert_eq!(
            second.encode(FeatureValue::Vector(Components::I64(&[4, 5]))),
            5.0
        );
        assert!(
            second
                .encode(FeatureValue::Vector(Components::F64(&[1.0])))
                .is_nan()
        );
        assert_eq!(second.encode(FeatureValue::Number(9.0)), 9.0);
    }
}
