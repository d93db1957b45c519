//! A/B experiments over a recommender, declared in the registry like recommenders:
//!
//! ```yaml
//! experiments:
//!   - name: cf_vs_pop
//!     recommender: shop_recs
//!     arms: {cf: 0.5, popularity: 0.5}     # the first arm is the control
//!     salt: "2026-12"
//!     outcomes: {source: events, click: view, conversion: purchase, window: 24h}
//! ```
//!
//! Each user of the recommender is assigned to one arm by hashing the salt and the user id
//! (`quiver-recs`' `ab::assign`), so a user keeps their arm across requests and servers, and a
//! new salt reshuffles everyone. An arm names what `/recommend` serves the user: `cf`
//! (collaborative filtering), `popularity`, or `blend` (the recommender's cold-start policy:
//! CF, popularity blended in below `min_interactions`).
//!
//! Outcomes are read from `outcomes.source` with the recommender's user, item and event type
//! column names: an exposure is clicked (converted) when the user has an event of type `click`
//! (`conversion`) on one of the exposed items within `window` after the exposure.
//!
//! Validation here checks what needs no data: the recommender and the source exist, the arms
//! are known and their shares positive and summing to 1, the recommender has an event type
//! column, at most one experiment per recommender. The outcome source's columns and event
//! types are checked against the data by `quiver apply` (through `quiver-recs`).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::duration::Duration;
use crate::error::{Error, Located, Result};
use crate::recommender::at;
use crate::registry::{Registry, suggest};
use crate::yaml::S;

/// The arms an experiment may name: what `/recommend` can serve.
pub const ARM_NAMES: [&str; 3] = ["cf", "popularity", "blend"];

/// How far the shares' sum may be from 1 (decimal shares such as 0.1 + 0.2 + 0.7).
const SHARE_TOLERANCE: f64 = 1e-9;

/// A declared experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// Name.
    pub name: String,
    /// The recommender whose users are split.
    pub recommender: String,
    /// The arms in declaration order (the first is the control), shares summing to 1.
    pub arms: Vec<ArmShare>,
    /// Hashed with each user id to assign arms.
    pub salt: String,
    /// What counts as a click and a conversion.
    pub outcomes: Outcomes,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Where it was defined.
    #[serde(skip)]
    pub at: Located,
}

/// One arm and its share of users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmShare {
    /// `cf`, `popularity` or `blend`.
    pub arm: String,
    /// Share of users, in (0, 1].
    pub share: f64,
}

/// `outcomes:` of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcomes {
    /// The source of outcome events (read with the recommender's user, item and event type
    /// column names and the source's timestamp field).
    pub source: String,
    /// The event type that counts as a click.
    pub click: String,
    /// The event type that counts as a conversion.
    pub conversion: String,
    /// How long after an exposure an event counts.
    pub window: Duration,
}

impl Experiment {
    /// The arm names in order.
    pub fn arm_names(&self) -> Vec<&str> {
        self.arms.iter().map(|a| a.arm.as_str()).collect()
    }
}

/// `experiments:` item, as read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExperiment {
    /// Name.
    pub name: S<String>,
    /// Recommender.
    pub recommender: S<String>,
    /// Arms and shares.
    pub arms: S<RawArms>,
    /// Salt.
    pub salt: S<String>,
    /// Outcomes.
    pub outcomes: S<RawOutcomes>,
    /// Free text.
    pub description: Option<String>,
    /// Owner.
    pub owner: Option<String>,
    /// Labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// `arms:` as read: a mapping of arm names to shares, in the file's order.
#[derive(Debug)]
pub struct RawArms(pub Vec<(String, f64)>);

impl<'de> Deserialize<'de> for RawArms {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = RawArms;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of arms to shares, e.g. {cf: 0.5, popularity: 0.5}")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<RawArms, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = m.next_entry::<String, f64>()? {
                    out.push(entry);
                }
                Ok(RawArms(out))
            }
        }
        d.deserialize_map(Entries)
    }
}

/// `outcomes:` as read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutcomes {
    /// Source name.
    pub source: S<String>,
    /// Click event type.
    pub click: S<String>,
    /// Conversion event type.
    pub conversion: S<String>,
    /// Window after the exposure.
    pub window: S<String>,
}

