"""A fresh copy per test (to tamper with) of the session's sample run (tests/conftest.py)."""

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


@pytest.fixture
def run_copy(sample_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(sample_run, copy)
    return copy
