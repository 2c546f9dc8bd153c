"""The fault-free run of the bundled sample that every kill and disk test of the session is
compared with (see helpers.py for how faults are injected)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def baseline(sample_run) -> Path:
    """The bundled sample run with no fault (tests/conftest.py): what every faulty run must end up
    equal to. Tests copy it (helpers.copy_until) and never change it."""
    return sample_run
