"""`python -m pipeline takedown` on copies of a real run of the bundled sample: a document, a URL
and a domain taken down (rewrite and mask), only the affected shard files changed, the remaining
tokens still decode to their documents, the audit passes and lists the request, reruns are
no-ops, and a takedown killed half way is completed by the next one."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer

import pipeline.takedown as takedown_module
from manifests.takedowns import request_id
from pipeline.takedown import JOURNAL, TMP_INFIX, take_down

REPO = Path(__file__).resolve().parents[2]
TOKENIZER = REPO / "sample" / "tokenizer_llm_jp_v2.2" / "tokenizer.json"
EOD, PAD = 7, 4  # <EOD|LLM-jp>, <pad|LLM-jp> (configs/default.yaml takedown.mask_id)


def pipeline(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """The bundled sample run once, with both output formats so that takedowns are checked on
    Parquet rows and Megatron .bin/.idx; each test takes a copy."""
    run = tmp_path_factory.mktemp("takedown-sample") / "run"
    pipeline("run", "--run-dir", str(run), "--set", "tokenize.formats=[parquet, megatron]")
    return run


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def final_manifest(run: Path) -> pl.DataFrame:
    return pl.read_parquet(sorted((run / "tokenize").glob("part-?????.manifest.parquet")))


def megatron_sequences(prefix: Path) -> list[list[int]]:
    """Sequences of a Megatron MMIDIDX pair, read from the format (header, int32 sizes, int64 pointers)."""
    idx = prefix.with_suffix(".idx").read_bytes()
    count = int.from_bytes(idx[18:26], "little")
    sizes = np.frombuffer(idx, np.int32, count, 34)
    pointers = np.frombuffer(idx, np.int64, count, 34 + 4 * count)
    data = prefix.with_suffix(".bin").read_bytes()
    return [np.frombuffer(data, np.int32, int(n), int(p)).tolist() for n, p in zip(sizes, pointers)]


def assert_remaining_tokens_decode_to_their_documents(run: Path) -> int:
    """Every included document's rows, found by its manifest row, decode to its tokenized text."""
    tok = Tokenizer.from_file(str(TOKENIZER))
    texts = dict(
        pl.read_parquet(sorted((run / "quality").glob("part-?????.parquet")))
        .select("doc_id", "text")
        .iter_rows()
    )
    checked = 0
    for row in final_manifest(run).filter(pl.col("included")).iter_rows(named=True):
        prefix = run / row["shard"].removesuffix(".parquet")
        rows = pl.read_parquet(prefix.with_suffix(".parquet"))
        assert rows["doc_id"][row["row"]] == row["doc_id"]
        mine = rows.slice(row["row"]).filter(pl.col("doc_id") == row["doc_id"])
        assert int(mine["num_tokens"].sum()) == row["num_tokens"]
        ids = [t for seq in mine["input_ids"].to_list() for t in seq if t != EOD]
        assert tok.decode(ids) == tok.decode(tok.encode(texts[row["doc_id"]]).ids), row["doc_id"]
        # the Megatron copy holds the same ids at the same positions
        assert megatron_sequences(prefix) == rows["input_ids"].to_list()
        checked += 1
    return checked


