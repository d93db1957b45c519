//! VADER against the Python reference (vaderSentiment 3.3.2) on 200 real reviews; the fixture and
//! the script that made it are in `tests/fixtures/`.

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use quiver_transforms::vader::polarity_scores;

use crate::support::offline;

/// Area under the ROC curve of `scores` for `labels` (Mann-Whitney, ties counted half).
fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[idx[k]] = avg;
        }
        i = j + 1;
    }
    let pos = labels.iter().filter(|l| **l).count() as f64;
    let neg = labels.len() as f64 - pos;
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l)
        .map(|(r, _)| r)
        .sum();
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

#[test]
fn vader_matches_the_python_reference_on_reviews() {
    let raw = include_str!("../fixtures/vader_reviews.json");
    let fixture: serde_json::Value = serde_json::from_str(raw).unwrap();
    let rows = fixture["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 200);
    let (mut max_compound, mut max_share) = (0.0f64, 0.0f64);
    let mut scores = Vec::new();
    let mut labels = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let text = r["review"].as_str().unwrap();
        let p = polarity_scores(text);
        let d = (p.compound - r["compound"].as_f64().unwrap()).abs();
        assert!(
            d <= 1e-4,
            "review {i}: compound {} vs Python {}: {text}",
            p.compound,
            r["compound"]
        );
        max_compound = max_compound.max(d);
        for (ours, key) in [(p.pos, "pos"), (p.neg, "neg"), (p.neu, "neu")] {
            let d = (ours - r[key].as_f64().unwrap()).abs();
            assert!(d <= 1e-3, "review {i}: {key} {ours} vs Python {}", r[key]);
            max_share = max_share.max(d);
        }
        scores.push(p.compound);
        labels.push(r["score"].as_str().unwrap() == "great");
    }
    let auc = roc_auc(&scores, &labels);
    println!(
        "VADER vs vaderSentiment 3.3.2 on 200 reviews: max |compound diff| = {max_compound:e}, \
         max |pos/neg/neu diff| = {max_share:e}; ROC-AUC(compound, great vs other) = {auc:.4}"
    );
    assert!(auc > 0.6, "AUC {auc}");

    // The SQL function gives the same numbers over the whole table.
    let texts: StringArray = rows.iter().map(|r| r["review"].as_str()).collect();
    let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(texts)]).unwrap();
    let sql = offline("sentiment_compound(s)", &batch).unwrap();
    let sql: Vec<f64> = sql.as_primitive::<Float64Type>().values().to_vec();
    assert_eq!(sql, scores);
}

#[test]
fn auc_helper() {
    assert_eq!(
        roc_auc(&[0.1, 0.2, 0.3, 0.4], &[false, false, true, true]),
        1.0
    );
    assert_eq!(roc_auc(&[0.5, 0.5], &[false, true]), 0.5);
}
