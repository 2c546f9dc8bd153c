"""The golden run: `python -m pipeline run` on the bundled sample with real Ray, then `audit`.

It also checks the CLI contract: `--stage` runs a subset, a second run changes no file and reports
every shard as skipped, and the tokenized shards load with `datasets`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from manifests.layout import STAGE_ORDER
from sources.warc import iter_warc_responses

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample"


def pipeline(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def file_digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("golden") / "run"
    # First the two first stages alone, then the rest: `--stage` reads what is on disk.
    first = pipeline("run", "--run-dir", str(run), "--stage", "fetch", "--stage", "extract")
    assert not (run / "clean").exists()
    proc = pipeline("run", "--run-dir", str(run))
    assert "[fetch]" in proc.stderr and "shards skipped" in proc.stderr.split("[clean]")[0]
    # Each stage that did work ends with what its workers and the driver spent on it.
    cpu = re.findall(r"^\[(\w+)\] \d+ documents in, .*; ([\d.]+) CPU s$", first.stderr + proc.stderr, re.M)
    assert [stage for stage, _ in cpu] == list(STAGE_ORDER) and all(float(s) > 0 for _, s in cpu)
    return run


def expected_fetched() -> int:
    records = sum(1 for _ in iter_warc_responses(str(SAMPLE / "cc_whirlwind.warc.gz")))
    records += sum(1 for _ in iter_warc_responses(str(SAMPLE / "ja_pages.warc.gz")))
    lines = sum(
        1 for line in (SAMPLE / "wikipedia_ja.jsonl").read_text(encoding="utf-8").splitlines() if line
    )
    meetings = sum(
        len(json.loads(p.read_text(encoding="utf-8"))["meetingRecord"])
        for p in (SAMPLE / "kokkai").glob("*.json")
    )
    with zipfile.ZipFile(SAMPLE / "egov_laws.zip") as z:
        laws = sum(1 for name in z.namelist() if name.endswith(".xml"))
    return records + lines + meetings + laws


def test_diet_minutes_laws_and_government_pages_reach_the_training_shards(run_dir):
    final = pl.read_parquet(sorted((run_dir / "tokenize").glob("part-?????.manifest.parquet")))
    included = final.filter(pl.col("included"))
    by_source = dict(included.group_by("source").len().iter_rows())
    assert by_source["kokkai"] >= 3 and by_source["egov"] == 2 and by_source["gov_web"] >= 1
    gov = included.filter(pl.col("source").is_in(["kokkai", "egov"]))
    assert gov["attribution"].null_count() == 0 and gov["raw_sha256"].null_count() == 0
    laws = included.filter(pl.col("source") == "egov")
    assert set(laws["osaid_class"]) == {"open"} and set(laws["redistribution"]) == {"text"}
    titles = {json.loads(loc)["law_title"] for loc in laws["locator"]}
    assert titles == {"行政手続法", "国旗及び国歌に関する法律"}


def test_every_fetched_document_is_accounted_for(run_dir):
    proc = pipeline("audit", str(run_dir), "--format", "json")
    report = json.loads(proc.stdout)
    assert report["ok"] and report["violations"] == []
    assert report["documents_fetched"] == expected_fetched()
    assert report["documents_included"] + report["documents_rejected"] == report["documents_fetched"]
    stats = {s: json.loads((run_dir / s / "stats.json").read_text()) for s in STAGE_ORDER}
    assert stats["fetch"]["documents_out"] == report["documents_fetched"]
    assert stats["tokenize"]["documents_out"] == report["documents_included"]
    for before, after in zip(STAGE_ORDER, STAGE_ORDER[1:]):
        assert stats[after]["documents_in"] == stats[before]["documents_out"]


def test_the_planted_rejections_happen_for_the_right_reasons(run_dir):
    rejected = {s: pl.read_parquet(run_dir / s / "rejected" / "part-?????.parquet") for s in STAGE_ORDER}
    dups = rejected["dedup"]
    # The sample's two copies are the Wikipedia rows whose id ends in "#copy": of each pair one
    # goes, as a duplicate of the other (same source and date, so the smaller doc_id stays).
    fetch_manifest = pl.read_parquet(run_dir / "fetch" / "part-00002.manifest.parquet")
    ids = dict(
        zip(
            fetch_manifest["locator"].map_elements(lambda s: json.loads(s)["id"], return_dtype=pl.String),
            fetch_manifest["doc_id"],
        )
    )
    pairs = [(ids[k], ids[k.removesuffix("#copy")]) for k in ids if k.endswith("#copy")]
    assert len(pairs) == 2 and dups.height == 2
    expected = {max(pair): f"duplicate_of:{min(pair)}" for pair in pairs}
    assert dict(zip(dups["doc_id"], dups["reason"])) == expected
    assert set(dups["detail"]) == {"exact copy of the normalised text"}
    # The real Common Crawl record is an Aragonese Wikipedia page: not Japanese, caught before extraction.
    cc = rejected["extract"].filter(pl.col("source") == "commoncrawl")
    assert cc["reason"].to_list() == ["not_japanese_preselect"]


def test_tokenized_shards_load_with_datasets_and_match_the_manifests(run_dir):
    from datasets import load_dataset

    files = sorted(str(p) for p in (run_dir / "tokenize").glob("part-?????.parquet"))
    dataset = load_dataset("parquet", data_files=files, split="train")
    audit = json.loads(pipeline("audit", str(run_dir), "--format", "json").stdout)
    assert len(dataset) == audit["documents_included"] > 50
    row = dataset[0]
    assert row["num_tokens"] == len(row["input_ids"]) > 10
    manifest = pl.read_parquet(run_dir / "tokenize" / "part-?????.manifest.parquet")
    assert manifest["num_tokens"].sum() == sum(dataset["num_tokens"])
    assert set(manifest["license"]) >= {"CC-BY-SA-4.0", "NOASSERTION"}
    assert manifest["config_sha256"].n_unique() == 1


def test_a_second_run_changes_nothing_and_skips_everything(run_dir):
    before = file_digests(run_dir)
    proc = pipeline("run", "--run-dir", str(run_dir))
    assert file_digests(run_dir) == before
    assert "CPU s" not in proc.stderr  # no stage did any work
    for stage in STAGE_ORDER:
        shards = len(list((run_dir / stage).glob("part-?????.manifest.parquet")))
        assert f"[{stage}]" in proc.stderr and f"{shards} shards skipped (already done)" in proc.stderr


def test_a_fresh_run_gives_the_same_shards_and_manifests(run_dir, tmp_path):
    again = tmp_path / "again"
    pipeline("run", "--run-dir", str(again))
    differ = [
        name
        for name, digest in file_digests(run_dir).items()
        if name.endswith(".parquet") and file_digests(again).get(name) != digest
    ]
    assert differ == []


def test_the_audit_catches_a_lost_rejection(run_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "dedup" / "rejected" / "part-00002.parquet").unlink()
    proc = pipeline("audit", str(broken), check=False)
    assert proc.returncode == 1
    assert "absent from dedup/rejected/" in proc.stdout and "FAIL" in proc.stdout


def test_the_audit_catches_a_manifest_pointing_at_the_wrong_row(run_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    path = broken / "tokenize" / "part-00001.manifest.parquet"
    table = pq.read_table(path)
    rows = table.column("row").to_pylist()
    rows[0], rows[1] = rows[1], rows[0]
    import pyarrow as pa

    pq.write_table(
        table.set_column(table.schema.get_field_index("row"), "row", pa.array(rows, pa.int64())), path
    )
    report = json.loads(pipeline("audit", str(broken), "--format", "json", check=False).stdout)
    # the two swapped rows, and the manifest file itself no longer matching run_manifest.json
    assert report["violation_counts"] == {"integrity": 3}
    assert sum("the shard disagrees" in v["message"] for v in report["violations"]) == 2
