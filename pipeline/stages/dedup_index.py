"""Dedup phase 1: the signature index of one input shard, and its band hashes.

Per input shard, two files under RUN/dedup/index/:
- ``signatures/part-NNNNN.parquet``, one row per document: its global id, doc_id, what the
  survivor policies rank by (source, retrieved_at, quality), the SHA-256 of its normalised text
  and its MinHash signature;
- ``bands/part-NNNNN.parquet``, one row per (document, band): the band hash and the hash partition
  it is grouped in, sorted by partition so a partition's reader skips the other row groups.
  Exact dedup is one more band whose hash is the first 8 bytes of the SHA-256.

The index stays after the run: a later run deduplicates against it (``dedup.previous_runs``)
without recomputing signatures, which is why its parameters are written to ``params.json``.

Documents are numbered with a 64-bit global id, ``run << 48 | shard << 24 | row`` (run 0 is the
current run, 1.. the previous runs in config order), so every later phase joins and groups on
integers and can tell which shard a document came from without a lookup.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from filters.minhash import MinHashParams
from manifests.io import atomic_write_json, atomic_write_parquet, filesystem, read_manifest, read_parquet
from manifests.layout import stage_dir
from pipeline.config import DedupConfig
from pipeline.stage import ShardSpec
from pipeline.stages.dedup_files import parquet_files

ROW_BITS = 24
SHARD_BITS = 24
RUN_SHIFT = ROW_BITS + SHARD_BITS


def global_id(run: int, shard: int, row: int) -> int:
    return run << RUN_SHIFT | shard << ROW_BITS | row


def shard_key(run: int, shard: int) -> int:
    """The global ids of a shard's documents, shifted right by ROW_BITS."""
    return run << SHARD_BITS | shard


def index_dir(run_dir: str) -> str:
    return f"{stage_dir(run_dir, 'dedup')}/index"


@dataclass(frozen=True)
class IndexParams:
    """What makes two signature indexes comparable."""

    exact: bool
    minhash: MinHashParams | None

    @classmethod
    def from_config(cls, dedup: DedupConfig) -> IndexParams:
        minhash = None
        if dedup.near:
            minhash = MinHashParams(dedup.shingle_size, dedup.bands, dedup.rows, dedup.hash_bits, dedup.seed)
        return cls(exact=dedup.exact, minhash=minhash)

    @property
    def exact_band(self) -> int:
        return self.minhash.bands if self.minhash else 0

    def to_json(self) -> dict:
        from filters.normalize import NORMALIZER_ID

        return {
            "normalizer": NORMALIZER_ID,
            "exact": self.exact,
            "minhash": self.minhash.id() if self.minhash else None,
        }


def write_params(run_dir: str, params: IndexParams) -> None:
    atomic_write_json(f"{index_dir(run_dir)}/params.json", params.to_json())


def check_previous_index(previous_run: str, params: IndexParams) -> None:
    """An earlier run's index must have been built with the same normaliser and MinHash scheme."""
    path = f"{index_dir(previous_run)}/params.json"
    fs, fs_path = filesystem(path)
    if not fs.exists(fs_path):
        raise ValueError(f"dedup.previous_runs: {previous_run} has no dedup signature index ({path})")
    with fs.open(fs_path, "rb") as f:
        theirs = json.load(f)
    ours = params.to_json()
    if theirs != ours:
        raise ValueError(
            f"dedup.previous_runs: {previous_run} was indexed with {theirs}, this run uses {ours}; "
            "signatures are only comparable with the same normaliser and MinHash parameters"
        )


def signatures_path(run_dir: str, shard: str) -> str:
    return f"{index_dir(run_dir)}/signatures/{shard}.parquet"


def indexed_shards(run_dir: str) -> list[str]:
    """Names of the shards in a run's signature index."""
    return [
        p.rsplit("/", 1)[1].removesuffix(".parquet")
        for p in parquet_files(f"{index_dir(run_dir)}/signatures")
    ]


