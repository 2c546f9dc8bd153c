"""The provenance audit of a finished run (first version: conservation and completeness).

Conservation: every document fetched is either in the final shards or rejected with a reason
by exactly one stage, exactly once. Completeness: every manifest row has the required columns.
Each violation names the document, the manifest file and the row.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from manifests.io import ManifestError, filesystem, read_manifest, read_parquet
from manifests.layout import (
    STAGE_ORDER,
    docs_path,
    done_shards,
    is_stage_complete,
    manifest_path,
    rejected_path,
)
from manifests.schema import REQUIRED_COLUMNS, RETRIEVAL_COLUMNS

FIRST_STAGE, FINAL_STAGE = STAGE_ORDER[0], STAGE_ORDER[-1]
MAX_LISTED = 1000  # violations listed in a report; all are counted


@dataclass
class Violation:
    check: str
    message: str
    doc_id: str | None = None
    file: str | None = None
    row: int | None = None


@dataclass
class AuditReport:
    run_dir: str
    documents_fetched: int = 0
    documents_included: int = 0
    documents_rejected: int = 0
    rejected_by_stage: dict[str, int] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    violation_counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violation_counts

    def add(self, violation: Violation) -> None:
        self.violation_counts[violation.check] = self.violation_counts.get(violation.check, 0) + 1
        if len(self.violations) < MAX_LISTED:
            self.violations.append(violation)


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


def audit_run(run_dir: str) -> AuditReport:
    report = AuditReport(run_dir=run_dir)
    for stage in STAGE_ORDER:
        if not is_stage_complete(run_dir, stage):
            report.add(Violation("completeness", f"stage '{stage}' has not finished (no stats.json)"))

    fetched: set[str] = set()
    accounted: Counter[str] = Counter()
    where: dict[str, str] = {}
    for stage in STAGE_ORDER:
        for shard in done_shards(run_dir, stage):
            path = manifest_path(run_dir, stage, shard)
            try:
                table = read_manifest(path)
            except ManifestError as exc:
                report.add(Violation("schema", str(exc), file=path))
                continue
            _check_required(report, table, path)
            ids = table.column("doc_id").to_pylist()
            included = table.column("included").to_pylist()
            reasons = table.column("exclusion_reason").to_pylist()
            if stage == FIRST_STAGE:
                fetched.update(ids)
            rejected_file = _read_rejected_ids(rejected_path(run_dir, stage, shard))
            final_ids: list[str] | None = None
            if stage == FINAL_STAGE:
                final_ids = (
                    read_parquet(docs_path(run_dir, stage, shard), ["doc_id"]).column("doc_id").to_pylist()
                )
            for row, (doc, inc, reason) in enumerate(zip(ids, included, reasons)):
                if not inc:
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
                    accounted[doc] += 1
                    where[doc] = path
                    report.rejected_by_stage[stage] = report.rejected_by_stage.get(stage, 0) + 1
                    report.documents_rejected += 1
                elif stage == FINAL_STAGE:
                    _check_final_row(report, table, row, doc, path, final_ids or [])
                    accounted[doc] += 1
                    where[doc] = path
                    report.documents_included += 1

    report.documents_fetched = len(fetched)
    for doc in sorted(fetched - set(accounted)):
        report.add(Violation("conservation", "fetched but neither in the final shards nor rejected", doc))
    for doc, n in sorted(accounted.items()):
        if n > 1:
            report.add(Violation("conservation", f"accounted for {n} times", doc, where[doc]))
        if doc not in fetched:
            report.add(Violation("conservation", "in the output but never fetched", doc, where[doc]))
    return report


def _check_final_row(report: AuditReport, table, row: int, doc: str, path: str, final_ids: list[str]) -> None:
    shard_name = table.column("shard")[row].as_py()
    shard_row = table.column("row")[row].as_py()
    if shard_name is None or shard_row is None or table.column("num_tokens")[row].as_py() is None:
        report.add(
            Violation("completeness", "included document without shard, row and num_tokens", doc, path, row)
        )
        return
    if not (0 <= shard_row < len(final_ids)) or final_ids[shard_row] != doc:
        report.add(
            Violation(
                "integrity",
                f"manifest says {shard_name} row {shard_row}, the shard disagrees",
                doc,
                path,
                row,
            )
        )


def render(report: AuditReport, fmt: str = "md") -> str:
    data: dict[str, Any] = asdict(report)
    data["ok"] = report.ok
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=2)
    lines = [
        f"# Audit of {report.run_dir}",
        "",
        f"- documents fetched: {report.documents_fetched}",
        f"- included in the final shards: {report.documents_included}",
        f"- rejected with a reason: {report.documents_rejected}"
        + "".join(f"\n  - {stage}: {n}" for stage, n in report.rejected_by_stage.items()),
        f"- verdict: {'PASS' if report.ok else 'FAIL'}",
    ]
    if not report.ok:
        lines += ["", "## Violations", ""]
        lines += [f"- {check}: {n}" for check, n in sorted(report.violation_counts.items())]
        lines += ["", "| check | document | file | row | problem |", "|---|---|---|---|---|"]
        for v in report.violations:
            lines.append(
                f"| {v.check} | {v.doc_id or ''} | {v.file or ''} | {'' if v.row is None else v.row} | {v.message} |"
            )
    return "\n".join(lines)
