"""Near-duplicate removal measured (issue 7): quality against planted truth, speed beside datatrove,
growth. Prints figures; asserts nothing.

    python benchmarks/dedup.py                  # quality + speed, engines core, stage, datatrove
    python benchmarks/dedup.py quality [--engines core stage datatrove] [--docs 2000] [--threshold 0.8]
    python benchmarks/dedup.py speed   [--engines core stage datatrove] [--docs 2000]
    python benchmarks/dedup.py growth --sizes 3125 12500 50000 200000 [--engine stage|core]

Common options: --seed, --dup-fraction, --cpus (Ray CPUs for the stage, default 2), --shard-docs
(documents per fabricated clean shard, default 1000), --workdir (kept; default a temporary
directory, removed), --config and --set KEY=VALUE (the stage's config; the core engine takes its
MinHash settings from it too, e.g. --set dedup.bands=40 --set dedup.rows=20).

The corpus is benchmarks/dedup_corpus.py's: real Japanese text with planted near-duplicates whose
exact character 5-gram Jaccard is known. It is written once as a finished clean stage (docs Parquet,
manifest and stats per shard, the stage's stats.json) in a run directory that every engine reads:

  core       filters.minhash (signature per document, band_hashes per shard) and
             filters.lsh_clusters (candidate_pairs, connected_components) in one process on the
             clean shards, with the stage's MinHash settings.
  stage      the real stage: `python -m pipeline run --stage dedup --run-dir RUN` (local Ray with
             --cpus CPUs); clusters are documents sharing `dedup_cluster_id` with
             `dedup_cluster_size` > 1 in the dedup manifests. Run twice: the second run finds every
             shard done, so its cost (interpreter, imports, Ray start and stop) is the fixed
             overhead, subtracted in the "net" figures. The stage's own dedup/phases.json (wall
             seconds and peak worker RSS per phase) is printed too.
  datatrove  datatrove 0.10.1's MinHash with LLM-jp v4's settings (Sudachi word 5-grams via
             Languages.japanese, 20 buckets x 10 hashes, 64-bit), each of its four steps run by a
             LocalPipelineExecutor with workers=1 (in-process) on the same clean shards
             (ParquetReader); clusters from MinhashDedupFilter's minhash_cluster_id.

Each engine runs in its own process tree, watched from here by polling /proc: CPU seconds
(utime + stime) and peak RSS (VmHWM) of every process, so Ray workers are measured one by one.
"Per core" figures divide by CPU seconds, so they hold on a shared machine.

Quality. A planted pair is two documents of one family (a base and its variants, or two variants);
"found" means both ended in the same duplicate cluster. Truth Jaccard is on character 5-grams of
the text the stage sees (filters.minhash.jaccard), whatever the engine shingles.
  recall@T     planted pairs with Jaccard >= T that were found / planted pairs with Jaccard >= T
  precision    found pairs that are planted pairs (of any Jaccard) / all found pairs; a pair of
               documents from different families in one cluster is a false positive
  precision@T  found planted pairs with Jaccard >= T / all found pairs (a found planted pair below
               T counts against it)
T is --threshold (default 0.8). Every false positive pair (up to --fp-sample of them) is measured:
its exact Jaccard says whether it is a real miss of the engine or an unplanted near-duplicate the
generator made by accident.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from dedup_corpus import BUCKET_LABELS, KIND_WEIGHTS, DedupCorpus, TruthPair, bucket_of  # noqa: E402

ENGINES = ("core", "stage", "datatrove")
MB = 1e6


# --- the corpus as a finished clean stage ---------------------------------------------------


@dataclass
class CorpusInfo:
    docs: int
    bytes: int  # UTF-8 bytes of the texts
    chars: int
    shards: int
    seconds: float  # to generate and write


@dataclass(frozen=True)
class CorpusArgs:
    n_docs: int
    seed: int
    dup_fraction: float

    def corpus(self) -> DedupCorpus:
        return _corpus(self)


_CORPORA: dict[CorpusArgs, DedupCorpus] = {}


def _corpus(args: CorpusArgs) -> DedupCorpus:
    # built once per process; the forked workers that write shards inherit it
    if args not in _CORPORA:
        _CORPORA[args] = DedupCorpus(args.n_docs, args.seed, args.dup_fraction)
    return _CORPORA[args]


def _write_shard(job: tuple[CorpusArgs, str, int, int, int, str]) -> dict:
    """Write clean shard ``index`` (positions start .. stop-1) the way the clean stage commits one."""
    import pyarrow as pa

    from manifests.io import atomic_write_json, atomic_write_parquet, manifest_table, write_manifest
    from manifests.layout import docs_path, manifest_path, rejected_path, shard_stats_path
    from manifests.schema import new_row, sha256_hex
    from pipeline import __version__
    from pipeline.stage import REJECTED_SCHEMA
    from pipeline.stats import ShardStats

    args, run_dir, index, start, stop, config_sha = job
    corpus = args.corpus()
    name = f"part-{index:05d}"
    ids, texts, rows = [], [], []
    for pos in range(start, stop):
        doc_id, text = corpus.doc_id(pos), corpus.text(pos)
        ids.append(doc_id)
        texts.append(text)
        day = pos % 365  # a spread of crawl dates, so a "newest" survivor policy has work to do
        rows.append(
            new_row(
                doc_id=doc_id,
                source="local",
                source_uri=f"bench://dedup/{doc_id}",
                locator=json.dumps({"benchmark": "dedup", "seed": args.seed, "position": pos}),
                retrieved_at=f"2024-{1 + day // 31 % 12:02d}-{1 + day % 28:02d}T00:00:00+00:00",
                raw_sha256=sha256_hex(text),
                text_sha256=sha256_hex(text),
                license="NOASSERTION",
                legal_basis=["JP-Copyright-Art30-4"],
                osaid_class="public",
                redistribution="locator_only",
                optout="{}",
                pipeline_version=__version__,
                config_sha256=config_sha,
            )
        )
    table = pa.table(
        {
            "doc_id": pa.array(ids, pa.string()),
            "source": pa.array(["local"] * len(ids), pa.string()),
            "url": pa.array([None] * len(ids), pa.string()),
            "text": pa.array(texts, pa.string()),
        }
    )
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    n_chars = sum(len(t) for t in texts)
    stats = ShardStats(
        shards=1,
        documents_in=len(ids),
        documents_out=len(ids),
        characters_in=n_chars,
        characters_out=n_chars,
        bytes_in=table.nbytes,
        bytes_out=table.nbytes,
    )
    atomic_write_parquet(docs_path(run_dir, "clean", name), table)
    atomic_write_parquet(rejected_path(run_dir, "clean", name), REJECTED_SCHEMA.empty_table())
    atomic_write_json(shard_stats_path(run_dir, "clean", name), stats.to_dict())
    write_manifest(manifest_path(run_dir, "clean", name), manifest_table(rows))  # last: the shard is done
    return {"stats": stats.to_dict(), "bytes": n_bytes, "chars": n_chars}


def config_sha256(config_path: str | None, overrides: list[str]) -> str:
    from pipeline.config import load_config

    return load_config(config_path, overrides).sha256()


def core_params(opts: argparse.Namespace) -> dict:
    """The stage's MinHash settings (config plus --set), so that core and stage are comparable."""
    from pipeline.config import load_config

    dedup = load_config(opts.config, stage_overrides(opts)).dedup
    return {
        "shingle_size": dedup.shingle_size,
        "bands": dedup.bands,
        "rows": dedup.rows,
        "hash_bits": dedup.hash_bits,
        "seed": dedup.seed,
    }


