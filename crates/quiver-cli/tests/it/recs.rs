//! `quiver recs`: apply refuses bad declarations, train registers a version, evaluate reports
//! the model against popularity, bad input fails without storing anything.

use std::fmt::Write;
use std::path::Path;

use super::{fails, ok, quiver};

const DECL: &str = r#"project: recs_it
sources:
  - name: events
    type: csv
    path: data/events.csv
    timestamp_field: event_timestamp
recommenders:
  - name: shop_recs
    interactions:
      source: events
      user: user_id
      item: product_id
      event_type: event_type
      weights: {view: 1, purchase: 3}
      half_life: 30d
    algorithm: {type: als, factors: 8, regularization: 0.05, alpha: 10, iterations: 10, seed: 42}
"#;

/// 80 users in two taste groups over 40 products; user u's held-out product is written to
/// `holdout.csv`.
fn repo(dir: &Path) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let (mut events, mut holdout) = (
        String::from("user_id,product_id,event_type,event_timestamp\n"),
        String::from("user_id,product_id\n"),
    );
    for u in 0..80u32 {
        let base = if u % 2 == 0 { 0 } else { 20 };
        for k in 0..10u32 {
            let p = base + (u + k * 3) % 20;
            let t = if k % 3 == 0 { "purchase" } else { "view" };
            if k == 9 {
                writeln!(holdout, "{u},p{p}").unwrap();
            } else {
                writeln!(events, "{u},p{p},{t},2025-06-{:02}T10:00:00", 1 + k).unwrap();
            }
        }
    }
    writeln!(events, "5,p3,impression,2025-06-20T10:00:00").unwrap();
    std::fs::write(dir.join("data/events.csv"), events).unwrap();
    std::fs::write(dir.join("data/holdout.csv"), holdout).unwrap();
    std::fs::write(dir.join("quiver.yaml"), DECL).unwrap();
}

