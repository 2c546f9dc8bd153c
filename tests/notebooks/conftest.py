"""One fresh run of the bundled sample for the whole test session (it takes minutes with Ray)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("sample") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--run-dir", str(run)],
        cwd=REPO, capture_output=True, text=True, timeout=1200,
    )
    if proc.returncode != 0:
        raise AssertionError(f"sample run failed, exit {proc.returncode}:\n{proc.stderr[-4000:]}")
    return run
