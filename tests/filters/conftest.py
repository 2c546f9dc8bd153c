"""Fixtures for the filters tests: bundled copies in tests/data/filters, the shared data set,
and one fastText model per test session."""

from __future__ import annotations

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
# The project's shared real-data folder sits beside the repository (shared/data/README.md).
SHARED_DATA = pathlib.Path(os.environ.get("JCORPUS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def fixtures_dir() -> pathlib.Path:
    return REPO_ROOT / "tests" / "data" / "filters"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared real-data set not found at {SHARED_DATA} (set JCORPUS_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def lid():
    from filters.langid import FastTextLanguageId

    return FastTextLanguageId()
