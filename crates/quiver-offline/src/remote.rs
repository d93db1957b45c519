//! Sources and entity files in object storage: `s3://bucket/key` (and `s3a://`), read through
//! the `object_store` crate DataFusion itself reads with. Credentials and the endpoint come from
//! the usual AWS environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION`, and `AWS_ENDPOINT_URL` for an S3-compatible store such as
//! MinIO; an `http://` endpoint is allowed without TLS).

use std::sync::Arc;

use datafusion::datasource::listing::ListingTableUrl;
use datafusion::prelude::SessionContext;
use object_store::aws::AmazonS3Builder;

/// Whether `path` is an object-storage URL rather than a local path.
pub fn is_url(path: &str) -> bool {
    path.contains("://")
}

/// Makes `url`'s bucket readable in `ctx`: registers, once per session and bucket, an S3 client
/// configured from the environment. Unknown schemes are refused by name.
pub fn register(ctx: &SessionContext, url: &str) -> Result<(), String> {
    let scheme = url.split("://").next().unwrap_or_default();
    if !matches!(scheme, "s3" | "s3a") {
        return Err(format!(
            "{url}: unsupported scheme '{scheme}://': Quiver reads local paths and s3:// (S3 or an S3-compatible store through AWS_ENDPOINT_URL)"
        ));
    }
    let parsed = ListingTableUrl::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let store_url = parsed.object_store();
    if ctx.runtime_env().object_store(&store_url).is_ok() {
        return Ok(());
    }
    let bucket = store_url
        .as_str()
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .filter(|b| !b.is_empty())
        .ok_or_else(|| format!("{url}: no bucket (use s3://BUCKET/KEY)"))?
        .to_string();
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
    let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
        .iter()
        .find_map(|v| std::env::var(v).ok());
    if endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"))
    {
        builder = builder.with_allow_http(true);
    }
    let store = builder
        .build()
        .map_err(|e| format!("{url}: cannot open bucket '{bucket}': {e}"))?;
    ctx.register_object_store(store_url.as_ref(), Arc::new(store));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_schemes_are_refused_by_name() {
        let ctx = SessionContext::new();
        let e = register(&ctx, "gs://bucket/x.parquet").unwrap_err();
        assert!(e.contains("unsupported scheme 'gs://'"), "{e}");
        assert!(is_url("s3://b/k") && !is_url("data/x.parquet"));
    }
}
