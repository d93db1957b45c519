//! What `apply` would change: a typed diff of two registries.
//!
//! Objects are matched by kind and name and compared by content hash. A changed object lists its
//! changed fields (list items with a `name` are matched by name, so `features[f_int].type` reads
//! as what it is). A change is *breaking* when something consuming the old registry would get
//! different or missing data: a feature that a service reads is removed or changes type, a view's
//! entities (keys) change, a service is removed or drops features, an entity's join keys change
//! under a view that a service reads.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use crate::registry::{ObjectKind, Registry};

/// One changed field of an object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// Path such as `ttl` or `features[f_int].type`.
    pub path: String,
    /// Old value (JSON), `None` when added.
    pub old: Option<String>,
    /// New value (JSON), `None` when removed.
    pub new: Option<String>,
}

/// What happens to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// New object.
    Add,
    /// Changed object.
    Change,
    /// Removed object.
    Remove,
}

/// A change to one object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Kind of object.
    pub kind: ObjectKind,
    /// Name.
    pub name: String,
    /// What happens.
    pub op: Op,
    /// Changed fields (for [`Op::Change`]).
    pub fields: Vec<FieldChange>,
    /// Why the change breaks consumers; empty when it does not.
    pub breaking: Vec<String>,
    /// Old content hash.
    pub old_hash: Option<String>,
    /// New content hash.
    pub new_hash: Option<String>,
}

/// The changes from one registry to another, in dependency order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// Changes; unchanged objects are not listed.
    pub changes: Vec<Change>,
    /// Whether the project name changed.
    pub project_renamed: Option<(String, String)>,
}

impl Plan {
    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.project_renamed.is_none()
    }

    /// The breaking changes.
    pub fn breaking(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| !c.breaking.is_empty())
    }

    /// Counts of added, changed, removed objects.
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |op| self.changes.iter().filter(|c| c.op == op).count();
        (n(Op::Add), n(Op::Change), n(Op::Remove))
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(
                f,
                "No changes: the stored registry matches the definitions."
            );
        }
        if let Some((old, new)) = &self.project_renamed {
            writeln!(f, "~ project: {old} -> {new}")?;
        }
        for c in &self.changes {
            let sign = match c.op {
                Op::Add => '+',
                Op::Change => '~',
                Op::Remove => '-',
            };
            let mark = if c.breaking.is_empty() {
                ""
            } else {
                "  [BREAKING]"
            };
            writeln!(f, "{sign} {} {}{mark}", c.kind, c.name)?;
            for fc in &c.fields {
                match (&fc.old, &fc.new) {
                    (Some(o), Some(n)) => writeln!(f, "    ~ {}: {o} -> {n}", fc.path)?,
                    (None, Some(n)) => writeln!(f, "    + {}: {n}", fc.path)?,
                    (Some(o), None) => writeln!(f, "    - {}: {o}", fc.path)?,
                    (None, None) => {}
                }
            }
            for b in &c.breaking {
                writeln!(f, "    ! {b}")?;
            }
        }
        let (a, c, r) = self.counts();
        let b = self.breaking().count();
        write!(f, "Plan: {a} to add, {c} to change, {r} to remove")?;
        if b > 0 {
            write!(f, "; {b} breaking (apply needs --allow-breaking)")?;
        }
        writeln!(f)
    }
}

