"""A finished run of the bundled sample, made once per session, and a fresh copy of it per test
(to tamper with), for the audit's tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_pipeline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=REPO, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("audit-sample") / "run"
    proc = run_pipeline("run", "--run-dir", str(run))
    assert proc.returncode == 0, proc.stderr
    return run


@pytest.fixture
def run_copy(sample_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(sample_run, copy)
    return copy
