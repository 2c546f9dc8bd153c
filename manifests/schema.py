"""Schema v1 of the per-document provenance manifest (DESIGN.md, "Provenance manifest").

One row per document, in a Parquet file beside each shard. The version travels in the
Parquet schema metadata so that a reader can refuse a file it does not understand.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa

# 1.1 added `attribution`; a 1.0 reader ignores it, so the major version stays.
MANIFEST_VERSION = "1.1"
VERSION_METADATA_KEY = b"manifest_version"

TRANSFORM_TYPE = pa.struct(
    [
        ("stage", pa.string()),
        ("tool", pa.string()),
        ("version", pa.string()),
        ("params_sha256", pa.string()),
    ]
)
DECISION_TYPE = pa.struct(
    [
        ("stage", pa.string()),
        ("check", pa.string()),
        ("value", pa.float64()),
        ("passed", pa.bool_()),
    ]
)

SOURCES = ("commoncrawl", "kokkai", "egov", "gov_web", "synthetic", "local")
OSAID_CLASSES = ("open", "public", "obtainable", "unshareable")
REDISTRIBUTION = ("text", "locator_only")

_FIELDS = [
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("source_uri", pa.string()),
    pa.field("locator", pa.string(), nullable=False),  # JSON object
    pa.field("retrieved_at", pa.string()),  # ISO 8601, UTC
    pa.field("raw_sha256", pa.string()),
    pa.field("text_sha256", pa.string()),
    pa.field("license", pa.string(), nullable=False),
    pa.field("legal_basis", pa.list_(pa.string()), nullable=False),
    pa.field("osaid_class", pa.string(), nullable=False),
    pa.field("redistribution", pa.string(), nullable=False),
    # The credit line the source's terms require (出典), e.g. for Diet minutes and PDL 1.0 pages.
    pa.field("attribution", pa.string()),
    pa.field("optout", pa.string(), nullable=False),  # JSON object
    pa.field("transforms", pa.list_(TRANSFORM_TYPE), nullable=False),
    pa.field("decisions", pa.list_(DECISION_TYPE), nullable=False),
    pa.field("dedup_cluster_id", pa.string()),
    pa.field("dedup_cluster_size", pa.int32()),
    pa.field("included", pa.bool_(), nullable=False),
    pa.field("exclusion_reason", pa.string()),
    pa.field("shard", pa.string()),
    pa.field("row", pa.int64()),
    pa.field("num_tokens", pa.int64()),
    pa.field("pipeline_version", pa.string(), nullable=False),
    pa.field("config_sha256", pa.string(), nullable=False),
]

MANIFEST_SCHEMA = pa.schema(_FIELDS, metadata={VERSION_METADATA_KEY: MANIFEST_VERSION.encode()})
COLUMNS = tuple(MANIFEST_SCHEMA.names)
# Columns that must be non-null in every row; the audit checks them.
REQUIRED_COLUMNS = tuple(f.name for f in _FIELDS if not f.nullable) + ("source_uri",)
# Columns that describe retrieved bytes: required unless the document could not be fetched at all
# (then its row says `fetch:<reason>` and the locator says what was asked for).
RETRIEVAL_COLUMNS = ("retrieved_at", "raw_sha256")


def new_row(**fields: Any) -> dict[str, Any]:
    """A manifest row with every column: what is given, else empty (no transforms or decisions yet,
    included until a stage rejects it)."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(transforms=[], decisions=[], included=True)
    row.update(fields)
    return row


def doc_id(source: str, upstream_id: str) -> str:
    """Stable document id: the same upstream document has the same id on every run.

    >>> doc_id("local", "jsquad-valid:梅雨") == doc_id("local", "jsquad-valid:梅雨")
    True
    >>> doc_id("local", "jsquad-valid:梅雨") == doc_id("commoncrawl", "jsquad-valid:梅雨")
    False
    """
    return hashlib.sha256(f"{source}\x00{upstream_id}".encode()).hexdigest()[:32]


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()
