"""How long `python -m pipeline stats` takes on a large run: a synthesized run directory of 1M
fetched documents, then the summary timed (wall and CPU seconds, peak memory).

    python benchmarks/run_statistics.py [--documents 1000000] [--shards 20] [--out DIR] [--keep]
        [--html]

The run directory has every stage's manifests with the schema's columns (locators, opt-out JSON,
transforms and decisions as lists, dedup clusters, token counts), document shards with the clean
stage's ~34 float measure columns, language and quality scores, and rejected files with their
reasons, in the proportions of a web run: extract keeps 90 %, clean 55 %, dedup removes the
duplicates of Zipf-sized clusters, quality keeps 90 %. Texts are short (the summary reads the text
only of the few rejected documents it samples), so the files are smaller than a real run's.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from manifests.io import atomic_write_parquet, write_manifest  # noqa: E402
from manifests.schema import DECISION_TYPE, MANIFEST_SCHEMA, TRANSFORM_TYPE  # noqa: E402

SOURCES = np.array(["commoncrawl", "kokkai", "egov", "gov_web", "local"])
SOURCE_P = [0.85, 0.06, 0.02, 0.05, 0.02]
LICENSES = {
    "commoncrawl": ("NOASSERTION", "obtainable"),
    "kokkai": ("LicenseRef-Kokkai-SpeakerCopyright", "public"),
    "egov": ("LicenseRef-JP-Copyright-Art13-NonCopyrightable", "open"),
    "gov_web": ("PDL-1.0", "open"),
    "local": ("CC-BY-SA-4.0", "open"),
}
REJECTS = {
    "fetch": (0.01, ["fetch_http_503", "fetch_gzip_error"]),
    "extract": (0.10, ["not_japanese_preselect", "no_text_extracted", "optout_tdm_reservation", "charset"]),
    "clean": (0.45, ["too_few_letters", "too_few_japanese_letters", "avg_sentence_too_short",
                     "duplicate_5gram", "ng_expression_hits", "hiragana_fraction_below_min"]),
    "quality": (0.10, ["quality_wikilike_v1_below_min"]),
}
CLEAN_MEASURES = [f"clean_m{i:02d}" for i in range(33)]
STAGES = ("fetch", "extract", "clean", "dedup", "quality", "tokenize")
SAMPLE_TEXT = "これより会議を開きます。内閣提出、地方税法等の一部を改正する法律案を議題といたします。"


def cycle(values: list[str], length: int) -> pa.Array:
    """`values` repeated to `length` (a take, so no Python string per element)."""
    return pa.array(values).take(pa.array(np.arange(length) % len(values)))


def list_of_structs(n: int, per_row: int, fields: dict[str, pa.Array]) -> pa.ListArray:
    offsets = pa.array(np.arange(0, (n + 1) * per_row, per_row, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.StructArray.from_arrays(list(fields.values()), list(fields)))


def manifest(stage: str, ids: np.ndarray, source: np.ndarray, rejected: np.ndarray, reasons: np.ndarray,
             extra: dict[str, pa.Array], rng: np.random.Generator) -> pa.Table:
    n = len(ids)
    lookup = {s: LICENSES[s] for s in SOURCES}
    lic = np.array([lookup[s][0] for s in source])
    osaid = np.array([lookup[s][1] for s in source])
    n_tr, n_dec = 1 + STAGES.index(stage), 4 * (1 + STAGES.index(stage))
    transforms = list_of_structs(n, n_tr, {
        "stage": cycle(list(STAGES[:n_tr]), n * n_tr),
        "tool": cycle(["tool:v1"], n * n_tr),
        "version": cycle(["1.0"], n * n_tr),
        "params_sha256": cycle(["ab" * 32], n * n_tr),
    })
    decisions = list_of_structs(n, n_dec, {
        "stage": cycle([stage], n * n_dec),
        "check": cycle([f"check_{i}" for i in range(n_dec)], n * n_dec),
        "value": pa.array(rng.random(n * n_dec)),
        "passed": pa.array(rng.random(n * n_dec) > 0.05),
    })
    columns = {
        "doc_id": pa.array(ids),
        "source": pa.array(source),
        "source_uri": pa.array(np.char.add("https://example.jp/page/", ids)),
        "locator": pa.array(np.char.add('{"warc_filename": "CC-MAIN-2024-22/x.warc.gz", "offset": 0, "id": "',
                                        np.char.add(ids, '"}'))),
        "retrieved_at": pa.array(np.full(n, "2024-05-20T00:00:00+00:00")),
        "raw_sha256": pa.array(np.char.add(ids, ids)),
        "text_sha256": pa.array(np.char.add(ids, ids)),
        "license": pa.array(lic),
        "legal_basis": pa.array([["JP-Copyright-Art30-4"]] * n, pa.list_(pa.string())),
        "osaid_class": pa.array(osaid),
        "redistribution": pa.array(np.where(osaid == "open", "text", "locator_only")),
        "attribution": pa.nulls(n, pa.string()),
        "optout": pa.array(np.full(n, '{"robots": "allowed", "tdm_reservation": null, "verdict": "ok"}')),
        "transforms": transforms.cast(pa.list_(TRANSFORM_TYPE)),
        "decisions": decisions.cast(pa.list_(DECISION_TYPE)),
        "dedup_cluster_id": pa.nulls(n, pa.string()),
        "dedup_cluster_size": pa.nulls(n, pa.int32()),
        "included": pa.array(~rejected),
        "exclusion_reason": pa.array(np.where(rejected, np.char.add(f"{stage}:", reasons), None)),
        "shard": pa.nulls(n, pa.string()),
        "row": pa.nulls(n, pa.int64()),
        "num_tokens": pa.nulls(n, pa.int64()),
        "pipeline_version": pa.array(np.full(n, "0.1.0")),
        "config_sha256": pa.array(np.full(n, "cd" * 32)),
    }
    columns.update(extra)
    return pa.table(columns, schema=MANIFEST_SCHEMA)


def synthesize(root: Path, documents: int, shards: int, seed: int = 0) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    ids = np.char.mod("%032x", rng.integers(0, 2**62, documents, dtype=np.int64) * 4 + 1)
    source = rng.choice(SOURCES, size=documents, p=SOURCE_P)
    shard_of = np.arange(documents) * shards // documents
    chars = np.exp(rng.normal(7.0, 1.0, documents)).astype(np.int64) + 50
    tokens = (chars * rng.uniform(0.55, 0.8, documents)).astype(np.int64)
    alive = np.ones(documents, dtype=bool)
    dedup_head_all = np.full(documents, -1)
    dedup_size_all = np.zeros(documents, dtype=np.int32)
    rows = {}
    for stage in STAGES:
        idx = np.flatnonzero(alive)
        n = len(idx)
        rejected = np.zeros(n, dtype=bool)
        reasons = np.full(n, "", dtype=object)
        extra: dict[str, pa.Array] = {}
        if stage in REJECTS:
            fraction, kinds = REJECTS[stage]
            rejected = rng.random(n) < fraction
            reasons = np.where(rejected, rng.choice(kinds, n), "")
        if stage == "dedup":
            head, size = clusters(n, rng)
            dedup_head_all[idx] = idx[head]
            dedup_size_all[idx] = size
            rejected = head != np.arange(n)
            reasons = np.where(rejected, np.char.add("duplicate_of:", ids[idx[head]]), "")
        if stage in ("dedup", "quality", "tokenize"):
            extra["dedup_cluster_id"] = pa.array(ids[dedup_head_all[idx]])
            extra["dedup_cluster_size"] = pa.array(dedup_size_all[idx])
        if stage == "tokenize":
            extra["shard"] = pa.array(np.char.mod("tokenize/part-%05d.parquet", shard_of[idx]))
            extra["row"] = pa.array(np.zeros(n, dtype=np.int64))
            extra["num_tokens"] = pa.array(tokens[idx])
        table = manifest(stage, ids[idx], source[idx], rejected, reasons.astype(str), extra, rng)
        rows[stage] = n
        write_stage(root, stage, table, shard_of[idx], chars[idx], tokens[idx], rng)
        alive[idx[rejected]] = False
        (root / stage / "stats.json").write_text(json.dumps({"documents_in": n}))
    return rows


def clusters(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each document's cluster head (its index, for a document with no duplicate) and cluster size:
    sizes follow a Zipf law (most are pairs, a few boilerplate pages repeat thousands of times), and
    about a quarter of the documents are in a cluster of two or more."""
    head = np.arange(n)
    size = np.ones(n, dtype=np.int32)
    order = rng.permutation(n)
    at = 0
    while at < n * 0.25:
        k = min(int(rng.zipf(2.2)) + 1, 5000, n - at)
        members = order[at : at + k]
        head[members] = members[0]
        size[members] = k
        at += k
    return head, size


