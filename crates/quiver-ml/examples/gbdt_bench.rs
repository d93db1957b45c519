//! Quiver's side of `bench/gbdt_bench.sh`: reads the raw f64 files written by
//! `bench/gbdt_data_and_lgbm.py`, trains with LightGBM's anchor settings (200 trees, 63 leaves,
//! learning rate 0.1, 255 bins, 2 threads) and prints train seconds and test ROC-AUC.
//!
//! usage: cargo run --release -p quiver-ml --example gbdt_bench -- OUTDIR [key=value ...]

use std::path::Path;

use quiver_ml::gbdt::{self, GbdtParams};
use quiver_ml::{Dataset, Objective};

fn read_f64(path: &Path) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect()
}

fn columns(rows: &[f64], n: usize, f: usize) -> Dataset {
    let cols = (0..f)
        .map(|j| (0..n).map(|i| rows[i * f + j]).collect())
        .collect();
    Dataset::new(
        (0..f).map(|j| format!("f{j}")).collect(),
        vec![false; f],
        cols,
    )
}

/// ROC-AUC with tied scores sharing their average rank.
fn auc(scores: &[f64], y: &[f64]) -> f64 {
    quiver_ml::metrics::roc_auc(y, scores, None).expect("two classes")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(
        args.get(1)
            .expect("usage: gbdt_bench OUTDIR [key=value ...]"),
    );
    let shape = std::fs::read_to_string(dir.join("shape.txt")).expect("shape.txt");
    let dims: Vec<usize> = shape
        .split_whitespace()
        .map(|s| s.parse().expect("shape"))
        .collect();
    let (n_train, n_test, f) = (dims[0], dims[1], dims[2]);
    let train = columns(&read_f64(&dir.join("x_train.f64")), n_train, f);
    let test = read_f64(&dir.join("x_test.f64"));
    let y_train = read_f64(&dir.join("y_train.f64"));
    let y_test = read_f64(&dir.join("y_test.f64"));

    let mut params = GbdtParams {
        num_trees: 200,
        num_leaves: 63,
        learning_rate: 0.1,
        max_bin: 255,
        threads: 2,
        seed: 1,
        ..Default::default()
    };
    for kv in &args[2..] {
        let (k, v) = kv.split_once('=').expect("key=value");
        params.set(k, v).unwrap_or_else(|e| panic!("{e}"));
    }
    let (model, report) = gbdt::train(
        Objective::Binary { sigmoid: 1.0 },
        &train,
        &y_train,
        None,
        None,
        &params,
    )
    .expect("training");
    let scores: Vec<f64> = (0..n_test)
        .map(|i| model.predict(&test[i * f..(i + 1) * f])[0])
        .collect();
    println!(
        "quiver train_seconds={:.2} test_auc={:.4} trees={} train_logloss={:.4}",
        report.seconds,
        auc(&scores, &y_test),
        model.trees.len(),
        report.train_loss.last().copied().unwrap_or(f64::NAN)
    );
}
