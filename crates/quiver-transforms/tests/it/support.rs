//! Running an expression offline (DataFusion SQL over a whole table) and online (RowExpr on
//! 1-row batches), and comparing the two bit for bit.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::concat;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use quiver_transforms::RowExpr;

/// A tokio runtime shared by the tests.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

/// A fresh session like the offline engine's, with the transforms registered.
pub fn offline_session() -> SessionContext {
    // One partition keeps the rows in table order, so results compare positionally.
    let mut config = SessionConfig::new()
        .with_batch_size(8)
        .with_target_partitions(1);
    config.options_mut().sql_parser.enable_ident_normalization = false;
    let ctx = SessionContext::new_with_config(config);
    quiver_transforms::register(&ctx);
    ctx
}

/// `SELECT {expr} FROM t` over `batch` (split into several batches) as one array.
pub fn offline(expr: &str, batch: &RecordBatch) -> datafusion::error::Result<ArrayRef> {
    let ctx = offline_session();
    let chunks: Vec<RecordBatch> = (0..batch.num_rows())
        .step_by(5)
        .map(|i| batch.slice(i, 5.min(batch.num_rows() - i)))
        .collect();
    let table = MemTable::try_new(batch.schema(), vec![chunks])?;
    ctx.register_table("t", Arc::new(table))?;
    let out = runtime().block_on(async {
        ctx.sql(&format!("SELECT {expr} AS y FROM t"))
            .await?
            .collect()
            .await
    })?;
    let arrays: Vec<ArrayRef> = out.iter().map(|b| Arc::clone(b.column(0))).collect();
    if arrays.is_empty() {
        return Ok(datafusion::arrow::array::new_empty_array(&DataType::Null));
    }
    let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
    Ok(concat(&refs)?)
}

/// The same expression compiled once and evaluated on each row as its own 1-row batch.
pub fn online(expr: &str, batch: &RecordBatch) -> quiver_transforms::Result<ArrayRef> {
    let compiled = RowExpr::compile(expr, batch.schema())?;
    if batch.num_rows() == 0 {
        return compiled.evaluate(batch);
    }
    let rows = (0..batch.num_rows())
        .map(|i| compiled.evaluate(&batch.slice(i, 1)))
        .collect::<quiver_transforms::Result<Vec<_>>>()?;
    let refs: Vec<&dyn Array> = rows.iter().map(|a| a.as_ref()).collect();
    Ok(concat(&refs).expect("concat"))
}

/// Offline and online agree exactly: same type, same nulls, floats equal bit for bit.
pub fn assert_parity(expr: &str, batch: &RecordBatch) -> Result<(), String> {
    let off = offline(expr, batch).map_err(|e| format!("offline `{expr}`: {e}"))?;
    let on = online(expr, batch).map_err(|e| format!("online `{expr}`: {e}"))?;
    if batch.num_rows() == 0 {
        return Ok(());
    }
    same(&off, &on).map_err(|e| format!("`{expr}`: {e}\noffline {off:?}\nonline {on:?}"))
}

/// Exact equality of two arrays (floats by bits, so NaN == NaN and 0.0 != -0.0).
pub fn same(a: &ArrayRef, b: &ArrayRef) -> Result<(), String> {
    if a.data_type() != b.data_type() {
        return Err(format!(
            "types differ: {} vs {}",
            a.data_type(),
            b.data_type()
        ));
    }
    if a.len() != b.len() {
        return Err(format!("lengths differ: {} vs {}", a.len(), b.len()));
    }
    if a.data_type() == &DataType::Float64 {
        let (x, y) = (
            a.as_primitive::<Float64Type>(),
            b.as_primitive::<Float64Type>(),
        );
        for i in 0..x.len() {
            let (u, v) = (
                x.is_valid(i).then(|| x.value(i).to_bits()),
                y.is_valid(i).then(|| y.value(i).to_bits()),
            );
            if u != v {
                return Err(format!("row {i}: {u:?} vs {v:?}"));
            }
        }
        return Ok(());
    }
    if a.to_data() != b.to_data() {
        return Err("values differ".into());
    }
    Ok(())
}
