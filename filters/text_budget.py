"""A per-document time budget for text rules, so that one pathological document is rejected with a
reason (``time_budget_exceeded``) instead of holding a worker.

Python's ``re`` cannot be interrupted inside a match, so the budget is checked between rules: the
patterns themselves are kept free of catastrophic backtracking (tests/reliability/
test_regex_budget.py checks every pattern of filters/ and of the sources that read pages), and the
budget bounds what is left, a document that is merely huge or many rules that are each slow on it.

The clock is CPU time of the working thread, charged to the document being worked on (a batch's
time shared out by characters): on a loaded machine a wall-clock budget would reject documents
because other processes ran, and the same input would give different outputs.

>>> budget = TextBudget(10.0)
>>> with budget.charge():
...     _ = "梅雨前線".encode()
>>> budget.check("normalize")  # well within 10 CPU seconds: nothing happens
>>> TextBudget(0.0).check("normalize")
Traceback (most recent call last):
...
filters.text_budget.TimeBudgetExceeded: over the 0.0 s budget after normalize
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class TimeBudgetExceeded(Exception):
    """Raised by :meth:`TextBudget.check`; ``step`` names the rule after which the budget ran out."""

    def __init__(self, seconds: float, step: str):
        super().__init__(f"over the {seconds} s budget after {step}")
        self.seconds = seconds
        self.step = step


class TextBudget:
    """CPU seconds one document may use; ``None`` seconds means no limit."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.spent = 0.0

    @contextlib.contextmanager
    def charge(self) -> Iterator[None]:
        """Charge the thread's CPU time inside the block to this document."""
        started = time.thread_time()
        try:
            yield
        finally:
            self.spent += time.thread_time() - started

    def add(self, seconds: float) -> None:
        """Charge a share of work done for several documents at once."""
        self.spent += seconds

    def check(self, step: str) -> None:
        if self.seconds is not None and self.spent >= self.seconds:
            raise TimeBudgetExceeded(self.seconds, step)
