//! Offline snapshots equal `historical` at the snapshot time, are versioned by the view's
//! content hash, skip finished partitions and are pruned by retention.

use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use quiver_offline::snapshot::{partition_dir, prune, view_version, write_snapshot};

use quiver_offline::HistoricalOptions;

use super::{
    DAY, Repo, batch, f64_col, f64s, i64_col, i64s, str_col, strs, ts_col, us, write_parquet,
};

const YAML: &str = r#"
project: snap
entities: [{name: user, join_keys: [user_id]}]
sources:
  - {name: stats_src, type: parquet, path: data/stats.parquet, timestamp_field: ts}
  - {name: events_src, type: parquet, path: data/events.parquet, timestamp_field: ts}
feature_views:
  - name: stats
    entities: [user]
    source: stats_src
    ttl: 2d
    offline: {snapshots: daily, retain: 3d}
    features:
      - {name: score, type: float64}
      - {name: tier, type: string}
  - name: activity
    entities: [user]
    source: events_src
    offline: {snapshots: daily}
    aggregations:
      - {name: events_2d, function: count, window: 2d}
      - {name: amount_sum_2d, function: sum, column: amount, window: 2d}
"#;

fn repo() -> Repo {
    let r = Repo::new(YAML);
    // Users 1-4; user 3's only row is old (outside the 2-day TTL at day 5), user 4 has none.
    write_parquet(
        &r.path("data/stats.parquet"),
        &batch(vec![
            ("user_id", i64_col(&[Some(1), Some(1), Some(2), Some(3)])),
            (
                "ts",
                ts_col(&[Some(DAY), Some(4 * DAY), Some(4 * DAY + 5), Some(DAY)]),
            ),
            ("score", f64_col(&[Some(0.1), Some(0.9), None, Some(0.3)])),
            (
                "tier",
                str_col(&[Some("a"), Some("b"), Some("c"), Some("d")]),
            ),
        ]),
    );
    write_parquet(
        &r.path("data/events.parquet"),
        &batch(vec![
            ("user_id", i64_col(&[Some(1), Some(1), Some(2), Some(3)])),
            (
                "ts",
                ts_col(&[Some(4 * DAY), Some(5 * DAY), Some(DAY), Some(5 * DAY)]),
            ),
            ("amount", f64_col(&[Some(10.0), Some(5.0), Some(7.0), None])),
        ]),
    );
    r
}

