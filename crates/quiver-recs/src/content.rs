//! Content similarity: items compared by an embedding of what they are (e.g. the MiniLM
//! embedding of a product's title), for items collaborative filtering knows nothing about yet.
//!
//! A recommender that declares `cold_start: {content: VIEW}` (a view keyed by the item id alone,
//! with one vector feature) gets, at training, the latest vector of **every** item of that view
//! as of the training time ([`read`]), the trained items and the new ones alike, stored with the
//! version (`content.qvf`, unit-length rows, and `content_items.json`), so promotion and
//! rollback move the vectors with the factors. Serving builds an HNSW index over them
//! ([`ContentIndex`], `instant-distance`) once per loaded version, off the request threads;
//! a version is swapped in only when its index is built, so requests never wait for one.
//! `POST /similar-items` with `"by": "content"` answers from it, for any item of the view,
//! including one added since the last training.
//!
//! The distance is `1 − cosine` (the vectors are normalized at training); search explores
//! 128 candidates (`ef`; a list of 128 or more is an exact scan), and [`ContentIndex::recall_at`] measures the answers against
//! an exact scan.

use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float32Type};
use instant_distance::{Builder, HnswMap, Search};
use quiver_core::Registry;
use quiver_core::recommender::Recommender;
use serde::{Deserialize, Serialize};

use crate::als::Factors;
use crate::artifact::{read_factors, read_ids, write_factors, write_ids};
use crate::interactions::IdMap;
use crate::kernels::{dot, vectorized};
use crate::source::offline;
use crate::{Error, Result};

const META: &str = "content.json";
const VECTORS: &str = "content.qvf";
const IDS: &str = "content_items.json";
/// Candidates a search explores (HNSW's `ef`); longer lists are answered by an exact scan.
const EF: usize = 128;

/// Where a version's content vectors come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentInfo {
    /// The view.
    pub view: String,
    /// Its vector feature.
    pub feature: String,
    /// Items of the view without a usable vector (null, empty or all zeros), left out.
    pub skipped: usize,
}

/// The items' unit-length content vectors, as stored with a version.
#[derive(Debug, Clone)]
pub struct ContentVectors {
    /// Where they come from.
    pub info: ContentInfo,
    /// Item ids, in row order.
    pub ids: IdMap,
    /// One unit-length row per item.
    pub vectors: Factors,
}

impl ContentVectors {
    /// Writes the vectors into a version's directory.
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_factors(&dir.join(VECTORS), &self.vectors)?;
        write_ids(&dir.join(IDS), self.ids.ids())?;
        let path = dir.join(META);
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&self.info).expect("content info serializes"),
        )
        .map_err(|e| Error::io("cannot write", &path, e))
    }

    /// Reads a version's vectors (`None` when it has none).
    pub fn load(dir: &Path) -> Result<Option<ContentVectors>> {
        let path = dir.join(META);
        if !path.is_file() {
            return Ok(None);
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::io("cannot read", &path, e))?;
        let info: ContentInfo = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let ids = IdMap::from_ids(read_ids(&dir.join(IDS))?)?;
        let vectors = read_factors(&dir.join(VECTORS))?;
        if vectors.rows != ids.len() {
            return Err(Error::Corrupt {
                path: dir.join(VECTORS),
                message: format!("{} vectors for {} items", vectors.rows, ids.len()),
            });
        }
        Ok(Some(ContentVectors { info, ids, vectors }))
    }
}

