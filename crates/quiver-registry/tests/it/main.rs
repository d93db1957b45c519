//! The metadata store suite, run against SQLite and against the PostgreSQL on this machine.
//! Under `CI=true` an unreachable PostgreSQL fails the tests; elsewhere they say so and skip.

mod monitoring;
mod quality;

use std::path::PathBuf;

use quiver_core::Registry;
use quiver_core::plan::plan;
use quiver_core::registry::ObjectKind;
use quiver_core::repo::parse_definitions;
use quiver_registry::{Error, MetadataStore, SqlMetadataStore};

const V1: &str = r#"
project: shop
entities: [{name: user, join_keys: [user_id]}]
sources: [{name: s, type: parquet, path: s.parquet, timestamp_field: ts}]
feature_views:
  - name: stats
    entities: [user]
    source: s
    ttl: 30d
    features: [{name: a, type: float64}, {name: b, type: int64}]
feature_services: [{name: svc, features: ["stats:*"]}]
"#;

fn reg(text: &str) -> Registry {
    let p = PathBuf::from("quiver.yaml");
    Registry::from_files(vec![(p.clone(), parse_definitions(&p, text).unwrap())]).unwrap()
}

async fn suite(store: SqlMetadataStore) {
    assert!(
        store.current().await.unwrap().is_none(),
        "a new store is empty"
    );
    let r1 = reg(V1);
    let p1 = plan(None, &r1);
    assert_eq!(store.apply(&r1, &p1, 0).await.unwrap(), 1);
    let cur = store.current().await.unwrap().unwrap();
    assert_eq!(cur.version, 1);
    assert_eq!(
        cur.registry.to_json(),
        r1.to_json(),
        "the stored registry reads back equal"
    );

    // Same definitions again: nothing to apply, version unchanged.
    let p = plan(Some(&cur.registry), &r1);
    assert!(p.is_empty());
    assert_eq!(store.apply(&r1, &p, 1).await.unwrap(), 1);

    // Change the TTL, remove the service.
    let v2 = V1.replace("ttl: 30d", "ttl: 7d").replace(
        r#"feature_services: [{name: svc, features: ["stats:*"]}]"#,
        "",
    );
    let r2 = reg(&v2);
    let p2 = plan(Some(&r1), &r2);
    assert_eq!(store.apply(&r2, &p2, 1).await.unwrap(), 2);

    let h = store
        .history(ObjectKind::FeatureView, "stats")
        .await
        .unwrap();
    assert_eq!(h.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2]);
    assert_ne!(h[0].hash, h[1].hash);
    assert_eq!(h[1].registry_version, 2);
    let h = store
        .history(ObjectKind::FeatureService, "svc")
        .await
        .unwrap();
    assert_eq!(h.len(), 2);
    assert!(h[1].removed);
    assert_eq!(
        store
            .history(ObjectKind::Entity, "user")
            .await
            .unwrap()
            .len(),
        1,
        "unchanged objects keep their version"
    );

    // A plan made against version 1 cannot be applied over version 2; nothing is written.
    let r3 = reg(&V1.replace("ttl: 30d", "ttl: 1d"));
    let p3 = plan(Some(&r1), &r3);
    match store.apply(&r3, &p3, 1).await {
        Err(Error::Conflict {
            expected: 1,
            current: 2,
        }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    let cur = store.current().await.unwrap().unwrap();
    assert_eq!(cur.version, 2);
    assert_eq!(
        cur.registry.to_json(),
        r2.to_json(),
        "a failed apply leaves the stored registry as it was"
    );
    assert_eq!(
        store
            .history(ObjectKind::FeatureView, "stats")
            .await
            .unwrap()
            .len(),
        2
    );

    let applies = store.applies().await.unwrap();
    assert_eq!(applies.len(), 2);
    assert_eq!(applies[0].counts, (4, 0, 0));
    assert_eq!(applies[1].counts, (0, 1, 1));
}

#[tokio::test]
async fn sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlMetadataStore::open(".quiver/registry.db", dir.path())
        .await
        .unwrap();
    suite(store).await;
    assert!(dir.path().join(".quiver/registry.db").exists());
    // Reopening sees the same data.
    let again = SqlMetadataStore::open(".quiver/registry.db", dir.path())
        .await
        .unwrap();
    assert_eq!(again.current().await.unwrap().unwrap().version, 2);
}

