"""The shard commit protocol: manifest last, skip when done, no half files, orphans removed."""

import json

import pyarrow as pa
import pytest

from manifests.io import read_manifest
from manifests.layout import docs_path, manifest_path, rejected_path, shard_stats_path
from manifests.schema import doc_id, new_row
from pipeline.config import load_config
from pipeline.errors import MissingInputError
from pipeline.shards import input_shards, remove_orphans, run_shard, sum_stage_stats
from pipeline.stage import RowUpdate, RunContext, ShardSpec, Stage, split_documents

TEXTS = ["吾輩は猫である。名前はまだ無い。", "どこで生れたかとんと見当がつかぬ。", "短い"]


def base_row(i):
    return new_row(
        doc_id=doc_id("local", f"neko:{i}"),
        source="local",
        source_uri=f"file:neko#{i}",
        locator="{}",
        retrieved_at="2026-11-29T00:00:00+00:00",
        raw_sha256="0" * 64,
        license="LicenseRef-PublicDomain-JP",
        legal_basis=["JP-Copyright-Art13"],
        osaid_class="open",
        redistribution="text",
        optout="{}",
        pipeline_version="test",
        config_sha256="c",
    )


class MinLengthStage(Stage):
    """A toy stage: rejects texts shorter than 5 characters."""

    name = "clean"
    input_stage = "extract"
    calls = 0

    def process(self, shard):
        MinLengthStage.calls += 1
        table = pa.table({"doc_id": [base_row(i)["doc_id"] for i in range(3)], "text": TEXTS})
        updates = [RowUpdate(reason=None if len(t) >= 5 else "too_short") for t in TEXTS]
        return split_documents(self.name, table, [base_row(i) for i in range(3)], updates)


@pytest.fixture
def stage(tmp_path):
    ctx = RunContext(run_dir=str(tmp_path), config=load_config(), config_sha256="c", pipeline_version="test")
    MinLengthStage.calls = 0
    return MinLengthStage(ctx)


def test_a_shard_commits_documents_rejects_stats_and_manifest(stage, tmp_path):
    shard = ShardSpec(index=7, inputs={})
    stats = run_shard(stage, shard)
    assert (stats.documents_in, stats.documents_out, stats.documents_rejected) == (3, 2, 1)
    assert stats.rejected_by_reason == {"too_short": 1}
    run = str(tmp_path)
    manifest = read_manifest(manifest_path(run, "clean", "part-00007")).to_pylist()
    assert [r["included"] for r in manifest] == [True, True, False]
    assert manifest[2]["exclusion_reason"] == "clean:too_short"
    rejected = pa.parquet.read_table(rejected_path(run, "clean", "part-00007")).to_pylist()
    assert rejected == [
        {
            "doc_id": manifest[2]["doc_id"],
            "source": "local",
            "reason": "too_short",
            "detail": None,
            "text": "短い",
        }
    ]
    assert (
        pa.parquet.read_table(docs_path(run, "clean", "part-00007")).column("text").to_pylist() == TEXTS[:2]
    )
    assert json.loads(open(shard_stats_path(run, "clean", "part-00007")).read())["documents_out"] == 2


def test_a_done_shard_is_skipped_and_left_untouched(stage, tmp_path):
    shard = ShardSpec(index=0, inputs={})
    run_shard(stage, shard)
    path = docs_path(str(tmp_path), "clean", "part-00000")
    before = open(path, "rb").read()
    assert run_shard(stage, shard) is None
    assert MinLengthStage.calls == 1
    assert open(path, "rb").read() == before


def test_a_crash_before_the_manifest_leaves_the_shard_undone(stage, tmp_path, monkeypatch):
    import pipeline.shards as shards

    def fail(path, table):
        raise OSError("disk full")

    monkeypatch.setattr(shards, "write_manifest", fail)
    with pytest.raises(OSError):
        run_shard(stage, ShardSpec(index=0, inputs={}))
    monkeypatch.undo()
    assert run_shard(stage, ShardSpec(index=0, inputs={})) is not None  # redone, not skipped
    assert MinLengthStage.calls == 2


def test_orphaned_temp_files_are_removed(tmp_path):
    stage_dir = tmp_path / "clean"
    (stage_dir / "rejected").mkdir(parents=True)
    (stage_dir / "part-00000.parquet.tmp-abc").write_bytes(b"half")
    (stage_dir / "rejected" / "part-00000.parquet.tmp-def").write_bytes(b"half")
    (stage_dir / "part-00001.parquet").write_bytes(b"whole")
    assert remove_orphans(str(tmp_path), "clean") == 2
    assert sorted(p.name for p in stage_dir.rglob("*") if p.is_file()) == ["part-00001.parquet"]


def test_stage_stats_are_the_sum_of_shard_stats(stage, tmp_path):
    for i in range(3):
        run_shard(stage, ShardSpec(index=i, inputs={}))
    total = sum_stage_stats(str(tmp_path), "clean")
    assert (total.shards, total.documents_in, total.documents_rejected) == (3, 9, 3)
    assert total.rejected_by_reason == {"too_short": 3}
    assert json.load(open(tmp_path / "clean" / "stats.json"))["documents_out"] == 6


def test_a_stage_without_finished_input_names_the_missing_stage(tmp_path):
    with pytest.raises(MissingInputError, match="stage 'extract' has no output"):
        input_shards(str(tmp_path), "extract")
