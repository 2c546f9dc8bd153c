"""Hostile input (issue 13): each file of tests/data/hostile/ is refused with its reason, the good
records around it come through, no worker crashes, and a worker's memory stays bounded.

The corpus is generated into a temporary directory (tests/data/hostile/make_hostile.py): a 50 MB
page and two gzip bombs that inflate to 256 MiB each are not committed as data.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from sources.errors import SourceError
from sources.warc import iter_warc_responses
from sources.warc_records import REASONS, WarcLimits, WarcRecordError, iter_warc_records

REPO = Path(__file__).resolve().parents[2]
HOSTILE = REPO / "tests" / "data" / "hostile"


def _load_maker():
    spec = importlib.util.spec_from_file_location("make_hostile", HOSTILE / "make_hostile.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_hostile"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


maker = _load_maker()
ALL_CASES = [*maker.CASES, maker.TRUNCATED_AT_END]
FETCH_CASES = [c for c in ALL_CASES if c.stage == "fetch"]
EXTRACT_CASES = [c for c in ALL_CASES if c.stage == "extract"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return maker.write_corpus(tmp_path_factory.mktemp("hostile"))


def _split(items):
    good = [r for r in items if not isinstance(r, WarcRecordError)]
    bad = [r for r in items if isinstance(r, WarcRecordError)]
    return good, bad


# -- the WARC reader, one file at a time ------------------------------------------------------


@pytest.mark.parametrize("case", FETCH_CASES, ids=lambda c: c.name)
def test_each_damaged_or_oversized_record_is_rejected_with_its_reason(case, corpus):
    items = list(iter_warc_records(str(corpus[case.name])))
    good, [error] = _split(items)
    assert f"fetch:fetch_{error.reason}" == case.reason, error
    assert error.reason in REASONS
    if case.followed_by_good:
        [after] = good
        assert error.offset == 0 and error.length == after.offset
    else:
        assert good == []
        assert error.offset == 0 and error.length == corpus[case.name].stat().st_size
    assert str(error).startswith(f"{corpus[case.name]}: record at byte 0: ")


@pytest.mark.parametrize("case", EXTRACT_CASES, ids=lambda c: c.name)
def test_records_whose_payload_is_hostile_are_read_whole_for_extract_to_judge(case, corpus):
    [response] = list(iter_warc_records(str(corpus[case.name])))
    assert not isinstance(response, WarcRecordError)
    assert response.target_uri.startswith("https://hostile.example.jp/")
    assert response.digest_verified is True


def test_good_records_around_the_hostile_ones_all_come_through(corpus):
    good, bad = _split(list(iter_warc_records(str(corpus["hostile.warc.gz"]))))
    gz_cases = [c for c in maker.CASES if c.gzipped]
    expected_bad = [c.reason for c in gz_cases if c.stage == "fetch"] + [maker.TRUNCATED_AT_END.reason]
    assert [f"fetch:fetch_{e.reason}" for e in bad] == expected_bad
    hostile = [r.target_uri for r in good if "hostile.example.jp" in r.target_uri]
    assert len(hostile) == len([c for c in gz_cases if c.stage == "extract"])
    # One good page after each gzipped hostile record, and one before them all.
    assert len(good) - len(hostile) == len(gz_cases) + 1
    # The records after a skipped one are at their true offsets: each slices out on its own.
    data = corpus["hostile.warc.gz"].read_bytes()
    for response in good:
        single = corpus["hostile.warc.gz"].parent / "single.warc.gz"
        single.write_bytes(data[response.offset : response.offset + response.length])
        [again] = list(iter_warc_responses(str(single)))
        assert again.payload == response.payload and again.record_id == response.record_id


def test_uncompressed_warc_resumes_after_a_bad_record(corpus):
    good, bad = _split(list(iter_warc_records(str(corpus["hostile.warc"]))))
    assert [f"fetch:fetch_{e.reason}" for e in bad] == [c.reason for c in maker.CASES if not c.gzipped]
    assert [r.target_uri.rsplit("/", 1)[-1] for r in good] == ["0", "1", "2"]


def test_garbage_before_the_first_record_is_skipped_to_it(tmp_path):
    target = tmp_path / "junk.warc"
    target.write_bytes(b"<html>not a WARC</html>\r\n" * 3 + maker.GOOD["good_utf8"]())
    good, [error] = _split(list(iter_warc_records(str(target))))
    assert error.reason == "warc_error" and error.offset == 0 and error.length == 75
    assert [r.target_uri for r in good] == ["https://good.example.jp/chiisai-hana/0"]


@pytest.mark.parametrize("path", ["sample/cc_whirlwind.warc.gz", "sample/ja_pages.warc.gz"])
def test_on_good_files_it_reads_exactly_what_the_strict_reader_reads(path):
    assert list(iter_warc_records(str(REPO / path))) == list(iter_warc_responses(str(REPO / path)))


def test_limits_are_the_callers(corpus):
    # A lower max_record_bytes refuses the long-line page at fetch instead of extract.
    limits = WarcLimits(max_record_bytes=5_000_000)
    [error] = list(iter_warc_records(str(corpus["single_10mb_line"]), limits=limits))
    assert error.reason == "record_too_large" and "5000000 bytes (max_record_bytes)" in error.problem


def test_an_empty_or_missing_file_is_still_an_error_of_the_input(tmp_path):
    empty = tmp_path / "empty.warc.gz"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="no WARC records"):
        list(iter_warc_records(str(empty)))
    with pytest.raises(SourceError, match="no such file"):
        list(iter_warc_records(str(tmp_path / "missing.warc.gz")))


# -- fetch and extract in one worker process: reasons and peak memory --------------------------

WORKER = r"""
import json, resource, sys
from manifests.io import read_parquet
from pipeline.config import load_config
from manifests.layout import docs_path, manifest_path
from pipeline.shards import run_shard
from pipeline.stage import RunContext, ShardSpec
from pipeline.stages.extract import ExtractStage
from pipeline.stages.fetch import FetchStage

