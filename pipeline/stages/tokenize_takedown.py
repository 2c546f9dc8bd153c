"""Cut documents out of a finished tokenize shard, or mask them in place, without tokenizing again.

A takedown request names documents; the shard's rows give their pieces' token ranges, so the
training copy is rebuilt from the stored ids. Two ways (`takedown.mode`):

- rewrite: the Parquet rows without their rows (later rows' token ranges renumbered), and the
  Megatron .bin/.idx (when the shard has them) without their ranges;
- mask: the same layout, every row kept, their ids overwritten with `mask_id` (a pad token) in
  `input_ids` and the .bin, and the shard's boolean `masked` column (written false by the stage,
  tokenize_output.py) set true on their rows (a training loader skips those rows; a Megatron
  reader sees sequences of the pad id). The .idx is not touched. The schema stays that of every
  other shard of the run, so the run still loads as one dataset.

Files are written under `out_prefix` (a temporary name); pipeline/takedown.py renames them into
place and updates the manifests (this module knows nothing of manifests).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifests.io import atomic_write_bytes, filesystem, read_parquet
from pipeline.stages import tokenize_output as out

MASKED_COLUMN = out.MASKED_COLUMN
INDEX_COLUMNS = ("doc_id", "piece", "num_tokens", "source", "license")


@dataclass
class ShardCut:
    """What a takedown did to one shard."""

    removed: pa.Table  # the affected rows: doc_id, piece, num_tokens, source, license
    first_rows: dict[str, int] = field(default_factory=dict)  # every remaining doc_id -> its first row
    extensions: list[str] = field(default_factory=list)  # files written under out_prefix, e.g. [".parquet"]


def drop_documents(
    shard_prefix: str, doc_ids: set[str], out_prefix: str, row_group_tokens: int = 2**20
) -> int:
    """Write `out_prefix`.parquet (and .bin/.idx if the shard has them) without the rows of
    `doc_ids`; returns the number of rows dropped. Prefixes are paths or URLs without extension."""
    return cut_shard(
        shard_prefix, doc_ids, out_prefix, "rewrite", row_group_tokens=row_group_tokens
    ).removed.num_rows


def cut_shard(
    shard_prefix: str,
    doc_ids: set[str],
    out_prefix: str,
    mode: str,
    mask_id: int = 0,
    row_group_tokens: int = 2**20,
) -> ShardCut:
    rows = read_parquet(f"{shard_prefix}.parquet")
    hit = pc.is_in(rows.column("doc_id"), pa.array(sorted(doc_ids), pa.string()))
    removed = rows.filter(hit).select(list(INDEX_COLUMNS))
    if mode == "rewrite":
        return _rewrite(shard_prefix, rows, hit, removed, out_prefix, row_group_tokens)
    if mode == "mask":
        return _mask(shard_prefix, rows, hit, removed, out_prefix, mask_id, row_group_tokens)
    raise ValueError(f"takedown mode must be rewrite or mask, got {mode!r}")


def _first_rows(doc_ids: list[str]) -> dict[str, int]:
    first: dict[str, int] = {}
    for r, doc in enumerate(doc_ids):
        first.setdefault(doc, r)
    return first


def _read_stream(shard_prefix: str, metadata: dict) -> np.ndarray | None:
    fs, bin_path = filesystem(f"{shard_prefix}.bin")
    if not fs.exists(bin_path):
        return None
    with fs.open(bin_path, "rb") as f:
        return np.frombuffer(f.read(), out.NUMPY_DTYPES[metadata["token_dtype"]])


def _rewrite(shard_prefix, rows, hit, removed, out_prefix, row_group_tokens) -> ShardCut:
    metadata = json.loads(rows.schema.metadata[out.METADATA_KEY])
    kept = rows.filter(pc.invert(hit))
    starts = kept.column("token_start").to_numpy()
    ends = kept.column("token_end").to_numpy()
    offsets = np.zeros(kept.num_rows + 1, np.int64)
    np.cumsum(ends - starts, out=offsets[1:])
    kept = kept.set_column(
        kept.schema.get_field_index("token_start"), "token_start", pa.array(offsets[:-1], pa.int64())
    ).set_column(kept.schema.get_field_index("token_end"), "token_end", pa.array(offsets[1:], pa.int64()))
    atomic_write_bytes(f"{out_prefix}.parquet", out.parquet_bytes(kept, row_group_tokens))
    cut = ShardCut(removed, _first_rows(kept.column("doc_id").to_pylist()), [".parquet"])
    stream = _read_stream(shard_prefix, metadata)
    if stream is not None:
        kept_ids = np.concatenate([stream[a:b] for a, b in zip(starts, ends)] or [stream[:0]])
        out.write_megatron(out_prefix, kept_ids, offsets)
        cut.extensions += [".bin", ".idx"]
    return cut


def _mask(shard_prefix, rows, hit, removed, out_prefix, mask_id, row_group_tokens) -> ShardCut:
    metadata = json.loads(rows.schema.metadata[out.METADATA_KEY])
    masked = hit.to_numpy(zero_copy_only=False)
    flag_at = rows.schema.get_field_index(MASKED_COLUMN)
    if flag_at >= 0:  # rows masked before by another request stay masked
        masked = masked | rows.column(MASKED_COLUMN).to_numpy(zero_copy_only=False)
    if "input_ids" in rows.column_names:
        at = rows.schema.get_field_index("input_ids")
        rows = rows.set_column(at, "input_ids", _masked_ids(rows.column("input_ids"), masked, mask_id))
    flag, values = pa.field(MASKED_COLUMN, pa.bool_()), pa.array(masked, pa.bool_())
    # Flipped in place, so the shard's schema stays the run's; appended only to a shard tokenized
    # before the stage wrote the column.
    rows = rows.set_column(flag_at, flag, values) if flag_at >= 0 else rows.append_column(flag, values)
    rows = rows.replace_schema_metadata({out.METADATA_KEY: json.dumps(metadata, sort_keys=True)})
    atomic_write_bytes(f"{out_prefix}.parquet", out.parquet_bytes(rows, row_group_tokens))
    cut = ShardCut(removed, _first_rows(rows.column("doc_id").to_pylist()), [".parquet"])
    stream = _read_stream(shard_prefix, metadata)
    if stream is not None:
        stream = stream.copy()
        starts, ends = rows.column("token_start").to_numpy(), rows.column("token_end").to_numpy()
        for r in np.flatnonzero(masked):
            stream[starts[r] : ends[r]] = mask_id
        atomic_write_bytes(f"{out_prefix}.bin", stream.tobytes())
        cut.extensions.append(".bin")  # the .idx (sizes and pointers) is unchanged
    return cut


def _masked_ids(column: pa.ChunkedArray, masked: np.ndarray, mask_id: int) -> pa.ChunkedArray:
    """The list column with every id of the masked rows replaced by `mask_id`, lengths kept."""
    chunks, at = [], 0
    for chunk in column.chunks:
        rows = masked[at : at + len(chunk)]
        at += len(chunk)
        offsets = chunk.offsets.to_numpy()
        values = chunk.values.to_numpy(zero_copy_only=False).copy()
        for r in np.flatnonzero(rows):
            values[offsets[r] : offsets[r + 1]] = mask_id
        chunks.append(pa.ListArray.from_arrays(chunk.offsets, pa.array(values, chunk.type.value_type)))
    return pa.chunked_array(chunks, column.type)
