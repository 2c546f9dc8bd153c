"""`python -m pipeline takedown RUN_DIR (--url URL | --domain DOMAIN | --doc-id ID)`: take documents
out of a finished run's training shards, and record that it was done.

Only the tokenize shards that hold a named document change (tokenize_takedown.py: rewritten
without its rows, or masked in place with `takedown.mode: mask`). Each taken-down document's
manifest row becomes included=false with exclusion_reason `takedown:<request id>` and the
document is added to tokenize/rejected/<shard>.parquet (without its text: a takedown should not
copy the content again), so the audit's conservation check holds; the request is appended to
RUN_DIR/takedowns.jsonl, tokenize/stats.json is updated and the run-level hashes rewritten.

Crash safety: every new file is first written under a temporary name (`.tmp-takedown-<id>`,
which readers and the run hashes ignore). Then a journal listing the renames is written: it is
the commit point. The renames follow, per shard in this order: .bin, .idx, .parquet (the
tokens, then their index), rejected/, the manifest, the shard's stats; then tokenize/stats.json
and takedowns.jsonl; then run_manifest.json is rewritten and the journal deleted. A run killed
before the journal keeps its old files (the temporaries are deleted by the next takedown); one
killed after it is completed by the next takedown command (the renames are repeated where the
temporary file still exists). The same request again finds nothing left to take down (exit 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from manifests.io import (
    ManifestError,
    atomic_write_json,
    filesystem,
    manifest_bytes,
    parquet_bytes,
    read_manifest,
    read_parquet,
)
from manifests.layout import (
    RESOLVED_CONFIG,
    done_shards,
    manifest_path,
    rejected_path,
    shard_stats_path,
    stage_dir,
    stage_stats_path,
)
from manifests.run_hashes import read_run_hashes, verify_run_hashes, write_run_hashes
from manifests.schema import MANIFEST_SCHEMA
from manifests.takedowns import (
    KINDS,
    MODES,
    TakedownRequestError,
    append_line,
    exclusion_reason,
    log_entry,
    log_path,
    matches,
    normalise_value,
    request_id,
)
from pipeline.stage import REJECTED_SCHEMA
from pipeline.stages.tokenize_takedown import cut_shard

STAGE = "tokenize"
JOURNAL = "takedown.tmp-journal.json"  # ".tmp-": the run hashes and shard listings skip it
TMP_INFIX = ".tmp-takedown-"


class TakedownInputError(Exception):
    """An unusable run directory or request (exit 2); the message names it."""


class NoMatch(Exception):
    """No included document is named by the request (exit 1)."""


@dataclass
class Outcome:
    request_id: str
    mode: str
    doc_ids: list[str] = field(default_factory=list)  # taken down now
    already: list[str] = field(default_factory=list)  # taken down by an earlier run of the request
    shards: list[str] = field(default_factory=list)
    recovered: bool = False  # an interrupted takedown was completed first


def add_parser(sub) -> None:
    p = sub.add_parser("takedown", help="take documents out of a finished run's tokenized shards")
    p.add_argument("run_dir", metavar="RUN_DIR")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--url", help="the document with this URL (source_uri or the locator's URL)")
    which.add_argument("--domain", help="every document from this host and its subdomains")
    which.add_argument("--doc-id", dest="doc_id", help="the document with this doc_id")
    p.add_argument("--reason", help="why (recorded in takedowns.jsonl and the rejects)")
    p.add_argument("--mode", choices=MODES, help="rewrite or mask (default: the run's takedown.mode)")


def cmd_takedown(args: argparse.Namespace) -> int:
    kind = next(k for k in KINDS if getattr(args, k) is not None)
    try:
        result = take_down(args.run_dir, kind, getattr(args, kind), args.reason, args.mode)
    except (TakedownInputError, TakedownRequestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NoMatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if result.recovered:
        print("completed an interrupted takedown first", file=sys.stderr)
    if not result.doc_ids:
        print(
            f"request {result.request_id}: already done ({len(result.already)} documents taken down before)",
            file=sys.stderr,
        )
    else:
        print(
            f"request {result.request_id} ({result.mode}): took down {len(result.doc_ids)} documents "
            f"from {', '.join(result.shards)}; logged in {log_path(args.run_dir)}",
            file=sys.stderr,
        )
    print(json.dumps({"request_id": result.request_id, "doc_ids": result.doc_ids, "shards": result.shards}))
    return 0


def take_down(
    run_dir: str, kind: str, value: str, reason: str | None = None, mode: str | None = None
) -> Outcome:
    run_dir = run_dir.rstrip("/")
    value = normalise_value(kind, value)
    settings = _run_settings(run_dir)
    mode = mode or settings["mode"]
    if mode not in MODES:
        raise TakedownInputError(f"takedown mode must be one of {', '.join(MODES)}, got {mode!r}")
    recovered = _recover(run_dir)
    rid = request_id(kind, value)
    found = _find(run_dir, kind, value, rid)
    outcome = Outcome(rid, mode, recovered=recovered)
    outcome.already = sorted(d for docs in found.values() for d in docs["done"])
    todo = {shard: docs["new"] for shard, docs in found.items() if docs["new"]}
    if not todo:
        if not outcome.already:
            raise NoMatch(f"no included document of {run_dir} matches --{kind.replace('_', '-')} {value}")
        return outcome
    _check_hashes(run_dir)
    renames: list[tuple[str, str]] = []
    stage_delta: Counter = Counter()
    for shard, docs in sorted(todo.items()):
        renames += _stage_shard(run_dir, shard, docs, rid, kind, value, reason, mode, settings, stage_delta)
    outcome.doc_ids = sorted(d for docs in todo.values() for d in docs)
    outcome.shards = [_shard_ref(s) for s in sorted(todo)]
    renames.append(_stage_json(stage_stats_path(run_dir, STAGE), stage_delta, mode, rid))
    entry = log_entry(
        rid,
        kind,
        value,
        reason,
        outcome.doc_ids + outcome.already,
        mode,
        sorted({_shard_ref(s) for s in found}),
        tokens=int(stage_delta["tokens"]),
        mask_id=settings["mask_id"] if mode == "mask" else None,
    )
    renames.append(_stage_bytes(log_path(run_dir), _log_bytes(run_dir, entry, rid), rid))
    _commit(run_dir, rid, renames)
    return outcome


def _shard_ref(shard: str) -> str:
    return f"{STAGE}/{shard}.parquet"


def _run_settings(run_dir: str) -> dict[str, Any]:
    """takedown.mode, takedown.mask_id and the row group size from the run's resolved config."""
    fs, path = filesystem(f"{run_dir}/{RESOLVED_CONFIG}")
    if not fs.isdir(filesystem(run_dir)[1]):
        raise TakedownInputError(f"{run_dir}: no such run directory")
    if not fs.exists(path) or not fs.exists(filesystem(stage_stats_path(run_dir, STAGE))[1]):
        raise TakedownInputError(
            f"{run_dir}: not a finished run (needs {RESOLVED_CONFIG} and {STAGE}/stats.json)"
        )
    with fs.open(path, "rb") as f:
        config = yaml.safe_load(f.read()) or {}
    takedown = config.get("takedown") or {}
    return {
        "mode": takedown.get("mode", "rewrite"),
        "mask_id": int(takedown.get("mask_id", 0)),
        "row_group_tokens": int((config.get("tokenize") or {}).get("row_group_tokens", 2**20)),
    }