def audit_json(run: Path) -> dict:
    proc = pipeline("audit", str(run), "--format", "json", check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    return data.get("audit", data)  # manifests/audit_report.py nests it beside the summary


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def shard_files(shard: str) -> set[str]:
    return {
        f"tokenize/{shard}{ext}" for ext in (".parquet", ".bin", ".idx", ".manifest.parquet", ".stats.json")
    } | {f"tokenize/rejected/{shard}.parquet"}


RUN_FILES = {"tokenize/stats.json", "takedowns.jsonl", "run_manifest.json"}


def test_a_document_is_cut_from_its_shard_only_and_the_audit_passes(run):
    manifest = final_manifest(run).filter(pl.col("included"))
    by_shard = manifest.group_by("shard").len().sort("len", descending=True)
    shard_ref = by_shard["shard"][0]  # the largest shard, so that later rows move up
    victim = manifest.filter(pl.col("shard") == shard_ref).sort("row")["doc_id"][1]
    shard = Path(shard_ref).stem
    rows_before = pl.read_parquet(run / shard_ref)
    stats_before = json.loads((run / "tokenize" / "stats.json").read_text())
    before = digests(run)

    proc = pipeline("takedown", str(run), "--doc-id", victim, "--reason", "本人からの削除依頼")
    assert json.loads(proc.stdout)["doc_ids"] == [victim]

    assert changed(before, digests(run)) == shard_files(shard) | RUN_FILES
    rows = pl.read_parquet(run / shard_ref)
    assert victim not in rows["doc_id"].to_list()
    assert rows.height == rows_before.height - rows_before.filter(pl.col("doc_id") == victim).height
    rid = request_id("doc_id", victim)
    row = final_manifest(run).filter(pl.col("doc_id") == victim).row(0, named=True)
    assert (row["included"], row["exclusion_reason"], row["shard"], row["row"]) == (
        False,
        f"takedown:{rid}",
        None,
        None,
    )
    rejected = pl.read_parquet(run / "tokenize" / "rejected" / f"{shard}.parquet")
    assert rejected.filter(pl.col("doc_id") == victim)["reason"].to_list() == [f"takedown:{rid}"]
    assert assert_remaining_tokens_decode_to_their_documents(run) == manifest.height - 1

    stats = json.loads((run / "tokenize" / "stats.json").read_text())
    taken = int(rows_before.filter(pl.col("doc_id") == victim)["num_tokens"].sum())
    assert stats["documents_out"] == stats_before["documents_out"] - 1
    assert stats["rejected_by_reason"]["takedown"] == 1
    assert stats["counts"]["tokens_out"] == stats_before["counts"]["tokens_out"] - taken
    log = [json.loads(line) for line in (run / "takedowns.jsonl").read_text().splitlines()]
    assert [(e["request_id"], e["kind"], e["doc_ids"], e["mode"], e["shards"], e["reason"]) for e in log] == [
        (rid, "doc_id", [victim], "rewrite", [shard_ref], "本人からの削除依頼")
    ]

    report = audit_json(run)
    assert report["ok"] and report["rejected_by_stage"]["tokenize"] == 1
    assert [(t["request_id"], t["documents"]) for t in report["takedowns"]] == [(rid, 1)]

    # The same request again: nothing left to do, nothing changes.
    after = digests(run)
    again = pipeline("takedown", str(run), "--doc-id", victim)
    assert "already done" in again.stderr and digests(run) == after


def test_a_url_takes_down_the_document_fetched_from_it(run):
    manifest = final_manifest(run).filter(pl.col("included") & (pl.col("source") == "kokkai"))
    url, victim, shard_ref = manifest.select("source_uri", "doc_id", "shard").row(0)
    before = digests(run)
    # As a rights holder might paste it: host in capitals, a trailing slash, a fragment.
    scheme, rest = url.split("://", 1)
    host, path = rest.split("/", 1)
    pipeline("takedown", str(run), "--url", f"{scheme.upper()}://{host.upper()}/{path}/#speech")
    assert json.loads((run / "takedowns.jsonl").read_text().splitlines()[-1])["value"] == url
    assert changed(before, digests(run)) == shard_files(Path(shard_ref).stem) | RUN_FILES
    final = final_manifest(run)
    assert final.filter(pl.col("source_uri") == url)["included"].to_list() == [False]
    assert final.filter(pl.col("included") & (pl.col("source") == "kokkai")).height == manifest.height - 1
    assert audit_json(run)["ok"]


def test_a_domain_takes_down_its_subdomains_in_every_shard(run):
    manifest = final_manifest(run).filter(pl.col("included"))
    hosts = [urlsplit(u).hostname for u in manifest["source_uri"]]
    expected = {d for d, h in zip(manifest["doc_id"], hosts) if h == "go.jp" or h.endswith(".go.jp")}
    shards = {Path(s).stem for s, h in zip(manifest["shard"], hosts) if h.endswith(".go.jp")}
    assert len(expected) >= 5 and len(shards) >= 2  # Diet minutes, e-Gov laws, a government page
    before = digests(run)

    proc = pipeline("takedown", str(run), "--domain", "GO.JP")
    assert set(json.loads(proc.stdout)["doc_ids"]) == expected
    assert changed(before, digests(run)) == set().union(*(shard_files(s) for s in shards)) | RUN_FILES
    left = final_manifest(run).filter(pl.col("included"))
    assert left.height == manifest.height - len(expected) and not set(left["doc_id"]) & expected
    assert assert_remaining_tokens_decode_to_their_documents(run) == left.height
    assert audit_json(run)["takedowns"][0]["documents"] == len(expected)


def test_mask_mode_keeps_the_layout_and_overwrites_the_tokens(run):
    manifest = final_manifest(run).filter(pl.col("included"))
    shard_ref = manifest.group_by("shard").len().sort("len", descending=True)["shard"][0]
    victim, first = manifest.filter(pl.col("shard") == shard_ref).sort("row").select("doc_id", "row").row(2)
    prefix = run / shard_ref.removesuffix(".parquet")
    rows_before = pl.read_parquet(prefix.with_suffix(".parquet"))
    idx_before = prefix.with_suffix(".idx").read_bytes()
    before = digests(run)

    pipeline("takedown", str(run), "--doc-id", victim, "--mode", "mask")

    assert (
        changed(before, digests(run))
        == shard_files(prefix.name) - {f"tokenize/{prefix.name}.idx"} | RUN_FILES
    )
    rows = pl.read_parquet(prefix.with_suffix(".parquet"))
    assert rows.select("doc_id", "num_tokens", "token_start", "token_end").equals(
        rows_before.select("doc_id", "num_tokens", "token_start", "token_end")
    )
    hit = rows["doc_id"] == victim
    assert rows["masked"].to_list() == hit.to_list()
    assert all(set(ids) == {PAD} for ids in rows.filter(hit)["input_ids"].to_list())
    assert rows.filter(~hit)["input_ids"].to_list() == rows_before.filter(~hit)["input_ids"].to_list()
    assert megatron_sequences(prefix) == rows["input_ids"].to_list()
    assert prefix.with_suffix(".idx").read_bytes() == idx_before
    row = final_manifest(run).filter(pl.col("doc_id") == victim).row(0, named=True)
    assert (row["included"], row["shard"], row["row"]) == (False, shard_ref, first)
    stats = json.loads((run / "tokenize" / "stats.json").read_text())
    assert stats["counts"]["tokens_masked"] == int(rows.filter(hit)["num_tokens"].sum())
    assert assert_remaining_tokens_decode_to_their_documents(run) == manifest.height - 1
    report = audit_json(run)
    assert report["ok"] and report["takedowns"][0]["mode"] == "mask"


def test_no_match_is_exit_1_and_bad_input_exit_2(run, tmp_path):
    before = digests(run)
    proc = pipeline("takedown", str(run), "--url", "https://例え.jp/ない", check=False)
    assert proc.returncode == 1 and "no included document" in proc.stderr
    proc = pipeline("takedown", str(tmp_path / "missing"), "--domain", "example.jp", check=False)
    assert proc.returncode == 2 and "no such run directory" in proc.stderr
    proc = pipeline("takedown", str(run), "--domain", "https://go.jp/", check=False)
    assert proc.returncode == 2 and "host name" in proc.stderr
    assert digests(run) == before


def test_a_tampered_run_is_refused_rather_than_rehashed(run):
    quality = sorted((run / "quality").glob("part-?????.parquet"))[0]
    data = bytearray(quality.read_bytes())
    data[100] ^= 1
    quality.write_bytes(bytes(data))
    proc = pipeline("takedown", str(run), "--domain", "go.jp", check=False)
    assert proc.returncode == 2 and "differ from run_manifest.json" in proc.stderr


@pytest.mark.parametrize("crash_after_renames", [0, 3])
def test_a_takedown_killed_half_way_is_completed_by_the_next(run, monkeypatch, crash_after_renames):
    renamed = []
    real_rename = takedown_module._rename

    def dying_rename(fs, tmp, final):
        if len(renamed) == crash_after_renames:
            raise KeyboardInterrupt("killed")
        renamed.append(final)
        real_rename(fs, tmp, final)

    monkeypatch.setattr(takedown_module, "_rename", dying_rename)
    with pytest.raises(KeyboardInterrupt):
        take_down(str(run), "domain", "go.jp")
    assert (run / JOURNAL).exists() and any(TMP_INFIX in p.name for p in run.rglob("*"))
    monkeypatch.setattr(takedown_module, "_rename", real_rename)

    proc = pipeline("takedown", str(run), "--domain", "go.jp")
    assert "completed an interrupted takedown" in proc.stderr and "already done" in proc.stderr
    assert not (run / JOURNAL).exists() and not any(TMP_INFIX in p.name for p in run.rglob("*"))
    report = audit_json(run)
    assert report["ok"] and len(report["takedowns"]) == 1


def test_temporaries_of_a_takedown_killed_before_its_journal_are_discarded(run, monkeypatch):
    def no_journal(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    before = digests(run)
    monkeypatch.setattr(takedown_module, "atomic_write_json", no_journal)
    with pytest.raises(KeyboardInterrupt):
        take_down(str(run), "domain", "go.jp")
    leftovers = {k for k in digests(run) if TMP_INFIX in k}
    assert leftovers
    assert {k: v for k, v in digests(run).items() if TMP_INFIX not in k} == before
    monkeypatch.undo()
    take_down(str(run), "domain", "go.jp")
    assert not any(TMP_INFIX in k for k in digests(run))
    assert audit_json(run)["ok"]


def test_after_mask_and_rewrite_takedowns_the_whole_run_loads_as_one_dataset(run, tmp_path):
    """A training team loads every tokenize shard at once, with `datasets` (which refuses files
    whose columns differ) and polars, after takedowns in both modes, and skips the masked rows."""
    from datasets import load_dataset

    manifest = final_manifest(run).filter(pl.col("included"))
    refs = manifest.group_by("shard").len().sort("len", descending=True)["shard"].to_list()
    assert len(refs) >= 3
    first, second = (manifest.filter(pl.col("shard") == s).sort("row")["doc_id"] for s in refs[:2])
    masked_docs = {first[1], second[0], first[3]}
    pipeline("takedown", str(run), "--doc-id", first[1], "--mode", "mask")
    pipeline("takedown", str(run), "--doc-id", second[2], "--mode", "rewrite")
    pipeline("takedown", str(run), "--doc-id", second[0], "--mode", "mask")
    pipeline("takedown", str(run), "--doc-id", first[3], "--mode", "mask")  # a shard masked twice
    again = pipeline("takedown", str(run), "--doc-id", first[1], "--mode", "mask")
    assert "already done" in again.stderr

    files = sorted(str(p) for p in (run / "tokenize").glob("part-?????.parquet"))
    untouched = [f for f in files if Path(f).name not in {Path(r).name for r in refs[:2]}]
    schemas = [pq.read_schema(f) for f in files]
    assert untouched and all(s.equals(schemas[0], check_metadata=True) for s in schemas)
    frame = pl.read_parquet(run / "tokenize" / "part-?????.parquet")
    dataset = load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    assert len(dataset) == frame.height and list(dataset["doc_id"]) == frame["doc_id"].to_list()
    assert dataset.features["masked"].dtype == "bool"
    assert list(dataset["masked"]) == frame["masked"].to_list()
    assert set(frame.filter(pl.col("masked"))["doc_id"]) == masked_docs
    assert all(set(ids) == {PAD} for ids in frame.filter(pl.col("masked"))["input_ids"].to_list())
    training = frame.filter(~pl.col("masked"))
    assert set(training["doc_id"]) == set(final_manifest(run).filter(pl.col("included"))["doc_id"])
    assert second[2] not in frame["doc_id"].to_list()
    assert audit_json(run)["ok"]
