"""run_manifest.json: every file of a run with its SHA-256 and size, and what changed since."""

from __future__ import annotations

import hashlib
import json

import pytest

from manifests.run_hashes import RunHashesError, verify_run_hashes, write_run_hashes


@pytest.fixture
def run(tmp_path):
    root = tmp_path / "run"
    files = {
        "config.resolved.yaml": "tokenize:\n  eos_token: <EOD|LLM-jp>\n",
        "tokenize/part-00000.parquet": "行政手続法 第一条",
        "tokenize/part-00000.bin": "\x00\x01",
        "tokenize/rejected/part-00000.parquet": "rejected",
        "fetch/raw/kokkai/121405254X00220241004.json": '{"answers": []}',
        "dedup/work/edges-00000.parquet": "scratch",  # safe to delete after the run: not listed
        "audit/report.md": "# Audit",  # the audit's own output: not listed
        "tokenize/part-00001.parquet.tmp-0123": "half written",  # a writer's temporary file
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def test_every_file_of_the_run_is_listed_with_its_sha256_and_size(run):
    path = write_run_hashes(str(run), config_base_dir="/work/configs")
    data = json.loads((run / "run_manifest.json").read_text())
    assert path == f"{run}/run_manifest.json"
    assert sorted(data["files"]) == [
        "config.resolved.yaml",
        "fetch/raw/kokkai/121405254X00220241004.json",
        "tokenize/part-00000.bin",
        "tokenize/part-00000.parquet",
        "tokenize/rejected/part-00000.parquet",
    ]
    shard = (run / "tokenize/part-00000.parquet").read_bytes()
    assert data["files"]["tokenize/part-00000.parquet"] == {
        "sha256": hashlib.sha256(shard).hexdigest(),
        "size": len(shard),
    }
    assert data["config_base_dir"] == "/work/configs" and data["total_bytes"] == sum(
        f["size"] for f in data["files"].values()
    )
    assert verify_run_hashes(str(run)) == []


def test_writing_again_gives_the_same_bytes_and_keeps_the_config_directory(run):
    write_run_hashes(str(run), config_base_dir="/work/configs")
    first = (run / "run_manifest.json").read_bytes()
    write_run_hashes(str(run))  # as a takedown does, without knowing the config directory
    assert (run / "run_manifest.json").read_bytes() == first


def test_changed_missing_and_added_files_are_each_reported(run):
    write_run_hashes(str(run))
    (run / "tokenize/part-00000.parquet").write_text("行政手続法 第二条", encoding="utf-8")
    (run / "tokenize/part-00000.bin").unlink()
    (run / "tokenize/part-00002.parquet").write_text("added", encoding="utf-8")
    found = [(v.check, v.file, v.message.split(":")[0]) for v in verify_run_hashes(str(run))]
    assert found == [
        ("integrity", "tokenize/part-00000.bin", "file listed in run_manifest.json is missing"),
        (
            "integrity",
            "tokenize/part-00002.parquet",
            "file not listed in run_manifest.json (added after the run)",
        ),
        ("integrity", "tokenize/part-00000.parquet", "file changed since the run"),
    ]


def test_a_run_without_hashes_or_with_a_broken_file(run):
    (missing,) = verify_run_hashes(str(run))
    assert missing.message.startswith("no run_manifest.json")
    (run / "run_manifest.json").write_text("{not json")
    with pytest.raises(RunHashesError, match="run_manifest.json: not readable JSON"):
        verify_run_hashes(str(run))


def test_a_finished_pipeline_run_has_its_hashes(sample_run):
    data = json.loads((sample_run / "run_manifest.json").read_text())
    config = (sample_run / "config.resolved.yaml").read_bytes()
    assert data["files"]["config.resolved.yaml"]["sha256"] == hashlib.sha256(config).hexdigest()
    shards = {p.relative_to(sample_run).as_posix() for p in (sample_run / "tokenize").glob("part-*")}
    assert shards <= set(data["files"]) and len(shards) >= 12
    assert data["config_base_dir"].endswith("configs")
