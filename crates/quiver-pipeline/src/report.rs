//! A version's self-contained HTML report (metrics, ROC / PR / calibration plots, importance,
//! SHAP summary), from its registry record and `evaluation.json`.

use std::path::Path;

use quiver_registry::ModelVersion;

use crate::{Error, Result};

/// A version's self-contained HTML report (metrics, plots, importance, SHAP summary).
pub fn report_html(repo: &Path, v: &ModelVersion) -> Result<String> {
    let dir = crate::artifacts::version_dir(repo, v);
    let evaluation: Option<quiver_ml::metrics::Evaluation> =
        match std::fs::read_to_string(dir.join("evaluation.json")) {
            Ok(t) => Some(serde_json::from_str(&t).map_err(|e| {
                Error::Invalid(format!("{}: {e}", dir.join("evaluation.json").display()))
            })?),
            Err(_) => None,
        };
    let bars = |key: &str, field: &str| -> Vec<quiver_ml::report::FeatureBar> {
        let mut b: Vec<_> = v.details[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| quiver_ml::report::FeatureBar {
                        feature: i["feature"].as_str().unwrap_or("").to_string(),
                        value: i[field].as_f64().unwrap_or(0.0),
                    })
                    .collect()
            })
            .unwrap_or_default();
        b.sort_by(|x, y| y.value.total_cmp(&x.value));
        b
    };
    let mut facts = vec![
        (
            "model".to_string(),
            format!("{} version {}", v.name, v.version),
        ),
        ("aliases".to_string(), v.aliases.join(", ")),
        (
            "task / algorithm".to_string(),
            format!("{} / {}", v.task, v.algorithm),
        ),
        (
            "feature service".to_string(),
            format!(
                "{} (hash {})",
                v.feature_service,
                &v.service_hash[..12.min(v.service_hash.len())]
            ),
        ),
        ("created".to_string(), v.created_at.clone()),
    ];
    for k in [
        "label",
        "split",
        "time_range",
        "param_overrides",
        "best_iteration",
        "registry_version",
        "git_commit",
        "imported_from",
    ] {
        if !v.details[k].is_null() {
            facts.push((k.replace('_', " "), v.details[k].to_string()));
        }
    }
    Ok(quiver_ml::report::html(&quiver_ml::report::ReportInput {
        title: format!("Quiver model {} version {}", v.name, v.version),
        facts,
        evaluation: evaluation.as_ref(),
        gain: bars("importance", "gain"),
        splits: bars("importance", "splits"),
        shap: bars("shap_summary", "mean_abs_shap"),
    }))
}
