"""Per-stage throughput on the bundled sample, in one process, and the whole run through the CLI.

    python benchmarks/stage_throughput.py

Prints figures; asserts nothing. The in-process numbers are the stages' own cost (no Ray); the CLI
number adds Ray start-up and scheduling, which dominates on a sample this small.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from manifests.layout import STAGE_ORDER  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.shards import run_shard, sum_stage_stats  # noqa: E402
from pipeline.stage import RunContext  # noqa: E402
from pipeline.stages import STAGES  # noqa: E402


def serial_map(fn, items):
    return [fn(item) for item in items]


def in_process(run_dir: str) -> list[tuple[str, int, int, float, float]]:
    config = load_config()
    ctx = RunContext(run_dir=run_dir, config=config, config_sha256=config.sha256(), pipeline_version="bench")
    rows = []
    for name in STAGE_ORDER:
        stage = STAGES[name](ctx)
        started = time.perf_counter()
        stage.setup()
        setup = time.perf_counter() - started
        shards = stage.plan()
        started = time.perf_counter()
        stage.prepare(shards, serial_map)
        for shard in shards:
            run_shard(stage, shard)
        work = time.perf_counter() - started
        total = sum_stage_stats(run_dir, name)
        rows.append((name, total.documents_in, total.characters_in, setup, work))
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = in_process(f"{tmp}/serial")
        print(
            f"{'stage':<10}{'docs':>7}{'chars':>11}{'setup s':>9}{'work s':>9}{'docs/s':>10}{'Mchars/s':>10}"
        )
        for name, docs, chars, setup, work in rows:
            print(
                f"{name:<10}{docs:>7}{chars:>11}{setup:>9.2f}{work:>9.2f}{docs / work:>10.1f}{chars / work / 1e6:>10.2f}"
            )
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "pipeline", "run", "--run-dir", f"{tmp}/cli"],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        print(f"whole run through the CLI with a local Ray: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
