"""The tokenize stage's manifest work in Arrow, not one Python dict per document.

A manifest row after the quality stage carries dozens of transforms and decisions; turning every
row into dicts and back cost the stage as much time as SentencePiece's encoding of the same
documents (benchmarks/tokenize_throughput.py). Here the rows stay columns: aligned to the documents
with one `take`, the tokenizer's transform appended to every `transforms` list with one gather, and
the shard, row and num_tokens columns set whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifests.io import read_manifest, read_parquet
from manifests.schema import MANIFEST_SCHEMA


class ArrowRows(Sequence):
    """Manifest rows as dicts on demand (tests, notebooks); the framework writes `.table` as it is."""

    def __init__(self, table: pa.Table):
        self.table = table
        self._rows: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, i):
        if self._rows is None:
            self._rows = self.table.to_pylist()
        return self._rows[i]


def read_aligned(parts: list[dict]) -> tuple[pa.Table, pa.Table]:
    """The documents (doc_id, text) of every input part (a whole shard, or the run of its rows
    [start, stop) that the plan gives as "rows") and, row for row, their manifest rows."""
    docs, manifests = [], []
    for part in parts:
        table = read_parquet(part["docs"], ["doc_id", "text"])
        if "rows" in part:
            start, stop = part["rows"]
            if not 0 <= start <= stop <= table.num_rows:
                raise RuntimeError(
                    f"{part['docs']}: the plan asks for rows {start} to {stop}, it has {table.num_rows}"
                )
            table = table.slice(start, stop - start)
        manifest = read_manifest(part["manifest"])
        at = pc.index_in(table.column("doc_id"), value_set=manifest.column("doc_id"))
        if at.null_count:
            missing = table.column("doc_id").filter(pc.is_null(at))[0].as_py()
            raise RuntimeError(f"{part['docs']}: document {missing} has no row in {part['manifest']}")
        docs.append(table)
        # Usually the documents' manifest rows are consecutive and in order: a slice, no gather.
        at = at.to_numpy(zero_copy_only=False)
        first = int(at[0]) if len(at) else 0
        consecutive = np.array_equal(at, np.arange(first, first + len(at)))
        manifests.append(manifest.slice(first, len(at)) if consecutive else manifest.take(at))
    return pa.concat_tables(docs), pa.concat_tables(manifests, promote_options="default")


def record_tokens(
    manifest: pa.Table, tool: dict[str, Any], shard_file: str, first_row: np.ndarray, tokens: np.ndarray
) -> pa.Table:
    """Every row with `tool` appended to its transforms and where its tokens are."""
    transforms = _append_to_each(manifest.column("transforms").combine_chunks(), tool)
    updates = {
        "transforms": transforms,
        "shard": pa.repeat(pa.scalar(shard_file, pa.string()), manifest.num_rows),
        "row": pa.array(first_row, pa.int64()),
        "num_tokens": pa.array(tokens, pa.int64()),
    }
    for name, column in updates.items():
        manifest = manifest.set_column(manifest.schema.get_field_index(name), name, column)
    return manifest.select(MANIFEST_SCHEMA.names).cast(MANIFEST_SCHEMA)


def _append_to_each(lists: pa.ListArray, item: dict[str, Any]) -> pa.ListArray:
    """Each list with `item` added at its end, by one gather over the old values and n new ones.

    >>> lists = pa.array([[{"x": 1}], []], pa.list_(pa.struct([("x", pa.int64())])))
    >>> _append_to_each(lists, {"x": 9}).to_pylist()
    [[{'x': 1}, {'x': 9}], [{'x': 9}]]
    """
    n = len(lists)
    offsets = lists.offsets.to_numpy()
    values = lists.values.slice(offsets[0], offsets[-1] - offsets[0])
    offsets = offsets - offsets[0]
    lengths = np.diff(offsets)
    new_offsets = offsets + np.arange(n + 1)
    gather = np.empty(len(values) + n, np.int64)
    # Old value j of row r moves r places on (one new item before it per earlier row); row r's
    # new item is the last of its list.
    gather[np.arange(len(values)) + np.repeat(np.arange(n), lengths)] = np.arange(len(values))
    gather[new_offsets[1:] - 1] = len(values) + np.arange(n)
    added = pa.repeat(pa.scalar(item, values.type), n)
    merged = pa.concat_arrays([values, added]).take(pa.array(gather))
    return pa.ListArray.from_arrays(pa.array(new_offsets, pa.int32()), merged)