def write_stage(root: Path, stage: str, table: pa.Table, shard_of: np.ndarray, chars: np.ndarray,
                tokens: np.ndarray, rng: np.random.Generator) -> None:
    included = table["included"].to_numpy(zero_copy_only=False)
    for shard in np.unique(shard_of):
        part = f"part-{shard:05d}"
        mask = shard_of == shard
        sub = table.filter(pa.array(mask))
        kept = mask & included
        gone = mask & ~included
        n = int(kept.sum())
        take = pa.array(kept)
        docs = {"doc_id": table["doc_id"].filter(take), "source": table["source"].filter(take)}
        if stage == "tokenize":
            docs |= {"piece": pa.array(np.zeros(n, np.int32)), "num_tokens": pa.array(tokens[kept]),
                     "license": table["license"].filter(take),
                     "osaid_class": table["osaid_class"].filter(take)}
        else:
            docs["text"] = pa.array(np.full(n, SAMPLE_TEXT))
        if stage in ("clean", "dedup", "quality"):
            docs["clean_chars"] = pa.array(chars[kept].astype(np.float32))
            docs["language_score_lid176_v1"] = pa.array(rng.beta(30, 1, n).astype(np.float32))
            for name in CLEAN_MEASURES:
                docs[name] = pa.array(rng.random(n, dtype=np.float32))
        if stage == "quality":
            docs["hiragana_fraction_v1"] = pa.array(rng.beta(5, 8, n).astype(np.float32))
            docs["quality_wikilike_v1"] = pa.array(rng.beta(2, 3, n).astype(np.float32))
        reasons = table["exclusion_reason"].filter(pa.array(gone)).to_numpy(zero_copy_only=False)
        rejected = pa.table({
            "doc_id": table["doc_id"].filter(pa.array(gone)),
            "source": table["source"].filter(pa.array(gone)),
            "reason": pa.array([r.split(":", 1)[1] for r in reasons], pa.string()),
            "detail": pa.array(np.full(len(reasons), "synthetic")),
            "text": pa.array(np.full(len(reasons), SAMPLE_TEXT)),
        })
        atomic_write_parquet(str(root / stage / f"{part}.parquet"), pa.table(docs))
        atomic_write_parquet(str(root / stage / "rejected" / f"{part}.parquet"), rejected)
        write_manifest(str(root / stage / f"{part}.manifest.parquet"), sub)


