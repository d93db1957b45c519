//! `quiver demo data` (a synthetic e-commerce data set) and `quiver demo run` (the end-to-end
//! demo on embedded defaults).
//!
//! The data is deterministic for a seed: users (signup, age, country, plan), products (title,
//! brand, category, subcategory, seller among thousands, price), events in sessions (view,
//! add_to_cart, purchase with amounts, and the product's category; weekly seasonality; a share
//! of users goes quiet for good; each shopper favours a subcategory and a second category, and
//! within them the popular products; the newest 2% of the catalogue is listed on 2025-05-20 and
//! sold from 2025-06-05), reviews (text matching the rating, helpful and total votes) and churn labels (user, label
//! time, churned = no event in the 30 days after the label time).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde_json::json;

use crate::historical::{self, HistoricalArgs};
use crate::output::{Output, plural, rate, thousands};

#[derive(Subcommand, Debug)]
pub enum DemoCommand {
    /// Write the synthetic e-commerce data set as Parquet: users, products, events, reviews,
    /// labels.
    Data(DataArgs),
    /// The end-to-end demo: generate data, apply the churn example, build a training set, train
    /// and promote a churn model, empty the online store and materialize, serve, and fetch two
    /// users' features and churn scores over HTTP. Runs on embedded defaults (SQLite registry,
    /// local files, embedded online store).
    Run {
        /// Folder for the demo repository (created; its definitions are overwritten).
        #[arg(long, default_value = "quiver-demo")]
        dir: PathBuf,
        /// Number of users (about 100 events each).
        #[arg(long, default_value_t = 2_000)]
        users: usize,
        /// Random seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

#[derive(Args, Debug)]
pub struct DataArgs {
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of users (about 100 events each).
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// Random seed: the same seed gives the same files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

pub async fn run(cmd: DemoCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        DemoCommand::Data(args) => generate(&args, out).map(|_| ()),
        DemoCommand::Run { dir, users, seed } => demo_run(&dir, users, seed, out).await,
    }
}

const EXAMPLE: &[(&str, &str)] = &[
    (
        "quiver.yaml",
        include_str!("../../../examples/churn/quiver.yaml"),
    ),
    (
        "features/users.yaml",
        include_str!("../../../examples/churn/features/users.yaml"),
    ),
    (
        "features/activity.yaml",
        include_str!("../../../examples/churn/features/activity.yaml"),
    ),
    (
        "features/ranking.yaml",
        include_str!("../../../examples/churn/features/ranking.yaml"),
    ),
    (
        "features/services.yaml",
        include_str!("../../../examples/churn/features/services.yaml"),
    ),
    (
        "features/jobs.yaml",
        include_str!("../../../examples/churn/features/jobs.yaml"),
    ),
    (
        "features/quality.yaml",
        include_str!("../../../examples/churn/features/quality.yaml"),
    ),
    (
        ".gitignore",
        include_str!("../../../examples/churn/.gitignore"),
    ),
];

async fn demo_run(dir: &Path, users: usize, seed: u64, out: &Output) -> anyhow::Result<()> {
    let started = Instant::now();
    // With --json the steps print nothing: the demo prints one document at the end.
    let steps = out.steps();
    out.say(format!(
        "== 1/7 writing the churn example repository to {}",
        dir.display()
    ));
    for (name, text) in EXAMPLE {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().expect("has parent"))?;
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    out.say(format!(
        "== 2/7 generating data for {} users",
        thousands(users as u64)
    ));
    generate(
        &DataArgs {
            out: dir.join("data"),
            users,
            seed,
        },
        &steps,
    )?;
    out.say("== 3/7 quiver apply");
    crate::registry_cmd::apply(dir, false, true, &steps).await?;
    out.say("== 4/7 quiver historical --entities data/labels.parquet --service churn_v1 --out train.parquet");
    let args = HistoricalArgs {
        entities: dir.join("data/labels.parquet"),
        features: vec![],
        service: Some("churn_v1".into()),
        out: dir.join("train.parquet"),
        full_names: false,
        no_snapshots: false,
        timestamp_column: "event_timestamp".into(),
        sample: 5,
    };
    let result = historical::run(dir, args, &steps).await?;
    let end = START + DAYS * DAY;
    // From long before the data starts (profiles carry their signup time) to its last day.
    let (from, to) = (
        "2000-01-01T00:00:00Z".to_string(),
        quiver_online::format_time(end * 1_000_000),
    );
    out.say("== 5/7 quiver train --service churn_v1 --labels data/labels.parquet --label churned --name churn --promote champion");
    let trained = crate::train::run(
        dir,
        crate::train::TrainArgs {
            service: "churn_v1".into(),
            labels: dir.join("data/labels.parquet"),
            label: "churned".into(),
            timestamp_column: "event_timestamp".into(),
            task: None,
            model: crate::train::Algorithm::Gbdt,
            params: vec![],
            split: crate::train::Split::Time,
            name: Some("churn".into()),
            promote: Some("champion".into()),
            allow_unknown_entities: false,
            frequency_encode: vec![],
        },
        &steps,
    )
    .await?;
    let (version, evaluation) = (trained.version, trained.evaluation);
    // A demo run into a folder used before starts from an empty online store: rows left by an
    // earlier materialization (say, one up to `now`) would otherwise be kept as newer.
    out.say(format!(
        "== 6/7 quiver online clear && quiver materialize {from} {to}"
    ));
    crate::online::run_clear(dir, vec![], &steps).await?;
    crate::online::run_materialize(dir, Some(&from), &to, vec![], 10_000, &steps).await?;
    out.say("== 7/7 quiver serve: features and a churn prediction");
    let served = serve_once(dir, out).await?;
    out.say(format!(
        "\nDemo done in {:.1} s: {} training rows x {} columns in {}; churn model version {version} (test ROC-AUC {:.3}); {} x {} served online.\nNext: quiver --repo {dir} serve, then\n  curl -s -X POST http://127.0.0.1:6566/get-online-features -d '{REQUEST}'\n  curl -s -X POST http://127.0.0.1:6566/predict -d '{PREDICT}'",
        started.elapsed().as_secs_f64(),
        thousands(result.num_rows() as u64),
        result.num_columns(),
        dir.join("train.parquet").display(),
        evaluation.roc_auc.unwrap_or(f64::NAN),
        plural(served.features as u64, "feature"),
        plural(served.entities as u64, "user"),
        dir = dir.display(),
    ));
    out.emit(&json!({
        "dir": dir,
        "users": users,
        "seconds": started.elapsed().as_secs_f64(),
        "training_set": {
            "path": dir.join("train.parquet"),
            "rows": result.num_rows(),
            "columns": result.num_columns(),
        },
        "model": {"name": "churn", "version": version, "test_roc_auc": evaluation.roc_auc},
        "online_features": served.features_answer,
        "prediction": served.prediction,
    }));
    Ok(())
}

/// What the demo's server answered.
struct Served {
    /// Features per entity in the `/get-online-features` answer.
    features: usize,
    /// Entities asked for.
    entities: usize,
    /// The `/get-online-features` answer.
    features_answer: serde_json::Value,
    /// The `/predict` answer.
    prediction: serde_json::Value,
}

/// The demo's example request.
const REQUEST: &str = r#"{"feature_service": "churn_v1", "entities": {"user_id": [1, 2]}}"#;
/// The demo's example prediction.
const PREDICT: &str = r#"{"model": "churn", "entities": {"user_id": [1, 2]}}"#;

/// One HTTP/1.1 POST over a plain TCP connection; returns the JSON body.
async fn post(
    addr: std::net::SocketAddr,
    path: &str,
    body: &str,
) -> anyhow::Result<serde_json::Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    conn.read_to_string(&mut response).await?;
    let text = response.split("\r\n\r\n").nth(1).unwrap_or("");
    let json: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("the server answered: {response}"))?;
    if !response.starts_with("HTTP/1.1 200") {
        anyhow::bail!("{path} answered: {response}");
    }
    Ok(json)
}

