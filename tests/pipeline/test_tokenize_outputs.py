"""What a training team reads from a tokenize shard of real Japanese text: Megatron-LM .bin/.idx
parsed here by an independent reader of the MMIDIDX format, Parquet loaded by `datasets` and polars
with row groups sized in tokens, the token-range index and the takedown path, byte-identical reruns."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from pipeline.shards import run_shard
from pipeline.stages.tokenize import TokenizeStage
from pipeline.stages.tokenize_takedown import cut_shard, drop_documents

REPO = Path(__file__).resolve().parents[2]
# Japanese Wikipedia paragraphs (CC BY-SA 4.0) from the bundled sample.
WIKI = [
    json.loads(line)["text"] for line in (REPO / "sample" / "wikipedia_ja.jsonl").read_text().splitlines()
]
# Megatron-LM's DType codes (megatron/core/datasets/indexed_dataset.py).
MEGATRON_DTYPES = {
    1: np.uint8,
    2: np.int8,
    3: np.int16,
    4: np.int32,
    5: np.int64,
    6: np.float64,
    7: np.float32,
    8: np.uint16,
}


def read_mmidIDX(path: Path) -> dict:
    """Megatron's index, read from the format's definition and nothing of ours:
    9-byte magic, u64 version, u8 dtype code, u64 sequence count, u64 document count, then
    int32 sequence lengths, int64 byte pointers, int64 document indices."""
    data = path.read_bytes()
    assert data[:9] == b"MMIDIDX\x00\x00"
    version, code = struct.unpack_from("<QB", data, 9)
    sequences, documents = struct.unpack_from("<QQ", data, 18)
    at = 34
    lengths = np.frombuffer(data, np.int32, sequences, at)
    at += 4 * sequences
    pointers = np.frombuffer(data, np.int64, sequences, at)
    at += 8 * sequences
    doc_index = np.frombuffer(data, np.int64, documents, at)
    assert at + 8 * documents == len(data)
    return {
        "version": version,
        "dtype": MEGATRON_DTYPES[code],
        "lengths": lengths,
        "pointers": pointers,
        "documents": doc_index,
    }


def megatron_sequences(prefix: Path) -> list[list[int]]:
    index = read_mmidIDX(prefix.with_suffix(".idx"))
    data = np.fromfile(prefix.with_suffix(".bin"), index["dtype"])
    size = np.dtype(index["dtype"]).itemsize
    return [data[p // size : p // size + n].tolist() for p, n in zip(index["pointers"], index["lengths"])]


@pytest.fixture
def shard(shards):
    """A quality shard of the 42 Wikipedia paragraphs, two of them copied into one long document."""
    docs = [{"upstream_id": f"wiki-{i}", "text": t} for i, t in enumerate(WIKI)]
    docs.append({"upstream_id": "wiki-long", "text": "\n".join(WIKI[:6])})
    return shards.write("quality", 2, docs)


def tokenize(shards, spec, *overrides: str) -> Path:
    run_shard(TokenizeStage(shards.context("tokenize.formats=[parquet, megatron]", *overrides)), spec)
    return Path(shards.run_dir) / "tokenize" / "part-00002"


@pytest.mark.parametrize("dtype, code, numpy_type", [("auto", 8, np.uint16), ("int32", 4, np.int32)])
def test_megatron_index_parses_and_each_sequence_is_the_parquet_row(shards, shard, dtype, code, numpy_type):
    prefix = tokenize(shards, shard, f"tokenize.token_dtype={dtype}", "tokenize.max_tokens_per_piece=600")
    index = read_mmidIDX(prefix.with_suffix(".idx"))
    rows = pq.read_table(prefix.with_suffix(".parquet"))
    assert index["version"] == 1 and index["dtype"] is numpy_type
    assert prefix.with_suffix(".idx").read_bytes()[17] == code
    assert len(index["lengths"]) == rows.num_rows > len(WIKI) + 1  # the long document is in pieces
    assert index["lengths"].tolist() == rows.column("num_tokens").to_pylist()
    size = np.dtype(numpy_type).itemsize
    assert index["pointers"].tolist() == [s * size for s in rows.column("token_start").to_pylist()]
    assert index["documents"].tolist() == list(range(rows.num_rows + 1))
    assert prefix.with_suffix(".bin").stat().st_size == size * sum(index["lengths"].tolist())
    assert megatron_sequences(prefix) == rows.column("input_ids").to_pylist()


@pytest.mark.parametrize("dtype", ["auto", "int32"])
def test_the_megatron_files_are_byte_for_byte_those_of_datatroves_writer(shards, shard, tmp_path, dtype):
    from datatrove.pipeline.tokens.megatron_tokenizer import MegatronTokenizedFile

    prefix = tokenize(shards, shard, f"tokenize.token_dtype={dtype}", "tokenize.max_tokens_per_piece=600")
    sequences = megatron_sequences(prefix)
    reference = MegatronTokenizedFile(str(tmp_path), "reference", token_size=4 if dtype == "int32" else 2)
    for sequence in sequences:
        reference.write(sequence)
    reference.close()
    assert len(sequences) > len(WIKI) + 1
    for ext in (".bin", ".idx"):
        assert (tmp_path / f"reference{ext}").read_bytes() == prefix.with_suffix(ext).read_bytes(), ext


def test_parquet_loads_with_datasets_and_polars_with_the_smallest_id_type(shards, shard):
    from datasets import load_dataset

    prefix = tokenize(shards, shard, "tokenize.token_dtype=auto", "tokenize.row_group_tokens=2000")
    path = str(prefix.with_suffix(".parquet"))
    dataset = load_dataset("parquet", data_files=[path], split="train")
    assert dataset.features["input_ids"].feature.dtype == "uint16"  # LLM-jp v2.2 has 48,586 ids
    frame = pl.scan_parquet(path).collect()
    assert frame.schema["input_ids"] == pl.List(pl.UInt16)
    assert len(dataset) == frame.height and dataset[5]["input_ids"] == frame["input_ids"][5].to_list()
    # Written false, so that a later masking takedown flips values and every shard keeps one schema.
    assert dataset.features["masked"].dtype == "bool" and not any(dataset["masked"])
    stage = TokenizeStage(shards.context())
    stage.setup()
    assert stage.tokenizer.decode(dataset[0]["input_ids"][:-1]) == WIKI[0]
    meta = json.loads(pq.read_schema(path).metadata[b"jcorpus.tokenizer"])
    assert (
        meta["token_dtype"] == "uint16" and meta["eos_id"] == 7 and meta["sha256"] == stage.tokenizer.sha256
    )
    meta = pq.ParquetFile(path).metadata
    bounds = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
    sums = [frame["num_tokens"][a:b].sum() for a, b in zip(bounds[:-1], bounds[1:])]
    assert len(sums) > 3 and all(2000 <= s < 2000 + frame["num_tokens"].max() for s in sums[:-1])


def test_megatron_only_keeps_the_index_rows_without_ids(shards, shard):
    prefix = tokenize(shards, shard, "tokenize.formats=[megatron]")
    rows = pq.read_table(prefix.with_suffix(".parquet"))
    assert "input_ids" not in rows.column_names and rows.num_rows == len(WIKI) + 1
    assert rows.column("masked").to_pylist() == [False] * rows.num_rows
    assert [len(s) for s in megatron_sequences(prefix)] == rows.column("num_tokens").to_pylist()


def test_any_token_position_leads_to_its_document_and_a_takedown_cuts_its_range(shards, shard):
    prefix = tokenize(shards, shard, "tokenize.max_tokens_per_piece=600")
    rows = pl.read_parquet(prefix.with_suffix(".parquet"))
    stream = [t for seq in megatron_sequences(prefix) for t in seq]
    position = len(stream) // 2
    # The lookup of README "The token-range index": the index columns alone, without input_ids.
    index = pl.read_parquet(
        prefix.with_suffix(".parquet"), columns=["doc_id", "token_start", "token_end", "source", "license"]
    )
    row = int(np.searchsorted(index["token_start"].to_numpy(), position, side="right")) - 1
    doc = index["doc_id"][row]
    assert index["token_start"][row] <= position < index["token_end"][row]
    assert index["license"][row] == "NOASSERTION" and index["source"][row] == "local"
    assert stream[index["token_start"][row] : index["token_end"][row]] == rows["input_ids"][row].to_list()
    long_doc = rows.filter(pl.col("piece") == 1)["doc_id"][0]
    dropped = drop_documents(str(prefix), {doc, long_doc}, str(prefix.parent / "released" / "part-00002"))
    kept = rows.filter(~pl.col("doc_id").is_in([doc, long_doc]))
    assert dropped == rows.height - kept.height > 2
    after = pl.read_parquet(prefix.parent / "released" / "part-00002.parquet")
    assert after["doc_id"].to_list() == kept["doc_id"].to_list()
    assert after["token_start"][1:].to_list() == after["token_end"][:-1].to_list()
    assert megatron_sequences(prefix.parent / "released" / "part-00002") == kept["input_ids"].to_list()


@pytest.mark.parametrize("formats", ["[parquet, megatron]", "[megatron]"])
def test_masking_and_cutting_keep_the_shards_schema_and_flag_only_the_masked_rows(shards, shard, formats):
    prefix = tokenize(shards, shard, "tokenize.max_tokens_per_piece=600", f"tokenize.formats={formats}")
    schema = pq.read_schema(prefix.with_suffix(".parquet"))
    rows = pl.read_parquet(prefix.with_suffix(".parquet"))
    long_doc = rows.filter(pl.col("piece") == 1)["doc_id"][0]
    masked = prefix.parent / "masked" / "part-00002"
    cut_shard(str(prefix), {long_doc}, str(masked), "mask", mask_id=4)
    again = prefix.parent / "masked-again" / "part-00002"
    cut_shard(str(masked), {rows["doc_id"][0]}, str(again), "mask", mask_id=4)
    cut = prefix.parent / "cut" / "part-00002"
    cut_shard(str(again), {rows["doc_id"][1]}, str(cut), "rewrite")
    for done in (masked, again, cut):
        assert pq.read_schema(done.with_suffix(".parquet")).equals(schema, check_metadata=True), done
    after = pl.read_parquet(cut.with_suffix(".parquet"))
    assert after.height == rows.height - 1 and rows["doc_id"][1] not in after["doc_id"].to_list()
    flagged = after.filter(pl.col("masked"))
    assert set(flagged["doc_id"]) == {long_doc, rows["doc_id"][0]}
    assert flagged.height == rows.filter(pl.col("doc_id").is_in([long_doc, rows["doc_id"][0]])).height > 2
    # The Megatron copy is the token stream alone: masking overwrites the ranges, the column is not in it.
    dtype = json.loads(schema.metadata[b"jcorpus.tokenizer"])["token_dtype"]
    expected = np.fromfile(prefix.with_suffix(".bin"), dtype)
    for start, end in rows.filter(pl.col("doc_id") == long_doc).select("token_start", "token_end").rows():
        expected[start:end] = 4
    assert np.array_equal(np.fromfile(masked.with_suffix(".bin"), dtype), expected)


def test_the_same_shard_gives_the_same_bytes(shards, shard, tmp_path):
    first = tokenize(shards, shard)
    other = type(shards)(tmp_path / "again")
    spec = other.write(
        "quality",
        2,
        [{"upstream_id": f"wiki-{i}", "text": t} for i, t in enumerate(WIKI)]
        + [{"upstream_id": "wiki-long", "text": "\n".join(WIKI[:6])}],
    )
    second = tokenize(other, spec)
    for ext in (".parquet", ".bin", ".idx", ".manifest.parquet"):
        a, b = (Path(f"{p}{ext}").read_bytes() for p in (first, second))
        assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest(), ext