def fabricate_clean_stage(
    args: CorpusArgs, run_dir: str, shard_docs: int, jobs: int, config_sha: str
) -> CorpusInfo:
    """A finished clean stage in ``run_dir``: every shard committed, then the stage's stats.json."""
    import multiprocessing

    from manifests.io import atomic_write_json
    from manifests.layout import stage_stats_path
    from pipeline.stats import ShardStats

    started = time.perf_counter()
    args.corpus().text(0)  # plan and text pool built once, before the fork, and shared
    bounds = [(s, min(s + shard_docs, args.n_docs)) for s in range(0, args.n_docs, shard_docs)]
    work = [(args, run_dir, i, a, b, config_sha) for i, (a, b) in enumerate(bounds)]
    if jobs > 1 and len(work) > 1:
        # fork: the workers inherit the loaded text pool instead of reading it again
        with multiprocessing.get_context("fork").Pool(min(jobs, len(work))) as pool:
            results = pool.map(_write_shard, work, chunksize=1)
    else:
        results = [_write_shard(w) for w in work]
    total = ShardStats()
    for r in results:
        total = total + ShardStats.from_dict(r["stats"])
    atomic_write_json(stage_stats_path(run_dir, "clean"), total.to_dict())
    return CorpusInfo(
        docs=args.n_docs,
        bytes=sum(r["bytes"] for r in results),
        chars=sum(r["chars"] for r in results),
        shards=len(bounds),
        seconds=time.perf_counter() - started,
    )


def prepare_run_dir(args: CorpusArgs, run_dir: str, opts: argparse.Namespace) -> CorpusInfo:
    """The clean stage for ``args`` in ``run_dir``: written, or with --reuse taken as it is when a
    finished one is there already (only the dedup stage's output is removed, so it runs afresh)."""
    from manifests.layout import is_stage_complete

    if opts.reuse and is_stage_complete(run_dir, "clean"):
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        shutil.rmtree(Path(run_dir, "dedup"), ignore_errors=True)
        Path(run_dir, "config.resolved.yaml").unlink(missing_ok=True)
        paths = clean_shard_paths(run_dir)
        n_bytes = n_chars = docs = 0
        for path in paths:
            text = pq.read_table(path, columns=["text"]).column("text")
            docs += len(text)
            n_bytes += pc.sum(pc.binary_length(text)).as_py() or 0
            n_chars += pc.sum(pc.utf8_length(text)).as_py() or 0
        if docs != args.n_docs:
            raise SystemExit(f"--reuse: {run_dir} holds {docs} documents, not {args.n_docs}")
        return CorpusInfo(docs, n_bytes, n_chars, len(paths), 0.0)
    config_sha = config_sha256(opts.config, stage_overrides(opts))
    return fabricate_clean_stage(args, run_dir, opts.shard_docs, opts.cpus, config_sha)


def clean_shard_paths(run_dir: str) -> list[str]:
    from manifests.layout import docs_path, done_shards

    return [docs_path(run_dir, "clean", name) for name in done_shards(run_dir, "clean")]


# --- watching a process tree ----------------------------------------------------------------


@dataclass
class Proc:
    pid: int
    role: str  # driver, ray-worker, ray-system
    name: str
    peak_rss: int = 0  # bytes (VmHWM)
    cpu: float = 0.0  # seconds (utime + stime), as last seen


