"""End-to-end cost as the corpus grows, and the speed-up from one to two workers.

    python benchmarks/growth.py [--sizes 500 2000 8000 32000] [--efficiency-size 2000] [--seed 0]
        [--workdir DIR] [--json OUT]

For each size, benchmarks/corpus_generator.py writes a corpus (kept in --workdir and reused), and
the whole pipeline runs on it through the CLI (`python -m pipeline run`, Common Crawl source = the
generated WARCs, every other source off, a local Ray of 2 CPUs), watched through /proc
(benchmarks/dedup.py's TreeWatcher). Reported per size: wall seconds, CPU seconds of the whole
process tree, documents per CPU second, the growth factor of CPU seconds against the size before
(4x documents should cost about 4x), and memory:

  peak driver     VmHWM of the `python -m pipeline` process
  peak worker     the largest VmHWM of one Ray task or actor process
  sum of workers  VmHWM summed over every Ray task and actor process (an upper bound of what the
                  workers held at once: each process's own peak, whenever it happened)
  dedup phases    the largest peak the dedup stage's own dedup/phases.json records

Parallel efficiency: at --efficiency-size the same run with runtime.num_cpus=1 and 2 (each Ray
worker is one actor per CPU); speed-up = wall(1) / wall(2), efficiency = speed-up / 2. Wall time
is what parallelism buys, so these two figures are only as good as the machine is quiet: say so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import corpus_generator  # noqa: E402
from side_by_side import machine, our_overrides, run_retrying  # noqa: E402

MIB = 2**20


@dataclass
class Point:
    documents: int
    cpus: int
    wall: float
    cpu: float
    peak_driver_mb: float
    peak_worker_mb: float
    sum_workers_mb: float
    dedup_phase_peak_mb: float | None
    warc_mb: float

    @property
    def per_core(self) -> float:
        return self.documents / self.cpu


def corpus_for(workdir: Path, documents: int, seed: int) -> Path:
    out = workdir / f"corpus-{documents}-{seed}"
    if not (out / "corpus.json").exists():
        corpus_generator.generate(out, documents, seed=seed)
    return out


def whole_run(corpus: Path, run_dir: Path, cpus: int, log: Path) -> Point:
    warcs = sorted(corpus.glob("*.warc.gz"))
    cmd = [sys.executable, "-m", "pipeline", "run", "--run-dir", str(run_dir), *our_overrides(warcs, cpus)]
    u = run_retrying(cmd, log)
    workers = [p.peak_rss for p in u.procs if p.role == "ray-worker"]
    return Point(
        documents=json.loads((corpus / "corpus.json").read_text())["documents"],
        cpus=cpus,
        wall=u.wall,
        cpu=u.cpu,
        peak_driver_mb=u.peak("driver") / MIB,
        peak_worker_mb=max(workers, default=0) / MIB,
        sum_workers_mb=sum(workers) / MIB,
        dedup_phase_peak_mb=_dedup_phase_peak(run_dir),
        warc_mb=sum(p.stat().st_size for p in warcs) / 1e6,
    )


def _dedup_phase_peak(run_dir: Path) -> float | None:
    """The largest `peak_worker_rss_mib` of the dedup stage's phases."""
    path = run_dir / "dedup" / "phases.json"
    if not path.exists():
        return None
    return max((p.get("peak_worker_rss_mib") or 0 for p in json.loads(path.read_text())), default=None)


def growth_table(points: list[Point]) -> str:
    lines = [
        "| documents | WARC MB | wall s | CPU s | x CPU (vs. previous) | docs/s per core | peak driver MB "
        "| peak worker MB | sum of workers MB | dedup phases peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    prev = None
    for p in points:
        factor = f"{p.cpu / prev.cpu:.2f} (docs x{p.documents / prev.documents:g})" if prev else "–"
        dedup = "–" if p.dedup_phase_peak_mb is None else f"{p.dedup_phase_peak_mb:.0f}"
        lines.append(
            f"| {p.documents:,} | {p.warc_mb:.1f} | {p.wall:.1f} | {p.cpu:.1f} | {factor} | {p.per_core:.1f} "
            f"| {p.peak_driver_mb:.0f} | {p.peak_worker_mb:.0f} | {p.sum_workers_mb:.0f} | {dedup} |"
        )
        prev = p
    return "\n".join(lines)


def efficiency_table(one: Point, two: Point) -> str:
    speedup = one.wall / two.wall
    return "\n".join(
        [
            "| documents | 1 CPU wall s | 2 CPUs wall s | speed-up | parallel efficiency | CPU s (1 / 2) |",
            "|---|---|---|---|---|---|",
            f"| {one.documents:,} | {one.wall:.1f} | {two.wall:.1f} | {speedup:.2f} | {speedup / 2:.2f} "
            f"| {one.cpu:.1f} / {two.cpu:.1f} |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 8000, 32000])
    p.add_argument("--efficiency-size", type=int, default=2000, help="0: skip the 1-vs-2 workers runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", help="keep corpora and runs here (corpora are reused)")
    p.add_argument("--json", help="also write the points here")
    opts = p.parse_args(argv)
    workdir = Path(opts.workdir or tempfile.mkdtemp(prefix="growth-"))
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    points = []
    for n in opts.sizes:
        corpus = corpus_for(workdir, n, opts.seed)
        run_dir = workdir / f"run-{n}-2cpu"
        shutil.rmtree(run_dir, ignore_errors=True)
        points.append(whole_run(corpus, run_dir, 2, logs / f"run-{n}-2cpu.log"))
        print(growth_table(points[-1:]).splitlines()[-1], flush=True)
    print("\nGrowth (whole pipeline, local Ray of 2 CPUs):")
    print(growth_table(points))
    efficiency = None
    if opts.efficiency_size:
        corpus = corpus_for(workdir, opts.efficiency_size, opts.seed)
        runs = {}
        for cpus in (1, 2):
            run_dir = workdir / f"eff-{opts.efficiency_size}-{cpus}cpu"
            shutil.rmtree(run_dir, ignore_errors=True)
            runs[cpus] = whole_run(corpus, run_dir, cpus, logs / f"eff-{cpus}cpu.log")
        efficiency = runs
        print("\nParallel efficiency (wall time; the machine is shared, so read it as a range):")
        print(efficiency_table(runs[1], runs[2]))
    print(machine())
    if opts.json:
        data = {"points": [asdict(p) for p in points]}
        if efficiency:
            data["efficiency"] = {str(k): asdict(v) for k, v in efficiency.items()}
        Path(opts.json).write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    sys.exit(main())
