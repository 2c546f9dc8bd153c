"""`--ray-address` joins an existing Ray cluster started with the real `ray start --head`.

Loopback only: Ray replaces 127.0.0.1 by the machine's interface address unless
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, and Ray >= 2.59 enables token authentication on clusters it
starts, so head and driver share a token through RAY_AUTH_TOKEN.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RAY = shutil.which("ray", path=str(Path(sys.executable).parent))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    if RAY is None:
        pytest.skip("the `ray` command is not installed beside this Python")
    env = dict(
        os.environ,
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(32),
    )
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    # A short --temp-dir: Ray's socket paths must stay under the 107-byte AF_UNIX limit.
    temp_dir = Path("/tmp") / f"ray-test-{port}"
    head = [
        RAY,
        "start",
        "--head",
        "--node-ip-address",
        "127.0.0.1",
        "--port",
        str(port),
        "--num-cpus",
        "2",
        "--temp-dir",
        str(temp_dir),
        "--include-dashboard",
        "false",
        "--disable-usage-stats",
    ]
    subprocess.run(head, env=env, check=True, capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_a_run_joins_the_cluster_and_leaves_it_running(ray_head, tmp_path):
    address, env = ray_head
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--run-dir", str(run_dir), "--ray-address", address],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    audit = subprocess.run(
        [sys.executable, "-m", "pipeline", "audit", str(run_dir), "--format", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert json.loads(audit.stdout)["ok"]
    # The driver only joined: the cluster is still up after the run.
    status = subprocess.run(
        [RAY, "status", "--address", address], env=env, capture_output=True, text=True, timeout=120
    )
    assert status.returncode == 0, status.stderr
