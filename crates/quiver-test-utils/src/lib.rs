//! # quiver-test-utils
//!
//! What several crates' tests share (`publish = false`): a fresh PostgreSQL schema per test on
//! the machine's PostgreSQL, so suites that run at the same time never see each other's rows.
//! Under `CI=true` an unreachable PostgreSQL fails the test; elsewhere it is skipped with a
//! message.

/// Creates a fresh schema named `PREFIX_PID_NANOS` in the PostgreSQL at
/// `QUIVER_TEST_POSTGRES_URL` (default `postgresql://postgres@127.0.0.1:5432/test`) and returns
/// a URL whose search path is that schema; `None` when PostgreSQL is not reachable outside CI.
pub async fn postgres_schema_url(prefix: &str) -> Option<String> {
    let base = std::env::var("QUIVER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".to_string());
    let schema = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos()
    );
    let pool = match sqlx::PgPool::connect(&base).await {
        Ok(p) => p,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("SKIPPED: PostgreSQL not reachable ({e}); under CI=true this fails");
            return None;
        }
        Err(e) => panic!("PostgreSQL is required under CI=true: {e}"),
    };
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .expect("create a test schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}
