"""Integrity of the tokenized shards against the final manifests, one shard at a time.

For each shard: every row's token range is consistent (num_tokens, token_start/token_end, the
Megatron .idx sizes); every included document has rows, its manifest points at its first row and
counts all its tokens; no row belongs to a document the manifest does not include (an added row),
except a takedown that masked it in place. With the run's tokenizer, each document's rows are
decoded (BOS/EOS left out, pieces joined) and the text's SHA-256 compared with the manifest's
text_sha256; a tokenizer that normalises text does not decode to the same bytes, so a document
that differs is compared again against decode(encode(the text that was tokenized)).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from manifests.audit_takedowns import Takedowns
from manifests.audit_violation import Violation
from manifests.io import filesystem, read_parquet
from manifests.layout import docs_path, stage_dir
from manifests.schema import sha256_hex

FINAL_STAGE, INPUT_STAGE = "tokenize", "quality"
METADATA_KEY = b"jcorpus.tokenizer"
INDEX_COLUMNS = ["doc_id", "piece", "num_tokens", "token_start", "token_end"]
MEGATRON_MAGIC = b"MMIDIDX\x00\x00"
_DTYPES = {"uint16": np.uint16, "int32": np.int32, "uint32": np.uint32}


@dataclass
class ShardTally:
    rows: int = 0
    tokens: int = 0
    documents_decoded: int = 0
    documents_normalised: int = 0  # equal only up to the tokenizer's normalisation
    notes: list[str] = field(default_factory=list)


@dataclass
class _Included:
    manifest_row: int
    row: int | None
    num_tokens: int | None
    text_sha256: str | None


def check_shard(
    run_dir: str,
    shard: str,
    manifest: pa.Table,
    manifest_file: str,
    takedowns: Takedowns,
    tokenizer=None,
) -> tuple[list[Violation], ShardTally]:
    """Violations of one tokenize shard; `tokenizer` (decode, encode_batch, sha256) or None."""
    rows_file = docs_path(run_dir, FINAL_STAGE, shard)
    shard_ref = f"{FINAL_STAGE}/{shard}.parquet"
    out: list[Violation] = []
    tally = ShardTally()
    try:
        parquet = pq.ParquetFile(filesystem(rows_file)[1], filesystem=filesystem(rows_file)[0])
        index = parquet.read(columns=INDEX_COLUMNS)
        meta = json.loads(parquet.schema_arrow.metadata[METADATA_KEY])
    except (OSError, pa.ArrowException, KeyError, TypeError, ValueError) as exc:
        return [Violation("integrity", f"tokenized shard unreadable ({_short(exc)})", file=rows_file)], tally
    doc_ids = index.column("doc_id").to_pylist()
    counts = index.column("num_tokens").to_numpy()
    starts, ends = index.column("token_start").to_numpy(), index.column("token_end").to_numpy()
    tally.rows, tally.tokens = len(doc_ids), int(counts.sum())
    expected_start = np.concatenate([[0], ends[:-1]]) if len(ends) else ends
    for r in np.flatnonzero((ends - starts != counts) | (starts != expected_start)):
        out.append(
            Violation(
                "integrity",
                f"row {r}: token range {starts[r]}-{ends[r]} does not follow the previous row or "
                f"hold its num_tokens {counts[r]}",
                doc_ids[r],
                rows_file,
                int(r),
            )
        )
    first_row: dict[str, int] = {}
    tokens: dict[str, int] = {}
    for r, (doc, n) in enumerate(zip(doc_ids, counts.tolist())):
        first_row.setdefault(doc, r)
        tokens[doc] = tokens.get(doc, 0) + n

    included = _included_here(manifest, shard_ref)
    excluded = dict(
        zip(manifest.column("doc_id").to_pylist(), manifest.column("exclusion_reason").to_pylist())
    )
    for doc, want in included.items():
        where = (doc, manifest_file, want.manifest_row)
        if doc not in first_row:
            out.append(
                Violation("integrity", f"included but has no row in {shard_ref} (a dropped row)", *where)
            )
            continue
        if want.row != first_row[doc]:
            out.append(
                Violation(
                    "integrity", f"manifest says {shard_ref} row {want.row}, the shard disagrees", *where
                )
            )
        if want.num_tokens != tokens[doc]:
            out.append(
                Violation(
                    "integrity",
                    f"manifest says {want.num_tokens} tokens, rows of {shard_ref} hold {tokens[doc]}",
                    *where,
                )
            )
    for doc, r in first_row.items():
        if doc in included:
            continue
        reason = excluded.get(doc, "__absent__")
        if reason == "__absent__":
            message = "row of a document with no manifest row (an added row)"
        else:
            request = (
                (reason or "").removeprefix("takedown:") if (reason or "").startswith("takedown:") else None
            )
            if request is not None and takedowns.mode_of(request) == "mask":
                continue  # masked in place by the takedown: its rows stay, its tokens do not
            message = f"row of a document the manifest excludes ({reason}): still in the shard"
        out.append(Violation("integrity", message, doc, rows_file, r))

    out += _check_megatron(run_dir, shard, meta, counts)
    if tokenizer is None:
        return out, tally
    if meta.get("sha256") != getattr(tokenizer, "sha256", None):
        tally.notes.append(
            f"{shard_ref}: not decoded, its tokenizer (SHA-256 {str(meta.get('sha256'))[:16]}…) is not "
            "the file the run's config names now"
        )
        return out, tally
    out += _check_texts(run_dir, shard, parquet, meta, included, first_row, tokenizer, rows_file, tally)
    return out, tally


def _included_here(manifest: pa.Table, shard_ref: str) -> dict[str, _Included]:
    cols = {
        c: manifest.column(c).to_pylist() for c in ("doc_id", "included", "row", "num_tokens", "text_sha256")
    }
    found = {}
    for i, (doc, inc, row, n, sha) in enumerate(
        zip(cols["doc_id"], cols["included"], cols["row"], cols["num_tokens"], cols["text_sha256"])
    ):
        if inc:
            found[doc] = _Included(i, row, n, sha)
    return found


def _check_megatron(run_dir: str, shard: str, meta: dict, counts: np.ndarray) -> list[Violation]:
    """The .idx (when the shard has Megatron files) must list the rows' sizes, the .bin hold them."""
    prefix = f"{stage_dir(run_dir, FINAL_STAGE)}/{shard}"
    fs, idx_path = filesystem(f"{prefix}.idx")
    if not fs.exists(idx_path):
        return []
    with fs.open(idx_path, "rb") as f:
        data = f.read()
    # Read by hand: the format is four fields and two arrays, and datatrove has a writer, no reader.
    if data[:9] != MEGATRON_MAGIC or len(data) < 34:
        return [Violation("integrity", "not a Megatron MMIDIDX index", file=f"{prefix}.idx")]
    (sequences,) = struct.unpack_from("<Q", data, 18)
    sizes = np.frombuffer(data, np.int32, count=sequences, offset=34)
    problems = []
    if sequences != len(counts) or not np.array_equal(sizes, counts):
        problems.append(
            Violation("integrity", "the .idx sizes are not the rows' num_tokens", file=f"{prefix}.idx")
        )
    fs, bin_path = filesystem(f"{prefix}.bin")
    itemsize = np.dtype(_DTYPES[meta["token_dtype"]]).itemsize
    if not fs.exists(bin_path) or fs.size(bin_path) != int(counts.sum()) * itemsize:
        problems.append(
            Violation(
                "integrity",
                f"the .bin does not hold the rows' {int(counts.sum())} tokens",
                file=f"{prefix}.bin",
            )
        )
    return problems


