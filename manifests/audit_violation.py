"""One finding of the audit: which check, what is wrong, and where (document, file, row)."""

from __future__ import annotations

from dataclasses import dataclass

# The checks a violation can belong to, as the report groups them.
CHECKS = ("conservation", "completeness", "schema", "policy", "integrity", "verification")


@dataclass
class Violation:
    check: str
    message: str
    doc_id: str | None = None
    file: str | None = None
    row: int | None = None
