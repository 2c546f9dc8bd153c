"""The shard commit protocol.

A shard is done when its manifest exists. The framework writes the documents, the rejected
documents and the shard's stats first and the manifest last, each atomically, so a killed
worker leaves either a done shard or one that the next run redoes from scratch.
"""

from __future__ import annotations

import json
import time

import pyarrow as pa

from manifests.io import (
    TMP_MARKER,
    atomic_write_json,
    atomic_write_parquet,
    filesystem,
    manifest_table,
    write_manifest,
)
from manifests.layout import (
    docs_path,
    done_shards,
    exists,
    is_stage_complete,
    manifest_path,
    rejected_path,
    shard_stats_path,
    stage_dir,
    stage_stats_path,
)
from pipeline.errors import MissingInputError
from pipeline.stage import REJECTED_SCHEMA, ShardSpec, Stage, text_characters
from pipeline.stats import ShardStats


def is_done(run_dir: str, stage: str, shard: str) -> bool:
    return exists(manifest_path(run_dir, stage, shard))


def input_shards(run_dir: str, input_stage: str) -> list[ShardSpec]:
    """One output shard per shard of the input stage, which must have finished."""
    if not is_stage_complete(run_dir, input_stage):
        done = len(done_shards(run_dir, input_stage))
        state = f"{done} shards done, not finished" if done else "no output"
        raise MissingInputError(
            f"stage '{input_stage}' has {state} in {stage_dir(run_dir, input_stage)}; "
            f"run --stage {input_stage} first"
        )
    specs = []
    for name in done_shards(run_dir, input_stage):
        index = int(name.split("-", 1)[1])
        specs.append(
            ShardSpec(
                index=index,
                inputs={
                    "docs": docs_path(run_dir, input_stage, name),
                    "manifest": manifest_path(run_dir, input_stage, name),
                },
            )
        )
    return specs


def remove_orphans(run_dir: str, stage: str) -> int:
    """Delete temporary files a killed worker left behind; returns how many."""
    fs, root = filesystem(stage_dir(run_dir, stage))
    if not fs.exists(root):
        return 0
    orphans = [p for p in fs.find(root) if TMP_MARKER in p.rsplit("/", 1)[-1]]
    for p in orphans:
        fs.rm(p)
    return len(orphans)


def run_shard(stage: Stage, shard: ShardSpec) -> ShardStats | None:
    """Process one shard and commit it; None when it was already done."""
    run_dir = stage.ctx.run_dir
    if is_done(run_dir, stage.name, shard.name):
        return None
    started = time.perf_counter()
    result = stage.process(shard)

    kept: pa.Table = result.kept
    rejected = pa.Table.from_pylist(result.rejected, schema=REJECTED_SCHEMA)
    manifest = result.manifest_table
    manifest = manifest_table(result.manifest) if manifest is None else manifest
    documents_out = kept.num_rows if result.documents_out is None else result.documents_out
    expected = documents_out + rejected.num_rows
    if manifest.num_rows != expected:
        raise RuntimeError(
            f"{stage.name} {shard.name}: {manifest.num_rows} manifest rows for {expected} documents"
        )

    reasons: dict[str, int] = {}
    for reason in rejected.column("reason").to_pylist():
        # A reason may name another document (dedup's "duplicate_of:<doc_id>"); counted by kind.
        kind = reason.split(":", 1)[0]
        reasons[kind] = reasons.get(kind, 0) + 1
    stats = ShardStats(
        shards=1,
        documents_in=expected,
        documents_out=documents_out,
        documents_rejected=rejected.num_rows,
        characters_in=result.characters_in,
        characters_out=text_characters(kept),
        bytes_in=result.bytes_in,
        bytes_out=kept.nbytes,
        rejected_by_reason=dict(sorted(reasons.items())),
        counts=result.counts,
    )

    write_kept = result.write_kept or atomic_write_parquet
    write_kept(docs_path(run_dir, stage.name, shard.name), kept)
    atomic_write_parquet(rejected_path(run_dir, stage.name, shard.name), rejected)
    stats.seconds = round(time.perf_counter() - started, 3)
    atomic_write_json(shard_stats_path(run_dir, stage.name, shard.name), stats.to_dict())
    write_manifest(manifest_path(run_dir, stage.name, shard.name), manifest)
    return stats


def sum_stage_stats(run_dir: str, stage: str) -> ShardStats:
    """Sum the per-shard stats of every done shard and write the stage's stats.json."""
    total = ShardStats()
    for name in done_shards(run_dir, stage):
        fs, p = filesystem(shard_stats_path(run_dir, stage, name))
        with fs.open(p, "rb") as f:
            total = total + ShardStats.from_dict(json.load(f))
    atomic_write_json(stage_stats_path(run_dir, stage), total.to_dict())
    return total
