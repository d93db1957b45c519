//! Sources, entity files, `historical --out`, offline snapshots, the prediction log and model
//! files in object storage: `s3://bucket/key` (and `s3a://`), through the `object_store` crate
//! DataFusion itself reads with. Credentials come from the usual AWS environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`); the endpoint of an
//! S3-compatible store such as MinIO and the region from `storage: {endpoint, region}` in
//! `quiver.yaml`, else from `AWS_ENDPOINT_URL` and `AWS_REGION`. An `http://` endpoint is
//! allowed without TLS.

use std::path::Path;
use std::sync::Arc;

use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::prelude::SessionContext;
use object_store::ObjectStoreExt;
use object_store::WriteMultipart;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use quiver_core::yaml::RawStorage;

/// Whether `path` is an object-storage URL rather than a local path.
pub fn is_url(path: &str) -> bool {
    path.contains("://")
}

/// The S3 client for `url`'s bucket, configured by `storage` and the environment, and the
/// object's path in it. Unknown schemes are refused by name.
fn s3(
    url: &str,
    storage: &RawStorage,
) -> Result<(ObjectStoreUrl, AmazonS3, object_store::path::Path), String> {
    let scheme = url.split("://").next().unwrap_or_default();
    if !matches!(scheme, "s3" | "s3a") {
        return Err(format!(
            "{url}: unsupported scheme '{scheme}://': Quiver reads local paths and s3:// (S3 or an S3-compatible store through AWS_ENDPOINT_URL)"
        ));
    }
    let parsed = ListingTableUrl::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let store_url = parsed.object_store();
    let bucket = store_url
        .as_str()
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .filter(|b| !b.is_empty())
        .ok_or_else(|| format!("{url}: no bucket (use s3://BUCKET/KEY)"))?
        .to_string();
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
    let endpoint = match &storage.endpoint {
        Some(e) => {
            builder = builder.with_endpoint(e);
            Some(e.clone())
        }
        None => ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
            .iter()
            .find_map(|v| std::env::var(v).ok()),
    };
    if let Some(r) = &storage.region {
        builder = builder.with_region(r);
    }
    if endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"))
    {
        builder = builder.with_allow_http(true);
    }
    let store = builder
        .build()
        .map_err(|e| format!("{url}: cannot open bucket '{bucket}': {e}"))?;
    Ok((store_url, store, parsed.prefix().clone()))
}

/// `storage:` settings kept in a session's configuration (see [`with_storage`]).
#[derive(Debug, Default)]
struct Storage(RawStorage);

/// `config` carrying `storage`, which [`register`] then configures its clients with.
pub fn with_storage(
    config: datafusion::prelude::SessionConfig,
    storage: &RawStorage,
) -> datafusion::prelude::SessionConfig {
    config.with_extension(Arc::new(Storage(storage.clone())))
}

/// The `storage:` settings `ctx` was made with (defaults when none).
pub fn storage_of(ctx: &SessionContext) -> RawStorage {
    ctx.state()
        .config()
        .get_extension::<Storage>()
        .map(|s| s.0.clone())
        .unwrap_or_default()
}

/// Makes `url`'s bucket readable in `ctx`: registers, once per session and bucket, an S3 client
/// configured by the session's `storage:` settings and the environment. Unknown schemes are
/// refused by name.
pub fn register(ctx: &SessionContext, url: &str) -> Result<(), String> {
    register_with(ctx, url, &storage_of(ctx))
}

/// [`register`] with `storage` settings given rather than the session's.
pub fn register_with(ctx: &SessionContext, url: &str, storage: &RawStorage) -> Result<(), String> {
    let (store_url, store, _) = s3(url, storage)?;
    if ctx.runtime_env().object_store(&store_url).is_err() {
        ctx.register_object_store(store_url.as_ref(), Arc::new(store));
    }
    Ok(())
}

