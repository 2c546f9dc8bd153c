"""Where an end-to-end run spends its time: per stage, and per function under cProfile.

    python benchmarks/profile_run.py [--documents 500] [--seed 0] [--top 25] [--workdir DIR]

1. The whole pipeline through the CLI on a generated corpus (benchmarks/corpus_generator.py;
   Common Crawl source = its WARCs, every other source off, a local Ray of 2 CPUs): each stage's
   `seconds` from its stats.json (the shards' wall seconds, summed over workers) and dedup's
   phases.json.
2. The same stages in this one process, shard after shard without Ray (as a Ray worker runs
   them), each under cProfile with a CPU-time clock (wall time is noise on a shared machine):
   CPU seconds per stage (this process and its reaped children) and the functions with the most
   own time (tottime) and the most time below them (cumtime). The extract stage runs trafilatura
   in a child process with a time limit, which cProfile cannot see into (the stage's CPU seconds
   include it, its function list does not), so trafilatura itself is profiled too, in-process,
   on the same pages.

The three largest costs are printed last: the stages (or the trafilatura child) with the most CPU.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for p in (str(REPO), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

import corpus_generator  # noqa: E402
from side_by_side import STAGES, machine, our_overrides, run_retrying  # noqa: E402


def cli_run(warcs: list[Path], run_dir: Path, log: Path) -> tuple[dict[str, float], list[dict], float, float]:
    cmd = [sys.executable, "-m", "pipeline", "run", "--run-dir", str(run_dir), *our_overrides(warcs, 2)]
    u = run_retrying(cmd, log)
    seconds = {s: json.loads((run_dir / s / "stats.json").read_text()).get("seconds", 0.0) for s in STAGES}
    phases = json.loads((run_dir / "dedup" / "phases.json").read_text())
    return seconds, phases, u.wall, u.cpu


def in_process(warcs: list[Path], run_dir: Path, top: int, profile: bool) -> tuple[dict, dict, dict]:
    """CPU seconds, documents in and (with `profile`) a pstats report per stage. cProfile with a
    CPU clock slows Python code several times over, so the CPU seconds come from a run without it."""
    from pipeline.config import load_config
    from pipeline.shards import run_shard, sum_stage_stats
    from pipeline.stage import RunContext
    from pipeline.stages import STAGES as STAGE_CLASSES

    overrides = our_overrides(warcs, 1)[1::2]  # the values of "--set KEY=VALUE"
    config = load_config(None, overrides)
    ctx = RunContext(
        run_dir=str(run_dir), config=config, config_sha256=config.sha256(), pipeline_version="profile"
    )
    cpu, docs, reports = {}, {}, {}
    for name in STAGES:
        stage = STAGE_CLASSES[name](ctx)
        profiler = cProfile.Profile(time.process_time)  # CPU, not wall: the machine is shared
        started = _cpu()
        if profile:
            profiler.enable()
        stage.setup()
        shards = stage.plan()
        stage.prepare(shards, lambda fn, items: [fn(i) for i in items])
        for shard in shards:
            run_shard(stage, shard)
        stage.teardown()
        profiler.disable()
        cpu[name] = _cpu() - started  # with the trafilatura child, reaped at teardown
        reports[name] = _stats_text(profiler, top) if profile else ""
        docs[name] = sum_stage_stats(str(run_dir), name).documents_in
    return cpu, docs, reports


def _cpu() -> float:
    """CPU seconds of this process and of its reaped children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def trafilatura_alone(warcs: list[Path], top: int) -> tuple[float, int, str]:
    import trafilatura

    from filters.html import TRAFILATURA_PARAMS, decode_html
    from sources.warc import iter_warc_responses

    pages = [
        (decode_html(r.payload, r.content_type).text, r.target_uri)
        for path in warcs
        for r in iter_warc_responses(str(path))
    ]
    started = time.process_time()
    for text, url in pages:
        trafilatura.extract(text, url=url, **TRAFILATURA_PARAMS)
    seconds = time.process_time() - started
    profiler = cProfile.Profile(time.process_time)  # CPU, not wall: the machine is shared
    profiler.enable()
    for text, url in pages:
        trafilatura.extract(text, url=url, **TRAFILATURA_PARAMS)
    profiler.disable()
    return seconds, len(pages), _stats_text(profiler, top)


