//! Drift settings declared in the registry: `drift: {stattest: psi, threshold: 0.2}` on a
//! view's feature or aggregation.

use std::collections::BTreeMap;

use quiver_core::{DriftSettings, Registry};

use super::FeatureOverride;
use super::stattests::StatTest;

/// Every declared setting, as (view, feature, settings).
fn declared(reg: &Registry) -> impl Iterator<Item = (&str, &str, &DriftSettings)> {
    reg.views.values().flat_map(|v| {
        let features = v
            .features
            .iter()
            .filter_map(|f| Some((f.name.as_str(), f.drift.as_ref()?)));
        let aggregations = v
            .aggregations
            .iter()
            .filter_map(|a| Some((a.name.as_str(), a.drift.as_ref()?)));
        features
            .chain(aggregations)
            .map(move |(f, d)| (v.name.as_str(), f, d))
    })
}

/// Refuses, naming the view's file and line, a declared test that is not one of
/// [`StatTest::ALL`] (checked by `apply`).
pub fn validate(reg: &Registry) -> Result<(), String> {
    for (view, feature, d) in declared(reg) {
        if let Some(t) = &d.stattest
            && StatTest::parse(t).is_none()
        {
            let at = &reg.views[view].at;
            return Err(quiver_core::Error::invalid(
                at,
                "feature view",
                view,
                &format!("{feature}.drift.stattest"),
                format!(
                    "unknown test '{t}': use one of {}",
                    StatTest::ALL.map(StatTest::name).join(", ")
                ),
            )
            .to_string());
        }
    }
    Ok(())
}

/// The declared settings as overrides by column name: `view__feature` (the prediction log's
/// and `historical --full-names`' name) and, when no other view declares a feature of the same
/// name, the bare `feature` (`historical`'s default name).
pub fn overrides(reg: &Registry) -> BTreeMap<String, FeatureOverride> {
    let all: Vec<(&str, &str, &DriftSettings)> = declared(reg).collect();
    let mut out = BTreeMap::new();
    for (view, feature, d) in &all {
        let o = FeatureOverride {
            stattest: d.stattest.as_deref().and_then(StatTest::parse),
            threshold: d.threshold,
        };
        out.insert(format!("{view}__{feature}"), o.clone());
        if all.iter().filter(|(_, f, _)| f == feature).count() == 1 {
            out.insert(feature.to_string(), o);
        }
    }
    out
}
