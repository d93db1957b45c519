#!/usr/bin/env bash
# The recommendations example, end to end, in one command:
#   examples/recommendations/run.sh [QUIVER_BINARY] [WORK_DIR] [USERS]
# generates the synthetic shop (`quiver demo data`: shoppers favour a subcategory and a second
# category), trains the `shop_recs` ALS recommender on the clickstream up to June, evaluates it
# on June's interactions against popularity, materializes the product attributes and the users'
# category affinities, serves `/recommend` for a returning user, a filtered list, a new user
# (popularity), a new user with a few clicks (folded in), a product's similar items, and a new
# product (on sale since June, unknown to the factors) placed by its title's MiniLM embedding
# (`cold_start.content`: fetched into $QUIVER_MINILM_DIR when missing). Then it
# launches the `cf_vs_pop` experiment (experiments/cf_vs_pop.yaml, applied while the server
# runs), measures personalization on the lists 600 users are served, simulates their clicks
# (a shown product is viewed with a probability its category affinity, served online, gives)
# and prints `quiver ab report`, which must count exactly what was simulated. Before that, the
# nightly job (`recs_nightly`, task `recs_train`) trains version 2 as of June 30 and promotes it,
# and the server swaps it in: the new product is known to its factors then.
# Exits non-zero if the model is no better than popularity, if lists are not personal, or if
# the report and the simulation disagree. Needs python3 and curl.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
q="${1:-quiver}"
work="${2:-$(mktemp -d)}"
users="${3:-3000}"
root="$(cd "$here/../.." && pwd)"
# The title embeddings need the all-MiniLM-L6-v2 files (fetched once, as examples/churn does).
export QUIVER_MINILM_DIR="${QUIVER_MINILM_DIR:-$HOME/.cache/quiver/minilm}"
if [ ! -s "$QUIVER_MINILM_DIR/model.safetensors" ]; then
  "$root/scripts/fetch-minilm.sh" "$QUIVER_MINILM_DIR"
fi
mkdir -p "$work"
cp "$here/quiver.yaml" "$here/.gitignore" "$work/"
"$q" -q demo data --out "$work/data" --users "$users"
# The experiment's outcome log: empty until shoppers react to lists.
echo "user_id,product_id,event_type,event_timestamp" > "$work/data/feedback.csv"
"$q" --repo "$work" apply

echo "== 1. train shop_recs on the clickstream up to 2025-06-01 and make it the champion"
"$q" --repo "$work" recs train shop_recs --as-of 2025-06-01 --promote champion

echo "== 2. evaluate on June's interactions (new products for each user) against popularity"
june="$work/data/events.parquet@2025-06-01..2025-07-01"
"$q" --repo "$work" recs evaluate shop_recs@champion --test "$june" --k 10
"$q" --repo "$work" --json recs evaluate shop_recs@champion --test "$june" --k 10 > "$work/eval.json"
python3 - "$work/eval.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
m, b = e["precision@10"], e["baseline"]["precision@10"]
print(f"precision@10: ALS {m:.4f}, popularity {b:.4f} ({m / b:.1f}x) over {e['users']} users")
if not m > 1.5 * b:
    sys.exit("the recommender should beat popularity clearly on shoppers with tastes")
PY

echo "== 3. materialize the product attributes and the users' category affinities"
"$q" --repo "$work" -q materialize 2000-01-01 2025-07-01

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$q" --repo "$work" -q serve --port "$port" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.1; done

echo "== 4. /recommend: a returning user, a filter, a new user, a new user's first clicks, similar items, a new product"
PYTHONPATH="$here" python3 - "$port" "$work/new_product.txt" <<'PY'
import client, json, sys
port = sys.argv[1]

post = client.poster(port)

def show(what, a):
    print(f"{what} [{a['source']}]: " + ", ".join(i["item_id"] for i in a["items"][:6]) + ", ...")

# The first user with enough history for collaborative filtering.
for user in range(1, 100):
    s, a = post("/recommend", {"recommender": "shop_recs", "user_id": user, "k": 10})
    assert s == 200, a
    if a["source"] == "cf":
        break
show(f"user {user} ({a['interactions']} interactions)", a)
def categories(items):
    s, res = post("/get-online-features", {"features": ["product_attributes:category"],
                                           "entities": {"product_id": [int(i) for i in items]}})
    assert s == 200, res
    return res["results"][1]["values"]

# A category the user's list does not lead with: the filter keeps its products only.
top = categories([a["items"][0]["item_id"]])[0]
other = next(c for c in ["electronics", "home", "fashion", "grocery", "sports", "beauty"] if c != top)
s, f = post("/recommend", {"recommender": "shop_recs", "user_id": user, "k": 5,
                           "filter": {"category": other}})