/// Uploads the local file `from` to `url` (multipart, 8 MiB parts, 4 in flight). The object
/// appears only when the upload completes: a failure leaves nothing at `url` (the parts are
/// aborted).
pub async fn upload(from: &Path, url: &str, storage: &RawStorage) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    let (_, store, path) = s3(url, storage)?;
    let failed =
        |e: &dyn std::fmt::Display| format!("cannot upload {} to {url}: {e}", from.display());
    let mut file = tokio::fs::File::open(from).await.map_err(|e| failed(&e))?;
    let upload = store.put_multipart(&path).await.map_err(|e| failed(&e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
    let mut buf = vec![0u8; PART];
    loop {
        let n = file.read(&mut buf).await.map_err(|e| failed(&e))?;
        if n == 0 {
            break;
        }
        if let Err(e) = writer.wait_for_capacity(4).await {
            writer.abort().await.ok();
            return Err(failed(&e));
        }
        writer.write(&buf[..n]);
    }
    writer.finish().await.map_err(|e| failed(&e))?;
    Ok(())
}

/// Writes `bytes` as the object at `url` (one request; for small files such as a run's
/// artifacts).
pub async fn put(url: &str, bytes: Vec<u8>, storage: &RawStorage) -> Result<(), String> {
    let (_, store, path) = s3(url, storage)?;
    store
        .put(&path, object_store::PutPayload::from(bytes))
        .await
        .map_err(|e| format!("cannot upload to {url}: {e}"))?;
    Ok(())
}

/// Uploads every file under the local folder `dir` (recursively) to `url/RELATIVE_PATH`;
/// returns how many. Each object appears only when its upload completes.
pub async fn upload_dir(dir: &Path, url: &str, storage: &RawStorage) -> Result<usize, String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).map_err(|e| format!("cannot read {}: {e}", d.display()))?;
        for entry in entries {
            let p = entry
                .map_err(|e| format!("cannot read {}: {e}", d.display()))?
                .path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let base = url.trim_end_matches('/');
    for f in &files {
        let rel = f.strip_prefix(dir).expect("under dir").to_string_lossy();
        upload(f, &format!("{base}/{}", rel.replace('\\', "/")), storage).await?;
    }
    Ok(files.len())
}

/// Downloads every object under `url/` into the local folder `dir` (created; relative paths
/// kept) and returns how many. The files are written into a sibling temporary folder renamed
/// into place at the end, so `dir` appears whole or not at all. No object under `url` is an
/// error.
pub async fn download_dir(url: &str, dir: &Path, storage: &RawStorage) -> Result<usize, String> {
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    let base = url.trim_end_matches('/');
    let (_, store, prefix) = s3(&format!("{base}/"), storage)?;
    let failed = |e: &dyn std::fmt::Display| format!("cannot download {base}/: {e}");
    let objects: Vec<object_store::ObjectMeta> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| failed(&e))?;
    if objects.is_empty() {
        return Err(format!("{base}/: no files there"));
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| failed(&e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(parent)
        .map_err(|e| failed(&e))?;
    for o in &objects {
        let rel = o
            .location
            .as_ref()
            .strip_prefix(prefix.as_ref())
            .unwrap_or(o.location.as_ref())
            .trim_start_matches('/');
        if rel.is_empty() || rel.split('/').any(|p| p == "..") {
            continue;
        }
        let bytes = store
            .get(&o.location)
            .await
            .map_err(|e| failed(&e))?
            .bytes()
            .await
            .map_err(|e| failed(&e))?;
        let to = tmp.path().join(rel);
        if let Some(p) = to.parent() {
            std::fs::create_dir_all(p).map_err(|e| failed(&e))?;
        }
        std::fs::write(&to, &bytes).map_err(|e| failed(&e))?;
    }
    let kept = tmp.keep();
    if let Err(e) = std::fs::rename(&kept, dir) {
        std::fs::remove_dir_all(&kept).ok();
        // Another process fetched the same version meanwhile: its copy is as good.
        if !dir.is_dir() {
            return Err(format!(
                "cannot move the download into {}: {e}",
                dir.display()
            ));
        }
    }
    Ok(objects.len())
}

/// An object store rooted at `place`: a local folder (created if missing) or an `s3://`
/// URL's bucket and prefix, so that code which keeps files there (offline snapshots) has one
/// path for both. Paths given to the store are relative to `place`.
pub fn store_at(
    place: &str,
    storage: &RawStorage,
) -> Result<Arc<dyn object_store::ObjectStore>, String> {
    if is_url(place) {
        let base = format!("{}/", place.trim_end_matches('/'));
        let (_, store, prefix) = s3(&base, storage)?;
        if prefix.as_ref().is_empty() {
            return Ok(Arc::new(store));
        }
        return Ok(Arc::new(object_store::prefix::PrefixStore::new(
            store, prefix,
        )));
    }
    std::fs::create_dir_all(place).map_err(|e| format!("cannot create {place}: {e}"))?;
    let local = object_store::local::LocalFileSystem::new_with_prefix(place)
        .map_err(|e| format!("{place}: {e}"))?
        .with_automatic_cleanup(true);
    Ok(Arc::new(local))
}

/// The names of the folders directly under `place` (a local folder or an `s3://` URL), sorted;
/// none when `place` does not exist.
pub async fn folders(place: &str, storage: &RawStorage) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = if is_url(place) {
        let base = format!("{}/", place.trim_end_matches('/'));
        let (_, store, prefix) = s3(&base, storage)?;
        let listed = object_store::ObjectStore::list_with_delimiter(&store, Some(&prefix))
            .await
            .map_err(|e| format!("cannot list {base}: {e}"))?;
        listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect()
    } else {
        match std::fs::read_dir(place) {
            Ok(entries) => entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("cannot list {place}: {e}")),
        }
    };
    out.sort();
    Ok(out)
}

