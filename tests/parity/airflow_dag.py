"""`quiver jobs export --airflow` against Airflow itself: the exported file imports in Airflow 2.10
with no error, and its tasks carry the jobs' schedules, retries, backoff, timeouts and
dependencies.

    python airflow_dag.py QUIVER_BINARY

Builds a repository from examples/churn's definitions, applies it (without reading data), exports
the DAG and loads it with Airflow's own DagBag.
"""
import datetime
import os
import shutil
import subprocess
import sys
import tempfile

quiver = sys.argv[1]
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
work = tempfile.mkdtemp()
os.environ["AIRFLOW_HOME"] = os.path.join(work, "airflow")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
repo = os.path.join(work, "repo")
os.makedirs(os.path.join(repo, "features"))
shutil.copy(os.path.join(root, "examples/churn/quiver.yaml"), repo)
for f in ("users.yaml", "activity.yaml", "services.yaml", "jobs.yaml", "quality.yaml", "ranking.yaml"):
    shutil.copy(os.path.join(root, "examples/churn/features", f), os.path.join(repo, "features"))
run = lambda *a: subprocess.run([quiver, "--repo", repo, *a], check=True, capture_output=True, text=True)
run("apply", "--skip-source-check")
dags_dir = os.path.join(work, "dags")
os.makedirs(dags_dir)
dag_file = os.path.join(dags_dir, "quiver_shop.py")
run("jobs", "export", "--airflow", dag_file, "--quiver", "/usr/local/bin/quiver", "--remote-repo", "/srv/shop")

from airflow.models import DagBag  # noqa: E402

bag = DagBag(dag_folder=dags_dir, include_examples=False)
if bag.import_errors:
    sys.exit(f"Airflow could not import the DAG: {bag.import_errors}")
tasks = {t.task_id: (dag, t) for dag in bag.dags.values() for t in dag.tasks}
expected = {
    # job: (schedule, retries, retry delay, timeout)
    "sync_online": ("*/15 * * * *", 3, datetime.timedelta(seconds=30), datetime.timedelta(minutes=30)),
    "retrain_weekly": ("0 3 * * 1", 1, datetime.timedelta(seconds=30), datetime.timedelta(hours=2)),
    "export_scores": ("30 3 * * *", 2, datetime.timedelta(seconds=10), None),
}
for job, (schedule, retries, delay, timeout) in expected.items():
    if job not in tasks:
        sys.exit(f"no task {job} in {sorted(tasks)}")
    dag, task = tasks[job]
    got_schedule = getattr(dag, "schedule_interval", None) or str(dag.timetable.summary)
    checks = [
        ("schedule", got_schedule, schedule),
        ("retries", task.retries, retries),
        ("retry_delay", task.retry_delay, delay),
        ("retry_exponential_backoff", task.retry_exponential_backoff, True),
        ("execution_timeout", task.execution_timeout, timeout),
        ("bash_command", task.bash_command,
         f"/usr/local/bin/quiver --repo /srv/shop jobs run {job} --retries 0"),
    ]
    for what, got, want in checks:
        if got != want:
            sys.exit(f"{job}: {what} is {got!r}, expected {want!r}")
# export_scores runs after sync_online, which has another schedule: through a sensor.
_, export = tasks["export_scores"]
sensors = [t for t in export.upstream_list if t.task_id == "wait_for_sync_online"]
if len(sensors) != 1 or sensors[0].external_task_id != "sync_online":
    sys.exit(f"export_scores does not wait for sync_online: {export.upstream_list}")
print(f"Airflow imported {len(bag.dags)} DAGs with {len(tasks)} tasks; schedules, retries, "
      "timeouts and the dependency match the jobs")
