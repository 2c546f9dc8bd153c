"""Cut documents out of a finished tokenize shard without tokenizing again (the takedown path).

A takedown request names a document; the shard's rows give its pieces' token ranges, so the
training copy is rewritten from the stored ids: the Parquet rows without its rows, and the
Megatron .bin/.idx (when the shard has them) without its ranges. The run itself is left as it
is: its manifests still record what was built, and the new files go where the caller says.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifests.io import atomic_write_bytes, filesystem, read_parquet
from pipeline.stages import tokenize_output as out


def drop_documents(
    shard_prefix: str, doc_ids: set[str], out_prefix: str, row_group_tokens: int = 2**20
) -> int:
    """Write `out_prefix`.parquet (and .bin/.idx if the shard has them) without the rows of
    `doc_ids`; returns the number of rows dropped. Prefixes are paths or URLs without extension."""
    rows = read_parquet(f"{shard_prefix}.parquet")
    metadata = json.loads(rows.schema.metadata[out.METADATA_KEY])
    keep = pc.invert(pc.is_in(rows.column("doc_id"), pa.array(sorted(doc_ids), pa.string())))
    kept = rows.filter(keep)
    starts = kept.column("token_start").to_numpy()
    ends = kept.column("token_end").to_numpy()
    offsets = np.zeros(kept.num_rows + 1, np.int64)
    np.cumsum(ends - starts, out=offsets[1:])
    kept = kept.set_column(
        kept.schema.get_field_index("token_start"), "token_start", pa.array(offsets[:-1], pa.int64())
    ).set_column(kept.schema.get_field_index("token_end"), "token_end", pa.array(offsets[1:], pa.int64()))
    atomic_write_bytes(f"{out_prefix}.parquet", out.parquet_bytes(kept, row_group_tokens))
    fs, bin_path = filesystem(f"{shard_prefix}.bin")
    if fs.exists(bin_path):
        with fs.open(bin_path, "rb") as f:
            stream = np.frombuffer(f.read(), out.NUMPY_DTYPES[metadata["token_dtype"]])
        kept_ids = np.concatenate([stream[a:b] for a, b in zip(starts, ends)] or [stream[:0]])
        out.write_megatron(out_prefix, kept_ids, offsets)
    return rows.num_rows - kept.num_rows
