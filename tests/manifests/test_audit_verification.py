"""--verify-sample: included documents fetched again from their locators, against local replay
servers whose addresses the run's config.resolved.yaml holds (Common Crawl range requests, the Diet
minutes API, the e-Gov API), and compared with raw_sha256. Content changed since the run is a
mismatch (a violation); a source that cannot be reached is reported apart (not a violation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from servers.egov import ReplayServer as EgovReplay
from servers.kokkai import KokkaiReplay

from manifests.audit import audit_run
from manifests.audit_refetch import choose
from pipeline.tokenizer_models import load_tokenizer
from tests.conftest import ReplayServer as CommonCrawlReplay

from .conftest import run_pipeline

REPO = Path(__file__).resolve().parents[2]
GYOSEI = "405AC0000000088_20240401_504AC0100000052"
# A path of the shape Common Crawl uses; the bytes behind it are the sample's WARC of Japanese pages.
SEGMENT = "crawl-data/CC-MAIN-2024-22/segments/1715971057216.39/warc"
WARC = f"{SEGMENT}/CC-MAIN-20240517233122-20240518023122-00001.warc.gz"
EVERY = 1000  # more than the run includes: every document is verified


@pytest.fixture(scope="module")
def servers():
    cc, kokkai, egov = CommonCrawlReplay(), KokkaiReplay(), EgovReplay()
    cc.add_file(WARC, (REPO / "sample" / "ja_pages.warc.gz").read_bytes())
    law = (REPO / "tests" / "data" / "egov" / f"{GYOSEI}.xml").read_bytes()
    info = {"law_id": "405AC0000000088", "law_num": "平成五年法律第八十八号", "law_type": "Act"}
    egov.serve_laws([(info, {"law_revision_id": GYOSEI, "law_title": "行政手続法"}, law)])
    yield cc, kokkai, egov
    for server in (cc, kokkai, egov):
        server.close()


@pytest.fixture(scope="module")
def api_run(servers, tmp_path_factory) -> Path:
    cc, kokkai, egov = servers
    retry = {"max_attempts": 2, "backoff_base_seconds": 0.01}
    config = {
        "sources": {
            "commoncrawl": {
                "enabled": True,
                "warc_urls": [f"{cc.url}/{WARC}"],
                "data_url": cc.url,
                "http": retry,
            },
            "kokkai": {
                "enabled": True,
                "base_url": kokkai.base_url,
                "from": "2024-03-01",
                "until": "2024-03-02",
                "pause_seconds": 0.05,
                "http": retry,
            },
            "egov": {
                "enabled": True,
                "mode": "api",
                "base_url": egov.url,
                "pause_seconds": 0.02,
                "http": retry,
            },
        },
        # The replayed meeting is one short speech (「これより会議を開きます。」): the Diet profile's
        # length rules are set to let it through, so that a Diet document reaches the shards.
        "clean": {"diet": {"min_chars": 10, "min_language_score": None, "max_ellipsis_fraction": None}},
        "tokenize": {"tokenizer_path": str(REPO / "sample" / "tokenizer_llm_jp_v2.2" / "tokenizer.json")},
    }
    root = tmp_path_factory.mktemp("api-run")
    (root / "run.yaml").write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    proc = run_pipeline("run", "--config", str(root / "run.yaml"), "--run-dir", str(root / "run"))
    assert proc.returncode == 0, proc.stderr
    return root / "run"


def verify(run: Path, n: int = EVERY, seed: int = 0):
    return audit_run(str(run), verify_sample=n, seed=seed, load_tokenizer=load_tokenizer)


def by_source(report) -> dict[str, set[str]]:
    statuses: dict[str, set[str]] = {}
    for result in report.verification["results"]:
        statuses.setdefault(result["source"], set()).add(result["status"])
    return statuses


def test_every_document_fetched_again_matches(api_run):
    report = verify(api_run)
    assert report.ok, report.violations
    v = report.verification
    assert v["seed"] == 0 and v["requested"] == EVERY and len(v["sample"]) == report.documents_included
    assert v["counts"] == {
        "match": report.documents_included,
        "mismatch": 0,
        "unreachable": 0,
        "not_refetchable": 0,
    }
    assert by_source(report) == {s: {"match"} for s in ("commoncrawl", "gov_web", "kokkai", "egov")}


def test_the_sample_is_seeded_and_reported(api_run):
    first, again = verify(api_run, 4, seed=11), verify(api_run, 4, seed=11)
    assert first.verification["sample"] == again.verification["sample"]
    assert len(first.verification["sample"]) == 4
    every = verify(api_run, 0).documents_included
    assert choose(every, 4, 11) == choose(every, 4, 11) != choose(every, 4, 12)


def test_a_law_changed_since_the_run_is_a_mismatch(api_run, servers):
    egov = servers[2]
    route = f"/api/2/law_data/{GYOSEI}"
    status, ctype, body = egov.routes[route]
    egov.routes[route] = (status, ctype, body.replace("第一条".encode(), "第一條".encode(), 1))
    try:
        report = verify(api_run)
    finally:
        egov.routes[route] = (status, ctype, body)
    assert by_source(report)["egov"] == {"mismatch"}
    (law,) = [r for r in report.verification["results"] if r["source"] == "egov"]
    assert [(v.check, v.doc_id, v.message) for v in report.violations] == [
        (
            "verification",
            law["doc_id"],
            "fetched again, the bytes differ: the bytes obtained again have another SHA-256",
        )
    ]
    assert law["found"] != law["expected"] and report.verification["counts"]["mismatch"] == 1


def test_sources_that_cannot_be_reached_are_reported_but_are_not_violations(api_run, servers):
    cc, kokkai, _ = servers
    cc.fail_next("/" + WARC, 404, times=EVERY)
    kokkai.fail["/api/meeting"] = [503] * 10
    try:
        report = verify(api_run)
    finally:
        cc._faults.clear()
        kokkai.fail.clear()
    assert report.ok, report.violations
    statuses = by_source(report)
    assert statuses["commoncrawl"] == statuses["gov_web"] == statuses["kokkai"] == {"unreachable"}
    assert statuses["egov"] == {"match"}
    details = {r["source"]: r["detail"] for r in report.verification["results"]}
    assert details["commoncrawl"].startswith("http_404") and details["kokkai"].startswith("http_503")
