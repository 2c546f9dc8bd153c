"""The stage contract: a small base class a test can call on one shard without a cluster.

A stage turns one input shard into kept documents, rejected documents with a reason, and one
manifest row per input document. The framework (`pipeline.shards.run_shard`) writes those files
and counts, the manifest last; a stage never calls another stage. Two exceptions write files of
their own: dedup's `prepare` (its all-to-all phases, each task's output its own commit) and the
tokenize stage's `process` (Megatron .bin/.idx, atomically, before the framework writes the
manifest that marks the shard done).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable

import pyarrow as pa

from manifests.schema import sha256_hex
from pipeline.config import Config

REJECTED_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("source", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("text", pa.string()),
    ]
)


@dataclass(frozen=True)
class RunContext:
    """What every worker needs to know about the run; small and picklable."""

    run_dir: str
    config: Config
    config_sha256: str
    pipeline_version: str


@dataclass(frozen=True)
class ShardSpec:
    """One unit of work: output shard `index` made from `inputs` (paths or source descriptions)."""

    index: int
    inputs: dict[str, Any]
    # Shards with the same serial key never run at the same time: a source that allows one
    # request at a time (the Diet minutes API) is fetched by one worker at a time, in order.
    serial: str | None = None

    @property
    def name(self) -> str:
        return f"part-{self.index:05d}"


@dataclass
class ShardResult:
    kept: pa.Table
    rejected: list[dict[str, Any]]
    manifest: list[dict[str, Any]]
    bytes_in: int = 0
    characters_in: int = 0
    # Optional, for stages whose rows are not one per document (tokenize: a long document's pieces):
    # documents kept (default: rows of `kept`); the manifest already as Arrow, written as it is;
    # the stage's own additive counts for its stats (tokens per source and licence); how `kept` is
    # written (default: manifests.io.atomic_write_parquet).
    documents_out: int | None = None
    manifest_table: pa.Table | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    write_kept: Callable[[str, pa.Table], None] | None = None


# A parallel map the runtime provides (Ray tasks); stages use it for all-to-all steps.
ParallelMap = Callable[[Callable[[Any], Any], Iterable[Any]], list[Any]]


class Stage:
    name: ClassVar[str]
    # The stage whose output this one reads; None for fetch.
    input_stage: ClassVar[str | None]

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.config: Config = ctx.config

    def setup(self) -> None:
        """Load expensive resources (models, tokenizers); called once per worker process."""

    def teardown(self) -> None:
        """Release what setup acquired (child processes); called when the worker is done."""

    def plan(self) -> list[ShardSpec]:
        """The shards of this stage, in a deterministic order (driver side)."""
        from pipeline.shards import input_shards

        return input_shards(self.ctx.run_dir, self.input_stage)

    def prepare(self, shards: list[ShardSpec], pmap: ParallelMap) -> None:
        """A global step before the shards run (dedup's all-to-all); most stages have none."""

    def process(self, shard: ShardSpec) -> ShardResult:
        raise NotImplementedError


def params_sha256(params: dict[str, Any]) -> str:
    return sha256_hex(json.dumps(params, sort_keys=True, ensure_ascii=False, default=str))[:16]


def transform(stage: str, tool: str, version: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"stage": stage, "tool": tool, "version": version, "params_sha256": params_sha256(params)}


def decision(stage: str, check: str, value: float | None, passed: bool) -> dict[str, Any]:
    return {
        "stage": stage,
        "check": check,
        "value": None if value is None else float(value),
        "passed": passed,
    }


@dataclass
class RowUpdate:
    """What a stage adds to one document's manifest row."""

    transforms: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    detail: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


def update_manifest_row(
    row: dict[str, Any], stage: str, update: RowUpdate, text_sha256: str | None
) -> dict[str, Any]:
    row = dict(row)
    row["transforms"] = list(row["transforms"]) + update.transforms
    row["decisions"] = list(row["decisions"]) + update.decisions
    if text_sha256 is not None:
        row["text_sha256"] = text_sha256
    row.update(update.fields)
    if update.reason is not None:
        row["included"] = False
        row["exclusion_reason"] = f"{stage}:{update.reason}"
    return row


def text_characters(table: pa.Table) -> int:
    """Characters in the table's `text` column (0 if it has none), counted by Arrow."""
    if "text" not in table.column_names or table.num_rows == 0:
        return 0
    import pyarrow.compute as pc

    return pc.sum(pc.utf8_length(table.column("text"))).as_py() or 0


def read_input(shard: ShardSpec) -> tuple[pa.Table, list[dict[str, Any]]]:
    """The input shard's documents and, aligned with them, their manifest rows so far."""
    from manifests.io import read_manifest, read_parquet

    table = read_parquet(shard.inputs["docs"])
    by_id = {row["doc_id"]: row for row in read_manifest(shard.inputs["manifest"]).to_pylist()}
    rows = []
    for doc in table.column("doc_id").to_pylist():
        if doc not in by_id:
            raise RuntimeError(
                f"{shard.inputs['docs']}: document {doc} has no row in {shard.inputs['manifest']}"
            )
        rows.append(by_id[doc])
    return table, rows


def split_documents(
    stage: str,
    table: pa.Table,
    rows: list[dict[str, Any]],
    updates: list[RowUpdate],
    text_sha256: list[str | None] | None = None,
) -> ShardResult:
    """Apply one RowUpdate per document: rejected ones leave with their reason, the rest stay."""
    keep = []
    manifest = []
    rejected = []
    texts = table.column("text").to_pylist() if "text" in table.column_names else [None] * table.num_rows
    for i, (row, update) in enumerate(zip(rows, updates, strict=True)):
        manifest.append(update_manifest_row(row, stage, update, text_sha256[i] if text_sha256 else None))
        keep.append(update.reason is None)
        if update.reason is not None:
            rejected.append(
                {
                    "doc_id": row["doc_id"],
                    "source": row["source"],
                    "reason": update.reason,
                    "detail": update.detail,
                    "text": texts[i],
                }
            )
    kept = table.filter(pa.array(keep, type=pa.bool_())) if table.num_rows else table
    return ShardResult(
        kept=kept,
        rejected=rejected,
        manifest=manifest,
        characters_in=text_characters(table),
        bytes_in=table.nbytes,
    )