/// Reads the content vectors `rec` declares (`cold_start.content`): each item's latest vector of
/// the view at or before `as_of_us`, normalized. `None` when the recommender declares none.
pub async fn read(
    registry: &Registry,
    root: &Path,
    rec: &Recommender,
    as_of_us: Option<i64>,
) -> Result<Option<ContentVectors>> {
    let Some(view_name) = rec.cold_start.as_ref().and_then(|c| c.content.as_ref()) else {
        return Ok(None);
    };
    let field = "cold_start.content";
    let mut ids = IdMap::default();
    let (view, batches, latest) =
        crate::attributes::item_rows(registry, root, rec, view_name, field, as_of_us, |id| {
            Some(ids.intern(id) as usize)
        })
        .await?;
    let is_vector = |t: &DataType| {
        matches!(
            t,
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)
                if f.data_type().is_floating() || f.data_type().is_integer()
        )
    };
    let vector_features: Vec<&str> = view
        .features
        .iter()
        .map(|f| f.name.as_str())
        .filter(|name| {
            batches
                .first()
                .and_then(|b| b.column_by_name(name))
                .is_some_and(|c| is_vector(c.data_type()))
        })
        .collect();
    let feature = match vector_features.as_slice() {
        [one] => one.to_string(),
        [] if batches.is_empty() => {
            return Err(Error::Invalid(format!(
                "recommender '{}', field '{field}': view '{view_name}' has no rows",
                rec.name
            )));
        }
        [] => {
            return Err(Error::Invalid(format!(
                "recommender '{}', field '{field}': view '{view_name}' has no vector feature (a list of numbers, e.g. `embed_text(title)`); its features: {}",
                rec.name,
                view.features
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        several => {
            return Err(Error::Invalid(format!(
                "recommender '{}', field '{field}': view '{view_name}' has several vector features ({}); give it one",
                rec.name,
                several.join(", ")
            )));
        }
    };
    let target = DataType::List(std::sync::Arc::new(Field::new_list_field(
        DataType::Float32,
        true,
    )));
    let lists = batches
        .iter()
        .map(|b| {
            let c = b.column_by_name(&feature).expect("a feature column");
            cast(c, &target).map_err(offline)
        })
        .collect::<Result<Vec<_>>>()?;
    let all = ids.ids().to_vec();
    let (mut kept, mut data, mut dim, mut skipped) = (Vec::new(), Vec::new(), 0usize, 0usize);
    for (i, slot) in latest.iter().enumerate() {
        let Some((_, b, r)) = *slot else {
            skipped += 1;
            continue;
        };
        let list = lists[b].as_list::<i32>();
        if list.is_null(r) {
            skipped += 1;
            continue;
        }
        let values = list.value(r);
        let v = values.as_primitive::<Float32Type>();
        let norm = v
            .values()
            .iter()
            .map(|x| f64::from(*x) * f64::from(*x))
            .sum::<f64>()
            .sqrt();
        if v.is_empty() || v.null_count() > 0 || !(norm > 0.0 && norm.is_finite()) {
            skipped += 1;
            continue;
        }
        if dim == 0 {
            dim = v.len();
        } else if v.len() != dim {
            return Err(Error::Invalid(format!(
                "recommender '{}', field '{field}': view '{view_name}', feature '{feature}': item '{}' has a vector of {} numbers, the others {dim}",
                rec.name,
                all[i],
                v.len()
            )));
        }
        data.extend(v.values().iter().map(|x| (f64::from(*x) / norm) as f32));
        kept.push(all[i].clone());
    }
    if kept.is_empty() {
        return Err(Error::Invalid(format!(
            "recommender '{}', field '{field}': view '{view_name}', feature '{feature}': no item has a vector",
            rec.name
        )));
    }
    Ok(Some(ContentVectors {
        info: ContentInfo {
            view: view_name.clone(),
            feature,
            skipped,
        },
        vectors: Factors {
            rows: kept.len(),
            dim,
            data,
        },
        ids: IdMap::from_ids(kept)?,
    }))
}

/// One unit-length vector, as the HNSW index holds it.
#[derive(Clone, Debug)]
struct Unit(Vec<f32>);

impl instant_distance::Point for Unit {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - vectorized(
            #[inline(always)]
            || dot(&self.0, &other.0),
        )
    }
}

/// The content vectors of a loaded version with their HNSW index.
pub struct ContentIndex {
    /// The vectors.
    pub vectors: ContentVectors,
    index: HnswMap<Unit, u32>,
}

impl std::fmt::Debug for ContentIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentIndex")
            .field("info", &self.vectors.info)
            .field("items", &self.vectors.ids.len())
            .finish()
    }
}

impl ContentIndex {
    /// Builds the index (seeded, so the same vectors give the same graph).
    pub fn build(vectors: ContentVectors) -> ContentIndex {
        let v = &vectors.vectors;
        let points: Vec<Unit> = (0..v.rows).map(|i| Unit(v.row(i).to_vec())).collect();
        let values: Vec<u32> = (0..v.rows as u32).collect();
        let index = Builder::default()
            .seed(42)
            .ef_construction(EF)
            .ef_search(EF)
            .build(points, values);
        ContentIndex { vectors, index }
    }

    /// The `k` items nearest to item `id` by cosine (itself excluded), best first, from the
    /// index: `(row, cosine)`.
    pub fn similar(&self, id: &str, k: usize) -> Result<Vec<(u32, f32)>> {
        if k >= EF {
            return self.similar_exact(id, k);
        }
        Ok(self.similar_rows(self.row_of(id)?, k))
    }

