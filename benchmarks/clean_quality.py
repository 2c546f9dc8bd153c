"""How well the clean stage's keep/drop decision agrees with hand labels.

    python benchmarks/clean_quality.py [--data benchmarks/clean_dev] [--config configs/default.yaml]
                                       [--set key=value ...] [--decision module:function]
                                       [--out decisions.jsonl]
    python benchmarks/clean_quality.py --self-test

Joins ``<data>/texts.jsonl`` and ``<data>/labels.jsonl`` on ``id`` (see benchmarks/clean_dev/README.md),
runs the clean stage's per-document decision on every text and prints precision, recall and F1 of
"keep", the confusion matrix, the drop count per rule, a per-source breakdown and every disagreement.

The decision function is ``pipeline.stages.clean.clean_document(text, *, url, source, config)``
returning an outcome whose ``reason`` is None when the document is kept. ``--decision`` swaps in
another function with the same signature (e.g. a baseline, or a fake to check this script).
Asserts nothing: it prints figures.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_DATA = REPO / "benchmarks" / "clean_dev"
DEFAULT_DECISION = "pipeline.stages.clean:clean_document"

# The dev set's `source` (where a text came from) -> the pipeline's row `source` (which picks the
# clean rule profile, see clean.profiles in the config). Crawled pages come in as commoncrawl;
# feeds, Wikipedia and Aozora would come in through the `local` source.
PIPELINE_SOURCE = {
    "warc_ja_postlight": "commoncrawl",
    "warc_ja_feedpage": "commoncrawl",
    "warc_control": "commoncrawl",
    "charset_feed": "local",
    "wikipedia": "local",
    "aozora": "local",
    "kokkai": "kokkai",
    "egov_law": "egov",
}


@dataclass
class Row:
    id: str
    source: str
    label: str  # keep | drop
    label_reason: str
    decision: str  # keep | drop
    rule: str | None  # the clean stage's reason, None when kept
    detail: str | None = None


# --- loading ---------------------------------------------------------------------------------------


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise SystemExit(f"{path}:{n}: not JSON ({exc})") from None
    return rows


def load_dataset(data_dir: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(text record, label record) pairs in texts.jsonl order; every id must be labelled once."""
    texts = _read_jsonl(data_dir / "texts.jsonl")
    labels = _read_jsonl(data_dir / "labels.jsonl")
    by_id: dict[str, dict[str, Any]] = {}
    for lab in labels:
        if lab.get("label") not in ("keep", "drop"):
            raise SystemExit(
                f"labels.jsonl: {lab.get('id')!r} has label {lab.get('label')!r} (want keep|drop)"
            )
        if lab["id"] in by_id:
            raise SystemExit(f"labels.jsonl: {lab['id']!r} is labelled twice")
        by_id[lab["id"]] = lab
    text_ids = [t["id"] for t in texts]
    if len(set(text_ids)) != len(text_ids):
        raise SystemExit("texts.jsonl: duplicate ids")
    unlabelled = [i for i in text_ids if i not in by_id]
    orphans = sorted(set(by_id) - set(text_ids))
    if unlabelled or orphans:
        raise SystemExit(
            f"texts and labels do not join: {len(unlabelled)} unlabelled (e.g. {unlabelled[:3]}), "
            f"{len(orphans)} labels without text (e.g. {orphans[:3]})"
        )
    return [(t, by_id[t["id"]]) for t in texts]


# --- the decision function -------------------------------------------------------------------------