warc, run_dir = sys.argv[1], sys.argv[2]
config = load_config(None, ["sources.local.enabled=false", "sources.kokkai.enabled=false",
                            "sources.egov.enabled=false", f"sources.commoncrawl.warc_urls=[{warc}]"])
ctx = RunContext(run_dir=run_dir, config=config, config_sha256=config.sha256(), pipeline_version="test")
fetch, extract = FetchStage(ctx), ExtractStage(ctx)
fetch.setup(); extract.setup()  # what a worker holds before its first shard: models, the warm child
kib = lambda who: resource.getrusage(who).ru_maxrss
def status(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field + ":"))
# At rest: the resident size now; then the high-water mark is reset (Linux: clear_refs 5), so the
# peak below is that of the shards' work, not a transient of setup.
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
[shard] = fetch.plan()
run_shard(fetch, shard)
run_shard(extract, ShardSpec(0, {"docs": docs_path(run_dir, "fetch", "part-00000"),
                                  "manifest": manifest_path(run_dir, "fetch", "part-00000")}))
extract.teardown()
rows = []
for stage in ("fetch", "extract"):
    table = read_parquet(f"{run_dir}/{stage}/part-00000.manifest.parquet",
                         ["source_uri", "locator", "included", "exclusion_reason"])
    rows += [dict(r, stage=stage) for r in table.to_pylist()]
print(json.dumps({"before_kib": before, "peak_kib": status("VmHWM"),
                  "children_peak_kib": kib(resource.RUSAGE_CHILDREN), "rows": rows}))