def usage() -> tuple[float, float]:
    self_ = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), self_.ru_utime + self_.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=20)
    parser.add_argument("--out", help="where to write the run (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory")
    parser.add_argument("--reuse", action="store_true", help="time an existing run in --out again")
    parser.add_argument("--html", action="store_true", help="also time the HTML report with its plots")
    args = parser.parse_args()

    from pipeline.run_statistics import open_run
    from pipeline.run_statistics_report import html_report, tables

    root = Path(args.out or tempfile.mkdtemp(prefix="run-stats-bench-")) / "run"
    if not args.reuse:
        shutil.rmtree(root, ignore_errors=True)
        w0, c0 = usage()
        rows = synthesize(root, args.documents, args.shards)
        w1, c1 = usage()
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        print(f"synthesized {root}: manifest rows per stage {rows} (total {sum(rows.values()):,}), "
              f"{size / 1e6:,.0f} MB, in {w1 - w0:.1f} s wall, {c1 - c0:.1f} s CPU")
    try:
        w0, c0 = usage()
        start = (w0, c0)
        stats = open_run(str(root))
        print(f"{'part':<62} {'wall s':>7} {'CPU s':>7}")
        for title, frame in tables(stats):
            w1, c1 = usage()
            print(f"{title[:62]:<62} {w1 - w0:7.2f} {c1 - c0:7.2f}  ({frame.height} rows)")
            w0, c0 = w1, c1
        samples = stats.rejected_samples()
        w1, c1 = usage()
        print(f"{'rejected samples':<62} {w1 - w0:7.2f} {c1 - c0:7.2f}  ({samples.height} rows)")
        print(f"{'the whole summary of `pipeline stats`':<62} {w1 - start[0]:7.2f} {c1 - start[1]:7.2f}")
        if args.html:
            w0, c0 = usage()
            page = html_report(stats)
            w1, c1 = usage()
            print(f"{'HTML report with plots (recomputes the tables)':<62} {w1 - w0:7.2f} {c1 - c0:7.2f}"
                  f"  ({len(page) / 1e3:,.0f} kB)")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak resident memory of this process: {peak:,.0f} MB")
    finally:
        if not args.keep and not args.out:
            shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