assert s == 200 and len(f["items"]) == 5, f
got = categories([i["item_id"] for i in f["items"]])
assert set(got) == {other}, got
show(f"user {user}, {other} only (the list leads with {top})", f)
s, e = post("/recommend", {"recommender": "shop_recs", "user_id": user, "k": 5,
                           "filter": {"colour": "red"}})
assert s == 400 and "filter.colour" in e["error"], e
print(f"a filter on an unknown attribute: {s} {e['error']}")
s, n = post("/recommend", {"recommender": "shop_recs", "user_id": 99_999_999, "k": 10})
assert s == 200 and n["source"] == "popularity", n
show("a new user", n)
clicks = [i["item_id"] for i in a["items"] if i["source"] != "content"][:6]
s, fold = post("/recommend", {"recommender": "shop_recs", "user_id": 99_999_998, "k": 10,
                              "interactions": clicks})
assert s == 200 and fold["source"] == "cf", fold
show(f"a new user who just viewed 6 of user {user}'s products (folded in)", fold)
item = a["items"][0]["item_id"]
s, sim = post("/similar-items", {"recommender": "shop_recs", "item_id": item, "k": 5})
assert s == 200, sim
print(f"products like {item}: " + ", ".join(i["item_id"] for i in sim["items"]))
s, e = post("/similar-items", {"recommender": "shop_recs", "item_id": 10_000_000, "k": 5})
assert s == 404, e
print(f"a product unknown at training: {s} {e['error']} (it enters with the next training)")

# A new product: listed before the training, on sale only since June 5, so the factors know
# nothing of it; its title's embedding places it.
new = None
for p in range(5000, 0, -1):
    s, cf = post("/similar-items", {"recommender": "shop_recs", "item_id": p, "k": 5})
    if s == 404:
        s, by_title = post("/similar-items", {"recommender": "shop_recs", "item_id": p, "k": 5, "by": "content"})
        if s == 200:
            new = p
            break
assert new is not None, "no product is new to the factors but known by its title"
open(sys.argv[2], "w").write(str(new))
print(f"new product {new} [by title]: products like it: " + ", ".join(i["item_id"] for i in by_title["items"]))
# ... and it enters the lists of users whose taste its title matches, marked `content`.
for u in range(1, 301):
    s, a = post("/recommend", {"recommender": "shop_recs", "user_id": u, "k": 10})
    placed = [i for i in a["items"] if i["source"] == "content"]
    if placed:
        break
assert placed, "no new product placed in the lists of 300 users"
show(f"user {u}, with new products placed by content ({', '.join(i['item_id'] for i in placed)})", a)
PY

echo "== 5. the nightly job retrains as of the newest interaction (June 30) and promotes; the server swaps the version in"
"$q" --repo "$work" jobs run recs_nightly
PYTHONPATH="$here" python3 - "$port" "$work/new_product.txt" <<'PY'
import client, json, sys, time
port, new = sys.argv[1], open(sys.argv[2]).read().strip()
post = client.poster(port)
# The new product has sold since June 5: version 2's factors know it.
for _ in range(100):
    s, a = post("/similar-items", {"recommender": "shop_recs", "item_id": new, "k": 5})
    if s == 200 and a["version"] == 2:
        break
    time.sleep(0.1)
assert s == 200 and a["version"] == 2, a
print(f"version 2 serves product {new} by its factors now: " + ", ".join(i["item_id"] for i in a["items"]))
PY

echo "== 6. launch the experiment cf_vs_pop (apply while serving), then simulated traffic"
mkdir -p "$work/features"
cp "$here/experiments/cf_vs_pop.yaml" "$work/features/"
"$q" --repo "$work" apply
# The server picks up the applied registry by itself; wait until it serves version 2.
for _ in $(seq 1 100); do
  curl -s "http://127.0.0.1:$port/metrics" | grep -q '^quiver_registry_version 2$' && break
  sleep 0.1
done
PYTHONPATH="$here" python3 - "$port" "$work/data/feedback.csv" "$work/simulated.json" <<'PY'
import client, datetime, itertools, json, random, sys
port, feedback, summary = sys.argv[1], sys.argv[2], sys.argv[3]

def post(path, body):
    status, answer = client.poster(port)(path, body)
    assert status == 200, (path, status, answer)
    return answer

# 600 returning users ask for 10 products each; the experiment assigns each an arm.
users = list(range(1, 601))
lists = {u: post("/recommend", {"recommender": "shop_recs", "user_id": u, "k": 10}) for u in users}
arms = {u: a["arm"] for u, a in lists.items()}
cf = [u for u in users if arms[u] == "cf" and lists[u]["source"] == "cf"][:300]

