"""The fault-free run of the bundled sample that every kill and disk test of the session is
compared with (see helpers.py for how faults are injected)."""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability.helpers import explain, pipeline


@pytest.fixture(scope="session")
def baseline(tmp_path_factory) -> Path:
    """The bundled sample run once with no fault: what every faulty run must end up equal to."""
    run = tmp_path_factory.mktemp("baseline") / "run"
    proc = pipeline("run", "--run-dir", str(run))
    assert proc.returncode == 0, explain(proc)
    return run