fn read(path: &std::path::Path) -> datafusion::arrow::array::RecordBatch {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

#[tokio::test]
async fn a_snapshot_holds_what_historical_gives_at_its_time() {
    let r = repo();
    let engine = r.engine();
    let at = us(5 * DAY);
    for view in ["stats", "activity"] {
        let report = write_snapshot(&engine, view, at, false).await.unwrap();
        assert!(!report.skipped);
        assert!(report.path.ends_with("part-0.parquet"));
        assert!(
            report
                .path
                .contains(&format!(".quiver/offline/{view}/version=")),
            "{report:?}"
        );
        assert!(report.path.contains("date=2025-01-06"));
        assert!(std::path::Path::new(&report.path).is_file(), "{report:?}");
    }
    let version = view_version(&engine, "stats").unwrap();
    let stats = read(&partition_dir(r.dir.path(), "stats", &version, at).join("part-0.parquet"));
    // User 3's row is outside the TTL: not in the snapshot (historical gives nulls).
    let mut users = i64s(&stats, "user_id");
    users.sort();
    assert_eq!(users, vec![Some(1), Some(2)]);
    let act_version = view_version(&engine, "activity").unwrap();
    let activity =
        read(&partition_dir(r.dir.path(), "activity", &act_version, at).join("part-0.parquet"));
    // Every snapshot row equals historical's value for that entity at the snapshot time.
    for (snap, features) in [
        (&stats, ["stats:score", "stats:tier"]),
        (&activity, ["activity:events_2d", "activity:amount_sum_2d"]),
    ] {
        let n = snap.num_rows();
        let entities = batch(vec![
            ("user_id", i64_col(&i64s(snap, "user_id"))),
            ("event_timestamp", ts_col(&vec![Some(5 * DAY); n])),
        ]);
        // Recomputed, not read back from the snapshot just written.
        let h = r
            .historical_with(&entities, &features, &recompute())
            .await
            .unwrap();
        for f in features {
            let name = f.split(':').nth(1).unwrap();
            match name {
                "tier" => assert_eq!(strs(snap, name), strs(&h, name), "{f}"),
                "events_2d" => assert_eq!(i64s(snap, name), i64s(&h, name), "{f}"),
                _ => assert_eq!(f64s(snap, name), f64s(&h, name), "{f}"),
            }
        }
    }
    // Users with events only outside the window still get their empty-window values.
    let users = i64s(&activity, "user_id");
    let user2 = users.iter().position(|u| *u == Some(2)).unwrap();
    assert_eq!(i64s(&activity, "events_2d")[user2], Some(0));
}

#[tokio::test]
async fn finished_partitions_are_skipped_a_new_definition_is_a_new_version_and_old_dates_are_pruned()
 {
    let r = repo();
    let engine = r.engine();
    let root = r.dir.path();
    for day in 2..=5 {
        write_snapshot(&engine, "stats", us(day * DAY), true)
            .await
            .unwrap();
    }
    let again = write_snapshot(&engine, "stats", us(3 * DAY), true)
        .await
        .unwrap();
    assert!(again.skipped, "{again:?}");
    // A killed write leaves no marker: the partition is written again.
    let version = view_version(&engine, "stats").unwrap();
    std::fs::remove_file(partition_dir(root, "stats", &version, us(3 * DAY)).join("_SUCCESS"))
        .unwrap();
    assert!(
        !write_snapshot(&engine, "stats", us(3 * DAY), true)
            .await
            .unwrap()
            .skipped
    );
    // Changing the definition changes the version folder; retention alone does not.
    std::fs::write(
        r.path("quiver.yaml"),
        YAML.replace("retain: 3d", "retain: 30d"),
    )
    .unwrap();
    assert_eq!(view_version(&r.engine(), "stats").unwrap(), version);
    std::fs::write(r.path("quiver.yaml"), YAML.replace("ttl: 2d", "ttl: 3d")).unwrap();
    assert_ne!(view_version(&r.engine(), "stats").unwrap(), version);
    // Pruning keeps the dates from the cut-off on.
    let removed = prune(&engine, "stats", us(4 * DAY)).await.unwrap();
    let mut names: Vec<String> = removed
        .iter()
        .map(|p| p.rsplit('/').next().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["date=2025-01-03", "date=2025-01-04"]);
    assert!(!partition_dir(root, "stats", &version, us(3 * DAY)).exists());
    assert!(partition_dir(root, "stats", &version, us(5 * DAY)).is_dir());
    assert!(
        partition_dir(root, "stats", &version, us(4 * DAY))
            .join("_SUCCESS")
            .is_file()
    );
}

fn recompute() -> HistoricalOptions {
    HistoricalOptions {
        full_names: false,
        snapshots: false,
        ..HistoricalOptions::default()
    }
}

#[tokio::test]
async fn historical_reads_snapshotted_views_from_their_snapshots_with_the_same_values() {
    let r = repo();
    let engine = r.engine();
    // Snapshots as of days 4 and 5 (not 6).
    for view in ["stats", "activity"] {
        for day in [4, 5] {
            write_snapshot(&engine, view, us(day * DAY), false)
                .await
                .unwrap();
        }
    }
    // Entity rows at snapshot times (users in and out of the snapshot, one unknown), and at
    // other times, interleaved.
    let users = [1, 2, 3, 4, 1, 2, 1, 3, 2, 4];
    let days = [5, 5, 5, 5, 4, 4, 6, 6, 3, 4];
    let entities = batch(vec![
        ("user_id", i64_col(&users.map(Some))),
        ("event_timestamp", ts_col(&days.map(|d| Some(d * DAY)))),
    ]);
    let features = [
        "stats:score",
        "stats:tier",
        "activity:events_2d",
        "activity:amount_sum_2d",
    ];
    let from_snapshots = r.historical(&entities, &features).await.unwrap();
    let recomputed = r
        .historical_with(&entities, &features, &recompute())
        .await
        .unwrap();
    assert_eq!(from_snapshots.schema(), recomputed.schema());
    assert_eq!(from_snapshots, recomputed);
    assert_eq!(f64s(&from_snapshots, "score")[0], Some(0.9));
    assert_eq!(i64s(&from_snapshots, "events_2d")[1], Some(0));

    // They are read, not recomputed: a row that arrives late (timestamped day 5, after the
    // snapshot was written) shows in recomputed values only, until the snapshot is rewritten.
    write_parquet(
        &r.path("data/stats.parquet"),
        &batch(vec![
            (
                "user_id",
                i64_col(&[Some(1), Some(1), Some(2), Some(3), Some(1)]),
            ),
            (
                "ts",
                ts_col(&[
                    Some(DAY),
                    Some(4 * DAY),
                    Some(4 * DAY + 5),
                    Some(DAY),
                    Some(5 * DAY),
                ]),
            ),
            (
                "score",
                f64_col(&[Some(0.1), Some(0.9), None, Some(0.3), Some(0.5)]),
            ),
            (
                "tier",
                str_col(&[Some("a"), Some("b"), Some("c"), Some("d"), Some("e")]),
            ),
        ]),
    );
    let read = r.historical(&entities, &features).await.unwrap();
    let fresh = r
        .historical_with(&entities, &features, &recompute())
        .await
        .unwrap();
    assert_eq!(f64s(&read, "score")[0], Some(0.9), "the snapshot's value");
    assert_eq!(f64s(&fresh, "score")[0], Some(0.5), "the late row");
    // Rows at times without a snapshot are computed either way.
    assert_eq!(f64s(&read, "score")[6], Some(0.5));
    write_snapshot(&engine, "stats", us(5 * DAY), false)
        .await
        .unwrap();
    let read = r.historical(&entities, &features).await.unwrap();
    assert_eq!(read, fresh);
}