/// Starts the feature server on a free port, sends the example request over plain HTTP/1.1,
/// prints the answers (not with --json: the caller emits them) and stops the server.
async fn serve_once(dir: &Path, out: &Output) -> anyhow::Result<Served> {
    let applied = crate::registry_cmd::stored(dir).await?;
    let settings = quiver_core::repo::RepoSettings::load(dir)?;
    let store = quiver_online::open_store(&settings, dir, &applied.registry.project)?;
    let meta = crate::registry_cmd::open_store(dir).await?;
    let state = quiver_server::AppState::new(
        applied.registry,
        applied.version,
        dir.to_path_buf(),
        store,
        meta,
        quiver_server::ServerConfig::from_settings(&settings),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(quiver_server::serve(
        listener,
        std::sync::Arc::clone(&state),
        async {
            let _ = stopped.await;
        },
    ));
    let json = post(addr, "/get-online-features", REQUEST).await;
    let prediction = post(addr, "/predict", PREDICT).await;
    let _ = stop.send(());
    server.await??;
    // Write the prediction log before the process ends, as `quiver serve` does on shutdown.
    state.prediction_log.flush().await;
    let (json, prediction) = (json?, prediction?);
    out.say(format!(
        "$ curl -s -X POST http://{addr}/get-online-features -d '{REQUEST}'"
    ));
    let names = json["metadata"]["feature_names"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let results = json["results"].as_array().cloned().unwrap_or_default();
    let mut rows = Vec::new();
    for (name, r) in names.iter().zip(&results) {
        let cells = |k: &str| -> Vec<String> {
            r[k].as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string())
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let (values, statuses) = (cells("values"), cells("statuses"));
        let mut row = vec![name.as_str().unwrap_or("").to_string()];
        for (v, s) in values.iter().zip(&statuses) {
            row.push(if s == "PRESENT" {
                v.clone()
            } else {
                format!("{v} ({s})")
            });
        }
        rows.push(row);
    }
    out.table(&["feature", "user 1", "user 2"], rows);
    out.say(format!(
        "$ curl -s -X POST http://{addr}/predict -d '{PREDICT}'"
    ));
    let scores: Vec<String> = prediction["predictions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| format!("{:.3}", p["score"].as_f64().unwrap_or(f64::NAN)))
                .collect()
        })
        .unwrap_or_default();
    out.say(format!(
        "churn probability (model churn version {}): user 1 {}, user 2 {}",
        prediction["version"],
        scores.first().map_or("?", String::as_str),
        scores.get(1).map_or("?", String::as_str)
    ));
    // The first result is the entity key.
    Ok(Served {
        features: results.len().saturating_sub(1),
        entities: results
            .first()
            .and_then(|r| r["values"].as_array())
            .map_or(0, Vec::len),
        features_answer: json,
        prediction,
    })
}

/// SplitMix64: tiny, fast, and the same sequence everywhere for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.f64().max(1e-12), self.f64());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    fn poisson(&mut self, mean: f64) -> u64 {
        let l = (-mean).exp();
        let (mut k, mut p) = (0, 1.0);
        loop {
            p *= self.f64();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const START: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z
/// When the newest 2% of the catalogue is listed (2025-05-20) and goes on sale (2025-06-05).
const LISTED: i64 = 1_747_699_200;
const LAUNCH: i64 = 1_749_081_600;
const DAYS: i64 = 180;
const DAY: i64 = 86_400;
const COUNTRIES: &[&str] = &[
    "us", "gb", "de", "fr", "es", "it", "nl", "pl", "br", "in", "jp", "ca",
];
const BRANDS: &[&str] = &[
    "Acme",
    "Northwind",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Aperture",
    "Wonka",
    "Gringotts",
    "Oscorp",
    "Massive",
    "Pied Piper",
    "Dunder",
    "Monarch",
];
/// (subcategory, product nouns).
type Subcategory = (&'static str, &'static [&'static str]);
/// (category, subcategories, mean log price).
const CATEGORIES: &[(&str, &[Subcategory], f64)] = &[
    (
        "electronics",
        &[
            ("audio", &["headphones", "speaker", "earbuds"]),
            ("computers", &["laptop", "keyboard", "monitor"]),
            ("phones", &["phone case", "charger", "smartphone"]),
        ],
        4.5,
    ),
    (
        "home",
        &[
            ("kitchen", &["blender", "kettle", "pan"]),
            ("furniture", &["chair", "lamp", "shelf"]),
            ("bedding", &["pillow", "duvet", "sheet set"]),
        ],
        3.6,
    ),
    (
        "fashion",
        &[
            ("shoes", &["sneakers", "boots", "sandals"]),
            ("clothing", &["t-shirt", "jacket", "jeans"]),
            ("accessories", &["watch", "belt", "backpack"]),
        ],
        3.4,
    ),
    (
        "grocery",
        &[
            ("snacks", &["chips", "cookies", "nuts"]),
            ("drinks", &["coffee", "tea", "juice"]),
            ("pantry", &["pasta", "olive oil", "rice"]),
        ],
        2.0,
    ),
    (
        "sports",
        &[
            ("fitness", &["yoga mat", "dumbbells", "resistance band"]),
            ("outdoor", &["tent", "water bottle", "hiking poles"]),
        ],
        3.3,
    ),
    (
        "beauty",
        &[
            ("skincare", &["moisturizer", "sunscreen", "serum"]),
            ("hair", &["shampoo", "hair dryer", "conditioner"]),
        ],
        2.7,
    ),
];
const ADJECTIVES: &[&str] = &[
    "Classic",
    "Pro",
    "Ultra",
    "Eco",
    "Smart",
    "Compact",
    "Premium",
    "Essential",
    "Deluxe",
    "Lite",
];
const GOOD: &[&str] = &[
    "Great quality, works perfectly.",
    "Absolutely love it!",
    "Fast delivery and exactly as described.",
    "Excellent value for the price.",
    "Would definitely buy again.",
    "My family loves this product.",
];
const MEH: &[&str] = &[
    "It's okay, nothing special.",
    "Does the job.",
    "Average quality for the price.",
    "Shipping was slow but the product is fine.",
];
const BAD: &[&str] = &[
    "Broke after two days. Very disappointed.",
    "Terrible quality, do not buy!",
    "Not as described and support never answered.",
    "Waste of money.",
    "Arrived damaged and the refund took weeks.",
];

struct Product {
    price: f64,
    category: &'static str,
}

/// A shopper's taste: the subcategory they favour and a second category they like.
struct Taste {
    subcategory: usize,
    second: usize,
}

impl Taste {
    fn draw(subcategories: &[Vec<i64>], categories: &[Vec<i64>], rng: &mut Rng) -> Taste {
        Taste {
            subcategory: rng.below(subcategories.len() as u64) as usize,
            second: rng.below(categories.len() as u64) as usize,
        }
    }

    /// The product a shopper looks at: 45% from their favourite subcategory, 20% from their
    /// second category, else `drawn` (any product, as the main stream drew it). Within a
    /// subcategory or category, low ids are the popular ones (the index is drawn as u^2).
    fn pick(
        &self,
        drawn: i64,
        subcategories: &[Vec<i64>],
        categories: &[Vec<i64>],
        rng: &mut Rng,
    ) -> i64 {
        let skewed = |list: &[i64], rng: &mut Rng| {
            let u = rng.f64();
            list[((u * u) * list.len() as f64) as usize % list.len()]
        };
        match rng.f64() {
            x if x < 0.45 => skewed(&subcategories[self.subcategory], rng),
            x if x < 0.65 => skewed(&categories[self.second], rng),
            _ => drawn,
        }
    }
}

fn ts_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    )
}

fn ts_builder(cap: usize) -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::with_capacity(cap).with_timezone("UTC")
}

fn save(
    dir: &Path,
    name: &str,
    fields: Vec<Field>,
    columns: Vec<ArrayRef>,
) -> anyhow::Result<usize> {
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    historical::write(&dir.join(format!("{name}.parquet")), &batch)?;
    Ok(batch.num_rows())
}

/// Generates the data set; returns the number of events.
pub fn generate(args: &DataArgs, out: &Output) -> anyhow::Result<usize> {
    let started = Instant::now();
    let dir = &args.out;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut rng = Rng(args.seed ^ 0x005E_ED0F_0A11_u64);
    let n_users = args.users.max(1);

    // Products.
    let n_products = (n_users / 2).max(2_000);
    let n_early = (n_products - n_products / 50) as i64;
    let n_sellers = 5_000u64;
    let mut products = Vec::with_capacity(n_products);
    let (
        mut p_id,
        mut p_title,
        mut p_brand,
        mut p_cat,
        mut p_sub,
        mut p_seller,
        mut p_price,
        mut p_created,
    ) = (
        Int64Builder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        Int64Builder::new(),
        Float64Builder::new(),
        ts_builder(n_products),
    );
    let mut by_subcategory: BTreeMap<(&str, &str), Vec<i64>> = BTreeMap::new();
    for id in 1..=n_products as i64 {
        let (cat, subs, log_price) = rng.pick(CATEGORIES);
        let (sub, nouns) = rng.pick(subs);
        let brand = rng.pick(BRANDS);
        let price = ((log_price + 0.6 * rng.normal()).exp() * 100.0).round() / 100.0;
        p_id.append_value(id);
        p_title.append_value(format!(
            "{brand} {} {}",
            rng.pick(ADJECTIVES),
            rng.pick(nouns)
        ));
        p_brand.append_value(*brand);
        p_cat.append_value(*cat);
        p_sub.append_value(*sub);
        p_seller.append_value(1 + rng.below(n_sellers) as i64);
        p_price.append_value(price.max(0.5));
        let created = START - 400 * DAY + rng.below(400 * DAY as u64) as i64;
        // The last 2% of the catalogue is listed on 2025-05-20 and sells from LAUNCH on: new
        // products, for recommenders' cold start (the main stream's draw is made all the same).
        p_created.append_value(if id > n_early { LISTED } else { created } * 1_000_000);
        products.push(Product {
            price: price.max(0.5),
            category: cat,
        });
        by_subcategory.entry((*cat, *sub)).or_default().push(id);
    }
    // Shoppers have tastes, so that recommendations and category affinities have something to
    // learn: each user favours one subcategory and a second category (see `Taste`). The
    // tastes draw from a stream of their own: the rest of the data (who is active when, who
    // churns) is what the main stream alone makes it.
    let by_subcategory: Vec<Vec<i64>> = by_subcategory.into_values().collect();
    let mut by_category: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (id, p) in products.iter().enumerate() {
        by_category
            .entry(p.category)
            .or_default()
            .push(id as i64 + 1);
    }
    let by_category: Vec<Vec<i64>> = by_category.into_values().collect();
    let mut taste_rng = Rng(args.seed ^ 0x7A57_E000_5E1F_u64);
    save(
        dir,
        "products",
        vec![
            Field::new("product_id", DataType::Int64, false),
            Field::new("title", DataType::Utf8, false),
            Field::new("brand", DataType::Utf8, false),
            Field::new("category", DataType::Utf8, false),
            Field::new("subcategory", DataType::Utf8, false),
            Field::new("seller_id", DataType::Int64, false),
            Field::new("price", DataType::Float64, false),
            ts_field("created_at"),
        ],
        vec![
            Arc::new(p_id.finish()),
            Arc::new(p_title.finish()),
            Arc::new(p_brand.finish()),
            Arc::new(p_cat.finish()),
            Arc::new(p_sub.finish()),
            Arc::new(p_seller.finish()),
            Arc::new(p_price.finish()),
            Arc::new(p_created.finish()),
        ],
    )?;

    // Users, their events and reviews.
    let cap = n_users * 100;
    let (mut u_id, mut u_signup, mut u_age, mut u_country, mut u_plan) = (
        Int64Builder::new(),
        ts_builder(n_users),
        Int64Builder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut e_id, mut e_user, mut e_product, mut e_session, mut e_type, mut e_amount, mut e_ts) = (
        Int64Builder::with_capacity(cap),
        Int64Builder::with_capacity(cap),
        Int64Builder::with_capacity(cap),
        Int64Builder::with_capacity(cap),
        StringBuilder::with_capacity(cap, cap * 6),
        Float64Builder::with_capacity(cap),
        ts_builder(cap),
    );
    // The product's category, logged with each event (as shops' clickstreams do).
    let mut e_category = StringBuilder::with_capacity(cap, cap * 8);
    let (
        mut r_id,
        mut r_user,
        mut r_product,
        mut r_rating,
        mut r_text,
        mut r_helpful,
        mut r_total,
        mut r_ts,
    ) = (
        Int64Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
        StringBuilder::new(),
        Int64Builder::new(),
        Int64Builder::new(),
        ts_builder(0),
    );
    let (mut l_user, mut l_ts, mut l_churned) = (
        Int64Builder::new(),
        ts_builder(n_users * 2),
        BooleanBuilder::new(),
    );
    let label_days = [120i64, 150];
    let (mut n_events, mut n_reviews, mut session_id) = (0i64, 0i64, 0i64);
    let pb = out.progress("generating users", Some(n_users as u64), "users");
    let mut user_event_days: Vec<i64> = Vec::new();
    for uid in 1..=n_users as i64 {
        let signup = if rng.f64() < 0.8 {
            START - 1 - rng.below(365 * DAY as u64) as i64
        } else {
            START + rng.below(120 * DAY as u64) as i64
        };
        let plan = match rng.f64() {
            x if x < 0.6 => "free",
            x if x < 0.88 => "basic",
            _ => "premium",
        };
        u_id.append_value(uid);
        u_signup.append_value(signup * 1_000_000);
        u_age.append_value(18 + rng.below(58) as i64);
        u_country.append_value(*rng.pick(COUNTRIES));
        u_plan.append_value(plan);

        let taste = Taste::draw(&by_subcategory, &by_category, &mut taste_rng);

        // Activity level, and the day a churner goes quiet for good.
        let sessions_per_day = 0.12 * (0.7 * rng.normal()).exp();
        let churn_p = match plan {
            "premium" => 0.2,
            "basic" => 0.32,
            _ => 0.42,
        };
        let quit = if rng.f64() < churn_p {
            START + (40 + rng.below(200) as i64) * DAY
        } else {
            i64::MAX
        };
        let grumpy = rng.f64() < 0.5 && quit != i64::MAX; // churners review worse
        let first_day = ((signup - START).max(0)) / DAY;
        user_event_days.clear();
        for day in first_day..DAYS {
            let day_start = START + day * DAY;
            if day_start >= quit {
                break;
            }
            let weekday = (day + 3) % 7; // 2025-01-01 is a Wednesday: 0 = Monday
            let weekly = if weekday >= 5 { 1.35 } else { 0.9 };
            // Activity fades in the weeks before quitting.
            let fade = if quit == i64::MAX {
                1.0
            } else {
                ((quit - day_start) as f64 / (30.0 * DAY as f64)).clamp(0.2, 1.0)
            };
            for _ in 0..rng.poisson(sessions_per_day * weekly * fade) {
                session_id += 1;
                let mut t = day_start + rng.below(DAY as u64 - 3_600) as i64;
                for _ in 0..1 + rng.below(6) {
                    let pid = taste.pick(
                        1 + rng.below(n_products as u64) as i64,
                        &by_subcategory,
                        &by_category,
                        &mut taste_rng,
                    );
                    // Before its launch, a new product is not on sale: an older one instead.
                    let pid = if pid > n_early && t < LAUNCH {
                        (pid - 1) % n_early + 1
                    } else {
                        pid
                    };
                    let mut push = |kind: &str, amount: Option<f64>, t: i64, rng: &mut Rng| {
                        n_events += 1;
                        e_id.append_value(n_events);
                        e_user.append_value(uid);
                        e_product.append_value(pid);
                        e_category.append_value(products[(pid - 1) as usize].category);
                        e_session.append_value(session_id);
                        e_type.append_value(kind);
                        e_amount.append_option(amount);
                        e_ts.append_value(t * 1_000_000 + rng.below(1_000_000) as i64);
                    };
                    push("view", None, t, &mut rng);
                    user_event_days.push(t);
                    t += 10 + rng.below(300) as i64;
                    if rng.f64() < 0.18 {
                        push("add_to_cart", None, t, &mut rng);
                        t += 10 + rng.below(300) as i64;
                        if rng.f64() < 0.45 {
                            let qty = (1 + rng.below(3)) as f64;
                            let amount =
                                (products[(pid - 1) as usize].price * qty * 100.0).round() / 100.0;
                            push("purchase", Some(amount), t, &mut rng);
                            let review_at = t + (1 + rng.below(14) as i64) * DAY;
                            if rng.f64() < 0.15 && review_at < START + DAYS * DAY {
                                let rating = {
                                    let x = rng.f64() - if grumpy { 0.25 } else { 0.0 };
                                    match x {
                                        x if x < 0.10 => 1,
                                        x if x < 0.18 => 2,
                                        x if x < 0.30 => 3,
                                        x if x < 0.55 => 4,
                                        _ => 5,
                                    }
                                };
                                let pool = match rating {
                                    1 | 2 => BAD,
                                    3 => MEH,
                                    _ => GOOD,
                                };
                                let sentences = 1 + rng.below(3);
                                let text: Vec<&str> =
                                    (0..sentences).map(|_| *rng.pick(pool)).collect();
                                let total = rng.poisson(3.0) as i64;
                                let helpful = (0..total).filter(|_| rng.f64() < 0.6).count() as i64;
                                n_reviews += 1;
                                r_id.append_value(n_reviews);
                                r_user.append_value(uid);
                                r_product.append_value(pid);
                                r_rating.append_value(rating);
                                r_text.append_value(text.join(" "));
                                r_helpful.append_value(helpful);
                                r_total.append_value(total);
                                r_ts.append_value(review_at * 1_000_000);
                            }
                        }
                    }
                    t += 5 + rng.below(120) as i64;
                }
            }
        }
        // Labels: for users active before the label time, churned = no event in the next 30 days.
        for d in label_days {
            let at = START + d * DAY;
            if signup >= at || !user_event_days.iter().any(|t| *t <= at) {
                continue;
            }
            let active_after = user_event_days
                .iter()
                .any(|t| *t > at && *t <= at + 30 * DAY);
            l_user.append_value(uid);
            l_ts.append_value(at * 1_000_000);
            l_churned.append_value(!active_after);
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    save(
        dir,
        "users",
        vec![
            Field::new("user_id", DataType::Int64, false),
            ts_field("signup_date"),
            Field::new("age", DataType::Int64, false),
            Field::new("country", DataType::Utf8, false),
            Field::new("plan", DataType::Utf8, false),
        ],
        vec![
            Arc::new(u_id.finish()),
            Arc::new(u_signup.finish()),
            Arc::new(u_age.finish()),
            Arc::new(u_country.finish()),
            Arc::new(u_plan.finish()),
        ],
    )?;
    let events = save(
        dir,
        "events",
        vec![
            Field::new("event_id", DataType::Int64, false),
            Field::new("user_id", DataType::Int64, false),
            Field::new("product_id", DataType::Int64, false),
            Field::new("category", DataType::Utf8, false),
            Field::new("session_id", DataType::Int64, false),
            Field::new("event_type", DataType::Utf8, false),
            Field::new("amount", DataType::Float64, true),
            ts_field("event_timestamp"),
        ],
        vec![
            Arc::new(e_id.finish()),
            Arc::new(e_user.finish()),
            Arc::new(e_product.finish()),
            Arc::new(e_category.finish()),
            Arc::new(e_session.finish()),
            Arc::new(e_type.finish()),
            Arc::new(e_amount.finish()),
            Arc::new(e_ts.finish()),
        ],
    )?;
    let reviews = save(
        dir,
        "reviews",
        vec![
            Field::new("review_id", DataType::Int64, false),
            Field::new("user_id", DataType::Int64, false),
            Field::new("product_id", DataType::Int64, false),
            Field::new("rating", DataType::Int64, false),
            Field::new("text", DataType::Utf8, false),
            Field::new("helpful_votes", DataType::Int64, false),
            Field::new("total_votes", DataType::Int64, false),
            ts_field("event_timestamp"),
        ],
        vec![
            Arc::new(r_id.finish()),
            Arc::new(r_user.finish()),
            Arc::new(r_product.finish()),
            Arc::new(r_rating.finish()),
            Arc::new(r_text.finish()),
            Arc::new(r_helpful.finish()),
            Arc::new(r_total.finish()),
            Arc::new(r_ts.finish()),
        ],
    )?;
    let churned = l_churned.finish();
    let n_churned = churned.true_count();
    let labels = save(
        dir,
        "labels",
        vec![
            Field::new("user_id", DataType::Int64, false),
            ts_field("event_timestamp"),
            Field::new("churned", DataType::Boolean, false),
        ],
        vec![
            Arc::new(l_user.finish()),
            Arc::new(l_ts.finish()),
            Arc::new(churned),
        ],
    )?;
    let total = n_users + n_products + events + reviews + labels;
    out.say(format!(
        "demo data: {} users, {} products, {} events, {} reviews, {} labels ({:.0}% churned) -> {}; {}",
        thousands(n_users as u64),
        thousands(n_products as u64),
        thousands(events as u64),
        thousands(reviews as u64),
        thousands(labels as u64),
        100.0 * n_churned as f64 / labels.max(1) as f64,
        dir.display(),
        rate(total as u64, started)
    ));
    out.emit(&json!({"users": n_users, "products": n_products, "events": events, "reviews": reviews, "labels": labels, "out": dir}));
    Ok(events)
}