    /// The `k` rows nearest to row `row` (itself excluded), best first, from the index.
    pub fn similar_rows(&self, row: u32, k: usize) -> Vec<(u32, f32)> {
        let query = Unit(self.vectors.vectors.row(row as usize).to_vec());
        let mut search = Search::default();
        self.index
            .search(&query, &mut search)
            .filter(|m| *m.value != row)
            .take(k)
            .map(|m| (*m.value, 1.0 - m.distance))
            .collect()
    }

    /// The exact answer of [`ContentIndex::similar`], by scanning every vector.
    pub fn similar_exact(&self, id: &str, k: usize) -> Result<Vec<(u32, f32)>> {
        let i = self.row_of(id)?;
        let v = &self.vectors.vectors;
        let q = v.row(i as usize);
        Ok(crate::model::top_k_scored(
            v.rows,
            k,
            |j| j == i,
            #[inline(always)]
            |j| dot(v.row(j), q),
        ))
    }

    /// The share of the exact top `k` that the index finds, over (at most `sample`) items.
    pub fn recall_at(&self, k: usize, sample: usize) -> f64 {
        let n = self.vectors.ids.len();
        let step = (n / sample.max(1)).max(1);
        let (mut found, mut wanted) = (0usize, 0usize);
        for i in (0..n).step_by(step) {
            let id = &self.vectors.ids.ids()[i];
            let exact = self.similar_exact(id, k).expect("a known item");
            let got = self.similar(id, k).expect("a known item");
            wanted += exact.len();
            found += exact
                .iter()
                .filter(|(j, _)| got.iter().any(|(g, _)| g == j))
                .count();
        }
        if wanted == 0 {
            1.0
        } else {
            found as f64 / wanted as f64
        }
    }

    /// The id of row `i`.
    pub fn id(&self, i: u32) -> &str {
        &self.vectors.ids.ids()[i as usize]
    }

    fn row_of(&self, id: &str) -> Result<u32> {
        self.vectors.ids.get(id).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown item '{id}': view '{}' had no vector for it at training ({} items have one)",
                self.vectors.info.view,
                self.vectors.ids.len()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` unit vectors of dimension `dim` around `clusters` random centres.
    fn vectors(n: usize, dim: usize, clusters: usize) -> ContentVectors {
        let mut state = 7u64;
        let mut rnd = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f64 / (1u64 << 31) as f64) as f32 - 0.5
        };
        let centres: Vec<Vec<f32>> = (0..clusters)
            .map(|_| (0..dim).map(|_| rnd()).collect())
            .collect();
        let mut data = Vec::with_capacity(n * dim);
        for i in 0..n {
            let c = &centres[i % clusters];
            let v: Vec<f32> = c.iter().map(|x| x + 0.3 * rnd()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            data.extend(v.iter().map(|x| x / norm));
        }
        ContentVectors {
            info: ContentInfo {
                view: "v".into(),
                feature: "e".into(),
                skipped: 0,
            },
            ids: IdMap::from_ids((0..n).map(|i| format!("p{i}")).collect()).unwrap(),
            vectors: Factors { rows: n, dim, data },
        }
    }

    #[test]
    fn the_index_finds_what_an_exact_scan_finds() {
        let index = ContentIndex::build(vectors(3000, 32, 60));
        let recall = index.recall_at(10, 200);
        eprintln!(
            "HNSW recall@10 against an exact scan: {recall:.3} (3,000 vectors x 32, 60 clusters)"
        );
        assert!(recall >= 0.9, "recall@10 {recall}");
        // Best first, itself excluded, cosines in [-1, 1].
        let got = index.similar("p5", 10).unwrap();
        assert_eq!(got.len(), 10);
        assert!(
            got.iter()
                .all(|(i, c)| *i != 5 && (-1.0..=1.0001).contains(c))
        );
        assert!(got.windows(2).all(|w| w[0].1 >= w[1].1 - 1e-6), "{got:?}");
        let e = index.similar("p99999", 3).unwrap_err().to_string();
        assert!(e.contains("unknown item 'p99999'"), "{e}");
    }

    #[test]
    fn vectors_round_trip_through_a_version_directory() {
        let d = tempfile::tempdir().unwrap();
        let v = vectors(50, 8, 5);
        v.save(d.path()).unwrap();
        let back = ContentVectors::load(d.path()).unwrap().unwrap();
        assert_eq!(back.info, v.info);
        assert_eq!(back.ids.ids(), v.ids.ids());
        assert_eq!(back.vectors.data, v.vectors.data);
        assert!(
            ContentVectors::load(&d.path().join("none"))
                .unwrap()
                .is_none()
        );
    }
}
