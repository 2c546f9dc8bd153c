"""Additive stage statistics: saved per shard, summed per stage (STYLE.md point 4)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ShardStats:
    shards: int = 0
    documents_in: int = 0
    documents_out: int = 0
    documents_rejected: int = 0
    characters_in: int = 0
    characters_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    # A stage's own additive counts (tokenize: tokens in and out, tokens per source and licence):
    # numbers, or mappings of them, summed key by key. Left out of the JSON when empty.
    counts: dict[str, Any] = field(default_factory=dict)

    def __add__(self, other: ShardStats) -> ShardStats:
        reasons = Counter(self.rejected_by_reason)
        reasons.update(other.rejected_by_reason)
        return ShardStats(
            shards=self.shards + other.shards,
            documents_in=self.documents_in + other.documents_in,
            documents_out=self.documents_out + other.documents_out,
            documents_rejected=self.documents_rejected + other.documents_rejected,
            characters_in=self.characters_in + other.characters_in,
            characters_out=self.characters_out + other.characters_out,
            bytes_in=self.bytes_in + other.bytes_in,
            bytes_out=self.bytes_out + other.bytes_out,
            rejected_by_reason=dict(sorted(reasons.items())),
            seconds=round(self.seconds + other.seconds, 3),
            counts=_add_counts(self.counts, other.counts),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not data["counts"]:
            del data["counts"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardStats:
        return cls(**data)

    def summary(self) -> str:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected_by_reason.items())) or "none"
        return (
            f"{self.documents_in} documents in, {self.documents_out} kept, "
            f"{self.documents_rejected} rejected ({reasons})"
        )


def _add_counts(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Key-by-key sum of two count mappings, nested ones too.

    >>> _add_counts({"tokens": 3, "by_source": {"kokkai": 2}}, {"tokens": 4, "by_source": {"egov": 1}})
    {'by_source': {'egov': 1, 'kokkai': 2}, 'tokens': 7}
    """
    out: dict[str, Any] = {}
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) or isinstance(y, dict):
            out[key] = _add_counts(x or {}, y or {})
        else:
            out[key] = (x or 0) + (y or 0)
    return out
