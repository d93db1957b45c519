//! The object store the engine reads local files through: `object_store`'s `LocalFileSystem`,
//! except that byte ranges (the column chunks a Parquet scan asks for) are served from a
//! read-only memory map of the file instead of being read into fresh buffers.
//!
//! Why: `LocalFileSystem` reads each range into a newly allocated, zero-filled vector. For the
//! 10M-row benchmark file (600 MB in ten row groups) that is 600 MB of pages the kernel zeroes,
//! then the allocator zeroes, then `read` overwrites: half of the process's page faults and most
//! of its system time (`perf record -e page-faults`). A mapping hands the page cache's own pages
//! to the decoder.
//!
//! Safety: a mapping is only sound while nobody shrinks the file under it (the process would get
//! `SIGBUS`). Quiver never rewrites a source file in place: the push endpoint adds files through
//! a temporary name and a rename, which leaves mapped files intact. The range is checked against
//! the file's length before mapping. Writes, listings and whole-object reads go to
//! `LocalFileSystem` unchanged.

#![allow(unsafe_code)]

use std::fmt;
use std::ops::Range;

use datafusion::object_store::local::LocalFileSystem;
use datafusion::object_store::path::Path;
use datafusion::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use futures::stream::BoxStream;

/// See the module docs.
#[derive(Debug, Default)]
pub struct MmapFileStore {
    inner: LocalFileSystem,
}

impl fmt::Display for MmapFileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MmapFileStore({})", self.inner)
    }
}

fn generic(e: impl std::error::Error + Send + Sync + 'static) -> datafusion::object_store::Error {
    datafusion::object_store::Error::Generic {
        store: "MmapFileStore",
        source: Box::new(e),
    }
}

/// The page size mappings are aligned to.
const PAGE: u64 = 4096;

impl MmapFileStore {
    fn map_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        let (Some(lo), Some(hi)) = (
            ranges.iter().map(|r| r.start).min(),
            ranges.iter().map(|r| r.end).max(),
        ) else {
            return Ok(Vec::new());
        };
        let path = self.inner.path_to_filesystem(location)?;
        let file = std::fs::File::open(&path).map_err(generic)?;
        let len = file.metadata().map_err(generic)?.len();
        if hi > len || ranges.iter().any(|r| r.start > r.end) {
            return Err(generic(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: byte range up to {hi} asked of a file of {len} bytes",
                    path.display()
                ),
            )));
        }
        if hi == lo {
            return Ok(ranges.iter().map(|_| bytes::Bytes::new()).collect());
        }
        // Map the span the ranges cover (page-aligned), with its pages populated in one call
        // rather than faulted in one by one.
        let start = lo / PAGE * PAGE;
        // SAFETY: the file is opened read-only and the span lies within its current length; see
        // the module docs for why the file does not shrink while the mapping lives.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(start)
                .len((hi - start) as usize)
                .populate()
                .map(&file)
        }
        .map_err(generic)?;
        let all = bytes::Bytes::from_owner(map);
        Ok(ranges
            .iter()
            .map(|r| all.slice((r.start - start) as usize..(r.end - start) as usize))
            .collect())
    }
}

#[async_trait::async_trait]
impl ObjectStore for MmapFileStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        // An open and an mmap with populated pages: the page cache's pages are mapped, not
        // copied, so this is cheap enough to run on the caller's thread.
        self.map_ranges(location, ranges)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ranges_equal_the_file_bytes_and_a_range_past_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.bin");
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&file, &data).unwrap();
        let store = MmapFileStore::default();
        let loc = Path::from_filesystem_path(&file).unwrap();
        let ranges = [5000..5010, 0..3, 4095..8200, 19_990..20_000, 7..7];
        let got = store.get_ranges(&loc, &ranges).await.unwrap();
        for (r, g) in ranges.iter().zip(&got) {
            assert_eq!(&g[..], &data[r.start as usize..r.end as usize], "{r:?}");
        }
        let past_end = 10..20_001;
        let err = store
            .get_ranges(&loc, std::slice::from_ref(&past_end))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("20000 bytes"), "{err}");
        assert!(store.get_ranges(&loc, &[]).await.unwrap().is_empty());
    }
}
