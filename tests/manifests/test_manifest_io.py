"""Manifest schema v1: round trip, atomic writes, refusal of unknown major versions."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifests.io import ManifestError, manifest_table, read_manifest, write_manifest
from manifests.schema import MANIFEST_SCHEMA, REQUIRED_COLUMNS, RETRIEVAL_COLUMNS, doc_id


def make_row(**overrides):
    row = {
        "doc_id": doc_id("local", "jsquad-valid:梅雨"),
        "source": "local",
        "source_uri": "https://ja.wikipedia.org/wiki/%E6%A2%85%E9%9B%A8",
        "locator": json.dumps({"path": "sample/wikipedia_ja.jsonl", "row": 0}),
        "retrieved_at": "2026-11-29T00:00:00+00:00",
        "raw_sha256": "0" * 64,
        "text_sha256": "1" * 64,
        "license": "CC-BY-SA-4.0",
        "legal_basis": ["JP-Copyright-Art30-4"],
        "osaid_class": "open",
        "redistribution": "text",
        "attribution": "出典: 国会会議録検索システム (国立国会図書館)",
        "optout": json.dumps({"verdict": "not_checked"}),
        "transforms": [
            {"stage": "clean", "tool": "normalize", "version": "ja_nfkc_v1", "params_sha256": "ab"}
        ],
        "decisions": [{"stage": "clean", "check": "language_score_ja", "value": 0.98, "passed": True}],
        "dedup_cluster_id": None,
        "dedup_cluster_size": None,
        "included": True,
        "exclusion_reason": None,
        "shard": "tokenize/part-00000.parquet",
        "row": 3,
        "num_tokens": 120,
        "pipeline_version": "0.1.0",
        "config_sha256": "f" * 64,
    }
    row.update(overrides)
    return row


def test_round_trip_keeps_every_column(tmp_path):
    rows = [
        make_row(),
        make_row(doc_id=doc_id("local", "x"), included=False, exclusion_reason="clean:too_short"),
    ]
    path = str(tmp_path / "part-00000.manifest.parquet")
    write_manifest(path, manifest_table(rows))
    table = read_manifest(path)
    assert table.schema.equals(MANIFEST_SCHEMA, check_metadata=False)
    assert table.to_pylist() == rows
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_the_same_rows_give_the_same_bytes_and_flat_columns_keep_statistics_for_filters(tmp_path):
    # Statistics are written for the flat columns only (manifests.io.manifest_bytes): a reader's
    # filter on them still prunes by row-group statistics, and reruns stay byte-identical.
    rows = [make_row(doc_id=doc_id("local", f"梅雨{i}"), included=i % 3 == 0) for i in range(30)]
    first, second = tmp_path / "a.manifest.parquet", tmp_path / "b.manifest.parquet"
    write_manifest(str(first), manifest_table(rows))
    write_manifest(str(second), manifest_table(rows))
    assert first.read_bytes() == second.read_bytes()
    group = pq.ParquetFile(first).metadata.row_group(0)
    stats = {group.column(i).path_in_schema: group.column(i).statistics for i in range(group.num_columns)}
    assert stats["source"].has_min_max and stats["source"].min == stats["source"].max == "local"
    assert stats["included"].has_min_max and (stats["included"].min, stats["included"].max) == (False, True)
    kept = pq.read_table(first, filters=[("included", "==", True)])
    assert kept.column("doc_id").to_pylist() == [r["doc_id"] for r in rows if r["included"]]


def test_rows_missing_a_column_are_refused():
    row = make_row()
    del row["legal_basis"]
    with pytest.raises(ManifestError, match="legal_basis"):
        manifest_table([row])


def test_unknown_major_version_is_refused_with_the_file_name(tmp_path):
    path = tmp_path / "future.manifest.parquet"
    table = manifest_table([make_row()]).replace_schema_metadata({b"manifest_version": b"2.0"})
    pq.write_table(table, path)
    with pytest.raises(
        ManifestError, match=r"future.manifest.parquet: manifest schema version 2.0 is not supported"
    ):
        read_manifest(str(path))


def test_a_newer_minor_version_is_read(tmp_path):
    path = tmp_path / "minor.manifest.parquet"
    pq.write_table(manifest_table([make_row()]).replace_schema_metadata({b"manifest_version": b"1.7"}), path)
    assert read_manifest(str(path)).num_rows == 1


def test_a_plain_parquet_file_is_not_a_manifest(tmp_path):
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"doc_id": ["a"], "text": ["吾輩は猫である。"]}), path)
    with pytest.raises(ManifestError, match="not a provenance manifest"):
        read_manifest(str(path))


def test_required_columns_cover_provenance():
    for column in (
        "doc_id",
        "source",
        "source_uri",
        "locator",
        "license",
        "legal_basis",
        "osaid_class",
        "raw_sha256",
        "retrieved_at",
        "config_sha256",
    ):
        assert column in REQUIRED_COLUMNS + RETRIEVAL_COLUMNS


def test_doc_id_is_stable_and_source_scoped():
    assert doc_id("kokkai", "121405254X00220241004_016") == doc_id("kokkai", "121405254X00220241004_016")
    assert doc_id("kokkai", "a") != doc_id("egov", "a")
    assert len(doc_id("local", "梅雨")) == 32
