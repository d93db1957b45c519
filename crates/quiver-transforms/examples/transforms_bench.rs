//! Throughput of the transforms offline (DataFusion over many rows) and latency online (RowExpr on
//! 1-row requests).
//!
//! ```text
//! cargo run --release --example transforms_bench -p quiver-transforms -- 10000000
//! ```
//!
//! The texts are the SMS messages of `sms_spam_collection_subset.tsv` (label, tab, text), read
//! from `$QUIVER_SMS_TSV` or `/work/shared/data/`, repeated to the requested row count; without
//! the file a few built-in messages stand in. One 64k-row batch is built and reused, so memory
//! stays small whatever the row count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use quiver_transforms::RowExpr;

const BATCH: usize = 65_536;

fn sms_texts() -> Vec<String> {
    let path = std::env::var("QUIVER_SMS_TSV")
        .unwrap_or_else(|_| "/work/shared/data/sms_spam_collection_subset.tsv".into());
    match std::fs::read_to_string(&path) {
        Ok(s) => s
            .lines()
            .filter_map(|l| l.split_once('\t').map(|(_, t)| t.to_string()))
            .collect(),
        Err(_) => {
            eprintln!("{path} not found: using built-in texts");
            [
                "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005!",
                "Nah I don't think he goes to usf, he lives around here though",
                "WINNER!! As a valued network customer you have been selected to receive a prize",
                "I'm gonna be home soon and i don't want to talk about this stuff anymore tonight",
            ]
            .map(String::from)
            .to_vec()
        }
    }
}

fn table(texts: &[String], rows: usize) -> (Arc<Schema>, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("s", DataType::Utf8, true),
        Field::new("i", DataType::Int64, true),
    ]));
    let s: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..BATCH).map(|k| &texts[k % texts.len()]),
    ));
    let i: ArrayRef = Arc::new(Int64Array::from_iter_values(
        (0..BATCH as i64).map(|k| k % 97),
    ));
    let full = RecordBatch::try_new(Arc::clone(&schema), vec![s, i]).unwrap();
    let mut batches = Vec::new();
    let mut left = rows;
    while left > 0 {
        let n = left.min(BATCH);
        batches.push(full.slice(0, n));
        left -= n;
    }
    (schema, batches)
}

async fn throughput(ctx: &SessionContext, label: &str, sql: &str, rows: usize) {
    let start = Instant::now();
    let mut stream = ctx.sql(sql).await.unwrap().execute_stream().await.unwrap();
    let mut seen = 0;
    while let Some(b) = stream.next().await {
        seen += b.unwrap().num_rows();
    }
    assert_eq!(seen, rows);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{label:<44} {rows:>10} rows {secs:>8.2} s {:>12.0} rows/s",
        rows as f64 / secs
    );
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn latency(label: &str, sql: &str, schema: &Arc<Schema>, texts: &[String], calls: usize) {
    let expr = RowExpr::compile(sql, Arc::clone(schema)).unwrap();
    let mut eval_only = Vec::with_capacity(calls);
    let mut with_batch = Vec::with_capacity(calls);
    for k in 0..calls {
        let t0 = Instant::now();
        let batch = RecordBatch::try_new(
            Arc::clone(schema),
            vec![
                Arc::new(StringArray::from(vec![texts[k % texts.len()].as_str()])),
                Arc::new(Int64Array::from(vec![k as i64 % 97])),
            ],
        )
        .unwrap();
        let t1 = Instant::now();
        std::hint::black_box(expr.evaluate(&batch).unwrap());
        let t2 = Instant::now();
        eval_only.push(t2 - t1);
        with_batch.push(t2 - t0);
    }
    eval_only.sort();
    with_batch.sort();
    println!(
        "{label:<44} evaluate p50 {:>6.2} µs p99 {:>6.2} µs | build batch + evaluate p50 {:>6.2} µs p99 {:>6.2} µs",
        percentile(&eval_only, 0.5),
        percentile(&eval_only, 0.99),
        percentile(&with_batch, 0.5),
        percentile(&with_batch, 0.99),
    );
}

#[tokio::main]
async fn main() {
    let rows: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("row count"))
        .unwrap_or(100_000);
    let texts = sms_texts();
    let (schema, batches) = table(&texts, rows);
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_batch_size(BATCH));
    quiver_transforms::register(&ctx);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Spread the batches over one partition per core.
    let mut parts = vec![Vec::new(); cores];
    for (k, b) in batches.into_iter().enumerate() {
        parts[k % cores].push(b);
    }
    let mem = MemTable::try_new(Arc::clone(&schema), parts).unwrap();
    ctx.register_table("t", Arc::new(mem)).unwrap();
    println!(
        "{} SMS texts repeated to {rows} rows; {cores} partitions; {} build",
        texts.len(),
        if cfg!(debug_assertions) {
            "DEBUG"
        } else {
            "release"
        }
    );

    throughput(
        &ctx,
        "7 text stats (length..keyword_count)",
        "SELECT text_length(s), word_count(s), avg_word_length(s), digit_count(s), \
         exclamation_count(s), uppercase_ratio(s), keyword_count(s, 'free,win,prize,claim,urgent') FROM t",
        rows,
    )
    .await;
    throughput(&ctx, "word_count", "SELECT word_count(s) FROM t", rows).await;
    throughput(
        &ctx,
        "normalize_text",
        "SELECT normalize_text(s) FROM t",
        rows,
    )
    .await;
    throughput(
        &ctx,
        "hash_bucket(s) + cross_hash(s, i)",
        "SELECT hash_bucket(s, 1000000), cross_hash(s, i, 1000) FROM t",
        rows,
    )
    .await;
    let vader_rows = rows.min(1_000_000);
    ctx.register_table(
        "v",
        Arc::new(
            MemTable::try_new(Arc::clone(&schema), {
                let (_, b) = table(&texts, vader_rows);
                let mut parts = vec![Vec::new(); cores];
                for (k, b) in b.into_iter().enumerate() {
                    parts[k % cores].push(b);
                }
                parts
            })
            .unwrap(),
        ),
    )
    .unwrap();
    throughput(
        &ctx,
        "sentiment_compound (VADER)",
        "SELECT sentiment_compound(s) FROM v",
        vader_rows,
    )
    .await;

    let calls = 100_000;
    println!("RowExpr on 1-row batches, {calls} calls each:");
    latency(
        "word_count(s) + exclamation_count(s)",
        "word_count(s) + exclamation_count(s)",
        &schema,
        &texts,
        calls,
    );
    latency(
        "uppercase_ratio(s) * avg_word_length(s)",
        "uppercase_ratio(s) * avg_word_length(s)",
        &schema,
        &texts,
        calls,
    );
    latency(
        "cross_hash(s, i, 1000)",
        "cross_hash(s, i, 1000)",
        &schema,
        &texts,
        calls,
    );
    latency(
        "sentiment_compound(s)",
        "sentiment_compound(s)",
        &schema,
        &texts,
        calls,
    );
}
