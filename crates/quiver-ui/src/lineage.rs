//! The lineage graph: source → view → (feature) → service → model version, around one object,
//! laid out in layers and drawn as SVG.
//!
//! Lineage here is a layered DAG by construction (every edge goes one kind further along the
//! pipeline), so no general graph-layout library is needed: nodes go in a column per kind, each
//! column is ordered by the mean position of its nodes' parents (the barycenter heuristic, two
//! sweeps), and edges are drawn as curves between the columns. Every node links to its page.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use maud::{Markup, html};
use quiver_core::Registry;
use quiver_registry::ModelVersion;
use serde_json::{Value as Json, json};

use crate::render::seg;
use crate::svg::short;

/// What the graph is drawn around.
#[derive(Debug, Clone, Copy)]
pub enum Focus<'a> {
    /// A source.
    Source(&'a str),
    /// An entity (every view keyed by it).
    Entity(&'a str),
    /// A feature view.
    View(&'a str),
    /// One feature of a view.
    Feature(&'a str, &'a str),
    /// A feature service.
    Service(&'a str),
    /// A model (every version).
    Model(&'a str),
}

/// A node.
#[derive(Debug, Clone)]
pub struct Node {
    /// `kind:name` (models: `model:name:version`).
    pub id: String,
    /// source, view, feature, service, model, recommender.
    pub kind: &'static str,
    /// What the box says.
    pub label: String,
    /// Its page.
    pub href: String,
    /// Whether it is the object the graph is about.
    pub focus: bool,
    layer: usize,
}

/// A lineage graph.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Edges, parent to child, as node indexes.
    pub edges: Vec<(usize, usize)>,
}

struct Builder {
    g: Graph,
    index: HashMap<String, usize>,
}

impl Builder {
    fn node(
        &mut self,
        id: String,
        kind: &'static str,
        label: String,
        href: String,
        layer: usize,
    ) -> usize {
        if let Some(i) = self.index.get(&id) {
            return *i;
        }
        self.g.nodes.push(Node {
            id: id.clone(),
            kind,
            label,
            href,
            focus: false,
            layer,
        });
        self.index.insert(id, self.g.nodes.len() - 1);
        self.g.nodes.len() - 1
    }
}

/// The whole project's lineage (every source, view, service, model version and recommender),
/// with feature nodes for the features of `feature` when given.
fn whole(r: &Registry, models: &[ModelVersion], feature: Option<(&str, &str)>) -> Builder {
    let mut b = Builder {
        g: Graph::default(),
        index: HashMap::new(),
    };
    for s in r.sources.keys() {
        b.node(
            format!("source:{s}"),
            "source",
            s.clone(),
            format!("/ui/sources/{}", seg(s)),
            0,
        );
    }
    for v in r.views.values() {
        let layer = if v.is_request() { 2 } else { 1 };
        let i = b.node(
            format!("view:{}", v.name),
            "view",
            v.name.clone(),
            format!("/ui/views/{}", seg(&v.name)),
            layer,
        );
        if !v.is_request()
            && let Some(&s) = b.index.get(&format!("source:{}", v.source))
        {
            b.g.edges.push((s, i));
        }
    }
    for v in r.views.values() {
        for input in v.request.iter().flat_map(|q| &q.inputs) {
            if let (Some(&a), Some(&c)) = (
                b.index.get(&format!("view:{input}")),
                b.index.get(&format!("view:{}", v.name)),
            ) {
                b.g.edges.push((a, c));
            }
        }
    }
    for s in r.services.values() {
        let si = b.node(
            format!("service:{}", s.name),
            "service",
            s.name.clone(),
            format!("/ui/services/{}", seg(&s.name)),
            4,
        );
        let views: BTreeSet<&str> = s.features.iter().map(|f| f.view.as_str()).collect();
        for v in views {
            let Some(&vi) = b.index.get(&format!("view:{v}")) else {
                continue;
            };
            match feature {
                Some((fv, ff)) if fv == v => {
                    if s.features.iter().any(|f| f.view == fv && f.feature == ff) {
                        let fi = b.node(
                            format!("feature:{fv}:{ff}"),
                            "feature",
                            format!("{fv}:{ff}"),
                            format!("/ui/features/{}/{}", seg(fv), seg(ff)),
                            3,
                        );
                        b.g.edges.push((vi, fi));
                        b.g.edges.push((fi, si));
                    }
                }
                _ => b.g.edges.push((vi, si)),
            }
        }
    }
    if let Some((fv, ff)) = feature
        && let Some(&vi) = b.index.get(&format!("view:{fv}"))
    {
        let fi = b.node(
            format!("feature:{fv}:{ff}"),
            "feature",
            format!("{fv}:{ff}"),
            format!("/ui/features/{}/{}", seg(fv), seg(ff)),
            3,
        );
        if !b.g.edges.contains(&(vi, fi)) {
            b.g.edges.push((vi, fi));
        }
    }
    for m in models {
        let Some(&si) = b.index.get(&format!("service:{}", m.feature_service)) else {
            continue;
        };
        let label = if m.aliases.is_empty() {
            format!("{} v{}", m.name, m.version)
        } else {
            format!("{} v{} ({})", m.name, m.version, m.aliases.join(", "))
        };
        let mi = b.node(
            format!("model:{}:{}", m.name, m.version),
            "model",
            label,
            format!("/ui/models/{}", seg(&m.name)),
            5,
        );
        b.g.edges.push((si, mi));
    }
    for rec in r.recommenders.values() {
        let ri = b.node(
            format!("recommender:{}", rec.name),
            "recommender",
            rec.name.clone(),
            format!("/ui/recommend?recommender={}", seg(&rec.name)),
            5,
        );
        if let Some(&s) = b.index.get(&format!("source:{}", rec.interactions.source)) {
            b.g.edges.push((s, ri));
        }
    }
    b
}

/// The lineage around `focus`: the object, everything it is computed from and everything
/// computed from it. `models` are the registered model versions.
pub fn around(r: &Registry, models: &[ModelVersion], focus: Focus) -> Graph {
    let feature = match focus {
        Focus::Feature(v, f) => Some((v, f)),
        _ => None,
    };
    let b = whole(r, models, feature);
    let starts: Vec<usize> = match focus {
        Focus::Source(s) => b
            .index
            .get(&format!("source:{s}"))
            .copied()
            .into_iter()
            .collect(),
        Focus::View(v) => b
            .index
            .get(&format!("view:{v}"))
            .copied()
            .into_iter()
            .collect(),
        Focus::Feature(v, f) => b
            .index
            .get(&format!("feature:{v}:{f}"))
            .copied()
            .into_iter()
            .collect(),
        Focus::Service(s) => b
            .index
            .get(&format!("service:{s}"))
            .copied()
            .into_iter()
            .collect(),
        Focus::Model(m) => {
            b.g.nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.id.starts_with(&format!("model:{m}:")))
                .map(|(i, _)| i)
                .collect()
        }
        Focus::Entity(e) => r
            .views
            .values()
            .filter(|v| v.entities.iter().any(|x| x == e))
            .filter_map(|v| b.index.get(&format!("view:{}", v.name)).copied())
            .collect(),
    };
    let n = b.g.nodes.len();
    let mut keep = vec![false; n];
    for (forward, _) in [(true, ()), (false, ())] {
        let mut queue: VecDeque<usize> = starts.iter().copied().collect();
        let mut seen = vec![false; n];
        while let Some(i) = queue.pop_front() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            keep[i] = true;
            for &(a, c) in &b.g.edges {
                let (from, to) = if forward { (a, c) } else { (c, a) };
                if from == i && !seen[to] {
                    queue.push_back(to);
                }
            }
        }
    }
    let mut remap = vec![usize::MAX; n];
    let mut g = Graph::default();
    for (i, node) in b.g.nodes.into_iter().enumerate() {
        if keep[i] {
            remap[i] = g.nodes.len();
            let focus = starts.contains(&i);
            g.nodes.push(Node { focus, ..node });
        }
    }
    g.edges =
        b.g.edges
            .iter()
            .filter(|(a, c)| keep[*a] && keep[*c])
            .map(|(a, c)| (remap[*a], remap[*c]))
            .collect();
    g
}

impl Graph {
    /// The graph as JSON: `{"nodes": [{id, kind, label, href, focus}], "edges": [[from, to]]}`
    /// (edges by node id).
    pub fn to_json(&self) -> Json {
        json!({
            "nodes": self.nodes.iter().map(|n| json!({"id": n.id, "kind": n.kind, "label": n.label, "href": n.href, "focus": n.focus, "layer": n.layer})).collect::<Vec<_>>(),
            "edges": self.edges.iter().map(|(a, c)| json!([self.nodes[*a].id, self.nodes[*c].id])).collect::<Vec<_>>(),
        })
    }
}

/// Most nodes drawn in one column; the rest are summarized in a last box.
const MAX_PER_COLUMN: usize = 40;
const NODE_W: f64 = 190.0;
const NODE_H: f64 = 30.0;
const COL_W: f64 = 250.0;
const ROW_H: f64 = 42.0;

/// Node positions: column, row, and (per column) how many nodes were left out.
fn layout(
    nodes: &[(String, usize, bool)],
    edges: &[(String, String)],
) -> (Vec<Vec<usize>>, BTreeMap<usize, usize>) {
    // Columns in pipeline order, empty kinds dropped.
    let layers: BTreeSet<usize> = nodes.iter().map(|n| n.1).collect();
    let col_of: HashMap<usize, usize> = layers.iter().enumerate().map(|(c, l)| (*l, c)).collect();
    let mut columns: Vec<Vec<usize>> = vec![Vec::new(); layers.len()];
    for (i, n) in nodes.iter().enumerate() {
        columns[col_of[&n.1]].push(i);
    }
    let id_index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.0.as_str(), i))
        .collect();
    let pairs: Vec<(usize, usize)> = edges
        .iter()
        .filter_map(|(a, c)| Some((*id_index.get(a.as_str())?, *id_index.get(c.as_str())?)))
        .collect();
    // Barycenter ordering: down then up, each column by its neighbours' mean row.
    let mut row = vec![0f64; nodes.len()];
    let set_rows = |columns: &Vec<Vec<usize>>, row: &mut Vec<f64>| {
        for col in columns {
            for (r, &i) in col.iter().enumerate() {
                row[i] = r as f64;
            }
        }
    };
    set_rows(&columns, &mut row);
    for down in [true, false, true] {
        let order: Vec<usize> = if down {
            (1..columns.len()).collect()
        } else {
            (0..columns.len().saturating_sub(1)).rev().collect()
        };
        for c in order {
            let mut keyed: Vec<(f64, usize)> = columns[c]
                .iter()
                .map(|&i| {
                    let ns: Vec<f64> = pairs
                        .iter()
                        .filter_map(|&(a, b)| {
                            if down && b == i {
                                Some(row[a])
                            } else if !down && a == i {
                                Some(row[b])
                            } else {
                                None
                            }
                        })
                        .collect();
                    let key = if ns.is_empty() {
                        row[i]
                    } else {
                        ns.iter().sum::<f64>() / ns.len() as f64
                    };
                    (key, i)
                })
                .collect();
            keyed.sort_by(|a, b| {
                a.0.total_cmp(&b.0)
                    .then_with(|| nodes[a.1].0.cmp(&nodes[b.1].0))
            });
            columns[c] = keyed.into_iter().map(|(_, i)| i).collect();
            set_rows(&columns, &mut row);
        }
    }
    // The focus stays visible when a column is cut.
    let mut cut = BTreeMap::new();
    for (c, col) in columns.iter_mut().enumerate() {
        if col.len() > MAX_PER_COLUMN {
            // Focus nodes first, then the rest, in the column's order.
            let mut chosen: Vec<usize> = col.iter().copied().filter(|&i| nodes[i].2).collect();
            chosen.extend(col.iter().copied().filter(|&i| !nodes[i].2));
            chosen.truncate(MAX_PER_COLUMN);
            let kept: Vec<usize> = col.iter().copied().filter(|i| chosen.contains(i)).collect();
            cut.insert(c, col.len() - kept.len());
            *col = kept;
        }
    }
    (columns, cut)
}