@dataclass
class Usage:
    """What a watched command cost: wall time, and CPU and peak RSS per process."""

    wall: float = 0.0
    procs: list[Proc] = field(default_factory=list)
    returncode: int = 0
    children_cpu: float = 0.0  # RUSAGE_CHILDREN delta: processes reaped by their parents

    @property
    def cpu(self) -> float:
        return max(sum(p.cpu for p in self.procs), self.children_cpu)

    def peak(self, role: str) -> int:
        return max((p.peak_rss for p in self.procs if p.role == role), default=0)

    def count(self, role: str) -> int:
        return sum(1 for p in self.procs if p.role == role)


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read_stat(pid: int) -> tuple[int, float] | None:
    """(ppid, cpu seconds) of a live process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("utf-8", "replace")
        fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def _read_memory_and_cmdline(pid: int) -> tuple[int, str] | None:
    """(VmHWM bytes, cmdline) of a live process, None if it is gone."""
    try:
        hwm = 0
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
                    break
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        return hwm, cmd
    except (OSError, ValueError, IndexError):
        return None


def _role(pid: int, root: int, cmd: str) -> str:
    """driver (the command itself), ray-worker (task and actor processes) or ray-system (GCS,
    raylet, agents, monitors: Ray's fixed cost)."""
    if pid == root:
        return "driver"
    first = cmd.split(" ", 1)[0]
    if first.startswith("ray::"):
        return "ray-system" if first.endswith("Agent") else "ray-worker"
    if first.endswith(("python", "python3")) and "default_worker.py" in cmd:
        return "ray-worker"  # a worker before it names itself ray::IDLE
    return "ray-system"


class TreeWatcher(threading.Thread):
    """Polls /proc for ``root`` and all its descendants: the highest VmHWM (the kernel's own peak,
    so nothing between polls is missed) and the latest CPU time of each process."""

    def __init__(self, root: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.procs: dict[int, Proc] = {}
        self._halt = threading.Event()

    def sample(self) -> None:
        # parents of every process first (one small read each), then the rest only for the tree
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (got := _read_stat(int(entry))):
                stats[int(entry)] = got
        children = defaultdict(list)
        for pid, (ppid, _) in stats.items():
            children[ppid].append(pid)
        tree, frontier = {self.root}, [self.root]
        while frontier:
            for child in children.get(frontier.pop(), ()):
                if child not in tree:
                    tree.add(child)
                    frontier.append(child)
        for pid in tree & stats.keys():
            got = _read_memory_and_cmdline(pid)
            if got is None:
                continue
            hwm, cmd = got
            proc = self.procs.get(pid)
            if proc is None:
                proc = self.procs[pid] = Proc(pid, _role(pid, self.root, cmd), cmd[:80])
            elif cmd and proc.role != "driver":
                proc.role, proc.name = _role(pid, self.root, cmd), cmd[:80]  # a worker renames itself
            proc.peak_rss = max(proc.peak_rss, hwm)
            proc.cpu = max(proc.cpu, stats[pid][1])

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def run_watched(cmd: list[str], log: Path, env: dict | None = None) -> Usage:
    """Run ``cmd`` (stdout and stderr to ``log``) and watch its whole process tree."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
        watcher = TreeWatcher(proc.pid)
        watcher.start()
        returncode = proc.wait()
        watcher.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Usage(
        wall=time.perf_counter() - started,
        procs=list(watcher.procs.values()),
        returncode=returncode,
        children_cpu=children_cpu,
    )


# --- engines --------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    cpu: float | None  # None: only the wall time is known (the stage's own phases.json)
    wall: float
    peak_mib: float | None = None  # the largest worker peak RSS, when the stage reports it

    def add(self, cpu: float, wall: float) -> None:
        self.cpu, self.wall = (self.cpu or 0.0) + cpu, self.wall + wall


@dataclass
class EngineRun:
    engine: str
    docs: int
    bytes: int
    clusters: dict[str, str]  # doc_id -> cluster label, for documents in clusters of 2 or more
    phases: list[Phase] = field(default_factory=list)
    usage: Usage | None = None
    overhead: Usage | None = None  # the stage's no-op rerun
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _timed(phases: list[Phase], name: str):
    """Append a Phase with this process's CPU time and the wall time of the block."""
    cpu, wall = time.process_time(), time.perf_counter()
    yield
    phases.append(Phase(name, time.process_time() - cpu, time.perf_counter() - wall))


def engine_core(run_dir: str, params_kw: dict) -> dict:
    """Signatures per document, band hashes per shard, candidate pairs, connected components, all in
    one process.

    Reads one clean shard at a time and keeps only the (docs x bands) band-hash matrix, so memory
    grows with the number of documents, not with their text."""
    import numpy as np
    import pyarrow.parquet as pq

    from filters.lsh_clusters import candidate_pairs, connected_components
    from filters.minhash import MinHashParams, band_hashes, signature

    params = MinHashParams(**params_kw)
    ids: list[str] = []
    bands: list[np.ndarray] = []
    n_bytes = 0
    read, sig, band = Phase("read", 0.0, 0.0), Phase("signatures", 0.0, 0.0), Phase("band hashes", 0.0, 0.0)
    for path in clean_shard_paths(run_dir):
        c0, w0 = time.process_time(), time.perf_counter()
        table = pq.read_table(path, columns=["doc_id", "text"])
        shard_ids, texts = table.column("doc_id").to_pylist(), table.column("text").to_pylist()
        c1, w1 = time.process_time(), time.perf_counter()
        sigs = np.stack([signature(text, params) for text in texts]) if texts else None
        c2, w2 = time.process_time(), time.perf_counter()
        if sigs is not None:
            bands.append(band_hashes(sigs, params))
        c3, w3 = time.process_time(), time.perf_counter()
        read.add(c1 - c0, w1 - w0)
        sig.add(c2 - c1, w2 - w1)
        band.add(c3 - c2, w3 - w2)
        ids.extend(shard_ids)
        n_bytes += sum(len(t.encode("utf-8")) for t in texts)  # outside the timed parts
    phases = [read, sig, band]
    matrix = np.concatenate(bands) if bands else np.empty((0, params.bands), dtype=np.uint64)
    del bands
    with _timed(phases, "candidates"):
        edges = candidate_pairs(np.arange(len(ids)), matrix)
    with _timed(phases, "components"):
        labels = connected_components(len(ids), edges)
    sizes = Counter(labels.tolist())
    clusters = {ids[i]: str(int(lab)) for i, lab in enumerate(labels.tolist()) if sizes[lab] > 1}
    return {
        "docs": len(ids),
        "bytes": n_bytes,
        "clusters": clusters,
        "phases": [asdict(p) for p in phases],
        "notes": [f"{params.id()}, {len(edges)} candidate edges (stars)"],
    }


def _xxhash_shim() -> list[str]:
    """datatrove 0.10.1 hashes each shingle as a str with xxhash, which xxhash 4 refuses ("Strings
    must be encoded before hashing"; datatrove's own extra pins xxhash<4, the venv has 4.x). Encode
    to UTF-8 first, which is what xxhash 3 did with a str, so the hashes are the same."""
    import xxhash
    from datatrove.utils.hashes import xxhash as dt_xxhash

    if int(xxhash.VERSION.split(".")[0]) < 4:
        return []

    def as_bytes(data: str | bytes) -> bytes:
        return data.encode("utf-8") if isinstance(data, str) else data

    dt_xxhash.xxhash32 = lambda data: xxhash.xxh32_intdigest(as_bytes(data))
    dt_xxhash.xxhash64 = lambda data: xxhash.xxh64_intdigest(as_bytes(data))
    return [f"xxhash {xxhash.VERSION} refuses str: datatrove's xxhash64 shimmed to encode UTF-8 first"]


def engine_datatrove(run_dir: str, work: str) -> dict:
    """datatrove's four MinHash steps on the clean shards, each by a one-worker local executor."""
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

    notes = _xxhash_shim()
    # LLM-jp v4: Sudachi word 5-grams, 20 bands x 10 rows, 64-bit hashes
    config = MinhashConfig(
        n_grams=5, num_buckets=20, hashes_per_bucket=10, hash_config=HashConfig(precision=64)
    )

    def reader():
        return ParquetReader(
            f"{run_dir}/clean",
            glob_pattern="part-?????.parquet",
            recursive=False,
            text_key="text",
            id_key="doc_id",
        )

    steps = [
        (
            "signatures",
            [reader(), MinhashDedupSignature(f"{work}/sigs", config, language=Languages.japanese)],
            1,
        ),
        # stage 2 asserts tasks % num_buckets == 0: one task per bucket, still one worker
        (
            "buckets",
            [MinhashDedupBuckets(f"{work}/sigs", f"{work}/buckets", config=config)],
            config.num_buckets,
        ),
        (
            "cluster",
            [
                MinhashDedupCluster(
                    f"{work}/buckets",
                    f"{work}/remove",
                    config=config,
                    save_cluster_id=True,
                    save_cluster_size=True,
                )
            ],
            1,
        ),
        (
            "filter",
            [
                reader(),
                MinhashDedupFilter(
                    f"{work}/remove",
                    load_cluster_ids=True,
                    load_cluster_sizes=True,
                    exclusion_writer=ParquetWriter(f"{work}/removed"),
                ),
                ParquetWriter(f"{work}/kept"),
            ],
            1,
        ),
    ]
    phases: list[Phase] = []
    for name, pipeline, tasks in steps:
        executor = LocalPipelineExecutor(
            pipeline=pipeline, tasks=tasks, workers=1, logging_dir=f"{work}/logs/{name}", skip_completed=False
        )
        with _timed(phases, name):
            executor.run()

    # JsonlWriter would need orjson, which is not installed; ParquetWriter needs only pyarrow
    import pyarrow.parquet as pq

    clusters, docs, n_bytes = {}, 0, 0
    for folder in ("kept", "removed"):
        for path in sorted(Path(work, folder).glob("*.parquet")):
            table = pq.read_table(path, columns=["id", "text", "metadata"])
            docs += table.num_rows
            n_bytes += sum(len(t.encode("utf-8")) for t in table.column("text").to_pylist())
            for doc, meta in zip(table.column("id").to_pylist(), table.column("metadata").to_pylist()):
                if meta.get("minhash_cluster_size", 1) > 1:
                    clusters[doc] = str(meta["minhash_cluster_id"])
    return {
        "docs": docs,
        "bytes": n_bytes,
        "clusters": clusters,
        "phases": [asdict(p) for p in phases],
        "notes": [f"datatrove MinhashConfig {config}, language {Languages.japanese}", *notes],
    }


def _engine_main(args: argparse.Namespace) -> int:
    """The child side of run_engine: run one engine, write its result as JSON."""
    if args.engine == "core":
        result = engine_core(args.run_dir, json.loads(args.params))
    elif args.engine == "datatrove":
        result = engine_datatrove(args.run_dir, args.work)
    else:
        raise SystemExit(f"unknown engine {args.engine}")
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    return 0


def _ray_env() -> dict:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # always a local Ray of --cpus CPUs
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_engine(engine: str, run_dir: str, work: Path, opts: argparse.Namespace) -> EngineRun:
    """Run ``engine`` in a watched child process tree on the clean stage in ``run_dir``."""
    work.mkdir(parents=True, exist_ok=True)
    if engine == "stage":
        return run_stage(run_dir, work, opts)
    out = work / f"{engine}.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "engine",
        "--engine",
        engine,
        "--run-dir",
        run_dir,
        "--work",
        str(work / engine),
        "--out",
        str(out),
        "--params",
        json.dumps(core_params(opts)),
    ]
    usage = run_watched(cmd, work / f"{engine}.log", env=_ray_env())
    if usage.returncode != 0:
        raise SystemExit(f"engine {engine} failed (exit {usage.returncode}); see {work / f'{engine}.log'}")
    result = json.loads(out.read_text(encoding="utf-8"))
    return EngineRun(
        engine=engine,
        docs=result["docs"],
        bytes=result["bytes"],
        clusters=result["clusters"],
        phases=[Phase(**p) for p in result["phases"]],
        usage=usage,
        notes=result["notes"],
    )


def stage_command(run_dir: str, opts: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "pipeline", "run", "--stage", "dedup", "--run-dir", run_dir]
    if opts.config:
        cmd += ["--config", opts.config]
    for override in stage_overrides(opts):
        cmd += ["--set", override]
    return cmd


def stage_overrides(opts: argparse.Namespace) -> list[str]:
    return [f"runtime.num_cpus={opts.cpus}", *opts.set]


def run_stage(run_dir: str, work: Path, opts: argparse.Namespace) -> EngineRun:
    """The dedup stage through the CLI, then again as a no-op (every shard done) for the overhead."""
    import polars as pl

    cmd = stage_command(run_dir, opts)
    usage = run_watched(cmd, work / "stage.log", env=_ray_env())
    if usage.returncode != 0:
        # what it cost until it failed, and the end of its log (a Ray killed from outside, e.g. by
        # another user's `ray stop --force`, shows up as LocalRayletDiedError or a dead actor)
        tail = (work / "stage.log").read_text(encoding="utf-8", errors="replace")[-1500:]
        raise SystemExit(
            f"dedup stage failed (exit {usage.returncode}) after {usage.wall:.0f} s, {usage.cpu:.0f} CPU s, "
            f"peak RSS MB driver / worker {_peaks(usage)}; "
            f"log {work / 'stage.log'} ends:\n{tail}"
        )
    overhead = run_watched(cmd, work / "stage-noop.log", env=_ray_env())
    manifests = pl.read_parquet(
        f"{run_dir}/dedup/part-*.manifest.parquet",
        columns=["doc_id", "dedup_cluster_id", "dedup_cluster_size"],
    )
    clustered = manifests.filter(pl.col("dedup_cluster_size").fill_null(1) > 1)
    clusters = dict(zip(clustered["doc_id"].to_list(), clustered["dedup_cluster_id"].to_list()))
    stats = json.loads(Path(run_dir, "dedup", "stats.json").read_text())
    return EngineRun(
        engine="stage",
        docs=manifests.height,
        bytes=0,  # filled in by the caller from the corpus
        clusters=clusters,
        phases=stage_phases(run_dir, stats),
        usage=usage,
        overhead=overhead,
        notes=[f"rejected {stats.get('documents_rejected')}: {stats.get('rejected_by_reason')}"],
    )


def stage_phases(run_dir: str, stats: dict) -> list[Phase]:
    """The stage's phases.json (prepare's parallel steps; repeated ones, such as the rounds of the
    connected components, summed), then the shard pass (seconds summed over shards): wall seconds
    only, with the largest worker peak RSS the stage itself recorded."""
    merged: dict[str, list] = {}  # phase -> [calls, tasks, seconds, peak MiB]
    path = Path(run_dir, "dedup", "phases.json")
    for p in json.loads(path.read_text()) if path.exists() else []:
        m = merged.setdefault(p["phase"], [0, 0, 0.0, 0.0])
        m[0] += 1
        m[1] += p["tasks"]
        m[2] += p["seconds"]
        m[3] = max(m[3], p.get("peak_worker_rss_mib", 0.0))
    phases = []
    for name, (calls, tasks, seconds, peak) in merged.items():
        rounds = f"{calls} rounds, " if calls > 1 else ""
        phases.append(Phase(f"{name} ({rounds}{tasks} tasks)", None, seconds, peak))
    phases.append(Phase("shards (process, summed)", None, stats.get("seconds", 0.0)))
    return phases


def stage_worker_peak_mib(run: EngineRun) -> float:
    """The largest peak RSS the stage's phases.json reports (0 when it writes none)."""
    return max((p.peak_mib or 0.0 for p in run.phases), default=0.0)


# --- quality --------------------------------------------------------------------------------


@dataclass
class Quality:
    engine: str
    threshold: float
    clusters: int
    clustered_docs: int
    found_pairs: int
    planted_found: int
    planted_found_at_t: int
    planted_at_t: int
    by_bucket: dict[str, tuple[int, int]]  # label -> (planted, found)
    by_kind: dict[str, tuple[int, int]]  # kind -> (planted >= T, found)
    fp_measured: int = 0
    fp_jaccard_max: float = 0.0
    fp_near_dups: int = 0  # unplanted pairs with Jaccard >= 0.5: the generator's, not the engine's

    @property
    def recall(self) -> float:
        return self.planted_found_at_t / self.planted_at_t if self.planted_at_t else math.nan

    @property
    def precision(self) -> float:
        return self.planted_found / self.found_pairs if self.found_pairs else math.nan

    @property
    def precision_at_t(self) -> float:
        return self.planted_found_at_t / self.found_pairs if self.found_pairs else math.nan

    @property
    def false_pairs(self) -> int:
        return self.found_pairs - self.planted_found


def evaluate(
    engine: str,
    clusters: dict[str, str],
    truth: list[TruthPair],
    corpus: DedupCorpus,
    threshold: float,
    fp_sample: int,
) -> Quality:
    from filters.minhash import jaccard

    members: dict[str, list[str]] = defaultdict(list)
    for doc, label in clusters.items():
        members[label].append(doc)
    found_pairs = sum(len(m) * (len(m) - 1) // 2 for m in members.values())
    by_bucket = {b: [0, 0] for b in BUCKET_LABELS}
    by_kind: dict[str, list[int]] = {k: [0, 0] for k in ("siblings", *KIND_WEIGHTS)}
    planted_found = planted_found_t = planted_t = 0
    for p in truth:
        found = p.a in clusters and clusters[p.a] == clusters.get(p.b)
        bucket = by_bucket[bucket_of(p.jaccard)]
        bucket[0] += 1
        bucket[1] += found
        planted_found += found
        if p.jaccard >= threshold:
            planted_t += 1
            planted_found_t += found
            by_kind[p.kind][0] += 1
            by_kind[p.kind][1] += found
    q = Quality(
        engine=engine,
        threshold=threshold,
        clusters=len(members),
        clustered_docs=len(clusters),
        found_pairs=found_pairs,
        planted_found=planted_found,
        planted_found_at_t=planted_found_t,
        planted_at_t=planted_t,
        by_bucket={k: tuple(v) for k, v in by_bucket.items()},
        by_kind={k: tuple(v) for k, v in by_kind.items() if v[0]},
    )
    # Measure the false positives: pairs in one cluster from different families.
    false = []
    for docs in members.values():
        for i, a in enumerate(docs):
            for b in docs[i + 1 :]:
                if corpus.family_of(int(a[1:])) != corpus.family_of(int(b[1:])):
                    false.append((a, b))
                    if len(false) >= fp_sample:
                        break
            if len(false) >= fp_sample:
                break
        if len(false) >= fp_sample:
            break
    js = [jaccard(corpus.text(int(a[1:])), corpus.text(int(b[1:])), 5) for a, b in false]
    q.fp_measured, q.fp_jaccard_max = len(js), max(js, default=0.0)
    q.fp_near_dups = sum(j >= 0.5 for j in js)
    return q


# --- tables ---------------------------------------------------------------------------------


def _pct(found: int, total: int) -> str:
    return f"{found / total:.3f} ({found}/{total})" if total else "-"


def quality_tables(qs: list[Quality]) -> str:
    names = [q.engine for q in qs]
    t = qs[0].threshold
    out = ["Recall by true character 5-gram Jaccard (found / planted pairs):", ""]
    out.append("| Jaccard | planted | " + " | ".join(names) + " |")
    out.append("|---|---|" + "---|" * len(names))
    for b in BUCKET_LABELS:
        planted = qs[0].by_bucket[b][0]
        out.append(f"| {b} | {planted} | " + " | ".join(_pct(q.by_bucket[b][1], planted) for q in qs) + " |")
    out += ["", f"Recall by kind of edit, pairs with Jaccard >= {t:g}:", ""]
    out.append("| kind | planted | " + " | ".join(names) + " |")
    out.append("|---|---|" + "---|" * len(names))
    for kind, (planted, _) in qs[0].by_kind.items():
        out.append(
            f"| {kind} | {planted} | " + " | ".join(_pct(q.by_kind[kind][1], planted) for q in qs) + " |"
        )
    out += ["", f"Summary (T = {t:g}):", ""]
    out.append(
        "| engine | clusters | docs in clusters | found pairs | planted found | false pairs "
        "| precision | precision@T | recall@T | false pairs measured: max Jaccard, >= 0.5 |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for q in qs:
        fp = f"{q.fp_measured}: {q.fp_jaccard_max:.3f}, {q.fp_near_dups}" if q.fp_measured else "-"
        out.append(
            f"| {q.engine} | {q.clusters} | {q.clustered_docs} | {q.found_pairs} | {q.planted_found} "
            f"| {q.false_pairs} | {q.precision:.3f} | {q.precision_at_t:.3f} | {q.recall:.3f} | {fp} |"
        )
    return "\n".join(out)


def _rate(n: float, seconds: float) -> str:
    return f"{n / seconds:,.1f}" if seconds > 0 else "-"


def _speed_row(
    engine: str, part: str, docs: int, mb: float, cpu: float, wall: float, recall="", peaks="", rates=True
) -> str:
    per_core = f"{_rate(docs, cpu)} | {_rate(mb, cpu)}" if rates and cpu is not None else " | "
    cpu_s = "-" if cpu is None else f"{cpu:.2f}"
    cells = [engine, part, docs, f"{mb:.2f}", cpu_s, f"{wall:.2f}", per_core, recall, peaks]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _peaks(u: Usage) -> str:
    return f"{u.peak('driver') / MB:.0f} / {u.peak('ray-worker') / MB:.0f}"


def speed_table(runs: list[EngineRun], qs: dict[str, Quality]) -> str:
    """docs/s and MB/s per core (per CPU second) for each engine's phases and its whole run."""
    out = [
        "| engine | part | docs | MB | CPU s | wall s | docs/s per core | MB/s per core | recall@T "
        "| peak RSS MB (driver / max worker) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        mb, u = r.bytes / MB, r.usage
        recall = f"{qs[r.engine].recall:.3f}" if r.engine in qs else "-"
        for p in r.phases:
            peak = f"- / {p.peak_mib * 2**20 / MB:.0f} (stage's own)" if p.peak_mib is not None else ""
            out.append(_speed_row(r.engine, p.name, r.docs, mb, p.cpu, p.wall, peaks=peak))
        if r.overhead:
            o = r.overhead
            noop = "no-op rerun (overhead)"
            out.append(_speed_row(r.engine, noop, r.docs, mb, o.cpu, o.wall, "", _peaks(o), rates=False))
            part = f"whole, net of overhead ({u.count('ray-worker')} Ray worker processes)"
            out.append(
                _speed_row(r.engine, part, r.docs, mb, u.cpu - o.cpu, u.wall - o.wall, recall, _peaks(u))
            )
        out.append(_speed_row(r.engine, "whole process tree", r.docs, mb, u.cpu, u.wall, recall, _peaks(u)))
    return "\n".join(out)


def _phase_cpu(run: EngineRun, name: str) -> float | None:
    return next((p.cpu for p in run.phases if p.name == name), None)


def _total_cpu(run: EngineRun) -> float:
    return sum(p.cpu or 0.0 for p in run.phases)


def ratio_lines(runs: list[EngineRun], qs: dict[str, Quality]) -> list[str]:
    """Ours / datatrove, docs per CPU second (the same documents, so also the MB ratio)."""
    by = {r.engine: r for r in runs}
    dt = by.get("datatrove")
    if not dt:
        return []
    lines = []
    dt_sig, dt_all = _phase_cpu(dt, "signatures"), _total_cpu(dt)
    core = by.get("core")
    if core and dt_sig:
        # datatrove's signature step also reads, writes and sorts its band files; ours reads apart
        ours = _phase_cpu(core, "signatures") + _phase_cpu(core, "band hashes")
        lines.append(
            f"signatures + band hashes, core / datatrove's signature step, per core: {dt_sig / ours:.2f}x"
        )
    if core:
        lines.append(
            f"whole, core (all phases) / datatrove (4 steps) per core: {dt_all / _total_cpu(core):.2f}x"
        )
    st = by.get("stage")
    if st and st.overhead:
        net = st.usage.cpu - st.overhead.cpu
        lines.append(
            f"whole, stage (CLI, net of overhead) / datatrove (4 steps) per core: {dt_all / net:.2f}x"
        )
        lines.append(
            f"whole, stage (CLI, with overhead) / datatrove (process) per core: "
            f"{dt.usage.cpu / st.usage.cpu:.2f}x"
        )
    for name in ("core", "stage"):
        if name in qs and "datatrove" in qs:
            lines.append(
                f"recall@{qs[name].threshold:g}: {name} {qs[name].recall:.3f}, "
                f"datatrove {qs['datatrove'].recall:.3f}"
            )
    lines.append("goal (issue 7): at least 10x datatrove per core at equal or better recall")
    return lines


# --- modes ----------------------------------------------------------------------------------


def _workdir(opts: argparse.Namespace) -> tuple[Path, bool]:
    if opts.workdir:
        path = Path(opts.workdir).resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path, False
    return Path(tempfile.mkdtemp(prefix="dedup-bench-")), True


def _machine() -> str:
    import platform

    return f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"


def run_once(opts: argparse.Namespace, engines: list[str], show_quality: bool, show_speed: bool) -> None:
    root, temporary = _workdir(opts)
    try:
        args = CorpusArgs(opts.docs, opts.seed, opts.dup_fraction)
        run_dir = str(root / "run")
        info = prepare_run_dir(args, run_dir, opts)
        print(
            f"corpus: {info.docs} documents, {info.bytes / MB:.2f} MB UTF-8, {info.chars:,} characters, "
            f"{info.shards} clean shards, written in {info.seconds:.1f} s ({_machine()})",
            flush=True,
        )
        corpus = args.corpus()
        truth = corpus.truth()
        print(
            f"truth: {len(truth)} planted pairs, {sum(p.jaccard >= opts.threshold for p in truth)} "
            f"with Jaccard >= {opts.threshold:g}",
            flush=True,
        )
        runs, qs = [], {}
        for engine in engines:
            print(f"running {engine} ...", flush=True)
            run = run_engine(engine, run_dir, root / "engines", opts)
            if engine == "stage":
                run.bytes = info.bytes
            runs.append(run)
            qs[engine] = evaluate(engine, run.clusters, truth, corpus, opts.threshold, opts.fp_sample)
            for note in run.notes:
                print(f"  {engine}: {note}")
        if show_quality:
            print()
            print(quality_tables([qs[e] for e in engines]))
        if show_speed:
            print()
            print(speed_table(runs, qs))
            for line in ratio_lines(runs, qs):
                print(line)
    finally:
        if temporary and not opts.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"work directory kept: {root}")


def run_growth(opts: argparse.Namespace) -> None:
    """Each size in turn: write the corpus (not timed), run the engine, print the table so far.
    Run directories are deleted after their size unless --keep (200k documents take ~1 GB)."""
    root, temporary = _workdir(opts)
    rows = []
    try:
        for size in opts.sizes:
            args = CorpusArgs(size, opts.seed, opts.dup_fraction)
            run_dir = str(root / f"run-{size}")
            info = prepare_run_dir(args, run_dir, opts)
            print(
                f"{size} documents, {info.bytes / MB:.1f} MB, {info.shards} shards, written in "
                f"{info.seconds:.1f} s; running {opts.engine} ...",
                flush=True,
            )
            run = run_engine(opts.engine, run_dir, root / f"engines-{size}", opts)
            q = None
            if opts.quality:
                corpus = args.corpus()
                q = evaluate(
                    opts.engine, run.clusters, corpus.truth(), corpus, opts.threshold, opts.fp_sample
                )
            rows.append((size, info, run, q))
            print(growth_table(rows, opts.engine), flush=True)
            print(growth_phase_table(rows), flush=True)
            if not opts.keep:
                shutil.rmtree(run_dir, ignore_errors=True)
            _CORPORA.clear()
    finally:
        if temporary and not opts.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"work directory kept: {root}")


def growth_table(rows: list[tuple[int, CorpusInfo, EngineRun, Quality | None]], engine: str) -> str:
    """Time, throughput and peak memory per size; x = this size's net CPU over the previous one's
    (4.0 is linear for sizes 4x apart)."""
    out = [
        f"Growth, engine {engine} ({_machine()}):",
        "",
        "| docs | MB | wall s | CPU s | net wall s | net CPU s | x net CPU | docs/s per core | MB/s per core "
        "| peak RSS MB: driver | max Ray worker (processes) | stage's own worker peak "
        "| recall@T | precision |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    previous = None
    for size, info, run, q in rows:
        u, o = run.usage, run.overhead
        net_wall = u.wall - (o.wall if o else 0.0)
        net_cpu = u.cpu - (o.cpu if o else 0.0)
        grow = f"{net_cpu / previous:.2f}" if previous else "-"
        previous = net_cpu
        own = stage_worker_peak_mib(run) * 2**20 / MB
        cells = [
            size,
            f"{info.bytes / MB:.1f}",
            f"{u.wall:.1f}",
            f"{u.cpu:.1f}",
            f"{net_wall:.1f}",
            f"{net_cpu:.1f}",
            grow,
            _rate(size, net_cpu),
            _rate(info.bytes / MB, net_cpu),
            f"{u.peak('driver') / MB:.0f}",
            f"{u.peak('ray-worker') / MB:.0f} ({u.count('ray-worker')})",
            f"{own:.0f}" if own else "-",
            f"{q.recall:.3f}" if q else "-",
            f"{q.precision:.3f}" if q else "-",
        ]
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    out.append("")
    if engine == "core":
        out.append("core runs in one process (the driver column); net = the whole process.")
    else:
        out.append(
            "net = minus a no-op rerun of the same command (interpreter, imports, Ray start and stop)."
        )
    return "\n".join(out)


def growth_phase_table(rows: list[tuple[int, CorpusInfo, EngineRun, Quality | None]]) -> str:
    """Wall seconds of each phase (the engine's own breakdown) by size."""
    names = list(dict.fromkeys(p.name.split(" (")[0] for _, _, run, _ in rows for p in run.phases))
    out = ["| phase | " + " | ".join(str(size) for size, *_ in rows) + " |", "|---|" + "---|" * len(rows)]
    for name in names:
        cells = []
        for _, _, run, _ in rows:
            wall = sum(p.wall for p in run.phases if p.name.split(" (")[0] == name)
            cells.append(f"{wall:.2f}")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


# --- command line ---------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--docs", type=int, default=2000, help="corpus size (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--dup-fraction", type=float, default=0.3, help="share of documents that are planted variants"
    )
    p.add_argument(
        "--threshold", type=float, default=0.8, help="T: the Jaccard from which a pair must be found"
    )
    p.add_argument("--cpus", type=int, default=2, help="Ray CPUs for the stage; processes writing the corpus")
    p.add_argument("--shard-docs", type=int, default=1000, help="documents per clean shard")
    p.add_argument("--workdir", help="keep every file here (default: a temporary directory, removed)")
    p.add_argument("--keep", action="store_true", help="keep the work directory's run directories")
    p.add_argument("--reuse", action="store_true", help="reuse a finished clean stage found in --workdir")
    p.add_argument("--config", help="config file for the stage's CLI (default: configs/default.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="stage config override")
    p.add_argument(
        "--fp-sample", type=int, default=500, help="false positive pairs to measure the Jaccard of"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode")
    for name, engines, help_ in (
        ("all", list(ENGINES), "quality and speed tables (the default)"),
        ("quality", ["core"], "precision and recall against the planted truth"),
        ("speed", list(ENGINES), "docs/s and MB/s per core, ours beside datatrove"),
    ):
        p = sub.add_parser(name, help=help_)
        _common(p)
        p.add_argument("--engines", nargs="+", choices=ENGINES, default=engines)
    g = sub.add_parser("growth", help="time and peak memory at growing sizes")
    _common(g)
    g.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 8000, 32000])
    g.add_argument("--engine", choices=("stage", "core"), default="stage")
    g.add_argument("--quality", action="store_true", help="also recall@T per size (exact truth: slow)")
    e = sub.add_parser("engine", help="(internal) run one engine in this process")
    e.add_argument("--engine", required=True)
    e.add_argument("--run-dir", required=True)
    e.add_argument("--work", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--params", default="{}", help="MinHashParams fields as JSON (core)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["all", *argv]
    opts = build_parser().parse_args(argv)
    if opts.mode == "engine":
        return _engine_main(opts)
    if opts.mode == "growth":
        run_growth(opts)
        return 0
    run_once(
        opts,
        opts.engines,
        show_quality=opts.mode in ("all", "quality"),
        show_speed=opts.mode in ("all", "speed"),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
