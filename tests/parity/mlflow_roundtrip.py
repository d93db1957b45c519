"""MLflow round trip: `quiver train` with `tracking: {mlflow: URL}` logs to a real MLflow
tracking server, and MLflow's own Python client reads the runs, params, metrics, artifacts,
registered versions and aliases back.

usage: mlflow_roundtrip.py QUIVER_BINARY

Starts `mlflow server` (sqlite backend, --serve-artifacts) on a free port in a temporary folder,
runs the demo (which trains churn v1 without tracking), turns tracking on, trains churn v2,
promotes it, re-sends v1 with `quiver models track`, rolls back, deletes a version, and checks
every step from MLflow's side. Also checks that an unreachable MLflow fails the command with a
clear message while the version stays registered in Quiver. Exits non-zero on any mismatch.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from mlflow.tracking import MlflowClient

QUIVER = os.path.abspath(sys.argv[1])
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quiver(repo, *args, ok=True):
    p = subprocess.run([QUIVER, "--repo", repo, *args], capture_output=True, text=True)
    if ok and p.returncode != 0:
        sys.exit(f"quiver {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def quiver_json(repo, *args):
    return json.loads(quiver(repo, "--json", *args).stdout)


tmp = tempfile.mkdtemp(prefix="quiver-mlflow-")
port = free_port()
url = f"http://127.0.0.1:{port}"
server = subprocess.Popen(
    [
        os.path.join(os.path.dirname(sys.executable), "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db",
        "--serve-artifacts", "--artifacts-destination", f"{tmp}/mlartifacts",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ],
    stdout=open(f"{tmp}/server.log", "w"), stderr=subprocess.STDOUT, cwd=tmp,
)
try:
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).read()
            break
        except Exception:
            if server.poll() is not None or time.time() > deadline:
                print(open(f"{tmp}/server.log").read()[-3000:])
                sys.exit("mlflow server did not start")
            time.sleep(0.5)
    print(f"mlflow server up at {url}")

    repo = os.path.join(tmp, "repo")
    quiver(tmp, "-q", "demo", "run", "--dir", repo, "--users", "400")
    with open(os.path.join(repo, "quiver.yaml"), "a") as f:
        f.write(f"\ntracking:\n  mlflow: {url}\n  experiment: churn-experiments\n")

    trained = quiver_json(repo, "train", "--service", "churn_v1", "--labels",
                          os.path.join(repo, "data/labels.parquet"), "--label", "churned", "--name", "churn")
    check(trained["version"] == 2, "quiver train registered churn v2")
    ml = trained.get("mlflow") or {}
    check(bool(ml.get("run_id")), "quiver train reported the MLflow run id")

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    exp = client.get_experiment_by_name("churn-experiments")
    check(exp is not None and exp.experiment_id == ml.get("experiment_id"),
          "experiment 'churn-experiments' exists with the reported id")
    run = client.get_run(ml["run_id"])
    check(run.info.status == "FINISHED", f"run finished (status {run.info.status})")
    check(run.info.run_name == "churn-v2", f"run name churn-v2 (got {run.info.run_name})")
    tags = run.data.tags
    check(tags.get("quiver.model") == "churn" and tags.get("quiver.version") == "2",
          "run tags quiver.model=churn, quiver.version=2")
    check(tags.get("quiver.feature_service") == "churn_v1" and len(tags.get("quiver.service_hash", "")) >= 12,
          "run tags carry the feature service and its hash")
    params = run.data.params
    check(params.get("feature_service") == "churn_v1" and params.get("label") == "churned",
          "params feature_service and label")
    check(params.get("num_leaves") == "31" and params.get("early_stopping_rounds") == "20",
          f"GBDT params logged (num_leaves={params.get('num_leaves')}, early_stopping_rounds={params.get('early_stopping_rounds')})")
    shown = quiver_json(repo, "models", "show", "churn:2")
    auc = shown["details"]["metrics"]["roc_auc"]
    check(abs(run.data.metrics.get("test_roc_auc", -1) - auc) < 1e-12,
          f"test_roc_auc in MLflow equals Quiver's ({auc:.4f})")
    for m in ["test_pr_auc", "test_log_loss", "test_brier", "train_rows", "test_rows", "best_iteration"]:
        check(m in run.data.metrics, f"metric {m} logged")

    files = sorted(a.path for a in client.list_artifacts(run.info.run_id))
    check({"evaluation.json", "report.html", "model"} <= set(files), f"artifacts listed: {files}")
    model_files = [a.path for a in client.list_artifacts(run.info.run_id, "model")]
    check(model_files == ["model/model.json"], f"model artifact: {model_files}")
    got = client.download_artifacts(run.info.run_id, "model/model.json", tmp)
    local = os.path.join(repo, ".quiver", "artifacts", shown["artifact"], "model.json")
    check(open(got, "rb").read() == open(local, "rb").read(),
          "the model file read back from MLflow is byte-identical to Quiver's artifact")
    report = client.download_artifacts(run.info.run_id, "report.html", tmp)
    html = open(report).read()
    check("<svg" in html and "churn version 2" in html, "report.html is the self-contained report")

    versions = client.search_model_versions("name='churn'")
    check(len(versions) == 1 and versions[0].tags.get("quiver.version") == "2"
          and versions[0].run_id == run.info.run_id,
          "registered model churn has one version, tagged quiver.version=2, from the run")

    quiver(repo, "-q", "models", "promote", "churn", "2", "--alias", "champion")
    mv = client.get_model_version_by_alias("churn", "champion")
    check(mv.tags.get("quiver.version") == "2", "MLflow alias champion follows quiver promote (v2)")

    sent = quiver_json(repo, "models", "track", "churn:1")
    check(sent["mlflow_version"] == "2", f"quiver models track churn:1 registered MLflow version {sent['mlflow_version']}")
    v1_run = client.get_run(sent["run_id"])
    check(v1_run.data.tags.get("quiver.version") == "1", "the re-sent run is tagged quiver.version=1")
    again = quiver_json(repo, "models", "track", "churn:1")
    check(again["mlflow_version"] == "2", "tracking the same version again reuses its MLflow version")

    quiver(repo, "-q", "models", "rollback", "churn", "--alias", "champion")
    mv = client.get_model_version_by_alias("churn", "champion")
    check(mv.tags.get("quiver.version") == "1", "MLflow alias champion follows quiver rollback (v1)")

    quiver(repo, "-q", "models", "delete", "churn", "2")
    left = sorted(v.tags.get("quiver.version") for v in client.search_model_versions("name='churn'"))
    check(left == ["1"], f"quiver models delete removes the mirrored MLflow version (left: {left})")

    # An unreachable tracking server: the command fails and says what was kept.
    text = open(os.path.join(repo, "quiver.yaml")).read().replace(url, "http://127.0.0.1:9")
    open(os.path.join(repo, "quiver.yaml"), "w").write(text)
    p = quiver(repo, "train", "--service", "churn_v1", "--labels", os.path.join(repo, "data/labels.parquet"),
               "--label", "churned", "--name", "churn", ok=False)
    check(p.returncode != 0, "train with MLflow down exits non-zero")
    check("registered in Quiver" in p.stderr and "quiver models track churn:3" in p.stderr,
          f"the error says the version is kept and how to re-send it: {p.stderr.strip()[:300]}")
    listed = quiver_json(repo, "models", "show", "churn:3")
    check(listed["version"] == 3, "churn v3 stays registered in Quiver")
finally:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    shutil.rmtree(tmp, ignore_errors=True)

print(f"mlflow round trip: {'0 failed' if not failures else f'{len(failures)} failed'}")
sys.exit(1 if failures else 0)
