//! `quiver recs`: apply refuses bad declarations, train registers a version, evaluate reports
//! the model against popularity, bad input fails without storing anything.

use std::fmt::Write;
use std::path::Path;

use super::{champion_of, fails, ok, quiver};

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

    // Evaluation on the days after the training time: FILE@START..END, with the pairs a user
    // already had in training left out.
    ok(quiver(
        r,
        &["recs", "train", "shop_recs", "--as-of", "2025-06-08"],
    ));
    let events = r.join("data/events.csv");
    let range = format!("{}@2025-06-08..2025-06-10", events.display());
    let out = ok(quiver(
        r,
        &[
            "--json",
            "recs",
            "evaluate",
            "shop_recs:2",
            "--test",
            &range,
            "--k",
            "5",
        ],
    ));
    let e: serde_json::Value = serde_json::from_str(&out[..out.rfind('}').unwrap() + 1]).unwrap();
    // Days 8 and 9 of the 80 users; earlier days and the (later, unweighted) impression are out.
    assert_eq!(
        (
            e["test_rows"].as_u64(),
            e["unknown_rows"].as_u64(),
            e["users"].as_u64()
        ),
        (Some(160), Some(0), Some(80)),
        "{e}"
    );
    // Version 1 was trained on those days too: every pair is a repeat, none is left.
    let e = fails(quiver(
        r,
        &["recs", "evaluate", "shop_recs:1", "--test", &range],
    ));
    assert!(
        e.contains("none of the 160 test rows") && e.contains("not trained on"),
        "{e}"
    );
    let backwards = format!("{}@2025-06-10..2025-06-08", events.display());
    let e = fails(quiver(
        r,
        &["recs", "evaluate", "shop_recs:2", "--test", &backwards],
    ));
    assert!(e.contains("the range ends before it starts"), "{e}");

    // A nightly job trains it: `recs_train` (an unknown recommender fails apply, located).
    let job = "jobs:\n  - name: recs_nightly\n    schedule: \"0 2 * * *\"\n    task: {recs_train: {recommender: shop_recs, promote: champion}}\n";
    std::fs::write(
        r.join("quiver.yaml"),
        format!(
            "{DECL}{}",
            job.replace("recommender: shop_recs", "recommender: shop_rec")
        ),
    )
    .unwrap();
    let e = fails(quiver(r, &["apply"]));
    assert!(
        e.contains("quiver.yaml:")
            && e.contains("no recommender 'shop_rec'; did you mean 'shop_recs'?"),
        "{e}"
    );
    std::fs::write(r.join("quiver.yaml"), format!("{DECL}{job}")).unwrap();
    ok(quiver(r, &["apply"]));
    let out = ok(quiver(r, &["jobs", "run", "recs_nightly"]));
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(champion_of(r, "shop_recs"), 3);
}

/// The text of `GET /metrics`.
fn metrics_text(port: u16) -> String {
    get(port, "/metrics").1
}

/// GET over plain HTTP/1.1; returns (status, body).
fn get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    let status = r[9..12].parse().unwrap();
    (status, r.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

fn item_ids(answer: &serde_json::Value) -> Vec<String> {
    answer["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {answer}"))
        .iter()
        .map(|i| i["item_id"].as_str().unwrap().to_string())
        .collect()
}

