"""What a finished run holds, for the reviewer's report: computed from the manifests, one shard at a time.

- documents and tokens of the training shards per source, licence, legal basis, OSAID class and
  redistribution mode (a document with two legal bases counts under each);
- rejected documents per stage and reason kind (`clean:too_few_letters` -> clean / too_few_letters,
  `dedup:duplicate_of:<id>` -> dedup / duplicate_of, `takedown:<request>` -> tokenize / takedown);
- the opt-out and rights signals recorded for every document that reached extraction, and for the
  included ones;
- the takedown requests of RUN_DIR/takedowns.jsonl.

Only the columns needed are read, shard by shard, so memory follows the largest shard.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from manifests.audit_takedowns import TakedownLogError, read_takedowns
from manifests.io import read_parquet
from manifests.layout import STAGE_ORDER, done_shards, manifest_path

FINAL_STAGE = STAGE_ORDER[-1]
# The stage where opt-out signals are recorded: every document read there was examined.
OPTOUT_STAGE = "extract"
DIMENSIONS = ("source", "license", "legal_basis", "osaid_class", "redistribution")


def reason_kind(stage: str, reason: str | None) -> str:
    """The kind of an exclusion reason, without the stage prefix and the details after ':'.

    >>> reason_kind("dedup", "dedup:duplicate_of:4344f689b8112efa"), reason_kind("tokenize", "takedown:ab12")
    ('duplicate_of', 'takedown')
    """
    if not reason:
        return "(no reason)"
    reason = reason.removeprefix(f"{stage}:")
    return reason.split(":", 1)[0]


def summarize(run_dir: str) -> dict[str, Any]:
    run_dir = run_dir.rstrip("/")
    included = _included(run_dir)
    rejected = _rejected(run_dir)
    return {
        "run_dir": run_dir,
        "documents_included": included.pop("documents"),
        "tokens_included": included.pop("tokens"),
        "included_by": included,
        "rejected_by_stage": rejected,
        "documents_rejected": sum(sum(kinds.values()) for kinds in rejected.values()),
        "optout": {
            "examined": _optout(run_dir, OPTOUT_STAGE, only_included=False),
            "included": _optout(run_dir, FINAL_STAGE, only_included=True),
        },
        "takedowns": _takedowns(run_dir),
    }


def _included(run_dir: str) -> dict[str, Any]:
    by: dict[str, dict[str, Counter]] = {d: defaultdict(Counter) for d in DIMENSIONS}
    documents = tokens = 0
    for shard in done_shards(run_dir, FINAL_STAGE):
        table = read_parquet(
            manifest_path(run_dir, FINAL_STAGE, shard), [*DIMENSIONS, "num_tokens", "included"]
        )
        cols = {c: table.column(c).to_pylist() for c in table.column_names}
        for i, inc in enumerate(cols["included"]):
            if not inc:
                continue
            n = cols["num_tokens"][i] or 0
            documents += 1
            tokens += n
            for dim in DIMENSIONS:
                values = cols[dim][i]
                for value in values if isinstance(values, list) else [values]:
                    by[dim][str(value)]["documents"] += 1
                    by[dim][str(value)]["tokens"] += n
    result: dict[str, Any] = {
        dim: {k: dict(v) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1]["tokens"], kv[0]))}
        for dim, counts in by.items()
    }
    return result | {"documents": documents, "tokens": tokens}


def _rejected(run_dir: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for stage in STAGE_ORDER:
        kinds: Counter = Counter()
        for shard in done_shards(run_dir, stage):
            table = read_parquet(manifest_path(run_dir, stage, shard), ["included", "exclusion_reason"])
            for inc, reason in zip(
                table.column("included").to_pylist(), table.column("exclusion_reason").to_pylist()
            ):
                if not inc:
                    kinds[reason_kind(stage, reason)] += 1
        if kinds:
            out[stage] = dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    return out


def _optout(run_dir: str, stage: str, only_included: bool) -> dict[str, Any]:
    """Counts of the signals in the manifests' `optout` JSON (filters/optout.py writes it)."""
    c: dict[str, Counter] = defaultdict(Counter)
    documents = 0
    for shard in done_shards(run_dir, stage):
        table = read_parquet(manifest_path(run_dir, stage, shard), ["optout", "included"])
        for text, inc in zip(table.column("optout").to_pylist(), table.column("included").to_pylist()):
            if only_included and not inc:
                continue
            documents += 1
            _count_signals(c, text)
    return {"documents": documents} | {k: dict(sorted(v.items())) for k, v in sorted(c.items())}


def _count_signals(c: dict[str, Counter], text: str | None) -> None:
    try:
        optout = json.loads(text or "{}")
    except json.JSONDecodeError:
        c["unreadable"]["optout"] += 1
        return
    if not isinstance(optout, dict) or not optout.get("signals"):
        c["verdict"]["not_checked"] += 1
        return
    c["verdict"][str(optout.get("verdict"))] += 1
    if optout.get("reserved_by"):
        c["reserved_by"][str(optout["reserved_by"])] += 1
    signals = optout["signals"]
    tdm = signals.get("tdmrep") or {}
    c["tdmrep"][str(tdm.get("effective", "not_checked"))] += 1
    robots = signals.get("robots") or {}
    for flag in ("noai", "noimageai", "noml"):
        if robots.get(flag):
            c["robots"][flag] += 1
    for name in ("blocklist", "takedowns"):
        if signals.get(name):
            c["list_matches"][name] += 1
    for notice in optout.get("rights_notices") or []:
        if isinstance(notice, dict):
            c["rights_notices"][str(notice.get("kind"))] += 1


def _takedowns(run_dir: str) -> list[dict[str, Any]] | dict[str, str]:
    try:
        log = read_takedowns(run_dir)
    except TakedownLogError as exc:
        return {"error": str(exc)}
    keys = ("request_id", "requested_at", "kind", "value", "reason", "mode", "shards", "tokens")
    return [{k: r.get(k) for k in keys} | {"documents": len(r.get("doc_ids") or [])} for r in log.requests]