def _row_ids(
    run_dir: str, shard: str, parquet: pq.ParquetFile, meta: dict
) -> Iterator[tuple[str, np.ndarray]]:
    """(doc_id, ids) of every row in order: from input_ids, one row group at a time, or the .bin."""
    if "input_ids" in parquet.schema_arrow.names:
        for batch in parquet.iter_batches(columns=["doc_id", "input_ids"]):
            ids = batch.column("input_ids")
            values, offsets = ids.values.to_numpy(zero_copy_only=False), ids.offsets.to_numpy()
            values = values[offsets[0] :] if len(offsets) else values
            offsets = offsets - (offsets[0] if len(offsets) else 0)
            for doc, a, b in zip(batch.column("doc_id").to_pylist(), offsets[:-1], offsets[1:]):
                yield doc, values[a:b]
        return
    fs, bin_path = filesystem(f"{stage_dir(run_dir, FINAL_STAGE)}/{shard}.bin")
    with fs.open(bin_path, "rb") as f:
        stream = np.frombuffer(f.read(), _DTYPES[meta["token_dtype"]])
    for batch in parquet.iter_batches(columns=["doc_id", "token_start", "token_end"]):
        for doc, a, b in zip(*(batch.column(c).to_pylist() for c in ("doc_id", "token_start", "token_end"))):
            yield doc, stream[a:b]