def _stats_text(profiler: cProfile.Profile, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--documents", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=25, help="functions listed per stage")
    p.add_argument("--workdir", help="keep the corpus, runs and profiles here")
    p.add_argument("--no-cli", action="store_true", help="only the in-process part (no Ray)")
    opts = p.parse_args(argv)
    work = Path(opts.workdir or tempfile.mkdtemp(prefix="profile-"))
    corpus = work / f"corpus-{opts.documents}-{opts.seed}"
    if not (corpus / "corpus.json").exists():
        corpus_generator.generate(corpus, opts.documents, seed=opts.seed)
    warcs = sorted(corpus.glob("*.warc.gz"))
    (work / "logs").mkdir(parents=True, exist_ok=True)
    for d in ("cli", "inproc", "inproc-profiled"):
        shutil.rmtree(work / d, ignore_errors=True)

    if opts.no_cli:
        return _in_process_part(warcs, work, opts)
    seconds, phases, wall, tree_cpu = cli_run(warcs, work / "cli", work / "logs" / "cli.log")
    print(
        f"1. the CLI run, {opts.documents} documents: wall {wall:.1f} s, CPU {tree_cpu:.1f} s (whole process tree)"
    )
    print("| stage | shard seconds (stats.json) | share |")
    print("|---|---|---|")
    total = sum(seconds.values()) or 1.0
    for s in STAGES:
        print(f"| {s} | {seconds[s]:.1f} | {seconds[s] / total:.0%} |")
    print("dedup phases: " + ", ".join(f"{ph['phase']} {ph['seconds']:.1f} s" for ph in phases))
    return _in_process_part(warcs, work, opts)


def _in_process_part(warcs: list[Path], work: Path, opts: argparse.Namespace) -> int:
    cpu, docs, _ = in_process(warcs, work / "inproc", opts.top, profile=False)
    _, _, reports = in_process(warcs, work / "inproc-profiled", opts.top, profile=True)
    traf_cpu, traf_pages, traf_report = trafilatura_alone(warcs, opts.top)
    (work / "profiles").mkdir(exist_ok=True)
    for s, text in reports.items():
        (work / "profiles" / f"{s}.txt").write_text(text)
    (work / "profiles" / "trafilatura.txt").write_text(traf_report)
    print(
        f"\n2. in-process CPU seconds per stage (setup included), one process, no Ray (profiles in {work / 'profiles'}):"
    )
    print("| stage | documents in | CPU s | docs/s per core | share |")
    print("|---|---|---|---|---|")
    total = sum(cpu.values()) or 1.0
    for s in STAGES:
        print(f"| {s} | {docs[s]} | {cpu[s]:.1f} | {docs[s] / cpu[s]:,.1f} | {cpu[s] / total:.0%} |")
    print(
        f"| trafilatura alone, in-process | {traf_pages} | {traf_cpu:.1f} | {traf_pages / traf_cpu:,.1f} | |"
    )
    for s in STAGES:
        print(f"\n--- {s}: top functions by own time ---")
        print(_head(reports[s], opts.top))
    print("\n--- trafilatura alone: top functions by own time ---")
    print(_head(traf_report, opts.top))

    costs = sorted(cpu.items(), key=lambda kv: kv[1], reverse=True)[:3]
    print(
        "\nthe three largest costs (in-process CPU): "
        + "; ".join(f"{s} {c:.1f} s ({c / total:.0%})" for s, c in costs)
    )
    print(machine())
    return 0


def _head(report: str, top: int) -> str:
    """The first (tottime-sorted) table of a pstats report, without its preamble."""
    lines = report.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip().startswith("ncalls")), 0)
    return "\n".join(lines[start : start + top + 1])


if __name__ == "__main__":
    sys.exit(main())
