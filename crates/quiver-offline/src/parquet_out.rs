//! Writing a result as Parquet with every core: the columns of a row group are encoded and
//! compressed in parallel (parquet's `ArrowColumnWriter` interface), then appended in order.
//! The file is the same as `ArrowWriter` writes (the Arrow schema is stored in its metadata, so
//! time zones and types read back exactly); only the encoding runs on several threads.

use std::io::Write;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::FieldRef;
use datafusion::parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowLeafColumn, ArrowRowGroupWriterFactory, compute_leaves,
};
use datafusion::parquet::arrow::{ArrowSchemaConverter, add_encoded_arrow_schema_to_metadata};
use datafusion::parquet::errors::{ParquetError, Result};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::file::writer::SerializedFileWriter;
use datafusion::parquet::schema::types::ColumnPath;

/// Writes `batch` to `out` as one Parquet file, row groups of at most
/// `props.max_row_group_row_count()` rows, encoding the columns of each row group on up to
/// `threads` threads.
pub fn write_parquet<W: Write + Send>(
    out: W,
    batch: &RecordBatch,
    mut props: WriterProperties,
    threads: usize,
) -> Result<()> {
    let schema = batch.schema();
    let parquet_schema = ArrowSchemaConverter::new()
        .with_coerce_types(props.coerce_types())
        .convert(&schema)?;
    add_encoded_arrow_schema_to_metadata(&schema, &mut props);
    let group_rows = props.max_row_group_row_count().unwrap_or(1 << 20).max(1);
    // Whether each top-level column is dictionary-encoded: a hash per value, the dearest job.
    let dictionary: Vec<bool> = schema
        .fields()
        .iter()
        .map(|f| props.dictionary_enabled(&ColumnPath::from(f.name().as_str())))
        .collect();
    let props = Arc::new(props);
    let mut writer = SerializedFileWriter::new(out, parquet_schema.root_schema_ptr(), props)?;
    let factory = ArrowRowGroupWriterFactory::new(&writer, Arc::clone(&schema));
    let rows = batch.num_rows();
    let mut start = 0;
    let mut group = 0;
    while start < rows {
        let len = group_rows.min(rows - start);
        let slice = batch.slice(start, len);
        // One job per leaf column: its writer, its data and its cost.
        let mut jobs = Vec::new();
        let mut writers = factory.create_column_writers(group)?.into_iter();
        for ((field, array), dictionary) in
            schema.fields().iter().zip(slice.columns()).zip(&dictionary)
        {
            // The job's cost, to schedule the dearest first: its Arrow size, doubled for a column
            // that is dictionary-encoded (a hash per value: in the 10M x 1M bench the key
            // column, as wide as the others, came last and ran alone at the end).
            let bytes = array.get_array_memory_size() * if *dictionary { 2 } else { 1 };
            let mut next_writer = || {
                writers
                    .next()
                    .ok_or_else(|| ParquetError::General("fewer writers than columns".into()))
            };
            if field.data_type().is_nested() {
                for leaf in compute_leaves(field, array)? {
                    jobs.push(((next_writer()?, Leaf::Ready(leaf)), bytes));
                }
            } else {
                // A flat column is one leaf; its levels (a pass over every row) are computed
                // on the encoding thread, not here one column after another.
                let leaf = Leaf::Flat(Arc::clone(field), Arc::clone(array));
                jobs.push(((next_writer()?, leaf), bytes));
            }
        }
        let chunks = encode_parallel(jobs, threads)?;
        let mut row_group = writer.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        start += len;
        group += 1;
    }
    writer.close()?;
    Ok(())
}

/// A leaf column to encode: computed already, or a flat column whose single leaf the encoding
/// thread computes.
enum Leaf {
    Ready(ArrowLeafColumn),
    Flat(FieldRef, ArrayRef),
}

type Job = (
    datafusion::parquet::arrow::arrow_writer::ArrowColumnWriter,
    Leaf,
);

