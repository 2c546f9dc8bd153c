"""Connected components of the duplicate graph across Ray tasks, without gathering the edges.

datatrove and Swallow collect every duplicate pair in one process for union-find; at corpus scale
that process runs out of memory (mission_anchors §4). Here the edges stay partitioned by node on
disk and the components come from the alternating Large-Star / Small-Star rounds of Kiveris et al.,
"Connected Components in MapReduce and Beyond" (SoCC 2014), which converge in O(log^2 n) rounds;
each round is one task per partition reading only its own nodes' edges (dedup_files).

Edges are directed rows (u, v) stored under partition ``u % P``. Node ids are dedup global ids,
which are consecutive within a shard, so ``u % P`` spreads nodes evenly.

- Large-Star, for each node u with neighbours N(u): m = min(N(u) + {u}); link every neighbour
  v > u to m. Reported change: links with m != u.
- Small-Star, for each node u with neighbours N(u) all < u: m = min(N(u)); link every node of
  N(u) + {u} other than m to m. Reported change: |N(u)| - 1.

When a Large-Star and the Small-Star after it both change nothing, every component is a star
whose centre is its smallest node, which is the component's label.
"""

from __future__ import annotations

import polars as pl

from pipeline.stage import ParallelMap
from pipeline.stages.dedup_files import done, metadata, read_key, write_sorted

EDGE_SCHEMA = {"u": pl.Int64, "v": pl.Int64}
MAX_ROUNDS = 200  # O(log^2 n) rounds; 200 would take a graph far beyond any corpus


def _part(column: str, partitions: int) -> pl.Expr:
    return (pl.col(column) % partitions).cast(pl.Int32).alias("part")


def both_directions(edges: pl.DataFrame, partitions: int) -> pl.DataFrame:
    """Undirected edges (columns u, v) as directed rows under both endpoints' partitions."""
    flipped = edges.select(pl.col("v").alias("u"), pl.col("u").alias("v"))
    return pl.concat([edges.select("u", "v"), flipped]).unique().with_columns(_part("u", partitions))


def _large_star(args: tuple[str, str, int, int]) -> int:
    in_dir, out_path, partition, partitions = args
    if done(out_path):
        return int(metadata(out_path)["changed"])
    edges = read_key(in_dir, "part", partition, EDGE_SCHEMA).unique()  # a link can come from two tasks
    lowest = edges.group_by("u").agg(pl.col("v").min().alias("m"))
    linked = (
        edges.join(lowest, on="u")
        .with_columns(pl.min_horizontal("m", "u").alias("m"))
        .filter(pl.col("v") > pl.col("u"))
    )
    changed = linked.filter(pl.col("m") != pl.col("u")).height
    # Small-Star reads each edge under its larger endpoint: m <= u < v, so that is v.
    out = (
        linked.select(pl.col("v").alias("u"), pl.col("m").alias("v"))
        .unique()
        .with_columns(_part("u", partitions))
    )
    write_sorted(out_path, out, "part", {"changed": str(changed)})
    return changed


def _small_star(args: tuple[str, str, int, int]) -> int:
    in_dir, out_path, partition, partitions = args
    if done(out_path):
        return int(metadata(out_path)["changed"])
    edges = read_key(in_dir, "part", partition, EDGE_SCHEMA).unique()  # v < u on every row
    groups = edges.group_by("u").agg(pl.col("v").min().alias("m"), pl.len().alias("degree"))
    changed = int(groups["degree"].sum() - groups.height) if groups.height else 0
    members = pl.concat([edges.select("u", "v"), groups.select("u", pl.col("u").alias("v"))])
    linked = members.join(groups.select("u", "m"), on="u").filter(pl.col("v") != pl.col("m"))
    out = both_directions(linked.select(pl.col("v").alias("u"), pl.col("m").alias("v")), partitions)
    write_sorted(out_path, out, "part", {"changed": str(changed)})
    return changed


def _labels(args: tuple[str, str, int, int]) -> int:
    """Each node's component label (its star's centre); written by shard key for the next join."""
    in_dir, out_path, partition, shard_shift = args
    if done(out_path):
        return int(metadata(out_path)["nodes"])
    edges = read_key(in_dir, "part", partition, EDGE_SCHEMA)
    labels = (
        edges.group_by("u")
        .agg(pl.col("v").min())
        .select(pl.col("u").alias("gid"), pl.min_horizontal("u", "v").alias("label"))
        .with_columns((pl.col("gid") // (1 << shard_shift)).alias("shard_key"))
    )
    write_sorted(out_path, labels, "shard_key", {"nodes": str(labels.height)})
    return labels.height


def connected_components(work_dir: str, partitions: int, shard_shift: int, pmap: ParallelMap) -> str:
    """Label every node of the directed edges in ``work_dir/r000-in`` (written with
    ``both_directions``); returns the directory of (gid, label, shard_key) files.

    Every round's files are kept until the end and a task whose output exists is skipped, so a
    rerun after a killed task repeats only the unfinished part of the unfinished round.
    """
    current = f"{work_dir}/r000-in"
    for round_no in range(MAX_ROUNDS):
        large = f"{work_dir}/r{round_no:03d}-large"
        small = f"{work_dir}/r{round_no:03d}-small"
        changed = sum(
            pmap(
                _large_star,
                [(current, f"{large}/part-{p:05d}.parquet", p, partitions) for p in range(partitions)],
            )
        )
        changed += sum(
            pmap(
                _small_star,
                [(large, f"{small}/part-{p:05d}.parquet", p, partitions) for p in range(partitions)],
            )
        )
        current = small
        if changed == 0:
            break
    else:
        raise RuntimeError(f"dedup: connected components did not converge in {MAX_ROUNDS} rounds")
    out = f"{work_dir}/labels"
    pmap(_labels, [(current, f"{out}/part-{p:05d}.parquet", p, shard_shift) for p in range(partitions)])
    return out
