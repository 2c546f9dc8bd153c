"""dedup: exact duplicates of the normalised text, found by a partitioned all-to-all.

Two phases keyed by document id (as NeMo Curator does): first find which documents to drop,
then drop them shard by shard. Keys are hash-partitioned so that no task, and never the driver,
holds every key of the corpus.
  1. per input shard: (doc_id, key, shard, row) written once, sorted by partition;
  2. per partition: group by key; the first copy in (shard, row) order survives;
  3. per shard (`process`): look up its documents' clusters and drop the other copies.
"""

from __future__ import annotations

import pyarrow as pa

from manifests.io import atomic_write_parquet, read_parquet
from manifests.layout import stage_dir
from pipeline.stage import (
    ParallelMap,
    RowUpdate,
    ShardResult,
    ShardSpec,
    Stage,
    decision,
    read_input,
    split_documents,
    transform,
)

KEYS_DIR, CLUSTERS_DIR = "exact_keys", "exact_clusters"


def _hash_shard(args: tuple[str, ShardSpec, int]) -> int:
    from filters.dedup import exact_dedup_key

    run_dir, shard, partitions = args
    table = read_parquet(shard.inputs["docs"], columns=["doc_id", "text"])
    keys = [exact_dedup_key(t) for t in table.column("text").to_pylist()]
    out = pa.table(
        {
            "doc_id": table.column("doc_id"),
            "key": pa.array(keys, pa.string()),
            "shard": pa.array([shard.index] * len(keys), pa.int32()),
            "row": pa.array(range(len(keys)), pa.int64()),
            "partition": pa.array([int(k[:8], 16) % partitions for k in keys], pa.int32()),
        }
    ).sort_by([("partition", "ascending"), ("key", "ascending")])
    atomic_write_parquet(f"{stage_dir(run_dir, 'dedup')}/{KEYS_DIR}/{shard.name}.parquet", out)
    return len(keys)


def _cluster_partition(args: tuple[str, int]) -> int:
    import polars as pl

    run_dir, partition = args
    keys = (
        pl.scan_parquet(f"{stage_dir(run_dir, 'dedup')}/{KEYS_DIR}/*.parquet")
        .filter(pl.col("partition") == partition)
        .sort(["key", "shard", "row"])
        .collect()
    )
    clusters = keys.with_columns(
        pl.col("doc_id").first().over("key").alias("keeper"),
        pl.len().over("key").cast(pl.Int32).alias("cluster_size"),
        pl.col("key").str.slice(0, 16).alias("cluster_id"),
    ).select(["doc_id", "shard", "cluster_id", "cluster_size", "keeper"])
    path = f"{stage_dir(run_dir, 'dedup')}/{CLUSTERS_DIR}/partition-{partition:05d}.parquet"
    atomic_write_parquet(path, clusters.to_arrow())
    return clusters.height


class DedupStage(Stage):
    name = "dedup"
    input_stage = "clean"

    def prepare(self, shards: list[ShardSpec], pmap: ParallelMap) -> None:
        # The decision is global, so it is made from every input shard even when resuming.
        run_dir, partitions = self.ctx.run_dir, self.config.dedup.num_partitions
        pmap(_hash_shard, [(run_dir, s, partitions) for s in shards])
        pmap(_cluster_partition, [(run_dir, p) for p in range(partitions)])

    def process(self, shard: ShardSpec) -> ShardResult:
        import polars as pl

        from filters.normalize import NORMALIZER_ID

        table, rows = read_input(shard)
        clusters = (
            pl.scan_parquet(f"{stage_dir(self.ctx.run_dir, self.name)}/{CLUSTERS_DIR}/*.parquet")
            .filter(pl.col("shard") == shard.index)
            .collect()
        )
        by_doc = {r["doc_id"]: r for r in clusters.iter_rows(named=True)}
        method = transform(
            self.name,
            "filters.dedup.exact_dedup_key",
            f"sha256-{NORMALIZER_ID}",
            {"keep": self.config.dedup.keep},
        )
        updates = []
        for doc in table.column("doc_id").to_pylist():
            c = by_doc[doc]
            survives = c["keeper"] == doc
            update = RowUpdate(
                decisions=[decision(self.name, "exact_duplicate_cluster_size", c["cluster_size"], survives)],
                fields={"dedup_cluster_id": c["cluster_id"], "dedup_cluster_size": c["cluster_size"]},
            )
            if not survives:
                update.reason, update.detail = "exact_duplicate", f"duplicate of {c['keeper']}"
            update.transforms.append(method)
            updates.append(update)
        return split_documents(self.name, table, rows, updates)
