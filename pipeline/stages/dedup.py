"""dedup: exact and near-duplicate removal (MinHash LSH on character n-grams), across sources and
against earlier runs, in phases on disk that each run as independent Ray tasks.

`prepare` finds the duplicates; `process` then applies them shard by shard. Phases, each a set of
tasks whose output file is their commit (a rerun skips what exists), under RUN/dedup/:

1. index/     per input shard: signatures and band hashes (dedup_index; kept for later runs);
2. work/edges/    per hash partition: documents sharing a band hash (the exact key is one more
                  band), as star edges from the bucket's smallest id, never all pairs;
3. work/verify/   optional: drop edges whose signature-estimated Jaccard is below the threshold,
                  by two joins keyed by each endpoint's shard;
4. work/cc/       connected components by Large-Star / Small-Star rounds (dedup_components);
5. work/members/  per shard: each duplicate's component joined with what the policy ranks by;
6. clusters/, ids_to_remove/   per partition of components: the survivor and every other member.

No step holds more than one partition or one shard, so memory per task follows
`dedup.partition_rows`, not the corpus; the driver only sums counts.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from filters.lsh_clusters import POLICIES
from manifests.io import atomic_write_json, read_manifest, read_parquet
from manifests.layout import is_stage_complete, manifest_path, stage_dir
from pipeline.config import DedupConfig
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
from pipeline.stages.dedup_components import both_directions, connected_components
from pipeline.stages.dedup_files import PhaseLog, done, metadata, parquet_files, read_key, write_sorted
from pipeline.stages.dedup_index import (
    ROW_BITS,
    RUN_SHIFT,
    IndexParams,
    check_previous_index,
    index_dir,
    index_shard,
    indexed_shards,
    shard_key,
    signatures_path,
    write_params,
)

PAIR_SCHEMA = {"u": pl.Int64, "v": pl.Int64}
LABEL_SCHEMA = {"gid": pl.Int64, "label": pl.Int64}
ATTRIBUTES = ["gid", "doc_id", "source", "retrieved_at", "quality", "exact_sha256"]
MEMBER_SCHEMA = {
    "gid": pl.Int64,
    "label": pl.Int64,
    "doc_id": pl.String,
    "source": pl.String,
    "retrieved_at": pl.String,
    "quality": pl.Float64,
    "exact_sha256": pl.String,
    # 0: kept by an earlier run, 1: removed by an earlier run, 2: this run's
    "prior": pl.Int8,
}
CLUSTER_SCHEMA = {
    "doc_id": pl.String,
    "cluster_id": pl.String,
    "cluster_size": pl.Int32,
    "keeper": pl.String,
    "kind": pl.String,
}
THIS_RUN = 2


def _part_name(p: int) -> str:
    return f"part-{p:05d}.parquet"


# -- phase 2: buckets ---------------------------------------------------------------------------


def _bucket(args: tuple[list[tuple[int, str]], str, int, int]) -> int:
    """Star edges (u = smallest id of the bucket, v = another member) of one hash partition."""
    sources, out_path, partition, partitions = args
    if done(out_path):
        return int(metadata(out_path)["edges"])
    frames = []
    for run, directory in sources:
        files = parquet_files(directory)
        if not files:
            continue
        lf = pl.scan_parquet(files)
        # An earlier run's bands were partitioned for its own partition count.
        lf = (
            lf.filter(pl.col("part") == partition)
            if run == 0
            else lf.filter(pl.col("hash") % partitions == partition)
        )
        frames.append(lf.select((pl.col("gid") + (run << RUN_SHIFT)).alias("gid"), "band", "hash"))
    rows = (
        pl.concat(frames).collect()
        if frames
        else pl.DataFrame(schema={"gid": pl.Int64, "band": pl.Int16, "hash": pl.UInt64})
    )
    edges = (
        rows.with_columns(pl.col("gid").min().over("band", "hash").alias("first"))
        .filter(pl.col("gid") != pl.col("first"))
        .select(pl.col("first").alias("u"), pl.col("gid").alias("v"))
        .unique()
        .with_columns((pl.col("u") // (1 << ROW_BITS)).alias("u_key"))
    )
    write_sorted(out_path, edges, "u_key", {"edges": str(edges.height)})
    return edges.height


# -- phase 3: optional Jaccard check --------------------------------------------------------------


def _signatures(path: str, run: int) -> pl.DataFrame:
    frame = pl.from_arrow(read_parquet(path, columns=["gid", "signature"]))
    return frame.with_columns(pl.col("gid") + (run << RUN_SHIFT))


def _attach_first_signature(args: tuple[str, str, int, int, str]) -> int:
    """Edges whose u lives in shard `key`, with u's signature, written by v's shard."""
    edges_dir, out_path, key, run, sig_path = args
    if done(out_path):
        return int(metadata(out_path)["edges"])
    edges = read_key(edges_dir, "u_key", key, PAIR_SCHEMA)
    joined = edges.join(_signatures(sig_path, run).rename({"gid": "u", "signature": "sig_u"}), on="u")
    joined = joined.with_columns((pl.col("v") // (1 << ROW_BITS)).alias("v_key"))
    write_sorted(out_path, joined, "v_key", {"edges": str(joined.height)})
    return joined.height


def _check_jaccard(args: tuple[str, str, int, int, str, float]) -> int:
    """Edges whose v lives in shard `key`, kept if the estimated Jaccard reaches the threshold."""
    by_u_dir, out_path, key, run, sig_path, threshold = args
    if done(out_path):
        return int(metadata(out_path)["edges"])
    files = parquet_files(by_u_dir)
    edges = pl.scan_parquet(files).filter(pl.col("v_key") == key).select("u", "v", "sig_u").collect()
    # (read_key is not used: the signature column's type depends on the MinHash parameters)
    joined = edges.join(_signatures(sig_path, run).rename({"gid": "v", "signature": "sig_v"}), on="v")
    if joined.height:
        estimate = (joined["sig_u"].to_numpy() == joined["sig_v"].to_numpy()).mean(axis=1)
    else:
        estimate = np.empty(0)
    kept = (
        joined.select("u", "v")
        .with_columns(
            pl.Series("jaccard", estimate, dtype=pl.Float64), (pl.col("u") // (1 << ROW_BITS)).alias("u_key")
        )
        .filter(pl.col("jaccard") >= threshold)
    )
    write_sorted(out_path, kept, "u_key", {"edges": str(kept.height)})
    return kept.height


# -- phase 4 input: edges under both endpoints' partitions ---------------------------------------


def _scatter(args: tuple[str, str, int]) -> int:
    edge_path, out_path, partitions = args
    if done(out_path):
        return 0
    edges = pl.from_arrow(read_parquet(edge_path, columns=["u", "v"]))
    write_sorted(out_path, both_directions(edges, partitions), "part")
    return edges.height


# -- phase 5: each duplicate with what the survivor policy ranks by ------------------------------


def _members(args: tuple[str, str, int, int, str, str | None, int]) -> int:
    labels_dir, out_path, key, run, sig_path, previous_manifest, partitions = args
    if done(out_path):
        return int(metadata(out_path)["members"])
    labels = read_key(labels_dir, "shard_key", key, LABEL_SCHEMA)
    attributes = pl.from_arrow(read_parquet(sig_path, columns=ATTRIBUTES)).with_columns(
        pl.col("gid") + (run << RUN_SHIFT)
    )
    members = labels.join(attributes, on="gid")
    if previous_manifest is None:
        members = members.with_columns(pl.lit(THIS_RUN, pl.Int8).alias("prior"))
    else:
        removed = {
            doc
            for doc, reason in zip(
                *read_manifest(previous_manifest).select(["doc_id", "exclusion_reason"]).to_pydict().values()
            )
            if (reason or "").startswith("dedup:")
        }
        members = members.with_columns(pl.col("doc_id").is_in(list(removed)).cast(pl.Int8).alias("prior"))
    members = members.select(list(MEMBER_SCHEMA)).with_columns((pl.col("label") % partitions).alias("lpart"))
    write_sorted(out_path, members, "lpart", {"members": str(members.height)})
    return members.height


# -- phase 6: survivors ---------------------------------------------------------------------------


def rank_members(members: pl.DataFrame, policy: list[str], source_priority: list[str]) -> pl.DataFrame:
    """Members sorted best-first within the whole frame: earlier runs' kept documents, then their
    removed ones, then this run's by ``policy`` (keys in order), then the smallest doc_id; the
    single-policy order is the one of filters.lsh_clusters.choose_survivors."""
    rank = {s: i for i, s in enumerate(source_priority)}
    keys, descending = [pl.col("prior")], [False]
    for name in policy:
        if name == "newest":
            keys.append(pl.col("retrieved_at"))
            descending.append(True)
        elif name == "quality":
            keys.append(pl.col("quality").fill_nan(None))
            descending.append(True)
        elif name == "source_priority":
            keys.append(pl.col("source").replace_strict(rank, default=len(rank), return_dtype=pl.Int64))
            descending.append(False)
        else:
            raise ValueError(f"unknown dedup policy {name!r}; expected one of {POLICIES}")
    keys.append(pl.col("doc_id"))
    descending.append(False)
    return members.sort(keys, descending=descending, nulls_last=True)


def _survivors(args: tuple[str, str, str, int, list[str], list[str]]) -> int:
    members_dir, clusters_path, remove_path, partition, policy, source_priority = args
    if done(clusters_path):
        return int(metadata(clusters_path)["removed"])
    members = read_key(members_dir, "lpart", partition, MEMBER_SCHEMA)
    ranked = rank_members(members, policy, source_priority).with_columns(
        pl.col("doc_id").first().over("label").alias("keeper"),
        pl.col("exact_sha256").first().over("label").alias("keeper_sha256"),
        pl.len().over("label").cast(pl.Int32).alias("cluster_size"),
        pl.col("doc_id").min().over("label").alias("cluster_id"),
    )
    ours = ranked.filter(pl.col("prior") == THIS_RUN).with_columns(
        pl.when(pl.col("exact_sha256") == pl.col("keeper_sha256"))
        .then(pl.lit("exact"))
        .otherwise(pl.lit("near"))
        .alias("kind"),
        (pl.col("gid") // (1 << ROW_BITS)).alias("shard_key"),
    )
    removed = ours.filter(pl.col("doc_id") != pl.col("keeper"))
    write_sorted(
        remove_path,
        removed.select(
            "doc_id", pl.col("keeper").alias("duplicate_of"), "cluster_id", "cluster_size", "kind"
        ),
        "doc_id",
    )
    write_sorted(
        clusters_path,
        ours.select(*CLUSTER_SCHEMA, "shard_key"),
        "shard_key",
        {"removed": str(removed.height)},
    )
    return removed.height


class DedupStage(Stage):
    name = "dedup"
    input_stage = "clean"

    @property
    def work_dir(self) -> str:
        return f"{stage_dir(self.ctx.run_dir, self.name)}/work"

    @property
    def clusters_dir(self) -> str:
        return f"{stage_dir(self.ctx.run_dir, self.name)}/clusters"

    def _previous_runs(self, params: IndexParams) -> list[str]:
        runs = []
        for given in self.config.dedup.previous_runs:
            path = self.config.resolve_path(given)
            check_previous_index(path, params)
            if not is_stage_complete(path, self.name):
                raise ValueError(f"dedup.previous_runs: {path} has not finished its dedup stage")
            runs.append(path)
        return runs

    def _partitions(self, shards: list[ShardSpec], previous: list[str], params: IndexParams) -> int:
        dedup = self.config.dedup
        if dedup.num_partitions:
            return dedup.num_partitions
        import pyarrow.parquet as pq

        from manifests.io import filesystem

        documents = 0
        paths = [s.inputs["docs"] for s in shards]
        paths += [p for run in previous for p in parquet_files(f"{index_dir(run)}/signatures")]
        for path in paths:
            fs, fs_path = filesystem(path)
            documents += pq.read_metadata(fs_path, filesystem=fs).num_rows
        bands = (params.minhash.bands if params.minhash else 0) + int(params.exact)
        return max(1, math.ceil(documents * bands / dedup.partition_rows))

    def prepare(self, shards: list[ShardSpec], pmap: ParallelMap) -> None:
        dedup: DedupConfig = self.config.dedup
        run_dir, work = self.ctx.run_dir, self.work_dir
        params = IndexParams.from_config(dedup)
        previous = self._previous_runs(params)
        partitions = self._partitions(shards, previous, params)
        write_params(run_dir, params)
        pmap = PhaseLog(pmap)

        pmap(index_shard, [(run_dir, s, dedup, partitions) for s in shards])

        # Every shard, of this run and of the earlier ones: (run, shard key, signatures, manifest).
        runs = [(0, run_dir, [s.name for s in shards])]
        runs += [(i, path, indexed_shards(path)) for i, path in enumerate(previous, start=1)]
        every_shard = [
            (
                run,
                shard_key(run, int(name.split("-", 1)[1])),
                signatures_path(path, name),
                None if run == 0 else manifest_path(path, self.name, name),
            )
            for run, path, names in runs
            for name in names
        ]
        sources = [(run, f"{index_dir(path)}/bands") for run, path, _ in runs]
        edges_dir = f"{work}/edges"
        pmap(_bucket, [(sources, f"{edges_dir}/{_part_name(p)}", p, partitions) for p in range(partitions)])

        if dedup.jaccard_threshold is not None:
            by_u = f"{work}/verify/by-u"
            pmap(
                _attach_first_signature,
                [(edges_dir, f"{by_u}/key-{k:012d}.parquet", k, run, sig) for run, k, sig, _ in every_shard],
            )
            edges_dir = f"{work}/verify/edges"
            pmap(
                _check_jaccard,
                [
                    (by_u, f"{edges_dir}/key-{k:012d}.parquet", k, run, sig, dedup.jaccard_threshold)
                    for run, k, sig, _ in every_shard
                ],
            )

        cc = f"{work}/cc"
        pmap(
            _scatter,
            [
                (path, f"{cc}/r000-in/{path.rsplit('/', 1)[1]}", partitions)
                for path in parquet_files(edges_dir)
            ],
        )
        labels_dir = connected_components(cc, partitions, ROW_BITS, pmap)

        members_dir = f"{work}/members"
        pmap(
            _members,
            [
                (labels_dir, f"{members_dir}/key-{k:012d}.parquet", k, run, sig, manifest, partitions)
                for run, k, sig, manifest in every_shard
            ],
        )
        remove_dir = f"{stage_dir(run_dir, self.name)}/ids_to_remove"
        pmap(
            _survivors,
            [
                (
                    members_dir,
                    f"{self.clusters_dir}/{_part_name(p)}",
                    f"{remove_dir}/{_part_name(p)}",
                    p,
                    dedup.policy,
                    dedup.source_priority,
                )
                for p in range(partitions)
            ],
        )
        atomic_write_json(f"{stage_dir(run_dir, self.name)}/phases.json", pmap.phases)

    def process(self, shard: ShardSpec) -> ShardResult:
        dedup = self.config.dedup
        table, rows = read_input(shard)
        clusters = read_key(self.clusters_dir, "shard_key", shard_key(0, shard.index), CLUSTER_SCHEMA)
        by_doc = {r["doc_id"]: r for r in clusters.iter_rows(named=True)}
        params = IndexParams.from_config(dedup)
        method = transform(
            self.name,
            "pipeline.stages.dedup",
            "+".join(
                filter(
                    None, ["exact-sha256" if params.exact else None, params.minhash and params.minhash.id()]
                )
            )
            + f"+{params.to_json()['normalizer']}",
            {
                k: v
                for k, v in self.config.to_dict()["dedup"].items()
                if k not in ("num_partitions", "partition_rows")
            },
        )
        updates = []
        for doc in table.column("doc_id").to_pylist():
            c = by_doc.get(doc)
            size = c["cluster_size"] if c else 1
            survives = c is None or c["keeper"] == doc
            update = RowUpdate(
                transforms=[method],
                decisions=[decision(self.name, "duplicate_cluster_size", size, survives)],
                fields={"dedup_cluster_id": c["cluster_id"] if c else doc, "dedup_cluster_size": size},
            )
            if not survives:
                update.reason = f"duplicate_of:{c['keeper']}"
                update.detail = (
                    "exact copy of the normalised text"
                    if c["kind"] == "exact"
                    else f"near duplicate (MinHash LSH) in a cluster of {size}"
                )
            updates.append(update)
        return split_documents(self.name, table, rows, updates)