/// Validates one experiment against the registry built so far (sources, recommenders and the
/// experiments before it).
pub(crate) fn build_experiment(
    file: &std::path::Path,
    raw: RawExperiment,
    reg: &Registry,
    name: String,
) -> Result<Experiment> {
    const K: &str = "experiment";
    let bad = |a: Located, field: &str, m: String| Error::invalid(&a, K, &name, field, m);
    let rec_name = &raw.recommender.value;
    let Some(rec) = reg.recommenders.get(rec_name) else {
        return Err(bad(
            at(file, &raw.recommender),
            "recommender",
            format!(
                "no recommender '{rec_name}'{}",
                suggest(rec_name, reg.recommenders.keys())
            ),
        ));
    };
    if let Some(other) = reg
        .experiments
        .values()
        .find(|e| &e.recommender == rec_name && e.name != name)
    {
        return Err(bad(
            at(file, &raw.recommender),
            "recommender",
            format!(
                "recommender '{rec_name}' is already split by experiment '{}' ({}): one experiment per recommender at a time, so that each user gets one list",
                other.name, other.at
            ),
        ));
    }
    let arms_at = at(file, &raw.arms);
    let raw_arms = raw.arms.value.0;
    if raw_arms.len() < 2 {
        return Err(bad(
            arms_at,
            "arms",
            format!(
                "{} arm(s): an experiment compares two or more arms, e.g. {{cf: 0.5, popularity: 0.5}}",
                raw_arms.len()
            ),
        ));
    }
    let mut arms: Vec<ArmShare> = Vec::with_capacity(raw_arms.len());
    for (arm, share) in raw_arms {
        let field = format!("arms.{arm}");
        if !ARM_NAMES.contains(&arm.as_str()) {
            return Err(bad(
                arms_at,
                &field,
                format!(
                    "unknown arm '{arm}'{} (what /recommend can serve)",
                    suggest(&arm, ARM_NAMES.iter())
                ),
            ));
        }
        if arms.iter().any(|a| a.arm == arm) {
            return Err(bad(arms_at, &field, format!("'{arm}' is listed twice")));
        }
        if !(share.is_finite() && share > 0.0 && share <= 1.0) {
            return Err(bad(
                arms_at,
                &field,
                format!("share {share}: use a number above 0 and at most 1"),
            ));
        }
        arms.push(ArmShare { arm, share });
    }
    let total: f64 = arms.iter().map(|a| a.share).sum();
    if (total - 1.0).abs() > SHARE_TOLERANCE {
        return Err(bad(
            arms_at,
            "arms",
            format!(
                "the shares sum to {total} ({}): they must sum to 1",
                arms.iter()
                    .map(|a| format!("{} {}", a.arm, a.share))
                    .collect::<Vec<_>>()
                    .join(" + ")
            ),
        ));
    }
    if raw.salt.value.is_empty() {
        return Err(bad(
            at(file, &raw.salt),
            "salt",
            "give a non-empty text (a new salt reassigns every user)".into(),
        ));
    }
    let o_at = at(file, &raw.outcomes);
    let o = raw.outcomes.value;
    if !reg.sources.contains_key(&o.source.value) {
        return Err(bad(
            at(file, &o.source),
            "outcomes.source",
            format!(
                "no source '{}'{}",
                o.source.value,
                suggest(&o.source.value, reg.sources.keys())
            ),
        ));
    }
    if rec.interactions.event_type.is_none() {
        return Err(bad(
            o_at,
            "outcomes",
            format!(
                "recommender '{rec_name}' declares no `interactions.event_type`: outcomes are told apart by that column (click: {}, conversion: {})",
                o.click.value, o.conversion.value
            ),
        ));
    }
    for (field, s) in [
        ("outcomes.click", &o.click),
        ("outcomes.conversion", &o.conversion),
    ] {
        if s.value.trim().is_empty() {
            return Err(bad(at(file, s), field, "name an event type".into()));
        }
    }
    let window = Duration::parse(&o.window.value)
        .map_err(|m| bad(at(file, &o.window), "outcomes.window", m))?;
    if window.is_zero() {
        return Err(bad(
            at(file, &o.window),
            "outcomes.window",
            "0: an outcome must be counted for some time after the exposure, e.g. 24h".into(),
        ));
    }
    Ok(Experiment {
        name: name.clone(),
        recommender: rec_name.clone(),
        arms,
        salt: raw.salt.value,
        outcomes: Outcomes {
            source: o.source.value,
            click: o.click.value,
            conversion: o.conversion.value,
            window,
        },
        description: raw.description,
        owner: raw.owner,
        tags: raw.tags,
        at: at(file, &raw.name),
    })
}