def _find(run_dir: str, kind: str, value: str, rid: str) -> dict[str, dict[str, list[str]]]:
    """Per tokenize shard: included documents the request names ("new") and documents this
    request took down before ("done")."""
    done_reason = exclusion_reason(rid)
    found = {}
    for shard in done_shards(run_dir, STAGE):
        path = manifest_path(run_dir, STAGE, shard)
        try:
            t = read_parquet(path, ["doc_id", "source_uri", "locator", "included", "exclusion_reason"])
        except (OSError, pa.ArrowInvalid) as exc:
            raise TakedownInputError(f"{path}: unreadable manifest ({exc})") from None
        cols = {c: t.column(c).to_pylist() for c in t.column_names}
        new, done = [], []
        for doc, uri, loc, inc, why in zip(*(cols[c] for c in t.column_names)):
            if inc and matches(kind, value, doc, uri, loc):
                new.append(doc)
            elif not inc and why == done_reason:
                done.append(doc)
        if new or done:
            found[shard] = {"new": new, "done": done}
    return found


def _check_hashes(run_dir: str) -> None:
    """Refuse to rewrite the run hashes over files that already differ from them: a takedown
    must not make a tampered run look clean."""
    if read_run_hashes(run_dir) is None:
        return
    problems = verify_run_hashes(run_dir)
    if problems:
        listed = "; ".join(f"{v.file}: {v.message}" for v in problems[:3])
        raise TakedownInputError(
            f"{run_dir}: {len(problems)} files differ from run_manifest.json ({listed}); "
            "audit the run before a takedown"
        )