/// Opens a PostgreSQL store in a fresh schema, or `None` when PostgreSQL is not reachable
/// outside CI.
async fn postgres_store() -> Option<SqlMetadataStore> {
    let url = postgres_schema_url().await?;
    Some(
        SqlMetadataStore::open(&url, std::path::Path::new("."))
            .await
            .unwrap(),
    )
}

/// A fresh schema of the local PostgreSQL (see `quiver_test_utils`).
async fn postgres_schema_url() -> Option<String> {
    quiver_test_utils::postgres_schema_url("quiver_test").await
}

#[tokio::test]
async fn postgres_store_runs_the_same_suite() {
    if let Some(store) = postgres_store().await {
        suite(store).await;
    }
}

fn new_version(name: &str, hash: &str) -> quiver_registry::NewModelVersion {
    quiver_registry::NewModelVersion {
        name: name.into(),
        task: "binary".into(),
        algorithm: "gbdt".into(),
        feature_service: "svc".into(),
        service_hash: hash.into(),
        artifact: format!("models/{name}/{hash}"),
        details: serde_json::json!({"metrics": {"roc_auc": 0.9}}),
    }
}

/// The model registry: versions, aliases, promotion, rollback, refused deletes.
async fn model_suite(store: SqlMetadataStore) {
    assert!(store.model_versions(None).await.unwrap().is_empty());
    assert_eq!(
        store
            .register_model(&new_version("churn", "h1"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .register_model(&new_version("churn", "h2"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .register_model(&new_version("other", "h9"))
            .await
            .unwrap(),
        1
    );
    let e = store
        .register_model(&new_version("1bad name", "x"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not a valid model name"), "{e}");

    let v2 = store.model_version("churn", 2).await.unwrap();
    assert_eq!(
        (v2.service_hash.as_str(), v2.artifact.as_str()),
        ("h2", "models/churn/h2")
    );
    assert_eq!(v2.details["metrics"]["roc_auc"], 0.9);
    let e = store
        .model_version("churn", 7)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no version 7 (versions: 1, 2)"), "{e}");
    let e = store
        .model_version("nope", 1)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no model named 'nope'"), "{e}");

    // No alias yet.
    let e = store
        .model_by_alias("churn", "champion")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no alias 'champion'") && e.contains("quiver models promote"),
        "{e}"
    );
    assert_eq!(
        store.promote_model("churn", 1, "champion").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .model_by_alias("churn", "champion")
            .await
            .unwrap()
            .version,
        1
    );
    assert_eq!(
        store.promote_model("churn", 2, "champion").await.unwrap(),
        Some(1)
    );
    assert_eq!(
        store.promote_model("churn", 1, "challenger").await.unwrap(),
        None
    );
    let all = store.model_versions(Some("churn")).await.unwrap();
    assert_eq!(all[0].aliases, vec!["challenger".to_string()]);
    assert_eq!(all[1].aliases, vec!["champion".to_string()]);
    // Promoting a version that does not exist changes nothing.
    assert!(store.promote_model("churn", 5, "champion").await.is_err());
    assert_eq!(
        store
            .model_by_alias("churn", "champion")
            .await
            .unwrap()
            .version,
        2
    );
    assert!(
        store.promote_model("churn", 1, "42").await.is_err(),
        "numeric alias"
    );

    // Rollouts: off by default, need a challenger, share checked.
    use quiver_registry::Rollout;
    assert_eq!(store.rollout("churn").await.unwrap(), Rollout::Off);
    let set = store
        .set_rollout("churn", Rollout::canary(0.25))
        .await
        .unwrap();
    let Rollout::Canary { share, salt } = set else {
        panic!("{set:?}")
    };
    assert_eq!(share, 0.25);
    assert_ne!(salt, 0, "a canary gets a salt");
    assert_eq!(store.rollout("churn").await.unwrap(), set);
    // Changing the share keeps the salt: the entities already in the canary stay in it.
    let raised = store
        .set_rollout("churn", Rollout::canary(0.5))
        .await
        .unwrap();
    assert_eq!(raised, Rollout::Canary { share: 0.5, salt });
    store.set_rollout("churn", Rollout::Shadow).await.unwrap();
    assert_eq!(store.rollout("churn").await.unwrap(), Rollout::Shadow);
    // A new canary gets a new salt.
    let again = store
        .set_rollout("churn", Rollout::canary(0.25))
        .await
        .unwrap();
    assert!(matches!(again, Rollout::Canary { salt: s, .. } if s != salt && s != 0));
    assert!(
        store
            .set_rollout("churn", Rollout::canary(1.5))
            .await
            .is_err()
    );
    let e = store
        .set_rollout("other", Rollout::Shadow)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs a challenger"), "{e}");
    assert_eq!(
        store.rollout("churn").await.unwrap(),
        again,
        "a refused change keeps the old"
    );
    store.set_rollout("churn", Rollout::Off).await.unwrap();

    // Deleting a version an alias names is refused; nothing changes.
    let e = store
        .delete_model_version("churn", 2)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("named by alias champion"), "{e}");
    assert_eq!(store.model_versions(Some("churn")).await.unwrap().len(), 2);

    // Rollback restores the previous champion.
    assert_eq!(
        store.rollback_model("churn", "champion").await.unwrap(),
        (2, 1)
    );
    assert_eq!(
        store
            .model_by_alias("churn", "champion")
            .await
            .unwrap()
            .version,
        1
    );
    let e = store
        .rollback_model("churn", "challenger")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("nothing to roll back to"), "{e}");
    let e = store
        .rollback_model("other", "champion")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no alias 'champion' to roll back"), "{e}");

    // Version 2 is free now: it can be deleted, and rollback skips deleted versions.
    assert_eq!(
        store.delete_model_version("churn", 2).await.unwrap(),
        "models/churn/h2"
    );
    assert_eq!(store.model_versions(Some("churn")).await.unwrap().len(), 1);
    assert!(store.rollback_model("churn", "champion").await.is_err());
    // A deleted version's number is never given out again.
    assert_eq!(
        store
            .register_model(&new_version("churn", "h3"))
            .await
            .unwrap(),
        3
    );
    assert!(store.model_version("churn", 2).await.is_err());
}

#[tokio::test]
async fn sqlite_model_registry() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlMetadataStore::open(".quiver/registry.db", dir.path())
        .await
        .unwrap();
    model_suite(store).await;
}

#[tokio::test]
async fn postgres_model_registry() {
    if let Some(store) = postgres_store().await {
        model_suite(store).await;
    }
}

/// An alias's history is a stack: a promotion that moves the alias pushes, a rollback pops,
/// promoting the version an alias names already is a no-op, and deleted versions are skipped.
async fn alias_history_suite(store: SqlMetadataStore) {
    for hash in ["h1", "h2", "h3", "h4"] {
        store.register_model(&new_version("m", hash)).await.unwrap();
    }
    let champion = async || store.model_by_alias("m", "champion").await.unwrap().version;
    assert_eq!(store.promote_model("m", 1, "champion").await.unwrap(), None);
    assert_eq!(
        store.promote_model("m", 2, "champion").await.unwrap(),
        Some(1)
    );
    assert_eq!(
        store.promote_model("m", 3, "champion").await.unwrap(),
        Some(2)
    );
    // Rolling back twice walks back 3 -> 2 -> 1, never forward again.
    assert_eq!(store.rollback_model("m", "champion").await.unwrap(), (3, 2));
    assert_eq!(store.rollback_model("m", "champion").await.unwrap(), (2, 1));
    assert_eq!(champion().await, 1);
    let e = store
        .rollback_model("m", "champion")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("nothing to roll back to"), "{e}");
    assert_eq!(champion().await, 1, "a refused rollback changes nothing");

    // A promotion after a rollback pushes on what is left: 1, 4 -> back to 1.
    assert_eq!(
        store.promote_model("m", 4, "champion").await.unwrap(),
        Some(1)
    );
    assert_eq!(store.rollback_model("m", "champion").await.unwrap(), (4, 1));

    // Promoting the version the alias names already writes nothing: the rollback that its
    // message would otherwise promise has nothing to undo.
    assert_eq!(
        store.promote_model("m", 2, "challenger").await.unwrap(),
        None
    );
    assert_eq!(
        store.promote_model("m", 2, "challenger").await.unwrap(),
        Some(2),
        "a no-op says which version the alias names"
    );
    let e = store
        .rollback_model("m", "challenger")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("nothing to roll back to"), "{e}");
    assert_eq!(
        store.promote_model("m", 3, "challenger").await.unwrap(),
        Some(2)
    );
    assert_eq!(
        store.rollback_model("m", "challenger").await.unwrap(),
        (3, 2)
    );

    // Rollback skips versions deleted since they were promoted: 1, 2, 3 with 2 deleted -> 1.
    assert_eq!(store.promote_model("m", 3, "stage").await.unwrap(), None);
    store.promote_model("m", 4, "stage").await.unwrap();
    store.promote_model("m", 1, "stage").await.unwrap();
    store.promote_model("m", 4, "champion").await.unwrap();
    store.promote_model("m", 1, "challenger").await.unwrap();
    // 3 is named by no alias now (challenger 1, champion 4, stage 1).
    store.delete_model_version("m", 3).await.unwrap();
    store.promote_model("m", 4, "stage").await.unwrap();
    // stage: 3, 4, 1, 4 -> 1 -> 4 -> (3 deleted) nothing.
    assert_eq!(store.rollback_model("m", "stage").await.unwrap(), (4, 1));
    assert_eq!(store.rollback_model("m", "stage").await.unwrap(), (1, 4));
    let e = store
        .rollback_model("m", "stage")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("nothing to roll back to"), "{e}");
}