def resolve_decision(spec: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise SystemExit(f"--decision {spec!r}: expected module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"cannot import {module_name} for the decision function {spec} ({exc})") from None
    fn = getattr(module, attr, None)
    if fn is None:
        if spec == DEFAULT_DECISION:
            raise SystemExit(
                "pipeline.stages.clean.clean_document does not exist yet: the clean stage's per-document "
                "decision (clean_document(text, *, url, source, config) -> CleanOutcome) has to be written "
                "before this benchmark can measure it. Use --decision module:function to measure another "
                "function, or --self-test to check this script."
            )
        raise SystemExit(f"{module_name} has no attribute {attr!r}")
    return fn


def decide_all(
    pairs: list[tuple[dict[str, Any], dict[str, Any]]], fn: Callable[..., Any], config: Any
) -> list[Row]:
    params = inspect.signature(fn).parameters
    kwargs: dict[str, Any] = {}
    clean_config = getattr(config, "clean", config)
    if "resolve" in params and hasattr(config, "resolve_path"):
        kwargs["resolve"] = config.resolve_path
    rows = []
    for text_rec, label_rec in pairs:
        source = PIPELINE_SOURCE.get(text_rec["source"], text_rec["source"])
        try:
            outcome = fn(
                text_rec["text"], url=text_rec.get("url"), source=source, config=clean_config, **kwargs
            )
        except Exception as exc:
            raise SystemExit(
                f"{text_rec['id']}: the decision function raised {type(exc).__name__}: {exc}"
            ) from exc
        reason = getattr(outcome, "reason", None)
        rows.append(
            Row(
                id=text_rec["id"],
                source=text_rec["source"],
                label=label_rec["label"],
                label_reason=label_rec.get("reason", ""),
                decision="keep" if reason is None else "drop",
                rule=reason,
                detail=getattr(outcome, "detail", None),
            )
        )
    return rows


# --- metrics ----------------------------------------------------------------------------------------


@dataclass
class Metrics:
    tp: int  # labelled keep, kept
    fp: int  # labelled drop, kept
    fn: int  # labelled keep, dropped
    tn: int  # labelled drop, dropped

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None or p + r == 0:
            return None if p is None or r is None else 0.0
        return 2 * p * r / (p + r)

    @property
    def accuracy(self) -> float | None:
        return (self.tp + self.tn) / self.n if self.n else None


def compute_metrics(rows: list[Row]) -> Metrics:
    c = Counter((r.label, r.decision) for r in rows)
    return Metrics(tp=c["keep", "keep"], fp=c["drop", "keep"], fn=c["keep", "drop"], tn=c["drop", "drop"])


def drops_per_rule(rows: list[Row]) -> dict[str, Counter]:
    """rule -> Counter of the labels of the documents it dropped."""
    out: dict[str, Counter] = {}
    for r in rows:
        if r.decision == "drop":
            out.setdefault(r.rule or "?", Counter())[r.label] += 1
    return out


# --- report -----------------------------------------------------------------------------------------


def _fmt(x: float | None) -> str:
    return "  n/a" if x is None else f"{x:.3f}"


def report(rows: list[Row], *, title: str, out=sys.stdout) -> Metrics:
    m = compute_metrics(rows)
    w = lambda s="": print(s, file=out)
    w(title)
    w(f"documents {m.n}: labelled keep {m.tp + m.fn}, labelled drop {m.fp + m.tn}")
    w()
    w(
        f'"keep"  precision {_fmt(m.precision)}  recall {_fmt(m.recall)}  F1 {_fmt(m.f1)}  accuracy {_fmt(m.accuracy)}'
    )
    w()
    w("confusion matrix (rows: label, columns: decision)")
    w(f"{'':>14} {'keep':>6} {'drop':>6}")
    w(f"{'label keep':>14} {m.tp:>6} {m.fn:>6}")
    w(f"{'label drop':>14} {m.fp:>6} {m.tn:>6}")
    w()
    w("drops per rule (first failed rule)    total  right(label drop)  wrong(label keep)")
    for rule, c in sorted(drops_per_rule(rows).items(), key=lambda kv: (-sum(kv[1].values()), kv[0])):
        w(f"  {rule:<36} {sum(c.values()):>5} {c['drop']:>18} {c['keep']:>18}")
    w()
    w("per source                 n  keep/keep keep/drop drop/keep drop/drop  (label/decision)   F1")
    for source in sorted({r.source for r in rows}):
        sm = compute_metrics([r for r in rows if r.source == source])
        w(f"  {source:<22} {sm.n:>4} {sm.tp:>10} {sm.fn:>9} {sm.fp:>9} {sm.tn:>9} {'':>18} {_fmt(sm.f1)}")
    w()
    bad = [r for r in rows if r.label != r.decision]
    w(f"disagreements ({len(bad)}): id | label | decision | clean reason | label reason")
    for r in bad:
        why = r.detail or r.rule or "-"
        w(f"  {r.id} | {r.label} | {r.decision} | {why} | {r.label_reason}")
    return m


# --- self-test of the join and the metrics ---------------------------------------------------------


def self_test() -> None:
    """Known answers on a tiny hand-made set with a fake decision (no clean stage needed)."""
    import tempfile

    texts = [
        {"id": "a", "source": "wikipedia", "text": "x" * 300},  # keep, kept          -> TP
        {"id": "b", "source": "wikipedia", "text": "x" * 250},  # keep, kept          -> TP
        {"id": "c", "source": "kokkai", "text": "x" * 50},  # keep, dropped (short)   -> FN
        {"id": "d", "source": "charset_feed", "text": "x" * 400},  # drop, kept       -> FP
        {"id": "e", "source": "charset_feed", "text": "x" * 20},  # drop, dropped     -> TN
        {"id": "f", "source": "warc_control", "text": "SPAM " * 100},  # drop, dropped -> TN
    ]
    labels = [
        {"id": "a", "label": "keep", "reason": "r"},
        {"id": "b", "label": "keep", "reason": "r"},
        {"id": "c", "label": "keep", "reason": "r"},
        {"id": "d", "label": "drop", "reason": "r"},
        {"id": "e", "label": "drop", "reason": "r"},
        {"id": "f", "label": "drop", "reason": "r"},
    ]
    seen_sources = []

    @dataclass
    class FakeOutcome:
        text: str
        reason: str | None
        scores: dict
        transforms: list

    def fake(text: str, *, url: str | None, source: str, config: Any) -> FakeOutcome:
        seen_sources.append(source)
        reason = "spam" if "SPAM" in text else ("too_short" if len(text) < 200 else None)
        return FakeOutcome(text, reason, {}, [])

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "texts.jsonl").write_text("".join(json.dumps(t) + "\n" for t in texts))
        # labels in another order: the join must not depend on it
        (d / "labels.jsonl").write_text("".join(json.dumps(lab) + "\n" for lab in reversed(labels)))
        rows = decide_all(load_dataset(d), fake, config=None)
        # a missing label must be refused
        (d / "labels.jsonl").write_text("".join(json.dumps(lab) + "\n" for lab in labels[:-1]))
        try:
            load_dataset(d)
        except SystemExit as exc:
            assert "do not join" in str(exc), exc
        else:
            raise AssertionError("an unlabelled text was accepted")
    assert [r.id for r in rows] == list("abcdef")
    assert seen_sources == ["local", "local", "kokkai", "local", "local", "commoncrawl"], seen_sources
    m = compute_metrics(rows)
    assert (m.tp, m.fp, m.fn, m.tn) == (2, 1, 1, 2), m
    # precision = 2/3, recall = 2/3, F1 = 2/3, accuracy = 4/6
    assert abs(m.precision - 2 / 3) < 1e-12 and abs(m.recall - 2 / 3) < 1e-12, m
    assert abs(m.f1 - 2 / 3) < 1e-12 and abs(m.accuracy - 4 / 6) < 1e-12, m
    per_rule = drops_per_rule(rows)
    assert per_rule == {"too_short": Counter(keep=1, drop=1), "spam": Counter(drop=1)}, per_rule
    # degenerate cases: nothing kept -> precision undefined; all right -> 1.0
    none_kept = Metrics(tp=0, fp=0, fn=3, tn=2)
    assert none_kept.precision is None and none_kept.recall == 0.0 and none_kept.f1 is None
    perfect = Metrics(tp=3, fp=0, fn=0, tn=2)
    assert perfect.precision == perfect.recall == perfect.f1 == 1.0
    report(rows, title="self-test (fake decision on 6 hand-made rows)")
    print("\nself-test passed")


# --- main --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Precision/recall of the clean stage's keep decision on hand labels."
    )
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="folder with texts.jsonl and labels.jsonl")
    ap.add_argument("--config", default=None, help="config YAML (default: configs/default.yaml)")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, as for the pipeline CLI (repeatable)",
    )
    ap.add_argument(
        "--decision",
        default=DEFAULT_DECISION,
        metavar="MODULE:FUNCTION",
        help=f"decision function to measure (default {DEFAULT_DECISION})",
    )
    ap.add_argument("--out", default=None, help="also write one JSON line per document with its decision")
    ap.add_argument(
        "--self-test", action="store_true", help="check the join and metrics code on a fake decision"
    )
    args = ap.parse_args(argv)

    if args.self_test:
        self_test()
        return 0

    from pipeline.config import ConfigError, load_config

    pairs = load_dataset(Path(args.data))
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as exc:
        raise SystemExit(f"config: {exc}") from None
    fn = resolve_decision(args.decision)
    rows = decide_all(pairs, fn, config)
    overrides = " ".join(args.overrides) or "none"
    report(
        rows,
        title=f"clean quality: {args.decision} on {args.data} (config {args.config or 'default'}, overrides: {overrides})",
    )
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r.__dict__, ensure_ascii=False) + "\n" for r in rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