def _tmp(path: str, rid: str) -> str:
    return f"{path}{TMP_INFIX}{rid}"


def _stage_bytes(path: str, data: bytes, rid: str) -> tuple[str, str]:
    fs, fs_path = filesystem(path)
    fs.makedirs(fs_path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(_tmp(fs_path, rid), "wb") as f:
        f.write(data)
    return _tmp(fs_path, rid), fs_path


def _stage_shard(run_dir, shard, docs, rid, kind, value, reason, mode, settings, stage_delta) -> list:
    prefix = f"{stage_dir(run_dir, STAGE)}/{shard}"
    tmp_prefix = f"{stage_dir(run_dir, STAGE)}/{shard}{TMP_INFIX}{rid}"
    cut = cut_shard(prefix, set(docs), tmp_prefix, mode, settings["mask_id"], settings["row_group_tokens"])
    order = {".bin": 0, ".idx": 1, ".parquet": 2}
    renames = [
        (filesystem(f"{tmp_prefix}{ext}")[1], filesystem(f"{prefix}{ext}")[1])
        for ext in sorted(cut.extensions, key=order.__getitem__)
    ]
    why = exclusion_reason(rid)
    detail = f"takedown request {rid}: {kind} {value}" + (f" ({reason})" if reason else "")
    manifest = _updated_manifest(run_dir, shard, set(docs), cut.first_rows, why, mode)
    sources = dict(zip(manifest.column("doc_id").to_pylist(), manifest.column("source").to_pylist()))
    renames.append(
        _stage_bytes(
            rejected_path(run_dir, STAGE, shard),
            _rejected_bytes(run_dir, shard, [(d, sources.get(d), why, detail) for d in docs]),
            rid,
        )
    )
    renames.append(_stage_bytes(manifest_path(run_dir, STAGE, shard), manifest_bytes(manifest), rid))
    delta = _delta(cut.removed, mode)
    stage_delta.update(delta)
    renames.append(_stage_json(shard_stats_path(run_dir, STAGE, shard), delta, mode, rid))
    return renames


def _updated_manifest(
    run_dir, shard, docs: set[str], first_rows: dict[str, int], why: str, mode: str
) -> pa.Table:
    path = manifest_path(run_dir, STAGE, shard)
    try:
        table = read_manifest(path)
    except ManifestError as exc:
        raise TakedownInputError(str(exc)) from None
    ids = table.column("doc_id").to_pylist()
    cols = {c: table.column(c).to_pylist() for c in ("included", "exclusion_reason", "shard", "row")}
    for i, doc in enumerate(ids):
        if doc in docs:
            cols["included"][i], cols["exclusion_reason"][i] = False, why
            if mode == "rewrite":  # its rows are gone; num_tokens stays as the record of what it had
                cols["shard"][i] = cols["row"][i] = None
        elif cols["included"][i] and doc in first_rows:
            cols["row"][i] = first_rows[doc]
    for name, values in cols.items():
        field_ = MANIFEST_SCHEMA.field(name)
        table = table.set_column(table.schema.get_field_index(name), field_, pa.array(values, field_.type))
    return table.replace_schema_metadata(MANIFEST_SCHEMA.metadata)


def _rejected_bytes(run_dir: str, shard: str, rows: list[tuple]) -> bytes:
    """The shard's rejects with the taken-down documents added once (a repeated run adds none)."""
    path = rejected_path(run_dir, STAGE, shard)
    fs, fs_path = filesystem(path)
    table = read_parquet(path) if fs.exists(fs_path) else REJECTED_SCHEMA.empty_table()
    present = set(table.column("doc_id").to_pylist())
    new = [
        dict(zip(("doc_id", "source", "reason", "detail"), r), text=None) for r in rows if r[0] not in present
    ]
    added = pa.Table.from_pylist(new, schema=table.schema) if new else table.schema.empty_table()
    return parquet_bytes(pa.concat_tables([table, added]))


def _delta(removed: pa.Table, mode: str) -> Counter:
    """What the takedown takes from the stage's statistics, as additive counts."""
    firsts = removed.filter(pc.equal(removed.column("piece"), 0))
    delta: Counter = Counter(
        documents=firsts.num_rows,
        rows=removed.num_rows if mode == "rewrite" else 0,
        tokens=int(pc.sum(removed.column("num_tokens")).as_py() or 0),
        split=int(pc.sum(pc.equal(removed.column("piece"), 1)).as_py() or 0),
    )
    for column in ("source", "license"):
        for value, n in zip(firsts.column(column).to_pylist(), firsts.column("num_tokens").to_pylist()):
            delta[("documents_by_" + column, str(value))] += 1
        for value, n in zip(removed.column(column).to_pylist(), removed.column("num_tokens").to_pylist()):
            delta[("tokens_by_" + column, str(value))] += n
    return delta


def _stage_json(path: str, delta: Counter, mode: str, rid: str) -> tuple[str, str]:
    fs, fs_path = filesystem(path)
    with fs.open(fs_path, "rb") as f:
        stats = json.loads(f.read())
    stats["documents_out"] = stats.get("documents_out", 0) - delta["documents"]
    stats["documents_rejected"] = stats.get("documents_rejected", 0) + delta["documents"]
    reasons = Counter(stats.get("rejected_by_reason") or {})
    reasons["takedown"] += delta["documents"]
    stats["rejected_by_reason"] = dict(sorted(reasons.items()))
    counts = stats.setdefault("counts", {})
    counts["tokens_out"] = counts.get("tokens_out", 0) - delta["tokens"]
    counts["rows"] = counts.get("rows", 0) - delta["rows"]
    counts["documents_split"] = counts.get("documents_split", 0) - delta["split"]
    if mode == "mask":  # still in the stream, as mask ids: counted apart from the training tokens
        counts["tokens_masked"] = counts.get("tokens_masked", 0) + delta["tokens"]
    for key, n in delta.items():
        if isinstance(key, tuple):
            table = counts.setdefault(key[0], {})
            table[key[1]] = table.get(key[1], 0) - n
            if table[key[1]] == 0:
                del table[key[1]]
    text = json.dumps(stats, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    return _stage_bytes(path, text.encode("utf-8"), rid)


def _log_bytes(run_dir: str, entry: dict, rid: str) -> bytes:
    fs, path = filesystem(log_path(run_dir))
    existing = b""
    if fs.exists(path):
        with fs.open(path, "rb") as f:
            existing = f.read()
    return append_line(existing, entry)


def _rename(fs, tmp: str, final: str) -> None:
    fs.mv(tmp, final)


def _commit(run_dir: str, rid: str, renames: list[tuple[str, str]]) -> None:
    """The journal (the commit point), the renames, the run hashes, then no journal."""
    atomic_write_json(f"{run_dir}/{JOURNAL}", {"request_id": rid, "renames": renames})
    _roll_forward(run_dir)


def _roll_forward(run_dir: str) -> None:
    fs, journal = filesystem(f"{run_dir}/{JOURNAL}")
    with fs.open(journal, "rb") as f:
        renames = json.loads(f.read())["renames"]
    for tmp, final in renames:
        if fs.exists(tmp):  # else renamed before the interruption
            _rename(fs, tmp, final)
    write_run_hashes(run_dir)
    fs.rm(journal)


def _recover(run_dir: str) -> bool:
    """Complete a takedown interrupted after its journal; delete the temporaries of one
    interrupted before. True when one was completed."""
    fs, journal = filesystem(f"{run_dir}/{JOURNAL}")
    if fs.exists(journal):
        _roll_forward(run_dir)
        return True
    for folder in (run_dir, stage_dir(run_dir, STAGE), f"{stage_dir(run_dir, STAGE)}/rejected"):
        fs_folder = filesystem(folder)[1]
        if fs.exists(fs_folder):
            for name in fs.ls(fs_folder, detail=False):
                if TMP_INFIX in name.rsplit("/", 1)[-1]:
                    fs.rm(name)
    return False
