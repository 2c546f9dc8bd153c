"""Every scale-and-speed benchmark in one command, with one summary table at the end.

    python benchmarks/run_all.py [--quick] [--workdir DIR]

runs benchmarks/side_by_side.py (ours beside datatrove and trafilatura alone), benchmarks/growth.py
(four sizes, each 4x the last, and 1 vs 2 workers) and benchmarks/profile_run.py (per stage and
per function), each as its own process with its full output in DIR/logs, then prints one table of
the headline figures. --quick uses small sizes (side by side 300 documents, growth 125 500 2000,
profile 200) so that the whole takes minutes, not hours; the default sizes are side by side
2,000, growth 500 2k 8k 32k, profile 1,000.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SIZES = {
    "quick": {"side": 300, "growth": [125, 500, 2000], "efficiency": 500, "profile": 200},
    "full": {"side": 2000, "growth": [500, 2000, 8000, 32000], "efficiency": 2000, "profile": 1000},
}


def run(name: str, args: list[str], logs: Path) -> str:
    log = logs / f"{name}.log"
    print(f"running {name}: {' '.join(args)} (output in {log})", flush=True)
    proc = subprocess.run([sys.executable, str(BENCH / args[0]), *args[1:]], capture_output=True, text=True)
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        print(f"  {name} failed (exit {proc.returncode}); see {log}", flush=True)
    return proc.stdout


def summary(work: Path) -> str:
    lines = ["| measure | ours | datatrove / baseline | ratio | goal |", "|---|---|---|---|---|"]
    side = work / "side_by_side.json"
    if side.exists():
        data = json.loads(side.read_text())
        rows = {(r["contender"], r["stage"]): r for r in data["rows"]}
        fixed = data["fixed_cpu"]

        def rate(contender: str, stages: list[str], extra: float = 0.0) -> float | None:
            got = [rows.get((contender, s)) for s in stages]
            if not all(got):
                return None
            return got[0]["documents"] / (sum(r["cpu"] for r in got) + extra)

        ours_e2e = rate("ours", ["fetch", "extract", "clean", "dedup", "quality", "tokenize"], fixed["ours"])
        theirs_e2e = rate("datatrove", ["fetch", "extract", "clean", "dedup", "tokenize"], fixed["datatrove"])
        for label, o, t, goal in (
            ("end to end, docs/s per core", ours_e2e, theirs_e2e, 4.0),
            ("dedup, docs/s per core", rate("ours", ["dedup"]), rate("datatrove", ["dedup"]), 10.0),
            (
                "extract vs. trafilatura alone, docs/s per core",
                rate("ours", ["extract"]),
                rate("trafilatura", ["extract"]),
                0.9,
            ),
        ):
            ratio = o / t if o and t else None
            verdict = "–" if ratio is None else ("met" if ratio >= goal else "not met")
            lines.append(
                f"| {label} | {_fmt(o)} | {_fmt(t)} | {'–' if ratio is None else f'{ratio:.2f}'} | >= {goal:g}: {verdict} |"
            )
    growth = work / "growth.json"
    if growth.exists():
        data = json.loads(growth.read_text())
        pts = data["points"]
        if len(pts) >= 2:
            first, last = pts[0], pts[-1]
            factor = (last["cpu"] / first["cpu"]) / (last["documents"] / first["documents"])
            lines.append(
                f"| growth {first['documents']:,} -> {last['documents']:,} docs: CPU per document, last / first "
                f"| {factor:.2f} | | | ~1 (linear) |"
            )
            lines.append(
                f"| peak memory at {last['documents']:,} docs: max worker / sum of workers, MB "
                f"| {last['peak_worker_mb']:.0f} / {last['sum_workers_mb']:.0f} | | | |"
            )
        eff = data.get("efficiency")
        if eff:
            speedup = eff["1"]["wall"] / eff["2"]["wall"]
            lines.append(
                f"| 1 -> 2 workers at {eff['1']['documents']:,} docs: speed-up (efficiency) "
                f"| {speedup:.2f} ({speedup / 2:.2f}) | | | |"
            )
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:,.1f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: minutes, not hours")
    p.add_argument("--workdir", help="keep corpora, runs, logs and JSON here")
    p.add_argument("--skip", nargs="*", default=[], choices=["side_by_side", "growth", "profile"])
    opts = p.parse_args(argv)
    sizes = SIZES["quick" if opts.quick else "full"]
    work = Path(opts.workdir or tempfile.mkdtemp(prefix="bench-all-"))
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if "side_by_side" not in opts.skip:
        out = run(
            "side_by_side",
            [
                "side_by_side.py",
                "--documents",
                str(sizes["side"]),
                "--workdir",
                str(work / "side"),
                "--json",
                str(work / "side_by_side.json"),
            ],
            logs,
        )
        print(out)
    if "growth" not in opts.skip:
        out = run(
            "growth",
            [
                "growth.py",
                "--sizes",
                *map(str, sizes["growth"]),
                "--efficiency-size",
                str(sizes["efficiency"]),
                "--workdir",
                str(work / "growth"),
                "--json",
                str(work / "growth.json"),
            ],
            logs,
        )
        print(out)
    if "profile" not in opts.skip:
        out = run(
            "profile",
            ["profile_run.py", "--documents", str(sizes["profile"]), "--workdir", str(work / "profile")],
            logs,
        )
        print("\n".join(line for line in out.splitlines() if not line.startswith(("  ", "ncalls", "---"))))
    print("\nSummary:")
    print(summary(work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
