"""The provenance audit of a finished run: `python -m pipeline audit RUN_DIR`.

Checks, each violation naming the document, file and row:
- conservation: every document fetched is in the final shards or rejected with a reason, once;
- completeness: every manifest row has the required columns, and its locator what its source
  needs to be obtained again (audit_locators.py);
- policy: every included document's licence, legal basis, OSAID class, opt-out signals, host and
  generator are allowed by the policy file (audit_policy.py), and no logged takedown names it
  (audit_takedowns.py);
- integrity: every file is what run_manifest.json recorded (run_hashes.py), and the tokenized shards
  hold exactly the included documents, their token counts and their texts (audit_integrity.py);
- verification, when asked: a seeded sample fetched again and compared with raw_sha256
  (audit_refetch.py).
The manifests are read one shard at a time, never the whole run at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from manifests.audit_integrity import check_shard
from manifests.audit_locators import locator_problems
from manifests.audit_policy import PolicyError, load_policy, policy_problems
from manifests.audit_refetch import STATUSES, Refetcher, choose
from manifests.audit_takedowns import TakedownLogError, read_takedowns
from manifests.audit_violation import Violation
from manifests.io import ManifestError, filesystem, read_manifest, read_parquet
from manifests.layout import (
    RESOLVED_CONFIG,
    STAGE_ORDER,
    done_shards,
    is_stage_complete,
    manifest_path,
    rejected_path,
)
from manifests.run_hashes import RUN_MANIFEST, RunHashesError, read_run_hashes, verify_run_hashes
from manifests.schema import REQUIRED_COLUMNS, RETRIEVAL_COLUMNS

__all__ = ["AuditInputError", "AuditReport", "Violation", "audit_run"]

FIRST_STAGE, FINAL_STAGE = STAGE_ORDER[0], STAGE_ORDER[-1]
MAX_LISTED = 1000  # violations listed in a report; all are counted
# Columns the policy and the re-fetch read of an included document.
_ROW_COLUMNS = ("doc_id", "source", "source_uri", "locator", "license", "legal_basis", "osaid_class",
                "optout", "raw_sha256", "shard", "row")  # fmt: skip


class AuditInputError(Exception):
    """Input the audit cannot use (exit code 2): the message is one line naming the file."""


@dataclass
class AuditReport:
    run_dir: str
    policy_file: str | None = None
    documents_fetched: int = 0
    documents_included: int = 0
    documents_rejected: int = 0
    tokens_included: int = 0
    rejected_by_stage: dict[str, int] = field(default_factory=dict)
    # run_manifest (checked | missing | unreadable), files_checked, shards, rows, tokens,
    # tokenizer, documents_decoded, documents_normalised
    integrity: dict[str, Any] = field(default_factory=dict)
    # request_id, requested_at, kind, value, mode, documents, shards
    takedowns: list[dict[str, Any]] = field(default_factory=list)
    # {} unless asked: seed, requested, sample (doc ids), results (one per document), counts per status
    verification: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    violation_counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violation_counts

    def add(self, violation: Violation) -> None:
        self.violation_counts[violation.check] = self.violation_counts.get(violation.check, 0) + 1
        if len(self.violations) < MAX_LISTED:
            self.violations.append(violation)


def audit_run(
    run_dir: str,
    policy_file: str | None = None,
    verify_sample: int = 0,
    seed: int = 0,
    load_tokenizer: Callable[[str], Any] | None = None,
) -> AuditReport:
    """Audit a run. `load_tokenizer(path)` (the pipeline's loader) lets the audit decode tokens;
    without it token counts are checked but not texts. AuditInputError for unusable input."""
    fs, path = filesystem(run_dir)
    if not fs.isdir(path):
        raise AuditInputError(f"{run_dir}: no such run directory")
    try:
        policy = load_policy(policy_file)
        takedowns = read_takedowns(run_dir)
    except (PolicyError, TakedownLogError) as exc:
        raise AuditInputError(str(exc)) from None
    report = AuditReport(run_dir=run_dir, policy_file=policy.path, takedowns=takedowns.summary())
    config = _resolved_config(run_dir, report)
    base_dir = _check_run_hashes(run_dir, report)
    tokenizer = _tokenizer(config, base_dir, load_tokenizer, report)

    for stage in STAGE_ORDER:
        if not is_stage_complete(run_dir, stage):
            report.add(Violation("completeness", f"stage '{stage}' has not finished (no stats.json)"))
    fetched: set[str] = set()
    accounted: Counter[str] = Counter()
    where: dict[str, str] = {}
    included_per_shard: list[tuple[str, int]] = []
    for stage in STAGE_ORDER:
        for shard in done_shards(run_dir, stage):
            mpath = manifest_path(run_dir, stage, shard)
            table = _read_manifest(mpath, run_dir, report)
            _check_required(report, table, mpath)
            ids = table.column("doc_id").to_pylist()
            if stage == FIRST_STAGE:
                fetched.update(ids)
            _check_shard_rows(report, stage, table, mpath, run_dir, shard, accounted, where)
            if stage == FINAL_STAGE:
                n = _check_final_shard(report, table, mpath, policy, takedowns)
                included_per_shard.append((shard, n))
                violations, tally = check_shard(run_dir, shard, table, mpath, takedowns, tokenizer)
                for v in violations:
                    report.add(v)
                _tally(report, tally)

    report.documents_fetched = len(fetched)
    for doc in sorted(fetched - set(accounted)):
        report.add(Violation("conservation", "fetched but neither in the final shards nor rejected", doc))
    for doc, n in sorted(accounted.items()):
        if n > 1:
            report.add(Violation("conservation", f"accounted for {n} times", doc, where[doc]))
        if doc not in fetched:
            report.add(Violation("conservation", "in the output but never fetched", doc, where[doc]))
    if verify_sample:
        _verify(report, run_dir, included_per_shard, verify_sample, seed, Refetcher(config, base_dir))
    return report


# -- inputs ------------------------------------------------------------------------------------


def _resolved_config(run_dir: str, report: AuditReport) -> dict[str, Any]:
    fs, path = filesystem(f"{run_dir.rstrip('/')}/{RESOLVED_CONFIG}")
    if not fs.exists(path):
        report.add(Violation("completeness", f"no {RESOLVED_CONFIG}: the run's settings are unknown"))
        return {}
    try:
        with fs.open(path, "rb") as f:
            return yaml.safe_load(f.read().decode("utf-8")) or {}
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise AuditInputError(f"{run_dir}/{RESOLVED_CONFIG}: not readable YAML ({exc})") from None


def _check_run_hashes(run_dir: str, report: AuditReport) -> str | None:
    """Compare every file with run_manifest.json; returns the run's config directory, if recorded."""
    try:
        recorded = read_run_hashes(run_dir)
        violations = verify_run_hashes(run_dir)
    except RunHashesError as exc:
        report.integrity["run_manifest"] = "unreadable"
        report.add(Violation("integrity", str(exc), file=RUN_MANIFEST))
        return None
    report.integrity["run_manifest"] = "checked" if recorded else "missing"
    report.integrity["files_checked"] = len(recorded["files"]) if recorded else 0
    report.integrity["changed_files"] = sorted(
        v.file for v in violations if v.file and "changed" in v.message
    )
    for v in violations:
        report.add(v)
    return (recorded or {}).get("config_base_dir")


def _tokenizer(config: dict, base_dir: str | None, load: Callable | None, report: AuditReport):
    path = ((config.get("tokenize") or {}).get("tokenizer_path")) if config else None
    if load is None or not path:
        report.integrity["tokenizer"] = "not loaded: texts not decoded"
        return None
    if "://" not in path and not Path(path).is_absolute():
        if base_dir is None:
            report.notes.append(
                f"tokenizer {path} is relative and the run records no config directory: not decoded"
            )
            report.integrity["tokenizer"] = "not found: texts not decoded"
            return None
        path = str((Path(base_dir) / path).resolve())
    try:
        tokenizer = load(path)
    except Exception as exc:  # any loader failure only means the texts cannot be decoded
        report.notes.append(f"tokenizer {path} could not be loaded ({exc}): texts not decoded")
        report.integrity["tokenizer"] = "not loaded: texts not decoded"
        return None
    report.integrity["tokenizer"] = f"{path} (SHA-256 {tokenizer.sha256})"
    return tokenizer


def _read_manifest(path: str, run_dir: str, report: AuditReport):
    try:
        return read_manifest(path)
    except ManifestError as exc:
        rel = path[len(run_dir.rstrip("/")) + 1 :]
        changed = (
            "; its bytes differ from run_manifest.json"
            if rel in report.integrity.get("changed_files", ())
            else ""
        )
        one_line = " ".join(str(exc).split())  # pyarrow's messages span lines; the CLI prints one
        raise AuditInputError(f"{one_line}{changed}") from None


# -- per shard ---------------------------------------------------------------------------------


def _read_rejected_ids(path: str) -> dict[str, str]:
    fs, p = filesystem(path)
    if not fs.exists(p):
        return {}
    table = read_parquet(path, columns=["doc_id", "reason"])
    return dict(zip(table.column("doc_id").to_pylist(), table.column("reason").to_pylist()))


def _check_required(report: AuditReport, table, path: str) -> None:
    ids = table.column("doc_id").to_pylist()
    not_fetched = [(r or "").startswith("fetch:") for r in table.column("exclusion_reason").to_pylist()]
    for column in REQUIRED_COLUMNS + RETRIEVAL_COLUMNS:
        values = table.column(column)
        if values.null_count == 0:
            continue
        for row, value in enumerate(values.to_pylist()):
            if value is None and not (column in RETRIEVAL_COLUMNS and not_fetched[row]):
                report.add(
                    Violation("completeness", f"required column '{column}' is empty", ids[row], path, row)
                )


def _check_shard_rows(report, stage, table, path, run_dir, shard, accounted, where) -> None:
    """Conservation of one manifest, and the locators of the documents whose verdict is here."""
    ids = table.column("doc_id").to_pylist()
    included = table.column("included").to_pylist()
    reasons = table.column("exclusion_reason").to_pylist()
    sources = table.column("source").to_pylist()
    locators = table.column("locator").to_pylist()
    rejected_file = _read_rejected_ids(rejected_path(run_dir, stage, shard))
    for row, (doc, inc, reason) in enumerate(zip(ids, included, reasons)):
        if inc and stage != FINAL_STAGE:
            continue
        if not (reason or "").startswith("fetch:"):
            for problem in locator_problems(sources[row], locators[row]):
                report.add(Violation("completeness", problem, doc, path, row))
        accounted[doc] += 1
        where[doc] = path
        if inc:
            report.documents_included += 1
            continue
        if not reason:
            report.add(Violation("conservation", "rejected without a reason", doc, path, row))
        if doc not in rejected_file:
            report.add(
                Violation(
                    "conservation",
                    f"rejected in the manifest but absent from {stage}/rejected/",
                    doc,
                    path,
                    row,
                )
            )
        report.rejected_by_stage[stage] = report.rejected_by_stage.get(stage, 0) + 1
        report.documents_rejected += 1


def _check_final_shard(report: AuditReport, table, path: str, policy, takedowns) -> int:
    """Policy and takedowns of the included documents of one final manifest; returns how many."""
    mask = table.column("included")
    included = table.filter(mask)
    positions = [i for i, inc in enumerate(mask.to_pylist()) if inc]
    columns = {c: included.column(c).to_pylist() for c in _ROW_COLUMNS + ("num_tokens",)}
    for k, row in enumerate(positions):
        doc = {c: columns[c][k] for c in columns}
        if doc["shard"] is None or doc["row"] is None or doc["num_tokens"] is None:
            report.add(
                Violation(
                    "completeness",
                    "included document without shard, row and num_tokens",
                    doc["doc_id"],
                    path,
                    row,
                )
            )
        report.tokens_included += doc["num_tokens"] or 0
        for problem in policy_problems(policy, doc):
            report.add(Violation("policy", problem, doc["doc_id"], path, row))
        request = takedowns.match(doc["doc_id"], doc["source_uri"], doc["locator"])
        if request is not None:
            report.add(
                Violation(
                    "policy", f"still included although takedown {request} names it", doc["doc_id"], path, row
                )
            )
    return len(positions)


def _tally(report: AuditReport, tally) -> None:
    counts = report.integrity
    counts["shards"] = counts.get("shards", 0) + 1
    for name in ("rows", "tokens", "documents_decoded", "documents_normalised"):
        counts[name] = counts.get(name, 0) + getattr(tally, name)
    report.notes += tally.notes


# -- verification ------------------------------------------------------------------------------


def _verify(
    report: AuditReport, run_dir: str, per_shard: list[tuple[str, int]], n: int, seed: int, refetcher
) -> None:
    """Fetch a seeded sample of the included documents again; only the shards holding one are re-read."""
    total = sum(count for _, count in per_shard)
    positions = choose(total, n, seed)
    chosen: list[dict] = []
    start = 0
    for shard, count in per_shard:
        wanted = [p - start for p in positions if start <= p < start + count]
        start += count
        if not wanted:
            continue
        table = read_manifest(manifest_path(run_dir, FINAL_STAGE, shard))
        table = table.filter(table.column("included")).take(wanted)
        chosen += table.select(list(_ROW_COLUMNS)).to_pylist()
    results = [refetcher.check(row) for row in chosen]
    counts = {status: sum(r["status"] == status for r in results) for status in STATUSES}
    report.verification = {
        "seed": seed,
        "requested": n,
        "sample": [r["doc_id"] for r in chosen],
        "results": results,
        "counts": counts,
    }
    for r in results:
        if r["status"] == "mismatch":
            report.add(
                Violation(
                    "verification",
                    f"fetched again, the bytes differ: {r['detail']}",
                    r["doc_id"],
                    r["shard"],
                    r["row"],
                )
            )