#[test]
fn recommenders_train_register_and_evaluate() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    repo(r);
    // A column the source lacks: apply names the file, line and field, and stores nothing.
    std::fs::write(
        r.join("quiver.yaml"),
        DECL.replace("item: product_id", "item: product"),
    )
    .unwrap();
    let e = fails(quiver(r, &["apply"]));
    assert!(
        e.contains("quiver.yaml:8:")
            && e.contains("recommender 'shop_recs', field 'interactions.item'")
            && e.contains("has no column 'product'; known: user_id, product_id"),
        "{e}"
    );
    assert!(fails(quiver(r, &["recs", "train", "shop_recs"])).contains("nothing applied yet"));
    std::fs::write(r.join("quiver.yaml"), DECL).unwrap();
    ok(quiver(r, &["apply"]));
    let e = fails(quiver(r, &["recs", "train", "shop_rec"]));
    assert!(
        e.contains("no recommender 'shop_rec'") && e.contains("did you mean 'shop_recs'"),
        "{e}"
    );

    let out = ok(quiver(
        r,
        &[
            "--json",
            "recs",
            "train",
            "shop_recs",
            "--promote",
            "champion",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&out[..out.rfind('}').unwrap() + 1]).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(
        (v["users"].as_u64(), v["items"].as_u64()),
        (Some(80), Some(40))
    );
    // The impression row is not weighted: 80 users x 9 interactions.
    assert_eq!(v["interactions"], 720);
    let list = ok(quiver(r, &["models", "list", "shop_recs"]));
    assert!(list.contains("champion") && list.contains("als"), "{list}");

    let holdout = r.join("data/holdout.csv");
    let holdout = holdout.to_str().unwrap();
    let e = fails(quiver(
        r,
        &["recs", "evaluate", "shop_recs", "--test", "nowhere.csv"],
    ));
    assert!(e.contains("nowhere.csv: no such file"), "{e}");
    let out = ok(quiver(
        r,
        &[
            "--json",
            "recs",
            "evaluate",
            "shop_recs@champion",
            "--test",
            holdout,
            "--k",
            "5",
        ],
    ));
    let e: serde_json::Value = serde_json::from_str(&out[..out.rfind('}').unwrap() + 1]).unwrap();
    for key in [
        "precision@5",
        "map@5",
        "ndcg@5",
        "auc@5",
        "coverage",
        "diversity",
        "novelty",
    ] {
        assert!(
            e[key].is_number() && e["baseline"][key].is_number(),
            "{key}: {e}"
        );
    }
    assert_eq!(e["users"], 80);
    // Tastes are learned: the held-out product is in the model's top 5 far more often than
    // in popularity's.
    let (m, b) = (
        e["precision@5"].as_f64().unwrap(),
        e["baseline"]["precision@5"].as_f64().unwrap(),
    );
    assert!(m > 0.3 && m > 2.0 * b, "model {m} vs popularity {b}");

    // Bad input: k out of range, an empty interactions file; nothing registered.
    for k in ["0", "-1", "100000"] {
        let e = fails(quiver(
            r,
            &["recs", "evaluate", "shop_recs", "--test", holdout, "--k", k],
        ));
        assert!(e.contains("ask for 1 to 10000"), "{e}");
    }
    let empty = r.join("data/empty.csv");
    std::fs::write(&empty, "user_id,product_id\n").unwrap();
    let e = fails(quiver(
        r,
        &[
            "recs",
            "train",
            "shop_recs",
            "--interactions",
            empty.to_str().unwrap(),
        ],
    ));
    assert!(e.contains("no interactions"), "{e}");
    let e = fails(quiver(
        r,
        &["recs", "train", "shop_recs", "--params", "factors=0"],
    ));
    assert!(e.contains("factors"), "{e}");
    let list = ok(quiver(r, &["--json", "models", "list", "shop_recs"]));
    assert!(!list.contains("\"version\": 2"), "{list}");
}

/// The text of `GET /metrics`.
fn metrics_text(port: u16) -> String {
    use std::io::{Read, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    r
}

fn item_ids(answer: &serde_json::Value) -> Vec<String> {
    answer["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {answer}"))
        .iter()
        .map(|i| i["item_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn recommend_over_http_with_cold_start_and_fold_in() {
    use super::models::{post, serve};
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    repo(r);
    std::fs::write(
        r.join("quiver.yaml"),
        format!("{DECL}    cold_start: {{min_interactions: 5, popularity: {{half_life: 7d}}}}\n"),
    )
    .unwrap();
    ok(quiver(r, &["apply"]));
    ok(quiver(
        r,
        &["recs", "train", "shop_recs", "--promote", "champion"],
    ));
    let list: serde_json::Value =
        serde_json::from_str(&ok(quiver(r, &["--json", "models", "list", "shop_recs"]))).unwrap();
    let model = quiver_recs::RecModel::load(
        &r.join(".quiver/artifacts")
            .join(list[0]["artifact"].as_str().unwrap()),
    )
    .unwrap();
    let server = serve(r);
    let port = server.1;
    let rec = |body: serde_json::Value| post(port, "/recommend", &body.to_string());

    // A returning user (9 interactions >= 5) gets CF, none of the items they interacted with.
    let (status, a) = rec(serde_json::json!({"recommender": "shop_recs", "user_id": 4, "k": 5}));
    assert_eq!(status, 200, "{a}");
    assert_eq!(
        (a["source"].as_str(), a["version"].as_i64()),
        (Some("cf"), Some(1))
    );
    let got = item_ids(&a);
    assert_eq!(got.len(), 5);
    let seen: Vec<String> = (0..9u32)
        .map(|k| format!("p{}", (4 + k * 3) % 20))
        .collect();
    assert!(
        got.iter().all(|i| !seen.contains(i)),
        "{got:?} vs seen {seen:?}"
    );
    assert!(
        a["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["source"] == "cf")
    );
    // The same user, seen items allowed: their own products come back.
    let (_, all) = rec(
        serde_json::json!({"recommender": "shop_recs", "user_id": "4", "k": 5, "exclude_seen": false}),
    );
    assert!(item_ids(&all).iter().any(|i| seen.contains(i)), "{all}");

    // Different users get different lists (two taste groups, and within them).
    let lists: std::collections::BTreeSet<Vec<String>> = (0..10)
        .map(|u| {
            item_ids(&rec(serde_json::json!({"recommender": "shop_recs", "user_id": u, "k": 5})).1)
        })
        .collect();
    assert!(
        lists.len() >= 5,
        "only {} distinct lists of 10",
        lists.len()
    );

    // A new user gets popularity: the model's most popular items, in order.
    let (status, a) =
        rec(serde_json::json!({"recommender": "shop_recs", "user_id": "nobody", "k": 3}));
    assert_eq!(
        (status, a["source"].as_str()),
        (200, Some("popularity")),
        "{a}"
    );
    let popular: Vec<String> = model
        .popular(3, &[])
        .iter()
        .map(|(i, _)| model.items.id(*i).to_string())
        .collect();
    assert_eq!(item_ids(&a), popular);

    // The cold-start transition for a user the model does not know: 0 interactions →
    // popularity, 2 → blend, 5 (min_interactions) → CF of the folded-in factors, equal to
    // quiver-recs' fold-in.
    let taste: Vec<String> = ["p0", "p3", "p6", "p9", "p12"].map(String::from).to_vec();
    let mut sources = Vec::new();
    for n in [0, 2, 5] {
        let (status, a) = rec(
            serde_json::json!({"recommender": "shop_recs", "user_id": "newbie", "k": 5, "interactions": taste[..n]}),
        );
        assert_eq!(status, 200, "{a}");
        assert_eq!(a["interactions"], n);
        assert!(item_ids(&a).iter().all(|i| !taste[..n].contains(i)), "{a}");
        sources.push(a["source"].as_str().unwrap().to_string());
        if n == 5 {
            let mut idx: Vec<u32> = taste.iter().map(|t| model.items.get(t).unwrap()).collect();
            idx.sort_unstable();
            let pairs: Vec<(u32, f32)> = idx.iter().map(|&i| (i, 1.0)).collect();
            let x = model.fold_in(&pairs).unwrap();
            let want = model.recommend_factors(&x, 5, &idx);
            let items = a["items"].as_array().unwrap();
            for ((i, s), got) in want.iter().zip(items) {
                assert_eq!(got["item_id"], model.items.id(*i), "{a}");
                assert!(
                    (got["score"].as_f64().unwrap() - f64::from(*s)).abs() < 1e-5,
                    "{a}"
                );
            }
            // The even taste group's products (p0..p19) are what it learns.
            let even = item_ids(&a)
                .iter()
                .filter(|i| i[1..].parse::<u32>().unwrap() < 20)
                .count();
            assert!(even >= 4, "{a}");
        }
    }
    assert_eq!(sources, ["popularity", "blend", "cf"]);

    // Batch: one answer per user, in order.
    let (status, b) = post(
        port,
        "/recommend/batch",
        r#"{"recommender": "shop_recs", "user_ids": [4, "nobody"], "k": 2}"#,
    );
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["results"][0]["source"], "cf");
    assert_eq!(b["results"][1]["source"], "popularity");
    assert_eq!(b["results"][0]["items"].as_array().unwrap().len(), 2);

    // Similar items by CF.
    let (status, s) = post(
        port,
        "/similar-items",
        r#"{"recommender": "shop_recs", "item_id": "p0", "k": 3}"#,
    );
    assert_eq!(status, 200, "{s}");
    let sim = item_ids(&s);
    assert_eq!(sim.len(), 3);
    assert!(!sim.contains(&"p0".to_string()));
    let want: Vec<String> = model
        .similar_items(model.items.get("p0").unwrap(), 3)
        .iter()
        .map(|(i, _)| model.items.id(*i).to_string())
        .collect();
    assert_eq!(sim, want);

    // Bad input: 4xx naming the field.
    for (path, body, code, says) in [
        (
            "/recommend",
            r#"{"recommender": "shop_recs", "user_id": 4, "k": 0}"#,
            400,
            "k = 0: ask for 1 to 1000",
        ),
        (
            "/recommend",
            r#"{"recommender": "shop_recs", "user_id": 4, "k": 1001}"#,
            400,
            "k = 1001",
        ),
        (
            "/recommend",
            r#"{"recommender": "shop_recs", "user_id": 4, "filter": {"category": "shoes"}}"#,
            400,
            "filter.category: recommender 'shop_recs' declares no item attributes",
        ),
        (
            "/recommend",
            r#"{"recommender": "shop_recs", "user_id": 4,"#,
            400,
            "malformed JSON",
        ),
        (
            "/recommend",
            r#"{"recommender": "shop_recs", "user_id": [4]}"#,
            400,
            "user_id: give a string or an integer",
        ),
        (
            "/recommend",
            r#"{"recommender": "shop_recs", "user": 4}"#,
            400,
            "unknown field `user`",
        ),
        (
            "/recommend",
            r#"{"recommender": "shop_recs", "user_id": 4, "interactions": ["p1", "zz"]}"#,
            400,
            "interactions[1]: unknown item 'zz'",
        ),
        (
            "/recommend",
            r#"{"recommender": "shop_rec", "user_id": 4}"#,
            404,
            "did you mean 'shop_recs'",
        ),
        (
            "/recommend/batch",
            r#"{"recommender": "shop_recs", "user_ids": []}"#,
            400,
            "user_ids: give 1 to",
        ),
        (
            "/similar-items",
            r#"{"recommender": "shop_recs", "item_id": "zz"}"#,
            404,
            "item_id: unknown item 'zz'",
        ),
        (
            "/similar-items",
            r#"{"recommender": "shop_recs", "item_id": "p0", "by": "content"}"#,
            400,
            "by: \"content\"",
        ),
    ] {
        let (status, e) = post(port, path, body);
        let msg = e["error"].as_str().unwrap_or_default();
        assert!(
            status == code && msg.contains(says),
            "{path} {body}: {status} {e}"
        );
    }

    // Metrics: per source and cold-start kind.
    let m = metrics_text(port);
    let value = |series: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with(series))
            .unwrap_or_else(|| panic!("{series} missing:\n{m}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(value(r#"quiver_recommendations_total{recommender="shop_recs",source="cf"}"#) >= 12.0);
    assert_eq!(
        value(r#"quiver_recommendations_total{recommender="shop_recs",source="blend"}"#),
        1.0
    );
    assert_eq!(value(r#"quiver_cold_start_total{kind="blend"}"#), 0.0);
    assert_eq!(value(r#"quiver_cold_start_total{kind="fold_in"}"#), 2.0);
    assert_eq!(value(r#"quiver_cold_start_total{kind="new_user"}"#), 3.0);
    assert!(value(r#"quiver_recommender_age_seconds{recommender="shop_recs"}"#) >= 0.0);
    assert!(value("quiver_recommend_seconds_count") >= 16.0);

    // Promote and roll back apply without a restart (the alias is re-read within a second).
    let version_served =
        || rec(serde_json::json!({"recommender": "shop_recs", "user_id": 4})).1["version"].as_i64();
    ok(quiver(
        r,
        &[
            "recs",
            "train",
            "shop_recs",
            "--params",
            "factors=4",
            "--promote",
            "champion",
        ],
    ));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(version_served(), Some(2));
    ok(quiver(
        r,
        &["models", "rollback", "shop_recs", "--alias", "champion"],
    ));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(version_served(), Some(1));
}