def bands_path(run_dir: str, shard: str) -> str:
    return f"{index_dir(run_dir)}/bands/{shard}.parquet"


def index_shard(args: tuple[str, ShardSpec, DedupConfig, int]) -> int:
    """Write the shard's signatures and band hashes (skipped when already written); returns its
    number of documents."""
    from filters.dedup import exact_digest
    from filters.minhash import band_hashes, signature

    run_dir, shard, dedup, partitions = args
    sig_path, band_path = signatures_path(run_dir, shard.name), bands_path(run_dir, shard.name)
    fs, fs_path = filesystem(band_path)
    if fs.exists(fs_path):  # the bands file is written last: its presence means the shard is done
        return read_parquet(sig_path, ["gid"]).num_rows
    if shard.index >= 1 << SHARD_BITS:
        raise ValueError(f"dedup: shard index {shard.index} does not fit in {SHARD_BITS} bits")
    params = IndexParams.from_config(dedup)

    columns = ["doc_id", "text"] + ([dedup.quality_column] if dedup.quality_column else [])
    docs = read_parquet(shard.inputs["docs"])
    missing = [c for c in columns if c not in docs.column_names]
    if missing:
        raise ValueError(f"{shard.inputs['docs']}: no column {missing[0]!r} (dedup.quality_column?)")
    n = docs.num_rows
    if n >= 1 << ROW_BITS:
        raise ValueError(f"{shard.inputs['docs']}: {n} documents; dedup allows {1 << ROW_BITS} per shard")
    manifest = read_manifest(shard.inputs["manifest"]).select(["doc_id", "source", "retrieved_at"])
    by_id = {d: i for i, d in enumerate(manifest.column("doc_id").to_pylist())}
    doc_ids = docs.column("doc_id").to_pylist()
    order = pa.array([by_id[d] for d in doc_ids], pa.int64())

    # The clean stage wrote every text through the same normaliser (its manifest rows record
    # the transform), and normalising is idempotent, so the text is hashed as it is.
    texts = [t or "" for t in docs.column("text").to_pylist()]
    digests = [exact_digest(t) for t in texts]
    gids = np.arange(n, dtype=np.int64) + global_id(0, shard.index, 0)

    fields = {
        "gid": pa.array(gids),
        "doc_id": pa.array(doc_ids, pa.string()),
        "source": manifest.column("source").take(order),
        "retrieved_at": manifest.column("retrieved_at").take(order),
        "quality": (
            docs.column(dedup.quality_column).cast(pa.float64())
            if dedup.quality_column
            else pa.nulls(n, pa.float64())
        ),
        "exact_sha256": pa.array([d.hex() for d in digests], pa.string()),
    }
    # (band index, band hash, owner gid) per band row, built per kind of band
    band_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    if params.minhash:
        m = params.minhash
        sigs = np.empty((n, m.num_perm), dtype=m.dtype)
        for i, text in enumerate(texts):
            sigs[i] = signature(text, m)
        fields["signature"] = pa.FixedSizeListArray.from_arrays(pa.array(sigs.reshape(-1)), m.num_perm)
        bands = band_hashes(sigs, m)
        band_rows.append(
            (np.tile(np.arange(m.bands, dtype=np.int16), n), bands.reshape(-1), np.repeat(gids, m.bands))
        )
    if params.exact:
        exact = np.array([int.from_bytes(d[:8], "little") for d in digests], dtype=np.uint64)
        band_rows.append((np.full(n, params.exact_band, dtype=np.int16), exact, gids))
    values = np.concatenate([v for _, v, _ in band_rows])
    bands_table = pa.table(
        {
            "gid": np.concatenate([g for _, _, g in band_rows]),
            "band": np.concatenate([b for b, _, _ in band_rows]),
            "hash": values,
            "part": (values % np.uint64(partitions)).astype(np.int32),
        }
    ).sort_by([("part", "ascending"), ("band", "ascending"), ("hash", "ascending")])
    atomic_write_parquet(sig_path, pa.table(fields))
    atomic_write_parquet(band_path, bands_table)
    return n