/// The graph as an SVG drawing (from its JSON form, so the page and its JSON twin agree).
pub fn svg(graph: &Json) -> Markup {
    let nodes: Vec<&Json> = graph["nodes"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    if nodes.is_empty() {
        return html! { p.muted { "No lineage." } };
    }
    let keyed: Vec<(String, usize, bool)> = nodes
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap_or("").to_string(),
                n["layer"].as_u64().unwrap_or(0) as usize,
                n["focus"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    let edges: Vec<(String, String)> = graph["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e[0].as_str()?.to_string(), e[1].as_str()?.to_string())))
        .collect();
    let (columns, cut) = layout(&keyed, &edges);
    let tallest = columns
        .iter()
        .enumerate()
        .map(|(c, col)| col.len() + usize::from(cut.contains_key(&c)))
        .max()
        .unwrap_or(1);
    let height = tallest as f64 * ROW_H + 10.0;
    let width = columns.len() as f64 * COL_W - (COL_W - NODE_W) + 10.0;
    let mut pos: HashMap<&str, (f64, f64)> = HashMap::new();
    for (c, col) in columns.iter().enumerate() {
        let shown = col.len() + usize::from(cut.contains_key(&c));
        let top = (height - shown as f64 * ROW_H) / 2.0;
        for (r, &i) in col.iter().enumerate() {
            pos.insert(
                keyed[i].0.as_str(),
                (5.0 + c as f64 * COL_W, top + r as f64 * ROW_H + 6.0),
            );
        }
    }
    html! {
        svg.lineage width=(width) height=(height) viewBox={"0 0 " (width) " " (height)} role="img" aria-label="lineage graph" {
            @for (a, c) in &edges {
                @if let (Some((x1, y1)), Some((x2, y2))) = (pos.get(a.as_str()), pos.get(c.as_str())) {
                    @let (sx, sy, ex, ey) = (x1 + NODE_W, y1 + NODE_H / 2.0, *x2, y2 + NODE_H / 2.0);
                    @let mid = (sx + ex) / 2.0;
                    path.edge d={"M" (sx) "," (sy) " C" (mid) "," (sy) " " (mid) "," (ey) " " (ex) "," (ey)} {}
                }
            }
            @for n in &nodes {
                @if let Some((x, y)) = pos.get(n["id"].as_str().unwrap_or("")) {
                    @let kind = n["kind"].as_str().unwrap_or("");
                    @let label = n["label"].as_str().unwrap_or("");
                    a href=(n["href"].as_str().unwrap_or("#")) data-node=(n["id"].as_str().unwrap_or("")) {
                        rect class={"node " (kind) @if n["focus"].as_bool() == Some(true) { " focus" }} x=(x) y=(y) width=(NODE_W) height=(NODE_H) rx="5" {}
                        text.kind x=(x + 8.0) y=(y + 12.0) { (kind) }
                        text.name x=(x + 8.0) y=(y + 25.0) { (short(label, 28)) }
                        title { (kind) " " (label) }
                    }
                }
            }
            @for (c, more) in &cut {
                @let shown = columns[*c].len();
                @let top = (height - (shown + 1) as f64 * ROW_H) / 2.0;
                text.more x=(5.0 + *c as f64 * COL_W + 8.0) y=(top + shown as f64 * ROW_H + 26.0) { "… " (more) " more" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_follow_the_pipeline_and_parents() {
        let nodes = vec![
            ("source:s".to_string(), 0, false),
            ("view:b".to_string(), 1, false),
            ("view:a".to_string(), 1, true),
            ("service:x".to_string(), 4, false),
        ];
        let edges = vec![
            ("source:s".to_string(), "view:a".to_string()),
            ("source:s".to_string(), "view:b".to_string()),
            ("view:a".to_string(), "service:x".to_string()),
        ];
        let (cols, cut) = layout(&nodes, &edges);
        assert_eq!(cols.len(), 3, "the empty layers between are dropped");
        assert_eq!(cols[0], [0]);
        assert_eq!(cols[2], [3]);
        assert!(cut.is_empty());
    }
}