/// Encodes every column, returning the chunks in the jobs' order.
fn encode_parallel(jobs: Vec<(Job, usize)>, threads: usize) -> Result<Vec<ArrowColumnChunk>> {
    let n = jobs.len();
    let encode = |(mut w, leaf): Job| -> Result<ArrowColumnChunk> {
        match leaf {
            Leaf::Ready(leaf) => w.write(&leaf)?,
            Leaf::Flat(field, array) => {
                for leaf in compute_leaves(&field, &array)? {
                    w.write(&leaf)?;
                }
            }
        }
        w.close()
    };
    let threads = threads.clamp(1, n.max(1));
    if threads == 1 {
        return jobs.into_iter().map(|(job, _)| encode(job)).collect();
    }
    // The widest columns first (popped from the back), so that no thread is left with a big one
    // at the end.
    let mut queue: Vec<(usize, Job, usize)> = jobs
        .into_iter()
        .enumerate()
        .map(|(i, (job, bytes))| (i, job, bytes))
        .collect();
    queue.sort_by_key(|(_, _, bytes)| *bytes);
    let queue = Mutex::new(queue);
    let mut done: Vec<(usize, Result<ArrowColumnChunk>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let next = queue.lock().expect("queue").pop();
                        let Some((i, job, _)) = next else { break };
                        out.push((i, encode(job)));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a parquet encoding thread panicked"))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, c)| c).collect()
}

/// How Quiver writes every result: zstd level 1, row groups of up to 1M rows, no dictionary
/// for floating-point and timestamp columns, whose values rarely repeat.
fn result_properties(batch: &RecordBatch) -> Result<WriterProperties> {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::parquet::basic::{Compression, ZstdLevel};
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(1 << 20));
    for f in batch.schema().fields() {
        if matches!(
            f.data_type(),
            DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Timestamp(..)
        ) {
            props = props.set_column_dictionary_enabled(ColumnPath::from(f.name().as_str()), false);
        }
    }
    Ok(props.build())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Writes `batch` to the Parquet file `path` as Quiver writes every result
/// ([`result_properties`]), encoding on every core, through a temporary file renamed into
/// place so that a failure never leaves a half-written file.
pub fn write_parquet_file(path: &std::path::Path, batch: &RecordBatch) -> std::io::Result<()> {
    let io = |e: ParquetError| std::io::Error::other(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    let file = std::fs::File::create(&tmp)?;
    write_parquet(file, batch, result_properties(batch).map_err(io)?, cores()).map_err(io)?;
    std::fs::rename(&tmp, path)
}

/// `batch` as the bytes of a Parquet file written as [`write_parquet_file`] writes it, for an
/// object store.
pub fn parquet_bytes(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_parquet(&mut out, batch, result_properties(batch)?, cores())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use datafusion::parquet::basic::{Compression, ZstdLevel};

    fn batch(n: usize) -> RecordBatch {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n as i64));
        let ts: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from_iter_values((0..n as i64).map(|i| i * 1_000_000))
                .with_timezone("UTC"),
        );
        let f: ArrayRef = Arc::new(Float64Array::from_iter(
            (0..n).map(|i| (i % 7 != 0).then_some(i as f64 * 0.5)),
        ));
        let s: ArrayRef = Arc::new(StringArray::from_iter(
            (0..n).map(|i| (i % 5 != 0).then(|| format!("v{}", i % 13))),
        ));
        RecordBatch::try_from_iter([("id", ids), ("event_timestamp", ts), ("f", f), ("s", s)])
            .unwrap()
    }

    fn read(bytes: Vec<u8>) -> (Vec<RecordBatch>, usize) {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&bytes).unwrap();
        let b = ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
        let groups = b.metadata().num_row_groups();
        (b.build().unwrap().map(|r| r.unwrap()).collect(), groups)
    }

    #[test]
    fn parallel_output_reads_back_like_arrow_writer_output() {
        let input = batch(10_000);
        let props = || {
            WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap()))
                .set_max_row_group_row_count(Some(4_000))
                .build()
        };
        let mut ours = Vec::new();
        write_parquet(&mut ours, &input, props(), 3).unwrap();
        let mut theirs = Vec::new();
        let mut w = ArrowWriter::try_new(&mut theirs, input.schema(), Some(props())).unwrap();
        w.write(&input).unwrap();
        w.close().unwrap();
        let (a, groups) = read(ours);
        let (b, _) = read(theirs);
        assert_eq!(groups, 3);
        let a = datafusion::arrow::compute::concat_batches(&a[0].schema(), &a).unwrap();
        let b = datafusion::arrow::compute::concat_batches(&b[0].schema(), &b).unwrap();
        assert_eq!(
            a.schema(),
            input.schema(),
            "the Arrow schema (UTC zone) reads back"
        );
        assert_eq!(a, input);
        assert_eq!(a, b);
    }

    #[test]
    fn an_empty_result_is_a_valid_file_with_the_schema() {
        let input = batch(0);
        let mut ours = Vec::new();
        write_parquet(&mut ours, &input, WriterProperties::default(), 2).unwrap();
        let (batches, groups) = read(ours);
        assert_eq!(groups, 0);
        assert!(batches.is_empty());
        let mut f = tempfile::tempfile().unwrap();
        write_parquet(&mut f, &input, WriterProperties::default(), 2).unwrap();
        let b = ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
        assert_eq!(b.schema(), &input.schema());
    }
}
