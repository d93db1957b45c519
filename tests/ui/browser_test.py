#!/usr/bin/env python3
"""The web UI in a real browser: Debian's headless Chromium driven through its chromedriver.

    browser_test.py QUIVER_BINARY SCREENSHOT_DIR

On the churn demo (`quiver demo run`, plus a second `churn` version promoted to challenger and
a data-quality run): opens every page and measures its load time, follows the lineage from a
feature to the model that uses it, looks a user up in the online store, promotes the challenger
to champion with the token (refused without it) and sees the alias move (and `/predict` follow),
rolls it back, queues a job run. Then a generated registry of 1,000 views: the pages that list
or search them stay fast. Screenshots of every page go to SCREENSHOT_DIR; the load times are
printed and written to SCREENSHOT_DIR/timings.json.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

QUIVER = os.path.abspath(sys.argv[1])
SHOTS = os.path.abspath(sys.argv[2])
TOKEN = "ui-browser-test-token"
# Pages slower than this are marked in the printed table (not a failure:
# timings are measured, never asserted; a hung page fails by the 60 s
# page-load timeout).
SLOW_LOAD_S = 2.0

checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise AssertionError(what)
    checks += 1


def quiver(*args, repo=None, ok=True):
    cmd = [QUIVER, "-q"] + (["--repo", repo] if repo else []) + list(args)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if ok and r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return r


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(method, url, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Server:
    def __init__(self, repo):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, QUIVER_SERVER_TOKEN=TOKEN)
        self.log = open(os.path.join(repo, "serve.log"), "w")
        self.proc = subprocess.Popen(
            [QUIVER, "--repo", repo, "serve", "--port", str(self.port)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        for _ in range(300):
            try:
                urllib.request.urlopen(self.base + "/health", timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None:
                    sys.exit(f"quiver serve exited: see {self.log.name}")
                time.sleep(0.1)
        sys.exit("quiver serve did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def browser():
    o = Options()
    o.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1280,900", "--disable-extensions", "--no-first-run"]:
        o.add_argument(a)
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    d = webdriver.Chrome(service=service, options=o)
    d.set_page_load_timeout(60)
    return d


timings = []


def open_page(d, base, path, shot=None, label=None):
    started = time.perf_counter()
    d.get(base + path)
    wall = time.perf_counter() - started
    nav = d.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "return n ? {response: n.responseEnd - n.startTime, load: n.loadEventEnd - n.startTime} : null;")
    check("Error" not in d.title and "404" not in d.find_element(By.TAG_NAME, "h1").text,
          f"{path}: an error page ({d.title})")
    timings.append({"page": label or path, "wall_ms": round(wall * 1000, 1),
                    "server_ms": round(nav["response"], 1) if nav else None,
                    "load_ms": round(nav["load"], 1) if nav else None})
    if shot:
        d.save_screenshot(os.path.join(SHOTS, shot + ".png"))


def wait(d, css, seconds=20):
    return WebDriverWait(d, seconds).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def wait_text(d, css, text, seconds=20):
    """Waits until the element holds `text`: a page kept from before a
    submit may still show an older element of the same id."""
    try:
        WebDriverWait(d, seconds).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))
    except TimeoutException:
        shown = [e.text for e in d.find_elements(By.CSS_SELECTOR, css)]
        raise AssertionError(f"{css} never held {text!r} on {d.current_url}: {shown}")
    return d.find_element(By.CSS_SELECTOR, css)


def demo_repo(work):
    repo = os.path.join(work, "demo")
    quiver("demo", "run", "--dir", repo, "--users", "1000")
    labels = os.path.join(repo, "data", "labels.parquet")
    quiver("train", "--service", "churn_v1", "--labels", labels, "--label", "churned",
           "--model", "logistic", "--name", "churn", "--promote", "challenger", repo=repo)
    # Stored quality results for the monitoring page (a failing check is not an error here).
    quiver("check", "--as-of", "2025-06-30", repo=repo, ok=False)
    # A stored drift run of the churn model (its drift page): May and June's features against
    # the sample of its training inputs.
    quiver("drift", "--reference", "model:churn", "--current", "service:churn_v1@2025-05-01..2025-06-30",
           repo=repo)
    # A recommender on the clickstream and an experiment over it (the recommendations page).
    with open(os.path.join(repo, "features", "recs.yaml"), "w") as f:
        f.write(RECS)
    with open(os.path.join(repo, "quiver.yaml"), "a") as f:
        f.write("\nserver:\n  prediction_log: {flush_interval_ms: 100}\n")
    quiver("apply", repo=repo)
    quiver("recs", "train", "shop_recs", "--promote", "champion", repo=repo)
    return repo


RECS = """recommenders:
  - name: shop_recs
    interactions: {source: events, user: user_id, item: product_id, event_type: event_type,
                   weights: {view: 1, add_to_cart: 2, purchase: 3}, half_life: 30d}
    algorithm: {type: als, factors: 16, regularization: 0.05, alpha: 10, iterations: 10, seed: 42}