/// Applies the repository, trains `shop_recs` as its champion and loads the version trained.
fn apply_and_train_champion(r: &Path) -> quiver_recs::RecModel {
    ok(quiver(r, &["apply"]));
    ok(quiver(
        r,
        &["recs", "train", "shop_recs", "--promote", "champion"],
    ));
    let list: serde_json::Value =
        serde_json::from_str(&ok(quiver(r, &["--json", "models", "list", "shop_recs"]))).unwrap();
    quiver_recs::RecModel::load(
        &r.join(".quiver/artifacts")
            .join(list[0]["artifact"].as_str().unwrap()),
    )
    .unwrap()
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
    let model = apply_and_train_champion(r);
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
            "filter.category: recommender 'shop_recs' version has no item attributes",
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

    // Promote and roll back apply without a restart: the alias is re-read within a second and
    // the new version loaded in the background, the old one answering meanwhile.
    let version_served = |want: i64| {
        let started = std::time::Instant::now();
        loop {
            let v = rec(serde_json::json!({"recommender": "shop_recs", "user_id": 4})).1["version"]
                .as_i64();
            if v == Some(want) || started.elapsed() > std::time::Duration::from_secs(10) {
                return v;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
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
    assert_eq!(version_served(2), Some(2));
    ok(quiver(
        r,
        &["models", "rollback", "shop_recs", "--alias", "champion"],
    ));
    assert_eq!(version_served(1), Some(1));
}

/// `item_attributes:` (filters) and an experiment splitting the recommender's users.
const AB: &str = r#"entities:
  - name: product
    join_keys: [product_id]
    value_type: string
feature_views:
  - name: product_attributes
    entities: [product]
    source: products
    features:
      - {name: category, type: string}
      - {name: price, type: float64}
experiments:
  - name: cf_vs_pop
    recommender: shop_recs
    arms: {popularity: 0.5, cf: 0.5}
    salt: "2026-12"
    outcomes: {source: events, click: view, conversion: purchase, window: 24h}
server:
  prediction_log: {flush_interval_ms: 50}
"#;

/// The declaration with products and the experiment: `DECL` with a products source and
/// `item_attributes:`.
fn ab_decl() -> String {
    let decl = DECL.replace(
        "sources:\n",
        "sources:\n  - name: products\n    type: csv\n    path: data/products.csv\n    timestamp_field: updated_at\n",
    );
    format!("{decl}    item_attributes: product_attributes\n{AB}")
}

#[test]
fn experiments_assign_stable_arms_log_exposures_and_report_them() {
    use super::models::{post, serve};
    use serde_json::json;
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    repo(r);
    // Products p0..p39: shoes when the number is a multiple of 4, else books; p0 was a book
    // first (the latest row counts).
    let mut products =
        String::from("product_id,category,price,updated_at\np0,books,1.0,2025-01-01T00:00:00\n");
    for p in 0..40 {
        let cat = if p % 4 == 0 { "shoes" } else { "books" };
        writeln!(products, "p{p},{cat},{p}.5,2025-05-01T00:00:00").unwrap();
    }
    std::fs::write(r.join("data/products.csv"), products).unwrap();

    // Bad declarations: apply names the file, line and field, and stores nothing.
    for (from, to, says) in [
        (
            "{popularity: 0.5, cf: 0.5}",
            "{popularity: 0.5, cf: 0.6}",
            "field 'arms': the shares sum to 1.1",
        ),
        (
            "{popularity: 0.5, cf: 0.5}",
            "{popularity: 0.5, content: 0.5}",
            "field 'arms.content': unknown arm 'content'",
        ),
        (
            "recommender: shop_recs\n    arms",
            "recommender: shop\n    arms",
            "field 'recommender': no recommender 'shop'",
        ),
        (
            "click: view",
            "click: click",
            "field 'outcomes.click': source 'events' has no event type 'click'",
        ),
    ] {
        std::fs::write(r.join("quiver.yaml"), ab_decl().replace(from, to)).unwrap();
        let e = fails(quiver(r, &["apply"]));
        assert!(
            e.contains("quiver.yaml:") && e.contains(says),
            "{says}: {e}"
        );
    }
    std::fs::write(r.join("quiver.yaml"), ab_decl()).unwrap();
    let plan = ok(quiver(r, &["plan"]));
    assert!(plan.contains("+ experiment cf_vs_pop"), "{plan}");
    ok(quiver(r, &["apply"]));
    let out = ok(quiver(
        r,
        &["recs", "train", "shop_recs", "--promote", "champion"],
    ));
    assert!(
        out.contains("Item attributes from view 'product_attributes': 40 of 40 items have a row; filterable: category, price"),
        "{out}"
    );
    let registry = quiver_core::repo::load_registry(r).unwrap();
    let experiment = registry.experiments["cf_vs_pop"].clone();

    let server = serve(r);
    let port = server.1;
    // Every answer given to a user of the experiment: (user, arm, items).
    let mut shown: Vec<(String, String, Vec<String>)> = Vec::new();
    let rec = |body: serde_json::Value, shown: &mut Vec<(String, String, Vec<String>)>| {
        let (status, a) = post(port, "/recommend", &body.to_string());
        assert_eq!(status, 200, "{body}: {a}");
        shown.push((
            a["user_id"].as_str().unwrap().to_string(),
            a["arm"]
                .as_str()
                .unwrap_or_else(|| panic!("no arm: {a}"))
                .to_string(),
            item_ids(&a),
        ));
        a
    };

    // Stable arms: the same user gets the same arm (and list) every time, the arm the salted
    // hash gives; the popularity arm serves popularity, the cf arm CF.
    let mut arms = std::collections::BTreeMap::new();
    for u in 0..40 {
        let first = rec(
            json!({"recommender": "shop_recs", "user_id": u, "k": 5}),
            &mut shown,
        );
        let again = rec(
            json!({"recommender": "shop_recs", "user_id": u.to_string(), "k": 5}),
            &mut shown,
        );
        assert_eq!(first["experiment"], "cf_vs_pop");
        assert_eq!(
            (&first["arm"], &first["items"]),
            (&again["arm"], &again["items"])
        );
        let arm = first["arm"].as_str().unwrap().to_string();
        let want = &experiment.arms[quiver_recs::ab::assign(&experiment, &u.to_string())].arm;
        assert_eq!(&arm, want, "user {u}");
        assert_eq!(
            first["source"],
            if arm == "cf" { "cf" } else { "popularity" },
            "{first}"
        );
        *arms.entry(arm).or_insert(0) += 1;
    }
    assert!(
        arms.len() == 2 && arms.values().all(|&n| n >= 10),
        "{arms:?}"
    );

    // Filters: applied before the cut (k items when enough match), in every arm.
    for u in [4, 5] {
        let a = rec(
            json!({"recommender": "shop_recs", "user_id": u, "k": 5, "filter": {"category": "shoes"}}),
            &mut shown,
        );
        let got = item_ids(&a);
        assert_eq!(got.len(), 5, "{a}");
        assert!(
            got.iter().all(|i| i[1..].parse::<u32>().unwrap() % 4 == 0),
            "{a}"
        );
    }
    let a = rec(
        json!({"recommender": "shop_recs", "user_id": 4, "k": 10, "filter": {"category": ["shoes"], "price": [0.5, 12.5]}}),
        &mut shown,
    );
    // p0 (a shoe now, 0.5) and p12; user 4 has seen neither.
    let mut got = item_ids(&a);
    got.sort();
    assert_eq!(got, ["p0", "p12"], "{a}");
    for (body, code, says) in [
        (
            json!({"recommender": "shop_recs", "user_id": 4, "filter": {"colour": "red"}}),
            400,
            "filter.colour: view 'product_attributes' has no attribute 'colour'; known: category, price",
        ),
        (
            json!({"recommender": "shop_recs", "user_id": 4, "filter": {"categroy": "shoes"}}),
            400,
            "filter.categroy: view 'product_attributes' has no attribute 'categroy'; did you mean 'category'?",
        ),
        (
            json!({"recommender": "shop_recs", "user_id": 4, "filter": {"price": "cheap"}}),
            400,
            "filter.price: \"cheap\" is not a number",
        ),
        (
            json!({"recommender": "shop_recs", "user_id": 4, "experiment": "cf_vs_po"}),
            404,
            "experiment: no experiment 'cf_vs_po' in the applied registry; did you mean 'cf_vs_pop'?",
        ),
    ] {
        let (status, e) = post(port, "/recommend", &body.to_string());
        let msg = e["error"].as_str().unwrap_or_default();
        assert!(status == code && msg.contains(says), "{body}: {status} {e}");
    }
    // Batch: each user with their arm, logged too.
    let (status, b) = post(
        port,
        "/recommend/batch",
        &json!({"recommender": "shop_recs", "user_ids": [7, 8], "k": 3, "experiment": "cf_vs_pop"})
            .to_string(),
    );
    assert_eq!(status, 200, "{b}");
    for res in b["results"].as_array().unwrap() {
        shown.push((
            res["user_id"].as_str().unwrap().to_string(),
            res["arm"].as_str().unwrap().to_string(),
            item_ids(res),
        ));
    }

    // A preview (the web UI's) names the arm but is no exposure: neither counted nor logged.
    let (status, preview) = post(
        port,
        "/recommend",
        &json!({"recommender": "shop_recs", "user_id": 9, "k": 3, "log_exposure": false})
            .to_string(),
    );
    assert!(status == 200 && preview["arm"].is_string(), "{preview}");

    // ab_exposures_total per arm, equal to the answers given.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let m = metrics_text(port);
    for arm in ["cf", "popularity"] {
        let series = format!(r#"ab_exposures_total{{experiment="cf_vs_pop",arm="{arm}"}}"#);
        let n: f64 = m
            .lines()
            .find(|l| l.starts_with(&series))
            .unwrap_or_else(|| panic!("{series} missing:\n{m}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            n as usize,
            shown.iter().filter(|s| s.1 == arm).count(),
            "{arm}"
        );
    }
    assert!(m.contains("quiver_exposure_log_rows_total"), "{m}");
    drop(server);

    // Outcomes: every third user views the first item of their first answer a minute from now,
    // every sixth also buys it; and a view of an item never shown.
    let later = |s: i64| {
        (chrono::Utc::now() + chrono::Duration::seconds(s))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let mut events = std::fs::read_to_string(r.join("data/events.csv")).unwrap();
    let mut bought = std::collections::BTreeMap::new();
    for u in (0..40).step_by(3) {
        let first = shown.iter().find(|s| s.0 == u.to_string()).unwrap();
        let item = first.2[0].clone();
        writeln!(events, "{u},{item},view,{}", later(60)).unwrap();
        if u % 6 == 0 {
            writeln!(events, "{u},{item},purchase,{}", later(120)).unwrap();
        }
        writeln!(events, "{u},p39,add_to_cart,{}", later(60)).unwrap();
        bought.insert(u.to_string(), (item, u % 6 == 0));
    }
    std::fs::write(r.join("data/events.csv"), events).unwrap();
    // What the report must find, per arm: users, exposures, clicked, converted.
    let mut want: std::collections::BTreeMap<
        &str,
        (std::collections::BTreeSet<&str>, u64, u64, u64),
    > = Default::default();
    for (user, arm, items) in &shown {
        let w = want.entry(arm.as_str()).or_default();
        w.0.insert(user);
        w.1 += 1;
        if let Some((item, buys)) = bought.get(user)
            && items.contains(item)
        {
            w.2 += 1;
            w.3 += u64::from(*buys);
        }
    }

    let as_of = later(2 * 86_400);
    let html = r.join("cf_vs_pop.html");
    let out = ok(quiver(
        r,
        &[
            "--json",
            "ab",
            "report",
            "cf_vs_pop",
            "--as-of",
            &as_of,
            "--out",
            html.to_str().unwrap(),
        ],
    ));
    let rep: serde_json::Value = serde_json::from_str(&out[..out.rfind('}').unwrap() + 1]).unwrap();
    assert_eq!(rep["arms"][0]["arm"], "popularity", "{rep}");
    for a in rep["arms"].as_array().unwrap() {
        let w = &want[a["arm"].as_str().unwrap()];
        assert_eq!(
            (
                a["users"].as_u64().unwrap(),
                a["exposures"].as_u64().unwrap(),
                a["ctr"]["count"].as_u64().unwrap(),
                a["cvr"]["count"].as_u64().unwrap()
            ),
            (w.0.len() as u64, w.1, w.2, w.3),
            "{a}"
        );
        let ctr = a["ctr"]["rate"].as_f64().unwrap();
        assert!((ctr - w.2 as f64 / w.1 as f64).abs() < 1e-12);
        let ci = &a["ctr"]["ci"];
        assert!(
            ci[0].as_f64().unwrap() <= ctr && ctr <= ci[1].as_f64().unwrap(),
            "{a}"
        );
    }
    assert!(rep["arms"][1]["ctr_lift"]["p_value"].is_number(), "{rep}");
    assert!(rep["srm"]["p_value"].is_number(), "{rep}");
    assert_eq!(rep["open_window_exposures"], 0);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("A/B report: cf_vs_pop") && page.contains("<svg"),
        "{page}"
    );
    // The same report over HTTP; unknown experiments and bad times are 404 and 400.
    let server = serve(r);
    let (status, body) = get(
        server.1,
        &format!("/experiments/cf_vs_pop/report?as_of={as_of}"),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        rep
    );
    let (status, body) = get(server.1, "/experiments/cf_vs_po/report");
    assert!(
        status == 404 && body.contains("did you mean 'cf_vs_pop'"),
        "{status} {body}"
    );
    let (status, body) = get(server.1, "/experiments/cf_vs_pop/report?as_of=someday");
    assert!(status == 400 && body.contains("as_of"), "{status} {body}");
    // A declared experiment with no exposures logged yet is a 404 too, saying so.
    let logged = quiver_recs::ab::exposures_dir(r, "cf_vs_pop");
    let aside = logged.with_file_name("aside");
    std::fs::rename(&logged, &aside).unwrap();
    let (status, body) = get(server.1, "/experiments/cf_vs_pop/report");
    assert!(
        status == 404 && body.contains("no exposures logged yet"),
        "{status} {body}"
    );
    std::fs::rename(&aside, &logged).unwrap();
    drop(server);
    // The table, without --json.
    let text = ok(quiver(r, &["ab", "report", "cf_vs_pop", "--as-of", &as_of]));
    assert!(
        text.contains("CTR [95% CI]") && text.to_lowercase().contains("sample ratio mismatch"),
        "{text}"
    );
    // Unknown experiments: a clear error.
    let e = fails(quiver(r, &["ab", "report", "cf_vs_po"]));
    assert!(
        e.contains("no experiment 'cf_vs_po'") && e.contains("did you mean 'cf_vs_pop'"),
        "{e}"
    );
}

/// Content similarity: a recommender with `cold_start.content` stores every catalogue item's
/// vector with the version (new items included), `/similar-items` with `"by": "content"`
/// answers from its HNSW index, and a new version is swapped in under load without a failed
/// request.
#[test]
fn content_similarity_covers_new_items_and_a_new_version_swaps_in_under_load() {
    use super::models::{post, serve};
    use serde_json::json;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    repo(r);
    // Products p0..p44: p40..p44 are new (no interaction yet). Shoes (every 4th) point one way,
    // books another; a third component spreads them. The vectors live in a Parquet catalogue.
    {
        use datafusion::arrow::array::{
            ArrayRef, Float32Builder, ListBuilder, StringArray, TimestampMicrosecondArray,
        };
        use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
        use datafusion::arrow::record_batch::RecordBatch;
        use datafusion::parquet::arrow::ArrowWriter;
        use std::sync::Arc;
        let ids: Vec<String> = (0..45).map(|p| format!("p{p}")).collect();
        let cats: Vec<&str> = (0..45)
            .map(|p| if p % 4 == 0 { "shoes" } else { "books" })
            .collect();
        let mut emb = ListBuilder::new(Float32Builder::new());
        for p in 0..45 {
            let (x, z) = if p % 4 == 0 { (1.0, 0.0) } else { (0.0, 1.0) };
            emb.values().append_slice(&[x, (p % 7) as f32 * 0.05, z]);
            emb.append(true);
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("product_id", DataType::Utf8, false),
            Field::new("category", DataType::Utf8, false),
            Field::new(
                "embedding",
                DataType::List(Arc::new(Field::new_list_field(DataType::Float32, true))),
                true,
            ),
            Field::new(
                "updated_at",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(StringArray::from(cats)),
            Arc::new(emb.finish()),
            Arc::new(TimestampMicrosecondArray::from(
                vec![1_746_057_600_000_000i64; 45],
            )),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
        let f = std::fs::File::create(r.join("data/products.parquet")).unwrap();
        let mut w = ArrowWriter::try_new(f, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    let decl = DECL
        .replace(
            "sources:\n",
            "sources:\n  - name: products\n    type: parquet\n    path: data/products.parquet\n    timestamp_field: updated_at\n",
        )
        .replace(
            "    algorithm:",
            "    cold_start: {min_interactions: 5, content: product_content}\n    algorithm:",
        );
    let content = r#"entities:
  - name: product
    join_keys: [product_id]
    value_type: string
feature_views:
  - name: product_content
    entities: [product]
    source: products
    features:
      - {name: category, type: string}
      - {name: embedding, type: "list<float32>"}
"#;
    std::fs::write(r.join("quiver.yaml"), format!("{decl}{content}")).unwrap();
    ok(quiver(r, &["apply"]));
    let out = ok(quiver(
        r,
        &["recs", "train", "shop_recs", "--promote", "champion"],
    ));
    assert!(
        out.contains("Content vectors from view 'product_content' (feature 'embedding', 3 numbers): 45 items, 5 of them new to the factors")
            && out.contains("HNSW recall@10 against an exact scan: "),
        "{out}"
    );

    let server = serve(r);
    let port = server.1;
    let similar = |item: &str, by: &str| {
        post(
            port,
            "/similar-items",
            &json!({"recommender": "shop_recs", "item_id": item, "k": 5, "by": by}).to_string(),
        )
    };
    // A new shoe: its nearest items by content are shoes; CF does not know it.
    let (status, a) = similar("p40", "content");
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["by"], "content");
    let got: Vec<u32> = a["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item_id"].as_str().unwrap()[1..].parse().unwrap())
        .collect();
    assert!(
        got.len() == 5 && got.iter().all(|p| p % 4 == 0 && *p != 40),
        "{a}"
    );
    let (status, e) = similar("p40", "cf");
    assert_eq!(status, 404, "{e}");
    let (status, e) = similar("p99", "content");
    assert!(
        status == 404 && e["error"].as_str().unwrap().contains("unknown item 'p99'"),
        "{e}"
    );
    let (status, e) = similar("p1", "pixels");
    assert!(
        status == 400
            && e["error"]
                .as_str()
                .unwrap()
                .contains("\"cf\" or \"content\""),
        "{e}"
    );

    // /recommend places new items by content: an item enters a list before the first listed
    // item less similar than it to the user's taste (the mean vector of what they interacted
    // with), marked `source: content`; lists keep their length.
    let mut placed = 0;
    for u in 0..20 {
        let (status, a) = post(
            port,
            "/recommend",
            &json!({"recommender": "shop_recs", "user_id": u, "k": 10}).to_string(),
        );
        assert_eq!(status, 200, "{a}");
        let items = a["items"].as_array().unwrap();
        assert_eq!(items.len(), 10, "{a}");
        for i in items.iter().filter(|i| i["source"] == "content") {
            let p: u32 = i["item_id"].as_str().unwrap()[1..].parse().unwrap();
            assert!((40..45).contains(&p), "{a}");
            placed += 1;
        }
    }
    assert!(placed > 0, "no new item placed in 20 lists");
    let m = metrics_text(port);
    assert!(
        m.contains(r#"quiver_cold_start_total{kind="new_item"}"#),
        "{m}"
    );

    // Version 2 is promoted while two clients keep asking: every answer is a 200, and version
    // 2 is served within seconds of the promotion.
    let stop = AtomicBool::new(false);
    let failures = AtomicUsize::new(0);
    let answered = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let (status, _) = similar("p8", "content");
                    answered.fetch_add(1, Ordering::Relaxed);
                    if status != 200 {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        ok(quiver(
            r,
            &["recs", "train", "shop_recs", "--promote", "champion"],
        ));
        let promoted = std::time::Instant::now();
        loop {
            let (_, a) = similar("p8", "content");
            if a["version"] == 2 {
                break;
            }
            assert!(
                promoted.elapsed() < std::time::Duration::from_secs(10),
                "version 2 not served: {a}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(answered.load(Ordering::Relaxed) > 10);
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    drop(server);
}

/// `serving: {user_factors: online}` (the default): the server writes the version's users'
/// rows to the online store when it loads it and reads a user's row per request, so a row
/// changed in the store changes the answer, a missing row makes a user new, and the Redis key
/// expires after the TTL (plus the store's grace); `memory` keeps them in the server.
#[test]
fn user_factors_are_written_to_redis_and_read_per_request() {
    use super::models::{post, serve_with_env};
    use quiver_online::{OnlineStore, ViewWrite};
    use quiver_recs::serve::{Policy, Query, Serving};
    if !super::redis_up() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    repo(r);
    // Database 13 of the local Redis: no other test writes there.
    let url = "redis://127.0.0.1:6379/13";
    let env = [("QUIVER__ONLINE_STORE", url)];
    let decl = |serving: &str| {
        std::fs::write(
            r.join("quiver.yaml"),
            format!("{DECL}    cold_start: {{min_interactions: 5}}\n    serving: {serving}\n")
                .replace("project: recs_it", "project: recs_online_it"),
        )
        .unwrap();
    };
    decl("{user_factors: online, ttl: 2h}");
    let model = apply_and_train_champion(r);
    let memory = Serving::new(model.clone());
    let want = |user: &str| -> Vec<String> {
        let a = memory
            .recommend(&Query {
                user,
                interactions: &[],
                k: 5,
                exclude_seen: true,
                allowed: None,
                policy: Policy::Served,
            })
            .unwrap();
        a.items
            .iter()
            .map(|&(i, _)| model.items.id(i).to_string())
            .collect()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = quiver_online::redis_store::RedisStore::new(
        url,
        "recs_online_it",
        None,
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    let view = quiver_recs::users::view_name("shop_recs", 1);
    rt.block_on(store.delete_view(&view)).unwrap();

    let server = serve_with_env(r, &env, &[]);
    let port = server.1;
    let rec = |user: &str| {
        let (status, a) = post(
            port,
            "/recommend",
            &serde_json::json!({"recommender": "shop_recs", "user_id": user, "k": 5}).to_string(),
        );
        assert_eq!(status, 200, "{a}");
        a
    };
    // Served from the rows the server wrote: the same lists as the version in memory.
    let a = rec("4");
    assert_eq!(
        (a["source"].as_str(), item_ids(&a)),
        (Some("cf"), want("4"))
    );
    assert_eq!(item_ids(&rec("5")), want("5"));
    let now = chrono::Utc::now().timestamp_micros();
    let ttl = 2 * 3_600_000_000i64;
    let rows = rt
        .block_on(quiver_recs::users::read(
            &store,
            &model,
            1,
            &["4", "ghost"],
            ttl,
            now,
        ))
        .unwrap();
    let u4 = model.users.get("4").unwrap() as usize;
    let row = rows[0].as_ref().expect("user 4's row in Redis");
    assert_eq!(row.factors, model.user_factors.row(u4));
    assert_eq!(row.items, model.seen.row(u4).0);
    assert!(rows[1].is_none());
    // The key expires after the TTL plus the store's grace (one more TTL by default).
    let pttl = std::process::Command::new("redis-cli")
        .args(["-n", "13", "--raw", "EVAL"])
        .arg("local k = redis.call('keys', ARGV[1]); return redis.call('pttl', k[1])")
        .args(["0", &format!("quiver:recs_online_it:{view}:*")])
        .output()
        .unwrap();
    let pttl: i64 = String::from_utf8_lossy(&pttl.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(
        pttl > 2 * 3_600_000 && pttl <= 4 * 3_600_000,
        "PTTL {pttl} ms"
    );

    // A row changed in the store changes the next answer: user 4 given user 5's row is served
    // user 5's list; a user the model never saw, given user 4's row, gets user 4's list.
    let u5 = model.users.get("5").unwrap() as usize;
    let row_of = |user: &str, u: usize| {
        quiver_recs::users::online_row(&model, u, user, chrono::Utc::now().timestamp_micros())
    };
    let features = quiver_recs::users::FEATURES.map(String::from).to_vec();
    rt.block_on(store.write_batch(
        &ViewWrite {
            view: &view,
            features: &features,
            ttl_us: Some(ttl),
        },
        &[row_of("4", u5), row_of("ghost", u4)],
    ))
    .unwrap();
    assert_eq!(item_ids(&rec("4")), want("5"));
    let ghost = rec("ghost");
    assert_eq!(
        (ghost["source"].as_str(), item_ids(&ghost)),
        (Some("cf"), want("4"))
    );

    // No row: a user the model does not know (popularity).
    rt.block_on(store.delete_view(&view)).unwrap();
    assert_eq!(rec("4")["source"], "popularity");
    drop(server);

    // `memory`: the server keeps the users itself and writes no rows.
    decl("{user_factors: memory}");
    ok(quiver(r, &["apply"]));
    let server = serve_with_env(r, &env, &[]);
    let (status, a) = post(
        server.1,
        "/recommend",
        r#"{"recommender": "shop_recs", "user_id": 4, "k": 5}"#,
    );
    assert_eq!((status, item_ids(&a)), (200, want("4")), "{a}");
    let rows = rt
        .block_on(quiver_recs::users::read(
            &store,
            &model,
            1,
            &["4"],
            ttl,
            now,
        ))
        .unwrap();
    assert!(rows[0].is_none());

    // A bad setting names the file, the field and the fix.
    decl("{user_factors: disk}");
    let e = fails(quiver(r, &["apply"]));
    assert!(
        e.contains("serving.user_factors") && e.contains("use online or memory"),
        "{e}"
    );
}
