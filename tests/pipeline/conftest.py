"""Helpers to call one stage on one small shard, without Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from manifests.io import atomic_write_json, atomic_write_parquet, manifest_table, write_manifest
from manifests.layout import docs_path, manifest_path, stage_stats_path
from manifests.schema import doc_id, new_row
from pipeline.config import load_config
from pipeline.stage import RunContext, ShardSpec


def manifest_row(
    upstream_id: str, source: str = "local", retrieved_at: str = "2025-01-15T00:00:00+00:00"
) -> dict:
    return new_row(
        doc_id=doc_id(source, upstream_id),
        source=source,
        source_uri=f"https://example.jp/{upstream_id}",
        locator=json.dumps({"id": upstream_id}),
        retrieved_at=retrieved_at,
        raw_sha256="0" * 64,
        license="NOASSERTION",
        legal_basis=["JP-Copyright-Art30-4"],
        osaid_class="public",
        redistribution="locator_only",
        optout="{}",
        pipeline_version="test",
        config_sha256="test",
    )


def _retrieved(doc: dict) -> dict:
    return {"retrieved_at": doc["retrieved_at"]} if "retrieved_at" in doc else {}


class ShardMaker:
    """Writes an input shard of a given stage into a temporary run directory."""

    def __init__(self, run_dir: Path):
        self.run_dir = str(run_dir)

    def context(self, *overrides: str) -> RunContext:
        config = load_config(None, list(overrides))
        return RunContext(
            run_dir=self.run_dir, config=config, config_sha256=config.sha256(), pipeline_version="test"
        )

    def write(self, stage: str, index: int, docs: list[dict], schema: pa.Schema | None = None) -> ShardSpec:
        """`docs`: dicts of document columns plus `upstream_id` (and optional `source`, and
        `retrieved_at`, which goes to the manifest only)."""
        rows = [manifest_row(d["upstream_id"], d.get("source", "local"), **_retrieved(d)) for d in docs]
        columns = [
            {k: v for k, v in d.items() if k not in ("upstream_id", "retrieved_at")} | {"doc_id": r["doc_id"]}
            for d, r in zip(docs, rows)
        ]
        for c, r in zip(columns, rows):
            c.setdefault("source", r["source"])
        table = pa.Table.from_pylist(columns, schema=schema)
        name = f"part-{index:05d}"
        atomic_write_parquet(docs_path(self.run_dir, stage, name), table)
        write_manifest(manifest_path(self.run_dir, stage, name), manifest_table(rows))
        atomic_write_json(stage_stats_path(self.run_dir, stage), {})
        return ShardSpec(
            index=index,
            inputs={
                "docs": docs_path(self.run_dir, stage, name),
                "manifest": manifest_path(self.run_dir, stage, name),
            },
        )


@pytest.fixture
def shards(tmp_path) -> ShardMaker:
    return ShardMaker(tmp_path)