experiments:
  - name: cf_vs_pop
    recommender: shop_recs
    arms: {popularity: 0.5, cf: 0.5}
    salt: ui-test
    outcomes: {source: events, click: view, conversion: purchase, window: 24h}
"""


def big_repo(work, data_file):
    """1,000 views over one source (the demo's users table), applied."""
    repo = os.path.join(work, "big")
    os.makedirs(repo)
    lines = [
        "project: big",
        "entities:",
        "  - {name: user, join_keys: [user_id], value_type: int64}",
        "sources:",
        f"  - {{name: users, type: parquet, path: {data_file}, timestamp_field: signup_date}}",
        "feature_views:",
    ]
    for i in range(1000):
        lines.append(f"  - {{name: view_{i:04d}, entities: [user], source: users, ttl: 30d, "
                     f"description: generated view {i}, tags: {{team: t{i % 10}}}, "
                     f"features: [{{name: age_{i}, type: int64, column: age}}]}}")
    lines.append("feature_services:")
    lines.append("  - {name: everything, features: [\"view_0000:*\", \"view_0999:*\"]}")
    with open(os.path.join(repo, "quiver.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")
    quiver("apply", repo=repo)
    return repo


def main():
    os.makedirs(SHOTS, exist_ok=True)
    work = tempfile.mkdtemp(prefix="quiver-ui-")
    t0 = time.time()
    repo = demo_repo(work)
    print(f"churn demo ready in {time.time() - t0:.0f} s", flush=True)
    server = Server(repo)
    d = browser()
    try:
        base = server.base
        status, svc = http("GET", base + "/registry/services/churn_v1")
        check(status == 200, "the churn_v1 service is served")
        first = svc["features"][0]
        view, feature = first["view"], first["feature"]
        _, models = http("GET", base + "/api/ui/models/churn")
        versions = {v["version"]: v["aliases"] for v in models["versions"]}
        champion = next(v for v, a in versions.items() if "champion" in a)
        challenger = next(v for v, a in versions.items() if "challenger" in a)
        check(champion != challenger, "a champion and a challenger")

        # Every page, timed, with a screenshot.
        _, jobs = http("GET", base + "/jobs")
        job = jobs["jobs"][0]["job"]
        source = svc and http("GET", base + f"/registry/views/{view}")[1]["source"]
        pages = [
            ("/ui", "overview"),
            ("/ui/search?q=purchase", "search"),
            ("/ui/views", "views"),
            (f"/ui/views/{view}", "view"),
            (f"/ui/views/{view}/stats", "view_stats"),
            (f"/ui/features/{view}/{feature}", "feature"),
            ("/ui/services", "services"),
            ("/ui/services/churn_v1", "service"),
            ("/ui/entities/user", "entity"),
            (f"/ui/sources/{source}", "source"),
            ("/ui/models", "models"),
            ("/ui/models/churn", "model"),
            ("/ui/jobs", "jobs"),
            (f"/ui/jobs/{job}", "job"),
            ("/ui/monitoring", "monitoring"),
            ("/ui/monitoring/drift/churn", "drift"),
            ("/ui/recommend", "recommend"),
        ]
        for path, name in pages:
            open_page(d, base, path, shot=name, label=name)
        # Recommendations: 40 users of the experiment ask for a list (40 exposures); then the
        # page previews user 7's list (no exposure) and shows the experiment's report.
        for u in range(1, 41):
            status, a = http("POST", base + "/recommend", {"recommender": "shop_recs", "user_id": u, "k": 5})
            check(status == 200 and a.get("arm") in ("cf", "popularity"), f"user {u} gets an arm: {a}")
        report = None
        for _ in range(100):
            status, report = http("GET", base + "/experiments/cf_vs_pop/report")
            if status == 200 and sum(a["exposures"] for a in report["arms"]) == 40:
                break
            time.sleep(0.1)
        check(sum(a["exposures"] for a in report["arms"]) == 40, f"40 exposures reported: {report}")
        open_page(d, base, "/ui/recommend?recommender=shop_recs&user_id=7&k=5", shot="recommend_user",
                  label="recommend (user 7, experiment report)")
        check(len(d.find_elements(By.CSS_SELECTOR, "#recommendations tbody tr")) == 5, "user 7's 5 items")
        arms = d.find_elements(By.CSS_SELECTOR, "#experiment-cf_vs_pop table.experiment-arms tbody tr")
        check(len(arms) == 2, f"the experiment's two arms: {[a.text for a in arms]}")
        shown = sum(int(r.find_elements(By.TAG_NAME, "td")[3].text) for r in arms)
        check(shown == 40, f"the page counts the 40 exposures: {shown}")
        time.sleep(0.5)  # five flush intervals: a logged preview would be on disk by now
        _, report = http("GET", base + "/experiments/cf_vs_pop/report")
        check(sum(a["exposures"] for a in report["arms"]) == 40, f"the preview is no exposure: {report['arms']}")
        pages.append(("/ui/recommend?recommender=shop_recs&user_id=7&k=5", "recommend_user"))
        # The drift page shows the stored run's features.
        open_page(d, base, "/ui/monitoring/drift/churn", label="drift (again)")
        check("churn" in d.find_element(By.TAG_NAME, "h1").text, "the churn model's drift page")

        # The statistics panel fills itself in (htmx) on the view page.
        open_page(d, base, f"/ui/views/{view}", label="view (again, statistics cached)")
        wait(d, "#stats .stat")
        check(len(d.find_elements(By.CSS_SELECTOR, "#stats .stat")) >= 1, "statistics per feature")
        check(d.find_elements(By.CSS_SELECTOR, "#stats svg.plot"), "a histogram or top values plot")
        d.save_screenshot(os.path.join(SHOTS, "view_with_stats.png"))

        # Lineage: from the view's feature list to the feature, then along the graph to the model.
        d.find_element(By.CSS_SELECTOR, f"#features a[href='/ui/features/{view}/{feature}']").click()
        wait(d, "#lineage svg")
        check(d.current_url.endswith(f"/ui/features/{view}/{feature}"), "the feature's page")
        node = d.find_element(By.CSS_SELECTOR, f"#lineage a[data-node='model:churn:{champion}']")
        d.find_element(By.CSS_SELECTOR, f"#lineage a[data-node='feature:{view}:{feature}']")
        d.find_element(By.CSS_SELECTOR, "#lineage a[data-node='service:churn_v1']")
        d.save_screenshot(os.path.join(SHOTS, "feature_lineage.png"))
        d.execute_script("arguments[0].scrollIntoView()", node)
        try:
            node.click()
        except Exception:
            d.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true, view: window}))", node)
        WebDriverWait(d, 10).until(EC.url_contains("/ui/models/churn"))
        check("churn" in wait_text(d, "h1", "churn").text, "the lineage leads to the model")
        d.back()
        WebDriverWait(d, 10).until(EC.url_contains("/ui/features/"))
        check(True, "the back button returns to the feature")

        # Online lookup of user 1, in place (htmx), with the values' age.
        open_page(d, base, f"/ui/views/{view}", label="view (lookup)")
        d.find_element(By.CSS_SELECTOR, "#lookup-form input[name='user_id']").send_keys("1")
        started = time.perf_counter()
        d.find_element(By.ID, "lookup-submit").click()
        wait(d, "#lookup-values")
        timings.append({"page": "online lookup (htmx)", "wall_ms": round((time.perf_counter() - started) * 1000, 1)})
        rows = d.find_elements(By.CSS_SELECTOR, "#lookup-values tr.value")
        check(len(rows) >= 1, "one row per feature")
        statuses = [r.find_elements(By.TAG_NAME, "td")[2].text for r in rows]
        check("PRESENT" in statuses, f"user 1 is in the online store: {statuses}")
        ages = [r.find_element(By.CSS_SELECTOR, "td.age").text for r in rows]
        check(any(a not in ("", "–") for a in ages), f"the values' age is shown: {ages}")
        d.save_screenshot(os.path.join(SHOTS, "online_lookup.png"))

        # Promote the challenger without the token: refused, the alias stays.
        open_page(d, base, "/ui/models/churn", label="model (signed out)")
        d.find_element(By.ID, "token-note")
        Select(d.find_element(By.ID, "promote-version")).select_by_value(str(challenger))
        d.find_element(By.ID, "promote-submit").click()
        wait(d, "#error")
        check("token" in d.find_element(By.ID, "error").text, "refused for want of the token")
        check("401" in d.find_element(By.TAG_NAME, "h1").text, "a 401 page")
        d.save_screenshot(os.path.join(SHOTS, "promote_refused.png"))
        _, m = http("GET", base + "/api/ui/models/churn")
        check(champion in [v["version"] for v in m["versions"] if "champion" in v["aliases"]], "the alias did not move")
        status, _ = http("POST", base + "/models/churn/promote", {"version": challenger})
        check(status == 401, f"the API refuses it too without the token ({status})")

        # Sign in once; then promote: the alias moves, and /predict follows.
        d.get(base + "/ui/login?next=/ui/models/churn")
        d.find_element(By.ID, "token").send_keys(TOKEN)
        d.find_element(By.ID, "sign-in-submit").click()
        # The login URL itself holds "/ui/models/churn" (its next=), so wait
        # for the signed-in page's own element, not for the URL.
        wait(d, "#sign-out")
        check(d.current_url.split("?")[0].endswith("/ui/models/churn"), f"back on the model after sign-in: {d.current_url}")
        check(not d.find_elements(By.ID, "token-note"), "signed in")
        Select(d.find_element(By.ID, "promote-version")).select_by_value(str(challenger))
        alias = d.find_element(By.ID, "promote-alias")
        alias.clear()
        alias.send_keys("champion")
        d.find_element(By.ID, "promote-submit").click()
        flash = wait_text(d, "#flash", f"version {challenger}")
        check(f"version {challenger}" in flash.text, flash.text)
        cell = d.find_element(By.CSS_SELECTOR, f"#versions tr.aliases td[data-version='{challenger}']")
        check("champion" in cell.text, f"the champion alias shows on v{challenger}: {cell.text}")
        d.save_screenshot(os.path.join(SHOTS, "promoted.png"))
        _, m = http("GET", base + "/api/ui/models/churn")
        check([v["version"] for v in m["versions"] if "champion" in v["aliases"]] == [challenger], "the alias moved")
        served = None
        for _ in range(40):
            _, p = http("POST", base + "/predict", {"model": "churn", "entities": {"user_id": [1]}})
            served = p.get("version")
            if served == challenger:
                break
            time.sleep(0.1)
        check(served == challenger, f"/predict serves the new champion (v{served})")
        # Roll back from the UI.
        Select(d.find_element(By.CSS_SELECTOR, "#rollback-form select[name='alias']")).select_by_visible_text("champion")
        d.find_element(By.ID, "rollback-submit").click()
        flash = wait_text(d, "#flash", f"{challenger} -> {champion}")
        check(f"{challenger} -> {champion}" in flash.text, flash.text)
        # Run a job now (queued for a scheduler).
        d.get(base + f"/ui/jobs/{job}")
        d.find_element(By.CSS_SELECTOR, "form[action$='/run'] button").click()
        flash = wait_text(d, "#flash", "queued")
        check("queued" in flash.text, "the run is queued")
        _, runs = http("GET", base + f"/jobs/{job}/runs")
        check(any(r["trigger"] == "manual" for r in runs["runs"]), "a manual run is recorded")
        # Search as you type (htmx) pushes a URL the back button can return to.
        open_page(d, base, "/ui/search", label="search (empty)")
        box = d.find_element(By.ID, "q")
        box.send_keys("churn")
        WebDriverWait(d, 10).until(EC.url_contains("q=churn"))
        wait(d, "#results tr.result")
        check(len(d.find_elements(By.CSS_SELECTOR, "#results tr.result")) >= 2, "search results")
        d.save_screenshot(os.path.join(SHOTS, "search_churn.png"))
        # A JSON twin for every page.
        for path, _ in pages:
            status, body = http("GET", base + path.replace("/ui", "/api/ui", 1))
            check(status == 200 and body.get("page"), f"the JSON twin of {path}: {status}")
    finally:
        d.quit()
        server.stop()

    # A generated registry of 1,000 views.
    big = big_repo(work, os.path.join(repo, "data", "users.parquet"))
    server = Server(big)
    d = browser()
    try:
        for path, name, shot in [
            ("/ui", "1000 views: overview", "big_overview"),
            ("/ui/views", "1000 views: view list", "big_views"),
            ("/ui/search?q=view_0999", "1000 views: search", "big_search"),
            ("/ui/search?q=t7", "1000 views: search by tag (100 hits)", "big_search_tag"),
            ("/ui/views/view_0500", "1000 views: one view", "big_view"),
            ("/ui/entities/user", "1000 views: entity lineage", "big_entity"),
            ("/ui/services/everything", "1000 views: service", "big_service"),
        ]:
            open_page(d, server.base, path, label=name, shot=shot)
        rows = d.find_elements(By.CSS_SELECTOR, "#lineage a[data-node^='view:']")
        check(len(rows) >= 2, "the service's lineage")
    finally:
        d.quit()
        server.stop()

    width = max(len(t["page"]) for t in timings)
    print(f"{'page':<{width}}  {'wall ms':>8}  {'server ms':>9}  {'load ms':>8}")
    for t in timings:
        slow = "  slow" if t["wall_ms"] > SLOW_LOAD_S * 1000 else ""
        print(f"{t['page']:<{width}}  {t['wall_ms']:>8}  {str(t.get('server_ms', '')):>9}  {str(t.get('load_ms', '')):>8}{slow}")
    with open(os.path.join(SHOTS, "timings.json"), "w") as f:
        json.dump(timings, f, indent=1)
    shutil.rmtree(work, ignore_errors=True)
    print(f"web UI browser test: {checks} checks, all good; screenshots in {SHOTS}")


if __name__ == "__main__":
    main()