/// Whether `place` (a local folder or an `s3://` URL's prefix) holds any file.
pub async fn has_files(place: &str, storage: &RawStorage) -> Result<bool, String> {
    use futures::StreamExt;
    if !is_url(place) {
        return Ok(Path::new(place).is_dir());
    }
    let base = format!("{}/", place.trim_end_matches('/'));
    let (_, store, prefix) = s3(&base, storage)?;
    match object_store::ObjectStore::list(&store, Some(&prefix))
        .next()
        .await
    {
        None => Ok(false),
        Some(Ok(_)) => Ok(true),
        Some(Err(e)) => Err(format!("cannot list {base}: {e}")),
    }
}

/// An object store registry that opens each `s3://` bucket the first time a plan reads from
/// it, configured by `storage` and the environment as [`register`] would (everything else, local
/// files included, is DataFusion's default registry). What a cluster's executors read sources
/// through: the client registers its buckets in its own session, which executors do not share.
#[derive(Debug)]
pub struct BucketsOnDemand {
    inner: datafusion::execution::object_store::DefaultObjectStoreRegistry,
    storage: RawStorage,
}

impl BucketsOnDemand {
    /// The registry, opening buckets with `storage` settings.
    pub fn new(storage: RawStorage) -> Self {
        BucketsOnDemand {
            inner: Default::default(),
            storage,
        }
    }
}

impl datafusion::execution::object_store::ObjectStoreRegistry for BucketsOnDemand {
    fn register_store(
        &self,
        url: &url::Url,
        store: Arc<dyn object_store::ObjectStore>,
    ) -> Option<Arc<dyn object_store::ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn get_store(
        &self,
        url: &url::Url,
    ) -> datafusion::error::Result<Arc<dyn object_store::ObjectStore>> {
        if let Ok(store) = self.inner.get_store(url) {
            return Ok(store);
        }
        if !matches!(url.scheme(), "s3" | "s3a") {
            return self.inner.get_store(url);
        }
        let (store_url, store, _) = s3(url.as_str(), &self.storage)
            .map_err(datafusion::error::DataFusionError::Execution)?;
        let store: Arc<dyn object_store::ObjectStore> = Arc::new(store);
        self.inner
            .register_store(store_url.as_ref(), Arc::clone(&store));
        Ok(store)
    }
}

/// Part size of uploads (S3's minimum is 5 MiB for every part but the last).
const PART: usize = 8 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_schemes_are_refused_by_name() {
        let ctx = SessionContext::new();
        let e = register(&ctx, "gs://bucket/x.parquet").unwrap_err();
        assert!(store_at("gs://b/offline", &RawStorage::default()).is_err());
        assert!(e.contains("unsupported scheme 'gs://'"), "{e}");
        assert!(is_url("s3://b/k") && !is_url("data/x.parquet"));
    }
}
