"""Stand-in decision functions for benchmarks/clean_quality.py (same signature as clean_document).

    python benchmarks/clean_quality.py --decision clean_dev.fake_decisions:min_chars_200

`min_chars_200` is the old clean stage's length rule alone: a trivial baseline, and a check that
the benchmark's metrics move the way they should.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FakeOutcome:
    text: str
    reason: str | None
    detail: str | None = None
    scores: dict = field(default_factory=dict)
    transforms: list = field(default_factory=list)


def min_chars_200(text: str, *, url: str | None, source: str, config) -> FakeOutcome:
    n = len(text)
    return FakeOutcome(text, None if n >= 200 else "too_short", None if n >= 200 else f"{n} chars < 200")


def keep_all(text: str, *, url: str | None, source: str, config) -> FakeOutcome:
    return FakeOutcome(text, None)
