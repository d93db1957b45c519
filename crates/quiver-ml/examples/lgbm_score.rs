//! Scores a CSV with a LightGBM text model, for the LightGBM parity check
//! (`tests/parity/lightgbm_parity.py`).
//!
//! `lgbm_score MODEL.txt DATA.csv`: the CSV's header names the columns (every model feature must
//! be one of them; other columns are ignored); an empty field or `nan` is missing. Prints one JSON
//! object per row, `{"pred": [...], "contrib": [...]}`: the predictions (probabilities, class
//! probabilities or values) and the TreeSHAP contributions flattened as LightGBM's
//! `predict(pred_contrib=True)` row (per output: one value per feature, then the bias).

use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;

use quiver_ml::lightgbm::parse_lightgbm_text;
use quiver_ml::shap::tree_shap;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lgbm_score: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_path, csv_path] = args.as_slice() else {
        return Err("usage: lgbm_score MODEL.txt DATA.csv".into());
    };
    let text = std::fs::read_to_string(model_path).map_err(|e| format!("{model_path}: {e}"))?;
    let model = parse_lightgbm_text(&text).map_err(|e| format!("{model_path}: {e}"))?;

    let file = std::fs::File::open(csv_path).map_err(|e| format!("{csv_path}: {e}"))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let header = lines
        .next()
        .ok_or_else(|| format!("{csv_path}: empty file"))?
        .map_err(|e| e.to_string())?;
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    let index: Vec<usize> = model
        .feature_names
        .iter()
        .map(|name| {
            columns
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| format!("{csv_path}: no column {name:?}"))
        })
        .collect::<Result<_, _>>()?;

    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut row = vec![0.0; index.len()];
    for (i, line) in lines.enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != columns.len() {
            return Err(format!(
                "{csv_path}: line {}: {} fields, expected {}",
                i + 2,
                fields.len(),
                columns.len()
            ));
        }
        for (v, &c) in row.iter_mut().zip(&index) {
            let f = fields[c].trim();
            *v = if f.is_empty() {
                f64::NAN
            } else {
                f.parse()
                    .map_err(|_| format!("{csv_path}: line {}: {f:?} is not a number", i + 2))?
            };
        }
        let pred = model.predict(&row);
        let contrib: Vec<f64> = tree_shap(&model, &row).into_iter().flatten().collect();
        let json = serde_json::json!({ "pred": pred, "contrib": contrib });
        writeln!(out, "{json}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}
