"""Fixtures: the churn demo repository made by `quiver demo run` (300 users), once per session.

QUIVER_BIN names the quiver binary (ci/python-test.sh sets it); without it the tests fail, never
skip.
"""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest


def quiver_bin() -> str:
    b = os.environ.get("QUIVER_BIN")
    if not b or not Path(b).is_file():
        pytest.fail("set QUIVER_BIN to the quiver binary (e.g. $CARGO_TARGET_DIR/debug/quiver)")
    return b


def run_cli(repo, *args, json_out=False):
    cmd = [quiver_bin(), "--repo", str(repo), "--quiet"] + (["--json"] if json_out else []) + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed: {p.stderr}")
    return json.loads(p.stdout) if json_out else p.stdout


@pytest.fixture(scope="session")
def demo_repo(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("churn") / "repo"
    p = subprocess.run(
        [quiver_bin(), "--quiet", "demo", "run", "--dir", str(d), "--users", "300"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    return d


@pytest.fixture(scope="session")
def store(demo_repo):
    import quiver

    return quiver.FeatureStore(demo_repo)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`quiver serve` on a free port, stopped on exit."""

    def __init__(self, repo):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [quiver_bin(), "--repo", str(repo), "--quiet", "serve", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1)
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"quiver serve did not start: {self.proc.stderr.read().decode()}")
                time.sleep(0.1)

    def post(self, path, body):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture
def repo_copy(demo_repo, tmp_path) -> Path:
    d = tmp_path / "copy"
    shutil.copytree(demo_repo, d)
    return d