/// Diffs `old` (the stored registry, if any) against `new` (the definitions).
pub fn plan(old: Option<&Registry>, new: &Registry) -> Plan {
    let empty = Registry {
        project: new.project.clone(),
        description: None,
        entities: Default::default(),
        sources: Default::default(),
        views: Default::default(),
        services: Default::default(),
        jobs: Default::default(),
        recommenders: Default::default(),
        quality: Default::default(),
        experiments: Default::default(),
    };
    let old = old.unwrap_or(&empty);
    let mut out = Plan::default();
    if old.project != new.project && !(old.entities.is_empty() && old.views.is_empty()) {
        out.project_renamed = Some((old.project.clone(), new.project.clone()));
    }
    for kind in ObjectKind::ALL {
        let names: BTreeSet<String> = old.names(kind).into_iter().chain(new.names(kind)).collect();
        for name in names {
            let (oh, nh) = (old.object_hash(kind, &name), new.object_hash(kind, &name));
            let op = match (&oh, &nh) {
                (None, Some(_)) => Op::Add,
                (Some(_), None) => Op::Remove,
                (Some(a), Some(b)) if a != b => Op::Change,
                // The same values under other settings (a view's retention or drift tests,
                // left out of its content hash): still a change to store, versioning nothing.
                (Some(_), Some(_))
                    if old.object_json(kind, &name) != new.object_json(kind, &name) =>
                {
                    Op::Change
                }
                _ => continue,
            };
            let mut fields = Vec::new();
            if op == Op::Change {
                let (o, n) = (old.object_json(kind, &name), new.object_json(kind, &name));
                diff_values("", o.as_ref(), n.as_ref(), &mut fields);
            }
            let breaking = breaking_reasons(old, new, kind, &name, op);
            out.changes.push(Change {
                kind,
                name,
                op,
                fields,
                breaking,
                old_hash: oh,
                new_hash: nh,
            });
        }
    }
    out
}

fn breaking_reasons(
    old: &Registry,
    new: &Registry,
    kind: ObjectKind,
    name: &str,
    op: Op,
) -> Vec<String> {
    let mut reasons = Vec::new();
    match kind {
        // A job change stops or starts work; it never changes what a consumer reads.
        ObjectKind::Job => {}
        // A recommender's new definition applies at its next training; served versions stay.
        ObjectKind::Recommender => {}
        // A quality set only reads data; changing it changes no value a consumer reads.
        ObjectKind::Quality => {}
        // A new salt or new arms reassign users while the experiment runs: its report would
        // mix two assignments (a new experiment, under a new name, starts clean).
        ObjectKind::Experiment => {
            if let (Op::Change, Some(o), Some(n)) =
                (op, old.experiments.get(name), new.experiments.get(name))
            {
                if o.salt != n.salt {
                    reasons.push(format!(
                        "salt changes from '{}' to '{}': every user is reassigned mid-experiment",
                        o.salt, n.salt
                    ));
                }
                if o.arms != n.arms {
                    reasons.push(
                        "arms or shares change: users are reassigned mid-experiment".to_string(),
                    );
                }
            }
        }
        ObjectKind::FeatureView => {
            let Some(ov) = old.views.get(name) else {
                return reasons;
            };
            let consumers = old.services_using_view(name);
            if consumers.is_empty() {
                return reasons;
            }
            let nv = new.views.get(name);
            let used: BTreeSet<&str> = old
                .services
                .values()
                .flat_map(|s| s.features.iter())
                .filter(|f| f.view == name)
                .map(|f| f.feature.as_str())
                .collect();
            match nv {
                None => reasons.push(format!(
                    "view removed while services read it: {}",
                    consumers.join(", ")
                )),
                Some(nv) => {
                    if nv.entities != ov.entities {
                        reasons.push(format!(
                            "entities change from [{}] to [{}] while services read the view: {}",
                            ov.entities.join(", "),
                            nv.entities.join(", "),
                            consumers.join(", ")
                        ));
                    }
                    for feat in used {
                        match (ov.output_type(feat), nv.output_type(feat)) {
                            (Some(_), None) => reasons
                                .push(format!("feature '{feat}' removed while a service reads it")),
                            (Some(a), Some(b)) if a != b => reasons.push(format!(
                                "feature '{feat}' changes type {a} -> {b} while a service reads it"
                            )),
                            _ => {}
                        }
                    }
                }
            }
        }
        ObjectKind::FeatureService => match op {
            Op::Remove => {
                reasons.push("service removed: models and clients that read it break".into())
            }
            Op::Change => {
                let (os, ns) = (&old.services[name], &new.services[name]);
                let dropped: Vec<String> = os
                    .features
                    .iter()
                    .filter(|f| !ns.features.contains(f))
                    .map(|f| f.to_string())
                    .collect();
                if !dropped.is_empty() {
                    reasons.push(format!("service drops features: {}", dropped.join(", ")));
                }
            }
            Op::Add => {}
        },
        ObjectKind::Entity => {
            let (Some(oe), ne) = (old.entities.get(name), new.entities.get(name)) else {
                return reasons;
            };
            if ne.map(|e| &e.join_keys) != Some(&oe.join_keys) {
                let views: Vec<&str> = old
                    .views
                    .values()
                    .filter(|v| v.entities.iter().any(|e| e == name))
                    .filter(|v| !old.services_using_view(&v.name).is_empty())
                    .map(|v| v.name.as_str())
                    .collect();
                if !views.is_empty() {
                    let what = if ne.is_none() {
                        "entity removed"
                    } else {
                        "join keys change"
                    };
                    reasons.push(format!(
                        "{what} under views that services read: {}",
                        views.join(", ")
                    ));
                }
            }
        }
        ObjectKind::Source => {}
    }
    reasons
}

fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A list item as people write it: text as itself, a feature reference as `view:feature`,
/// anything else as JSON.
fn item_label(v: &Value) -> String {
    match (
        v,
        v.get("view").and_then(Value::as_str),
        v.get("feature").and_then(Value::as_str),
    ) {
        (Value::Object(o), Some(view), Some(feature)) if o.len() == 2 => {
            format!("{view}:{feature}")
        }
        _ => render(v),
    }
}

/// A list as its items' labels, comma-separated.
fn labels(items: &[Value]) -> String {
    items.iter().map(item_label).collect::<Vec<_>>().join(", ")
}

fn named_items(items: &[Value]) -> Option<Vec<(String, &Value)>> {
    items
        .iter()
        .map(|i| {
            i.get("name")
                .and_then(Value::as_str)
                .map(|n| (n.to_string(), i))
        })
        .collect()
}

fn diff_values(path: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<FieldChange>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (old, new) {
        (Some(Value::Object(o)), Some(Value::Object(n))) => {
            let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
            for k in keys {
                diff_values(&join(k), o.get(k), n.get(k), out);
            }
        }
        (Some(Value::Array(o)), Some(Value::Array(n))) => {
            if let (Some(on), Some(nn)) = (named_items(o), named_items(n)) {
                for (name, ov) in &on {
                    let nv = nn.iter().find(|(m, _)| m == name).map(|(_, v)| *v);
                    diff_values(&format!("{path}[{name}]"), Some(ov), nv, out);
                }
                for (name, nv) in &nn {
                    if !on.iter().any(|(m, _)| m == name) {
                        diff_values(&format!("{path}[{name}]"), None, Some(nv), out);
                    }
                }
            } else if o != n {
                // Unnamed items (a service's features, its patterns): each item removed or added
                // is one change, so that a long list reads as what left and what came.
                let removed: Vec<&Value> = o.iter().filter(|i| !n.contains(i)).collect();
                let added: Vec<&Value> = n.iter().filter(|i| !o.contains(i)).collect();
                for i in &removed {
                    out.push(FieldChange {
                        path: path.to_string(),
                        old: Some(item_label(i)),
                        new: None,
                    });
                }
                for i in &added {
                    out.push(FieldChange {
                        path: path.to_string(),
                        old: None,
                        new: Some(item_label(i)),
                    });
                }
                if removed.is_empty() && added.is_empty() {
                    // The same items in another order.
                    out.push(FieldChange {
                        path: format!("{path} (order)"),
                        old: Some(labels(o)),
                        new: Some(labels(n)),
                    });
                }
            }
        }
        (o, n) if o != n => out.push(FieldChange {
            path: path.to_string(),
            old: o.map(render),
            new: n.map(render),
        }),
        _ => {}
    }
}
