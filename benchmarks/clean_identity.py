"""Dump every clean-stage outcome on real text, or compare with an earlier dump: a speed change to the
clean stage must not change a single decision.

    python benchmarks/clean_identity.py dump OUT.jsonl [--extract RUN_DIR/extract]
    python benchmarks/clean_identity.py compare BEFORE.jsonl AFTER.jsonl

The cases: the 3,459 texts of benchmarks/clean_speed.py under the web profile and under their own
source's (6,918), plus the documents of a clean-stage input (``--extract``, default the bundled
sample's runs/sample/extract: 120 documents), each with ``clean.measure_all`` false and true, through
``clean_documents`` (a shard at once) and, for measure_all false, ``clean_document`` one at a time.
With ``--extract``, ``CleanStage.process`` also runs on every shard of it and its kept table, rejected
rows and manifest rows are dumped. A record holds the reason, detail, text, every decision, transform
and score (floats by repr, so bit for bit), the trimmed notices and PII counts. Prints a summary;
asserts nothing (``compare`` exits 1 on any difference).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def _outcome_record(case: str, outcome) -> dict:
    return {
        "case": case,
        "reason": outcome.reason,
        "detail": outcome.detail,
        "profile": outcome.profile,
        "text": outcome.text,
        "scores": {k: repr(v) for k, v in sorted(outcome.scores.items())},
        "decisions": [{k: repr(v) for k, v in d.items()} for d in outcome.decisions],
        "transforms": outcome.transforms,
        "trimmed_notices": outcome.trimmed_notices,
        "pii_counts": outcome.pii_counts,
    }


def _sample_documents(extract: Path) -> list[tuple[str, str | None, str]]:
    import pyarrow.parquet as pq

    docs = []
    for path in sorted(extract.glob("part-*.parquet")):
        if path.name.endswith(".manifest.parquet"):
            continue
        table = pq.read_table(path)
        docs += zip(
            table.column("text").to_pylist(),
            table.column("url").to_pylist(),
            table.column("source").to_pylist(),
            strict=True,
        )
    return docs


def _stage_records(extract: Path, config) -> list[dict]:
    import tempfile

    from pipeline.shards import input_shards
    from pipeline.stage import RunContext
    from pipeline.stages.clean import CleanStage

    records = []
    with tempfile.TemporaryDirectory() as run_dir:
        (Path(run_dir) / "extract").symlink_to(extract.resolve())
        stage = CleanStage(RunContext(run_dir, config, "identity-check", "identity-check"))
        stage.setup()
        for shard in input_shards(run_dir, "extract"):
            result = stage.process(shard)
            records.append(
                {
                    "case": f"stage/{shard.name}",
                    "kept": json.dumps(result.kept.to_pylist(), default=repr, sort_keys=True),
                    "kept_schema": str(result.kept.schema),
                    "rejected": json.dumps(result.rejected, default=repr, sort_keys=True),
                    "manifest": json.dumps(result.manifest, default=repr, sort_keys=True),
                    "characters_in": result.characters_in,
                }
            )
    return records


def dump(out: Path, extract: Path | None) -> None:
    from clean_speed import load_corpus

    from pipeline.config import load_config
    from pipeline.stages.clean import clean_document, clean_documents

    config = load_config()
    corpus = load_corpus()
    cases: list[tuple[str, tuple[str, str | None, str]]] = []
    for i, t in enumerate(corpus):
        cases.append((f"web/{i}", (t.text, t.url, "commoncrawl")))
        cases.append((f"own/{i}", (t.text, t.url, t.source)))
    if extract is not None:
        for i, doc in enumerate(_sample_documents(extract)):
            cases.append((f"sample/{i}", doc))
    records = []
    for measure_all in (False, True):
        clean = dataclasses.replace(config.clean, measure_all=measure_all)
        outcomes = clean_documents([doc for _, doc in cases], config=clean, resolve=config.resolve_path)
        records += [_outcome_record(f"batch/all={measure_all}/{c}", o) for (c, _), o in zip(cases, outcomes)]
    resolve = config.resolve_path
    for case, (text, url, source) in cases:
        outcome = clean_document(text, url=url, source=source, config=config.clean, resolve=resolve)
        records.append(_outcome_record(f"one/{case}", outcome))
    if extract is not None:
        from manifests.io import ManifestError

        try:
            records += _stage_records(extract, config)
        except ManifestError as exc:  # an extract output older than the manifest schema
            print(f"note: the stage part is skipped: {exc} (rerun the extract stage into a new run)")
    with open(out, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
    rejected = sum(1 for r in records if r.get("reason"))
    print(f"{len(cases):,} cases, {len(records):,} records ({rejected:,} rejected outcomes) -> {out}")


def compare(before: Path, after: Path) -> int:
    a = before.read_text(encoding="utf-8").splitlines()
    b = after.read_text(encoding="utf-8").splitlines()
    if len(a) != len(b):
        print(f"different record counts: {len(a):,} before, {len(b):,} after")
        return 1
    differ = [(x, y) for x, y in zip(a, b) if x != y]
    for x, y in differ[:5]:
        rx, ry = json.loads(x), json.loads(y)
        keys = [k for k in rx if rx.get(k) != ry.get(k)]
        print(f"{rx['case']}: differs in {keys}")
        for k in keys[:3]:
            print(f"  before {k}: {str(rx.get(k))[:300]}")
            print(f"  after  {k}: {str(ry.get(k))[:300]}")
    print(f"{len(a):,} records compared, {len(differ):,} differ")
    return 1 if differ else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out", type=Path)
    d.add_argument("--extract", type=Path, default=REPO / "runs" / "sample" / "extract")
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.command == "dump":
        extract = args.extract if args.extract and args.extract.exists() else None
        if extract is None:
            print(f"note: {args.extract} not found, the stage and sample cases are skipped")
        dump(args.out, extract)
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    raise SystemExit(main())
