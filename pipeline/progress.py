"""Stage progress: a live line on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class StageProgress:
    """Shards done / total, documents per second and ETA for one stage."""

    def __init__(self, stage: str, total: int, skipped: int, stream: TextIO | None = None):
        self.stage = stage
        self.total = total
        self.done = skipped
        self.skipped = skipped
        self.documents = 0
        self.started = time.monotonic()
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.documents / elapsed
        worked = self.done - self.skipped
        remaining = self.total - self.done
        eta = _duration(elapsed / worked * remaining) if worked and remaining else "-"
        return (
            f"[{self.stage}] shards {self.done}/{self.total}  "
            f"{self.documents} docs  {rate:,.1f} docs/s  ETA {eta}"
        )

    def shard_done(self, documents: int) -> None:
        self.done += 1
        self.documents += documents
        if self.live:
            self.stream.write("\r\033[K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def finish(self, summary: str, cpu_seconds: float | None = None) -> None:
        """The stage's summary line; `cpu_seconds`, when the stage did work, is what its workers and
        the driver spent on it (Ray's own processes not included)."""
        if self.live and self.done > self.skipped:
            self.stream.write("\n")
        skipped = f", {self.skipped} shards skipped (already done)" if self.skipped else ""
        cost = f"; {cpu_seconds:.1f} CPU s" if cpu_seconds is not None else ""
        self.stream.write(f"[{self.stage}] {summary}{skipped}{cost}\n")
        self.stream.flush()