#[tokio::test]
async fn sqlite_alias_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlMetadataStore::open(".quiver/registry.db", dir.path())
        .await
        .unwrap();
    alias_history_suite(store).await;
}

#[tokio::test]
async fn postgres_alias_history() {
    if let Some(store) = postgres_store().await {
        alias_history_suite(store).await;
    }
}

/// A store written before the alias history recorded its action: opening it (twice) adds the
/// column once, keeps the rows (read as promotions), and rollbacks then walk back.
async fn alias_history_of_an_older_store(url: &str, base: &std::path::Path) {
    {
        let pool = sqlx::AnyPool::connect(url).await.unwrap();
        sqlx::query(
            "CREATE TABLE quiver_model_aliases (
                name TEXT NOT NULL,
                alias TEXT NOT NULL,
                seq BIGINT NOT NULL,
                version BIGINT NOT NULL,
                changed_at TEXT NOT NULL,
                PRIMARY KEY (name, alias, seq))",
        )
        .execute(&pool)
        .await
        .unwrap();
        for (seq, version) in [(1i64, 1i64), (2, 2)] {
            sqlx::query(
                "INSERT INTO quiver_model_aliases VALUES ('m', 'champion', $1, $2, 'then')",
            )
            .bind(seq)
            .bind(version)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
    }
    let store = SqlMetadataStore::open(url, base).await.unwrap();
    drop(SqlMetadataStore::open(url, base).await.unwrap());
    for hash in ["h1", "h2", "h3"] {
        store.register_model(&new_version("m", hash)).await.unwrap();
    }
    assert_eq!(
        store.model_by_alias("m", "champion").await.unwrap().version,
        2
    );
    store.promote_model("m", 3, "champion").await.unwrap();
    assert_eq!(store.rollback_model("m", "champion").await.unwrap(), (3, 2));
    assert_eq!(store.rollback_model("m", "champion").await.unwrap(), (2, 1));
    assert!(store.rollback_model("m", "champion").await.is_err());
}

#[tokio::test]
async fn sqlite_alias_history_of_an_older_store() {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("registry.db").display()
    );
    alias_history_of_an_older_store(&url, dir.path()).await;
}

#[tokio::test]
async fn postgres_alias_history_of_an_older_store() {
    sqlx::any::install_default_drivers();
    if let Some(url) = postgres_schema_url().await {
        alias_history_of_an_older_store(&url, std::path::Path::new(".")).await;
    }
}