# Personalization: 1 - the mean overlap (shared items / 10) of two users' lists.
def personalization(us):
    pairs = list(itertools.combinations(us, 2))
    sets = {u: {i["item_id"] for i in lists[u]["items"]} for u in us}
    return 1 - sum(len(sets[a] & sets[b]) / 10 for a, b in pairs) / len(pairs)
pop = [u for u in users if arms[u] == "popularity"]
p_cf, p_pop = personalization(cf), personalization(pop)
distinct = len({tuple(i["item_id"] for i in lists[u]["items"]) for u in cf})
print(f"personalization (1 - mean overlap of two users' top 10): cf arm {p_cf:.3f} over {len(cf)} users "
      f"({distinct} distinct lists), popularity arm {p_pop:.3f} over {len(pop)} users")
if p_cf < 0.8 or distinct < 0.9 * len(cf):
    sys.exit("the CF lists should differ from user to user")

# Simulated shoppers: a shown product is viewed with probability 0.15 x the user's affinity
# (served online) for its category, and a viewed one bought with probability 0.25.
cats = ["electronics", "home", "fashion", "grocery", "sports", "beauty"]
aff = post("/get-online-features", {"features": ["user_category_affinity:category_affinity_90d"],
                                    "entities": {"user_id": users}})["results"][1]["values"]
affinity = dict(zip(users, aff))
shown = sorted({int(i["item_id"]) for a in lists.values() for i in a["items"]})
res = post("/get-online-features", {"features": ["product_attributes:category"],
                                    "entities": {"product_id": shown}})
category = dict(zip(shown, res["results"][1]["values"]))
rng = random.Random(7)
now = datetime.datetime.now(datetime.timezone.utc)
rows, per_arm = [], {}
for u in users:
    arm = per_arm.setdefault(arms[u], {"users": 0, "clicked": 0, "converted": 0})
    arm["users"] += 1
    clicked = converted = False
    for i in lists[u]["items"]:
        a = affinity[u]
        p = 0.15 * (a[cats.index(category[int(i["item_id"])])] if a else 1 / 6)
        if rng.random() < p:
            t = now + datetime.timedelta(minutes=rng.randint(1, 600))
            rows.append(f"{u},{i['item_id']},view,{t:%Y-%m-%dT%H:%M:%S}")
            clicked = True
            if rng.random() < 0.25:
                rows.append(f"{u},{i['item_id']},purchase,{t + datetime.timedelta(minutes=5):%Y-%m-%dT%H:%M:%S}")
                converted = True
    arm["clicked"] += clicked
    arm["converted"] += converted
with open(feedback, "a") as f:
    f.write("".join(r + "\n" for r in rows))
json.dump({"as_of": f"{now + datetime.timedelta(days=2):%Y-%m-%dT%H:%M:%S}", "arms": per_arm}, open(summary, "w"))
print(f"simulated {len(rows)} outcome events for {len(users)} users: "
      + ", ".join(f"{k}: {v['clicked']} of {v['users']} clicked" for k, v in sorted(per_arm.items())))
PY
# Stop the server: it flushes the exposure log on the way out.
kill "$pid"
wait "$pid" 2>/dev/null || true
trap - EXIT
as_of="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["as_of"])' "$work/simulated.json")"
"$q" --repo "$work" ab report cf_vs_pop --as-of "$as_of" --out "$work/cf_vs_pop.html"
"$q" --repo "$work" --json ab report cf_vs_pop --as-of "$as_of" > "$work/report.json"
python3 - "$work/report.json" "$work/simulated.json" <<'PY'
import json, sys
rep, sim = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))["arms"]
got = {a["arm"]: a for a in rep["arms"]}
for arm, want in sim.items():
    a = got[arm]
    # One exposure per user (each asked once); a user clicked at least one shown product or not.
    if (a["users"], a["exposures"], a["ctr"]["count"], a["cvr"]["count"]) != (
            want["users"], want["users"], want["clicked"], want["converted"]):
        sys.exit(f"arm {arm}: the report counts {a['users']} users, {a['exposures']} exposures, "
                 f"{a['ctr']['count']} clicked, {a['cvr']['count']} converted; simulated {want}")
cf, pop = got["cf"]["ctr"]["rate"], got["popularity"]["ctr"]["rate"]
print(f"the report counts what was simulated; CTR cf {cf:.3f} vs popularity {pop:.3f}")
if not cf > pop:
    sys.exit("shoppers with tastes should click personal lists more than popular ones")
PY
grep -q "<svg" "$work/cf_vs_pop.html" || { echo "the A/B report has no plot" >&2; exit 1; }
echo "recommendations example: ok ($work)"
