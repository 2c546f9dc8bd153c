"""HTTP faults between the fetch stage and its servers: Common Crawl's data host (byte ranges of a
WARC), the Diet minutes API and e-Gov's law API, each replayed on 127.0.0.1 behind a proxy that
breaks answers on purpose (tests/servers/fault_proxy.py): 429 with Retry-After in seconds and as an
HTTP date, 503, a reset connection, a body cut short, a wrong Content-Length either way, and a slow
loris that trickles bytes.

A fault that passes is retried (a bounded number of times, with backoff) and the documents are
exactly those of a fault-free fetch. A fault that lasts rejects that one document with its reason,
in its manifest row and in the rejects, after exactly ``max_attempts`` requests, and every other
document is exactly as without the fault. The stage is called shard by shard without Ray here;
tests/pipeline/test_commoncrawl_run.py runs a whole CLI run with such a rejection to exit 0.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import formatdate
from pathlib import Path

import pytest
import yaml
from servers.egov import ReplayServer as EgovReplay
from servers.fault_proxy import FaultProxy
from servers.kokkai import KokkaiReplay

from pipeline.config import load_config
from pipeline.stage import RunContext
from pipeline.stages.fetch import FetchStage
from sources.warc import iter_warc_responses

REPO = Path(__file__).resolve().parents[2]
JA_PAGES = (REPO / "sample" / "ja_pages.warc.gz").read_bytes()
CRAWL = "CC-MAIN-2024-22"
SEGMENT = f"crawl-data/{CRAWL}/segments/1715971057216.39/warc"
GOOD_WARC = f"{SEGMENT}/CC-MAIN-20240517233122-20240518023122-00001.warc.gz"
VICTIM_WARC = f"{SEGMENT}/CC-MAIN-20240517233122-20240518023122-00009.warc.gz"  # same bytes
GYOSEI = "405AC0000000088_20240401_504AC0100000052"
KOKKI = "411AC0000000127_19990813_000000000000000"
EGOV_DATA = REPO / "tests" / "data" / "egov"
MAX_ATTEMPTS = 2
# Short enough that a slow loris costs a few seconds; long for a local answer.
TIMEOUT_SECONDS = 2.0
HTTP = {
    "max_attempts": MAX_ATTEMPTS,
    "backoff_base_seconds": 0.01,
    "backoff_max_seconds": 2.0,
    "timeout_seconds": TIMEOUT_SECONDS,
}


@dataclass(frozen=True)
class FaultCase:
    name: str
    kind: str
    options: dict
    reason: str  # the rejection when the fault lasts
    # Sources that check this fault stricter: their own reason, given at the first bad answer.
    refused_by: dict[str, str] = field(default_factory=dict)


def _in_one_second() -> str:
    return formatdate(time.time() + 1, usegmt=True)


FAULTS = [
    FaultCase("429 Retry-After seconds", "status", {"status": 429, "retry_after": "1"}, "fetch_http_429"),
    FaultCase(
        "429 Retry-After date", "status", {"status": 429, "retry_after": _in_one_second}, "fetch_http_429"
    ),
    FaultCase("503", "status", {"status": 503}, "fetch_http_503"),
    FaultCase("connection reset", "reset", {}, "fetch_connection"),
    FaultCase("truncated body", "truncate", {}, "fetch_truncated_body"),
    # A byte range whose answer declares more bytes than were asked for is refused unread.
    FaultCase(
        "Content-Length too large",
        "length_over",
        {},
        "fetch_truncated_body",
        {"commoncrawl": "fetch_range_length_mismatch"},
    ),
    FaultCase("slow loris", "slow", {"seconds_per_chunk": 0.5, "chunk_size": 16}, "fetch_timeout"),
]
# A too-small Content-Length looks like a whole body to HTTP; what the source checks it with decides
# (the Content-Range of a WARC record's range, the JSON of the Diet API, e-Gov's XML).
LENGTH_UNDER_REASON = {
    "commoncrawl": "fetch_range_length_mismatch",
    "kokkai": "fetch_bad_response",
    "egov": "fetch_api_error",
}


# -- the three sources, each behind a fault proxy ---------------------------------------------


@dataclass
class Source:
    name: str
    proxy: FaultProxy
    victim: str  # the path (prefix) of the one document's requests that the faults break
    config: dict

    def stage(self, run_dir: Path) -> FetchStage:
        path = run_dir.parent / f"{run_dir.name}.yaml"
        path.write_text(yaml.safe_dump({"sources": self.config}, allow_unicode=True), "utf-8")
        config = load_config(path)
        return FetchStage(RunContext(str(run_dir), config, config.sha256(), "test"))


OFF = {"commoncrawl": {"enabled": False}, "local": {"enabled": False}}


@pytest.fixture
def commoncrawl(cc_server, write_columnar_index, tmp_path):
    cc_server.add_file(GOOD_WARC, JA_PAGES)
    cc_server.add_file(VICTIM_WARC, JA_PAGES)
    scratch = tmp_path / "ja.warc.gz"
    scratch.write_bytes(JA_PAGES)
    rows = []
    for i, r in enumerate(list(iter_warc_responses(str(scratch)))[:4]):
        rows.append(
            {
                "url": r.target_uri,
                "warc_filename": VICTIM_WARC if i == 2 else GOOD_WARC,
                "warc_record_offset": r.offset,
                "warc_record_length": r.length,
                "content_digest": (r.payload_digest or "").removeprefix("sha1:"),
                "content_mime_type": "text/html",
                "content_mime_detected": "text/html",
                "fetch_status": 200,
                "content_languages": "jpn",
                "fetch_time": datetime(2024, 5, 18, 1, 58, 10, tzinfo=timezone.utc),
                "crawl": CRAWL,
                "subset": "warc",
            }
        )
    index = write_columnar_index(tmp_path / "index.parquet", rows)[0]
    proxy = FaultProxy(cc_server.url)
    config = {
        "local": {"enabled": False},
        "commoncrawl": {
            "enabled": True,
            "data_url": proxy.url,
            "columnar_index": {"paths": [str(index)]},
            "http": HTTP,
        },
    }
    yield Source("commoncrawl", proxy, "/" + VICTIM_WARC, config)
    proxy.close()


@pytest.fixture
def kokkai():
    replay = KokkaiReplay()
    proxy = FaultProxy(replay.base_url)
    kokkai = {
        "enabled": True,
        "base_url": proxy.url_for(replay.base_url),
        "from": "2024-03-01",
        "until": "2024-03-03",
        "pause_seconds": 0.01,
        "http": HTTP,
    }
    # One meeting at a time, oldest first; the faults break the first one's requests.
    first = next(m["issueID"] for m in replay.meeting_list if m["date"] == "2024-03-01")
    yield Source("kokkai", proxy, f"/api/meeting?issueID={first}&", OFF | {"kokkai": kokkai})
    proxy.close()
    replay.close()


@pytest.fixture
def egov():
    replay = EgovReplay()
    replay.serve_laws(
        [
            (
                {"law_id": "405AC0000000088", "law_num": "平成五年法律第八十八号", "law_type": "Act"},
                {"law_revision_id": GYOSEI, "law_title": "行政手続法"},
                (EGOV_DATA / f"{GYOSEI}.xml").read_bytes(),
            ),
            (
                {"law_id": "411AC0000000127", "law_num": "平成十一年法律第百二十七号", "law_type": "Act"},
                {"law_revision_id": KOKKI, "law_title": "国旗及び国歌に関する法律"},
                b"<Law/>",
            ),
        ]
    )
    example = (EGOV_DATA / "egov_v2_law_data_xml.xml").read_bytes()
    replay.routes[f"/api/2/law_data/{KOKKI}"] = (200, "application/xml", example)
    proxy = FaultProxy(replay.url)
    egov = {"enabled": True, "base_url": proxy.url_for(replay.url), "pause_seconds": 0.01, "http": HTTP}
    yield Source("egov", proxy, f"/api/2/law_data/{GYOSEI}", OFF | {"egov": egov})
    proxy.close()
    replay.close()


@pytest.fixture(params=["commoncrawl", "kokkai", "egov"])
def source(request) -> Source:
    return request.getfixturevalue(request.param)


def fetch(source: Source, run_dir: Path, fault: FaultCase | None = None, times: int = 0):
    """Plan (listings are asked before any fault), then break ``times`` requests and fetch."""
    stage = source.stage(run_dir)
    shards = stage.plan()
    if fault is not None:
        options = {k: v() if callable(v) else v for k, v in fault.options.items()}
        source.proxy.add(source.victim, fault.kind, times=times, **options)
    docs, rows, rejected = [], [], []
    stage.setup()
    try:
        for shard in shards:
            result = stage.process(shard)
            docs += result.kept.to_pylist()
            rows += result.manifest
            rejected += result.rejected
    finally:
        stage.teardown()
    return docs, rows, rejected


def same_documents(a: list[dict], b: list[dict]) -> bool:
    return [(d["doc_id"], d["text"]) for d in a] == [(d["doc_id"], d["text"]) for d in b]


def victim_requests(source: Source) -> int:
    return sum(1 for path, _ in source.proxy.log if path.startswith(source.victim))


# -- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_a_fault_that_passes_is_retried_and_changes_no_document(source, fault, tmp_path):
    expected, _, _ = fetch(source, tmp_path / "fault_free")
    source.proxy.log.clear()
    docs, rows, rejected = fetch(source, tmp_path / "run", fault, times=1)
    assert source.proxy.faults_served(fault.kind) == 1, "the fault was not served: this proves nothing"
    if source.name in fault.refused_by:
        assert_only_the_victim_rejected(
            source, expected, rows, docs, rows, rejected, fault.refused_by[source.name]
        )
        assert victim_requests(source) == 1
        return
    assert rejected == []
    assert same_documents(docs, expected)
    assert victim_requests(source) == 2  # the broken answer, then one retry


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_a_fault_that_lasts_rejects_that_document_with_its_reason(source, fault, tmp_path):
    expected, expected_rows, _ = fetch(source, tmp_path / "fault_free")
    source.proxy.log.clear()
    docs, rows, rejected = fetch(source, tmp_path / "run", fault, times=100)
    reason = fault.refused_by.get(source.name, fault.reason)
    assert_only_the_victim_rejected(source, expected, expected_rows, docs, rows, rejected, reason)
    # Bounded: no retry past max_attempts (none for what is refused at once).
    assert victim_requests(source) == (1 if source.name in fault.refused_by else MAX_ATTEMPTS)


def test_a_too_small_content_length_rejects_that_document(source, tmp_path):
    """The client reads what the header declares, so the body looks whole: no retry can help, and
    the source's own check of the body (gzip and digest, JSON, XML) rejects the document."""
    expected, expected_rows, _ = fetch(source, tmp_path / "fault_free")
    source.proxy.log.clear()
    fault = FaultCase("Content-Length too small", "length_under", {}, LENGTH_UNDER_REASON[source.name])
    docs, rows, rejected = fetch(source, tmp_path / "run", fault, times=100)
    assert_only_the_victim_rejected(source, expected, expected_rows, docs, rows, rejected, fault.reason)


def assert_only_the_victim_rejected(source, expected, expected_rows, docs, rows, rejected, reason):
    (entry,) = rejected
    assert entry["reason"] == reason, entry
    assert entry["detail"]
    (row,) = [r for r in rows if r["doc_id"] == entry["doc_id"]]
    assert row["included"] is False and row["exclusion_reason"] == f"fetch:{reason}"
    # The document is rejected, not lost: it has its manifest row, and every other one is intact.
    assert sorted(r["doc_id"] for r in rows) == sorted(r["doc_id"] for r in expected_rows)
    assert same_documents(docs, [d for d in expected if d["doc_id"] != entry["doc_id"]])
    assert len(docs) == len(expected) - 1
    locator = json.loads(row["locator"])
    assert locator, "the rejected document keeps the coordinates asked for"
