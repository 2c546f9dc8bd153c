"""What a tokenize shard holds: one row per piece, and the same token stream as Megatron .bin/.idx.

Row i of `part-NNNNN.parquet` is sequence i of `part-NNNNN.bin`; its `token_start`/`token_end` are
the row's token range in the shard's stream (the .bin's elements, and the Parquet rows' input_ids
concatenated), so any token position leads to a document, its source and its licence, and a
document's range can be cut out without tokenizing again (tokenize_takedown.py).

Every shard has a boolean `masked` column, false when written: a takedown in mask mode flips it on
the rows whose ids it overwrote, so every shard of a run keeps one schema (`datasets` refuses to
load files whose columns differ) and a training loader skips the rows where it is true.
"""

from __future__ import annotations

import io
import json
import struct
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from manifests.io import TMP_MARKER, filesystem

NUMPY_DTYPES = {"uint16": np.uint16, "int32": np.int32, "uint32": np.uint32}
RIGHTS_COLUMNS = ("source", "license", "osaid_class", "redistribution")
METADATA_KEY = b"jcorpus.tokenizer"
MASKED_COLUMN = "masked"
MAX_CHUNK_TOKENS = 2**31 - 1
# Megatron-LM's index (megatron/core/datasets/indexed_dataset.py): magic, then DType codes.
MEGATRON_MAGIC = b"MMIDIDX\x00\x00"
MEGATRON_DTYPE_CODES = {np.uint16: 8, np.int32: 4}


def rows_schema(dtype: str, with_ids: bool) -> pa.Schema:
    fields = [("doc_id", pa.string()), ("piece", pa.int32())]
    if with_ids:
        fields.append(("input_ids", pa.list_(pa.from_numpy_dtype(NUMPY_DTYPES[dtype]))))
    fields += [("num_tokens", pa.int64()), ("token_start", pa.int64()), ("token_end", pa.int64())]
    return pa.schema(fields + [(c, pa.string()) for c in RIGHTS_COLUMNS] + [(MASKED_COLUMN, pa.bool_())])


def with_special_tokens(
    content: np.ndarray, lengths: np.ndarray, bos: int | None, eos: int | None, dtype: str
) -> tuple[np.ndarray, np.ndarray]:
    """The shard's token stream (BOS + piece + EOS for every piece) and each row's offsets into it,
    from the pieces' ids end to end (`content`) and their `lengths`."""
    dt = NUMPY_DTYPES[dtype]
    extra = (bos is not None) + (eos is not None)
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths + extra, out=offsets[1:])
    if not extra:
        return content.astype(dt), offsets
    stream = np.empty(int(offsets[-1]), dt)
    is_content = np.ones(len(stream), bool)
    if bos is not None:
        stream[offsets[:-1]] = bos
        is_content[offsets[:-1]] = False
    if eos is not None:
        stream[offsets[1:] - 1] = eos
        is_content[offsets[1:] - 1] = False
    stream[is_content] = content
    return stream, offsets


def rows_table(
    doc_ids: pa.Array,
    piece: np.ndarray,
    stream: np.ndarray,
    offsets: np.ndarray,
    rights: dict[str, pa.Array],
    with_ids: bool,
    metadata: dict,
) -> pa.Table:
    """One row per piece; `doc_ids`, `rights` already repeated per piece."""
    columns: dict[str, pa.Array] = {"doc_id": doc_ids, "piece": pa.array(piece, pa.int32())}
    if with_ids:
        columns["input_ids"] = _list_column(stream, offsets)
    columns["num_tokens"] = pa.array(np.diff(offsets), pa.int64())
    columns["token_start"] = pa.array(offsets[:-1], pa.int64())
    columns["token_end"] = pa.array(offsets[1:], pa.int64())
    columns.update(rights)
    columns[MASKED_COLUMN] = pa.array(np.zeros(len(offsets) - 1, bool))
    dtype = str(stream.dtype)
    table = pa.table(columns, schema=rows_schema(dtype, with_ids))
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True)})


def _list_column(stream: np.ndarray, offsets: np.ndarray) -> pa.ChunkedArray:
    """Rows of ids as an Arrow list column; a list array's offsets are int32, so a shard of more
    than 2^31 tokens becomes several chunks."""
    chunks, first = [], 0
    while first < len(offsets) - 1 or not chunks:
        last = max(first + 1, int(np.searchsorted(offsets, offsets[first] + MAX_CHUNK_TOKENS, "right")) - 1)
        last = min(last, len(offsets) - 1)
        part = offsets[first : last + 1]
        values = pa.array(stream[part[0] : part[-1]])
        chunks.append(pa.ListArray.from_arrays(pa.array(part - part[0], pa.int32()), values))
        first = last
    return pa.chunked_array(chunks)


def parquet_bytes(table: pa.Table, row_group_tokens: int) -> bytes:
    """Row groups of about `row_group_tokens` tokens: a streaming reader holds one at a time. A
    group ends at the first row that brings it to `row_group_tokens` or more.

    The writer options are fixed, so the same rows give the same bytes and reruns are idempotent."""
    buf = io.BytesIO()
    ends = np.cumsum(table.column("num_tokens").to_numpy())
    with pq.ParquetWriter(buf, table.schema, compression="zstd", store_schema=True) as writer:
        start = 0
        while start < table.num_rows:  # no empty row group: `datasets` fails on one
            before = ends[start - 1] if start else 0
            stop = int(np.searchsorted(ends, before + row_group_tokens, "left")) + 1
            writer.write_table(table.slice(start, stop - start))
            start = stop
    return buf.getvalue()


def write_megatron(prefix: str, stream: np.ndarray, offsets: np.ndarray) -> None:
    """`prefix`.bin and `prefix`.idx, Megatron-LM's MMIDIDX indexed dataset, one sequence per row;
    each written under a temporary name and renamed, .idx last.

    The bytes are those of datatrove's MegatronTokenizedFile (a test compares them), written here
    from the whole stream at once: datatrove's writer takes one sequence per call, which cost
    60 microseconds a row, as much as SentencePiece takes to encode a short document.
    """
    if stream.dtype.type not in MEGATRON_DTYPE_CODES:
        raise ValueError(f"{prefix}: Megatron-LM has no {stream.dtype} token type (uint16 or int32)")
    lengths = np.diff(offsets)
    pointers = np.zeros(len(lengths), np.int64)
    np.cumsum(lengths[:-1] * stream.dtype.itemsize, out=pointers[1:])
    header = MEGATRON_MAGIC + struct.pack(
        "<QBQQ", 1, MEGATRON_DTYPE_CODES[stream.dtype.type], len(lengths), len(lengths) + 1
    )
    index = b"".join(
        [
            header,
            lengths.astype("<i4").tobytes(),
            pointers.astype("<i8").tobytes(),
            # Document boundaries as sequence indices: every sequence a document of its own.
            np.arange(len(lengths) + 1, dtype="<i8").tobytes(),
        ]
    )
    _write_atomically(f"{prefix}.bin", memoryview(np.ascontiguousarray(stream).view(np.uint8)))
    _write_atomically(f"{prefix}.idx", index)


def _write_atomically(path: str, data: bytes | memoryview) -> None:
    fs, fs_path = filesystem(path)
    fs.makedirs(fs_path.rsplit("/", 1)[0], exist_ok=True)
    tmp = f"{fs_path}{TMP_MARKER}{uuid.uuid4().hex}"
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, fs_path)