"""


def test_one_worker_refuses_every_hostile_record_keeps_the_good_ones_in_bounded_memory(corpus, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, str(corpus["hostile.warc.gz"]), str(tmp_path / "run")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    growth_mib = (result["peak_kib"] - result["before_kib"]) / 1024
    print(
        f"\nhostile.warc.gz ({corpus['hostile.warc.gz'].stat().st_size:,} bytes) through fetch and extract"
        f" in one worker: peak RSS {result['peak_kib'] / 1024:.0f} MiB, {growth_mib:.0f} MiB over the"
        f" worker at rest; extraction child peak {result['children_peak_kib'] / 1024:.0f} MiB"
    )
    # Each bomb inflates to 256 MiB and the 50 MB page declares 50 MB: had any been read whole,
    # the worker would have grown by at least that much.
    assert growth_mib < 200
    fetched = [r for r in result["rows"] if r["stage"] == "fetch"]
    extracted = {r["locator"]: r for r in result["rows"] if r["stage"] == "extract"}
    reasons = sorted(r["exclusion_reason"] for r in fetched if not r["included"])
    reasons += sorted(r["exclusion_reason"] for r in extracted.values() if not r["included"])
    gz_cases = [c for c in maker.CASES if c.gzipped]
    expected = sorted(c.reason for c in [*gz_cases, maker.TRUNCATED_AT_END] if c.stage == "fetch")
    expected += sorted(c.reason for c in gz_cases if c.stage == "extract")
    assert reasons == expected
    kept = [r for r in extracted.values() if r["included"]]
    assert all("good.example.jp" in r["source_uri"] for r in kept)
    assert len(kept) == len(gz_cases) + 1
    # Nothing lost: every record fetched is rejected at fetch or has its extract row.
    assert all(r["locator"] in extracted for r in fetched if r["included"])


# -- the whole CLI: fetch and extract on Ray ---------------------------------------------------


def test_pipeline_run_on_hostile_warcs_finishes_with_every_reason_in_the_manifests(corpus, tmp_path):
    run_dir = tmp_path / "run"
    config = {
        "sources": {
            "commoncrawl": {
                "enabled": True,
                "warc_urls": [str(corpus["hostile.warc.gz"]), str(corpus["hostile.warc"])],
            },
            "local": {"enabled": False},
            "kokkai": {"enabled": False},
            "egov": {"enabled": False},
        },
        "runtime": {"num_cpus": 1},
    }
    config_path = tmp_path / "hostile.yaml"
    config_path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    before = set(tmp_path.rglob("*"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            "--config",
            str(config_path),
            "--run-dir",
            str(run_dir),
            "--stage",
            "fetch",
            "--stage",
            "extract",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Nothing written outside the run directory.
    assert {p for p in set(tmp_path.rglob("*")) - before if run_dir not in p.parents} == {run_dir}

    def manifests(stage):
        return pl.read_parquet(run_dir / stage / "part-*.manifest.parquet")

    fetch, extract = manifests("fetch"), manifests("extract")
    rejected = pl.concat([fetch.filter(~pl.col("included")), extract.filter(~pl.col("included"))])
    got = sorted(rejected["exclusion_reason"].to_list())
    expected = sorted(c.reason for c in ALL_CASES)
    assert got == expected
    kept = extract.filter(pl.col("included"))
    gz, plain = sum(c.gzipped for c in maker.CASES), sum(not c.gzipped for c in maker.CASES)
    assert kept.height == (gz + 1) + (plain + 1)
    assert set(kept["source_uri"].str.extract(r"^https://([^/]+)/").to_list()) == {"good.example.jp"}
    # Documents lost: every fetched document is rejected at fetch or has an extract row; the
    # extract shards hold exactly the kept ones.
    assert fetch.filter(pl.col("included")).height == extract.height
    texts = pl.read_parquet(run_dir / "extract" / "part-?????.parquet")
    assert texts.height == kept.height and not texts["text"].str.contains("\x00").any()
    assert texts["text"].str.contains("由はうどんやの女中").any()
    stats = json.loads((run_dir / "extract" / "stats.json").read_text())
    print(
        f"\nfetch rejected {fetch.height - extract.height}, extract rejected "
        f"{extract.height - kept.height}, kept {kept.height}; extract stats {stats.get('rejected_by_reason')}"
    )


def test_a_page_admitted_past_the_fetch_limit_is_refused_by_extract(corpus, tmp_path):
    from manifests.io import read_manifest
    from manifests.layout import docs_path, manifest_path
    from pipeline.config import load_config
    from pipeline.shards import run_shard
    from pipeline.stage import RunContext, ShardSpec
    from pipeline.stages.extract import ExtractStage
    from pipeline.stages.fetch import FetchStage

    config = load_config(
        None,
        [
            "sources.local.enabled=false",
            "sources.kokkai.enabled=false",
            "sources.egov.enabled=false",
            f"sources.commoncrawl.warc_urls=[{corpus['page_50mb']}]",
            "sources.commoncrawl.max_record_bytes=60000000",
            "sources.commoncrawl.max_inflated_bytes=64000000",
        ],
    )
    ctx = RunContext(str(tmp_path), config, config.sha256(), "test")
    fetch, extract = FetchStage(ctx), ExtractStage(ctx)
    fetch.setup()
    [shard] = fetch.plan()
    run_shard(fetch, shard)
    extract.setup()
    try:
        run_shard(
            extract,
            ShardSpec(
                0,
                {
                    "docs": docs_path(str(tmp_path), "fetch", "part-00000"),
                    "manifest": manifest_path(str(tmp_path), "fetch", "part-00000"),
                },
            ),
        )
    finally:
        extract.teardown()
    [row] = read_manifest(manifest_path(str(tmp_path), "extract", "part-00000")).to_pylist()
    assert row["exclusion_reason"] == "extract:html_too_large"
    [size] = [d for d in row["decisions"] if d["check"] == "max_html_chars"]
    assert size["passed"] is False and size["value"] > config.extract.max_html_chars


def test_a_jsonl_gz_bomb_of_one_endless_line_is_refused_without_reading_it(tmp_path):
    from sources.local import MAX_LINE_BYTES, iter_local_documents

    good = json.dumps({"id": "hana", "text": maker.PARAGRAPHS[0]}, ensure_ascii=False).encode() + b"\n"
    bomb = tmp_path / "bomb.jsonl.gz"
    # A good line, then 256 MiB of zeros with no line end: one "line" far over the limit.
    bomb.write_bytes(maker._zeros_gzip(maker.BOMB_INFLATED_BYTES, prefix=good))
    documents = iter_local_documents(str(bomb))
    assert next(documents).text == maker.PARAGRAPHS[0]
    with pytest.raises(SourceError, match=f"line 2: longer than {MAX_LINE_BYTES} bytes"):
        next(documents)