def _check_texts(
    run_dir, shard, parquet, meta, included, first_row, tokenizer, rows_file, tally
) -> list[Violation]:
    bos, eos = meta.get("bos_id"), meta.get("eos_id")
    decoded: dict[str, str] = {}  # documents whose bytes differ, for the second look
    current, parts = None, []

    def finish(doc: str | None) -> None:
        if doc is None or doc not in included:
            return
        text = "".join(parts)
        tally.documents_decoded += 1
        if sha256_hex(text) != included[doc].text_sha256:
            decoded[doc] = text

    for doc, ids in _row_ids(run_dir, shard, parquet, meta):
        if doc != current:
            finish(current)
            current, parts = doc, []
        ids = ids[1:] if bos is not None and len(ids) and ids[0] == bos else ids
        ids = ids[:-1] if eos is not None and len(ids) and ids[-1] == eos else ids
        parts.append(tokenizer.decode(ids.tolist()))
    finish(current)
    if not decoded:
        return []
    texts = _input_texts(run_dir, shard, set(decoded))
    out = []
    for doc, text in decoded.items():
        want = included[doc]
        where = (doc, rows_file, first_row[doc])
        source = texts.get(doc)
        if source is None or sha256_hex(source) != want.text_sha256:
            out.append(
                Violation(
                    "integrity",
                    f"tokens decode to a text whose SHA-256 is not the manifest's text_sha256 "
                    f"({want.text_sha256[:16] if want.text_sha256 else None}…), and the tokenized input "
                    "has no text with that hash to compare",
                    *where,
                )
            )
            continue
        roundtrip = tokenizer.decode(tokenizer.encode_batch([source])[0])
        if roundtrip == text:
            tally.documents_normalised += 1
            continue
        at = next(
            (i for i, (a, b) in enumerate(zip(roundtrip, text)) if a != b), min(len(roundtrip), len(text))
        )
        out.append(
            Violation(
                "integrity",
                f"tokens decode to a different text than the document "
                f"(text_sha256 {want.text_sha256[:16]}…): first difference at character {at}",
                *where,
            )
        )
    return out


def _input_texts(run_dir: str, shard: str, wanted: set[str]) -> dict[str, str]:
    """Texts of `wanted` documents in the input shards of tokenize shard `shard`."""
    names = [shard]
    fs, plan = filesystem(f"{stage_dir(run_dir, FINAL_STAGE)}/plan.json")
    if fs.exists(plan):
        with fs.open(plan, "rb") as f:
            names = json.load(f).get("input_shards", {}).get(shard, names)
    found = {}
    keep = pa.array(sorted(wanted), pa.string())
    for name in names:
        try:
            table = read_parquet(docs_path(run_dir, INPUT_STAGE, name), ["doc_id", "text"])
        except (OSError, pa.ArrowException):
            continue
        table = table.filter(pc.is_in(table.column("doc_id"), value_set=keep))
        found.update(zip(table.column("doc_id").to_pylist(), table.column("text").to_pylist()))
    return found


def _short(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:limit]
