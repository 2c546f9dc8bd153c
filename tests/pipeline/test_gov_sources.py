"""The Diet minutes and e-Gov sources in the fetch stage, and government pages (gov_web), against
the replay servers of tests/servers/ (real API answers; constructed meeting list) on 127.0.0.1.

The stage is called shard by shard without Ray here; tests/pipeline/test_gov_sources_ray.py runs
it on Ray workers and checks that the Diet API still sees one request at a time.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
import yaml
from servers.egov import ReplayServer
from servers.kokkai import ERROR_19011, MEETING, KokkaiReplay
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from manifests.layout import raw_path
from manifests.schema import doc_id, sha256_hex
from pipeline.config import ConfigError, load_config
from pipeline.stage import RunContext, ShardSpec
from pipeline.stages.extract import ExtractStage
from pipeline.stages.fetch import FetchStage
from sources.warc import iter_warc_responses

REPO = Path(__file__).resolve().parents[2]
EGOV_DATA = REPO / "tests" / "data" / "egov"
GYOSEI_REVISION = "405AC0000000088_20240401_504AC0100000052"
GYOSEI_XML = (EGOV_DATA / f"{GYOSEI_REVISION}.xml").read_bytes()
OFF = {"commoncrawl": {"enabled": False}, "local": {"enabled": False}}


def fetch_stage(tmp_path: Path, sources: dict, run: str = "run") -> FetchStage:
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump({"sources": OFF | sources}, allow_unicode=True), "utf-8")
    config = load_config(config_path)
    ctx = RunContext(str(tmp_path / run), config, config.sha256(), "test")
    return FetchStage(ctx)


def fetch_all(stage: FetchStage) -> tuple[list[dict], list[dict], list[dict], list[ShardSpec]]:
    shards = stage.plan()
    docs, rows, rejected = [], [], []
    for shard in shards:
        result = stage.process(shard)
        docs += result.kept.to_pylist()
        rows += result.manifest
        rejected += result.rejected
    return docs, rows, rejected, shards


# -- Diet minutes ----------------------------------------------------------------------------


@pytest.fixture
def kokkai_server():
    replay = KokkaiReplay()
    yield replay
    replay.close()


def kokkai_source(server: KokkaiReplay, **extra) -> dict:
    # Five constructed meetings, 2024-03-01 .. 2024-03-05, each with the real meeting's speeches.
    return {
        "kokkai": {
            "enabled": True,
            "base_url": server.base_url,
            "from": "2024-03-01",
            "until": "2024-03-05",
            "pause_seconds": 0.05,
            "meetings_per_shard": 2,
            "http": {"max_attempts": 2, "backoff_base_seconds": 0.01},
        }
        | extra
    }


def test_meetings_are_listed_once_then_fetched_politely_one_meeting_a_document(kokkai_server, tmp_path):
    stage = fetch_stage(tmp_path, kokkai_source(kokkai_server))
    docs, rows, rejected, shards = fetch_all(stage)

    assert [s.serial for s in shards] == ["kokkai"] * 3
    assert [len(s.inputs["issue_ids"]) for s in shards] == [2, 2, 1]
    listing = json.loads((tmp_path / "run/fetch/kokkai/meetings.json").read_text("utf-8"))
    dates = [m["date"] for m in listing["meetings"]]
    assert dates == sorted(dates) == [f"2024-03-0{d}" for d in range(1, 6)]  # oldest first
    assert listing["query"] == {"from": "2024-03-01", "until": "2024-03-05"}

    log = kokkai_server.log
    assert [r["path"] for r in log] == ["/api/meeting_list"] + ["/api/meeting"] * 5
    assert all(r["query"]["recordPacking"] == "json" for r in log)
    assert all(r["query"]["maximumRecords"] == "1" for r in log[1:])
    # One request at a time, and the pause after each answer before the next request.
    assert kokkai_server.max_in_flight == 1
    gaps = [b["arrived"] - a["finished"] for a, b in zip(log, log[1:])]
    assert min(gaps) >= 0.05 * 0.95, gaps

    assert rejected == [] and len(docs) == len(rows) == 5
    real = MEETING["meetingRecord"][0]["speechRecord"]
    first_speech = next(s for s in real if int(s["speechOrder"]) == 1)["speech"]
    for doc, row in zip(docs, rows):
        locator = json.loads(row["locator"])
        issue_id = locator["issueID"]
        assert row["doc_id"] == doc["doc_id"] == doc_id("kokkai", issue_id)
        assert row["source"] == doc["source"] == "kokkai"
        assert row["source_uri"] == f"https://kokkai.ndl.go.jp/txt/{issue_id}"
        assert row["legal_basis"] == ["JP-Copyright-Art30-4", "JP-Copyright-Art40-1"]
        assert row["license"] == "LicenseRef-Kokkai-SpeakerCopyright"
        assert (row["osaid_class"], row["redistribution"]) == ("public", "locator_only")
        assert row["attribution"].startswith("出典: 国会会議録検索システム")
        assert locator["speechIDs"] == [f"{issue_id}_001"]  # the speechOrder-0 header is not text
        assert locator["droppedSpeechIDs"] == [f"{issue_id}_000"]
        assert locator["requestURLs"] == [
            f"{kokkai_server.base_url}/meeting?issueID={issue_id}&maximumRecords=1&startRecord=1&recordPacking=json"
        ]
        # The answer is stored as received; raw_sha256 is of those bytes.
        stored = json.loads(Path(raw_path(stage.ctx.run_dir, "kokkai", issue_id)).read_text("utf-8"))
        body = stored["answers"][0]["body"].encode("utf-8")
        assert json.loads(body)["meetingRecord"][0]["issueID"] == issue_id
        assert row["raw_sha256"] == sha256_hex(body) == stored["answers"][0]["sha256"]
        # CRLF normalised and the 「○議長（…君）　」 prefix stripped, as the transform records.
        assert "\r" not in doc["text"] and not doc["text"].startswith("○")
        assert doc["text"] == first_speech.replace("\r\n", "\n").split("　", 1)[1]
        assert row["text_sha256"] == sha256_hex(doc["text"])
        assert "strip_speaker_prefix:^○[^　\\r\\n]+　" in locator["transformations"]

    # Planning again reads the stored listing: the API is not asked twice.
    fetch_stage(tmp_path, kokkai_source(kokkai_server)).plan()
    assert len(kokkai_server.log) == len(log)


def test_a_rerun_continues_after_the_last_stored_meeting(kokkai_server, tmp_path):
    source = kokkai_source(kokkai_server, meetings_per_shard=5, max_consecutive_failures=1)
    stage = fetch_stage(tmp_path, source)
    (shard,) = stage.plan()
    # Meeting 3 fails (HTTP 500 on both attempts): the shard stops after storing meetings 1-2.
    kokkai_server.fail["/api/meeting"] = []
    before = len(kokkai_server.log)
    stage.process(ShardSpec(0, {**shard.inputs, "issue_ids": shard.inputs["issue_ids"][:2]}))
    kokkai_server.fail["/api/meeting"] = [500, 500]
    with pytest.raises(Exception, match="1 meetings in a row could not be fetched"):
        stage.process(shard)
    asked = [r["query"].get("issueID") for r in kokkai_server.log[before:]]
    ids = shard.inputs["issue_ids"]
    assert asked == ids[:2] + [ids[2], ids[2]]

    mark = len(kokkai_server.log)
    resumed = stage.process(shard)
    assert [r["query"]["issueID"] for r in kokkai_server.log[mark:]] == ids[2:]  # only the rest

    clean = fetch_stage(tmp_path, kokkai_source(kokkai_server, meetings_per_shard=5), run="clean")
    (clean_shard,) = clean.plan()
    expected = clean.process(clean_shard)
    assert resumed.kept.to_pylist() == expected.kept.to_pylist()
    key = ("doc_id", "raw_sha256", "text_sha256", "source_uri")
    assert [tuple(r[k] for k in key) for r in resumed.manifest] == [
        tuple(r[k] for k in key) for r in expected.manifest
    ]


def test_an_api_error_rejects_that_meeting_with_the_apis_own_words(kokkai_server, tmp_path):
    stage = fetch_stage(tmp_path, kokkai_source(kokkai_server, meetings_per_shard=5))
    (shard,) = stage.plan()
    kokkai_server.fail["/api/meeting"] = [(400, "application/json", ERROR_19011)]
    result = stage.process(shard)
    assert len(result.manifest) == 5 and result.kept.num_rows == 4
    (entry,) = result.rejected
    assert entry["reason"] == "fetch_api_error"
    real = json.loads(ERROR_19011)
    assert real["message"] in entry["detail"] and real["details"][0] in entry["detail"]
    (row,) = [r for r in result.manifest if not r["included"]]
    assert row["exclusion_reason"] == "fetch:fetch_api_error"
    assert row["doc_id"] == doc_id("kokkai", shard.inputs["issue_ids"][0])
    assert "issueID=" in row["source_uri"] and row["retrieved_at"] is None


def test_one_document_per_speech_and_the_prefix_kept_when_configured(kokkai_server, tmp_path):
    source = kokkai_source(kokkai_server, documents="speech", speaker_prefix="keep", until="2024-03-01")
    docs, rows, _, _ = fetch_all(fetch_stage(tmp_path, source))
    assert len(docs) == 1  # the fixture meeting has one speech after the header
    locator = json.loads(rows[0]["locator"])
    assert rows[0]["doc_id"] == doc_id("kokkai", locator["speechID"])
    assert locator["speechID"].endswith("_001") and rows[0]["source_uri"].endswith("/1")
    assert docs[0]["text"].startswith("○") and "\r" not in docs[0]["text"]
    assert locator["transformations"] == ["crlf_to_lf"]


def test_saved_answers_are_read_without_the_network_with_the_url_that_fetches_them_again(tmp_path):
    saved = REPO / "sample/kokkai/meeting_hbd.json"
    source = {"kokkai": {"enabled": True, "saved_responses": [str(saved)]}}
    docs, rows, rejected, shards = fetch_all(fetch_stage(tmp_path, source))
    assert shards[0].serial is None and rejected == []
    (row,) = rows
    locator = json.loads(row["locator"])
    assert locator["issueID"] == "121405254X00220241004" and locator["nameOfHouse"] == "衆議院"
    assert locator["requestURLs"] == [
        "https://kokkai.ndl.go.jp/api/meeting?issueID=121405254X00220241004&maximumRecords=1&recordPacking=json"
    ]
    assert row["raw_sha256"] == hashlib.sha256(saved.read_bytes()).hexdigest()
    # 「○議長（額賀福志郎君）　これより会議を開きます。\r\n …」, prefix stripped, CRLF normalised.
    assert docs[0]["text"] == "これより会議を開きます。\n …"


@pytest.mark.parametrize(
    ("kokkai", "message"),
    [
        ({"enabled": True}, "from/until"),
        ({"enabled": True, "from": "2024-13-01"}, "sources.kokkai.from: expected a date"),
        ({"documents": "speaker"}, "never per speaker"),
        ({"legal_basis": ["JP-Copyright-Art40-1"]}, "JP-Copyright-Art30-4"),
    ],
)
def test_kokkai_config_is_checked(tmp_path, kokkai, message):
    with pytest.raises(ConfigError, match=message):
        fetch_stage(tmp_path, {"kokkai": kokkai})


# -- e-Gov laws ------------------------------------------------------------------------------


@pytest.fixture
def egov_server():
    """/laws lists two laws (entries built in the official shape); /law_data answers 行政手続法
    wrapped around its real XML, and 国旗及び国歌に関する法律 with the official XML example."""
    replay = ReplayServer()
    kokki = "411AC0000000127_19990813_000000000000000"
    replay.serve_laws(
        [
            (
                {"law_id": "405AC0000000088", "law_num": "平成五年法律第八十八号", "law_type": "Act"},
                {"law_revision_id": GYOSEI_REVISION, "law_title": "行政手続法"},
                GYOSEI_XML,
            ),
            (
                {"law_id": "411AC0000000127", "law_num": "平成十一年法律第百二十七号", "law_type": "Act"},
                {"law_revision_id": kokki, "law_title": "国旗及び国歌に関する法律"},
                b"<Law/>",
            ),
        ]
    )
    example = (EGOV_DATA / "egov_v2_law_data_xml.xml").read_bytes()
    replay.routes[f"/api/2/law_data/{kokki}"] = (200, "application/xml", example)
    yield replay
    replay.close()


def egov_source(server: ReplayServer, **extra) -> dict:
    return {"egov": {"enabled": True, "base_url": server.url, "pause_seconds": 0.02} | extra}


def test_laws_through_the_api_are_listed_fetched_and_stored(egov_server, tmp_path):
    stage = fetch_stage(tmp_path, egov_source(egov_server))
    docs, rows, rejected, shards = fetch_all(stage)
    assert [s.serial for s in shards] == ["egov"] and rejected == []
    assert egov_server.max_in_flight == 1
    paths = [p for p, _ in egov_server.requests]
    assert paths == [
        "/api/2/laws",
        f"/api/2/law_data/{GYOSEI_REVISION}",
        "/api/2/law_data/411AC0000000127_19990813_000000000000000",
    ]
    gyosei, kokki = zip(docs, rows)  # in listing order
    doc, row = gyosei
    locator = json.loads(row["locator"])
    assert locator["law_id"] == "405AC0000000088" and locator["law_revision_id"] == GYOSEI_REVISION
    assert locator["law_title"] == "行政手続法" and locator["law_num"] == "平成五年法律第八十八号"
    assert locator["enforcement_date"] == "2024-04-01" and locator["amendment_law_id"] == "504AC0100000052"
    assert row["legal_basis"] == ["JP-Copyright-Art13"]
    assert (row["osaid_class"], row["redistribution"]) == ("open", "text")
    assert row["attribution"].endswith("https://laws.e-gov.go.jp/law/405AC0000000088")
    lines = doc["text"].split("\n")
    assert lines[:2] == ["行政手続法", "平成五年法律第八十八号"]
    assert any(line.startswith("第一条　この法律は、処分、行政指導及び届出に関する手続") for line in lines)
    stored = json.loads(Path(raw_path(stage.ctx.run_dir, "egov", GYOSEI_REVISION)).read_text("utf-8"))
    assert row["raw_sha256"] == sha256_hex(stored["answers"][0]["body"].encode("utf-8"))
    assert json.loads(kokki[1]["locator"])["law_title"] == "国旗及び国歌に関する法律"
    assert "第一条　国旗は、日章旗とする。" in kokki[0]["text"].split("\n")

    # A re-run reads the stored listing and answers: no request at all.
    again = fetch_stage(tmp_path, egov_source(egov_server))
    redo = [again.process(s) for s in again.plan()]
    assert len(egov_server.requests) == 3
    assert [r.kept.to_pylist() for r in redo] == [docs]


def test_a_law_the_api_refuses_is_rejected_with_its_message(egov_server, tmp_path):
    body = (EGOV_DATA / "egov_v2_law_data_400error_json.json").read_bytes()
    egov_server.routes[f"/api/2/law_data/{GYOSEI_REVISION}"] = (400, "application/json", body)
    docs, rows, rejected, _ = fetch_all(fetch_stage(tmp_path, egov_source(egov_server)))
    assert len(docs) == 1 and len(rows) == 2
    (entry,) = rejected
    assert entry["reason"] == "fetch_api_error"
    assert json.loads(body)["message"] in entry["detail"]


def bulk_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(f"{GYOSEI_REVISION}/{GYOSEI_REVISION}.xml", GYOSEI_XML)
        z.writestr("bad_19990813_000000000000000/bad_19990813_000000000000000.xml", b"<Law><LawBody>")
    return out.getvalue()


def test_the_bulk_zip_is_downloaded_once_and_read_law_by_law(egov_server, tmp_path):
    data = bulk_zip()
    egov_server.routes["/bulkdownload"] = (200, "application/zip", data)
    url = egov_server.url.removesuffix("/api/2") + "/bulkdownload?file_section=1&only_xml_flag=true"
    source = egov_source(egov_server, mode="bulk", bulk_url=url)
    docs, rows, rejected, shards = fetch_all(fetch_stage(tmp_path, source))
    assert [p for p, _ in egov_server.requests] == ["/bulkdownload"]
    summary = json.loads((tmp_path / "run/fetch/egov/bulk.json").read_text("utf-8"))
    assert summary["url"] == url and summary["sha256"] == hashlib.sha256(data).hexdigest()
    assert shards[0].serial is None
    (doc,) = docs
    assert doc["text"].startswith("行政手続法\n平成五年法律第八十八号\n")
    (entry,) = rejected  # the malformed member is rejected; the good law still comes through
    assert entry["reason"] == "fetch_bad_response" and "bad_19990813" in entry["detail"]
    good = next(r for r in rows if r["included"])
    assert good["raw_sha256"] == hashlib.sha256(GYOSEI_XML).hexdigest()
    assert json.loads(good["locator"])["member"] == f"{GYOSEI_REVISION}/{GYOSEI_REVISION}.xml"
    fetch_stage(tmp_path, source).plan()
    assert len(egov_server.requests) == 1  # the stored ZIP is used again


# -- government web pages --------------------------------------------------------------------

# Constructed footer in the wording government sites use; the page around it is real (ipa.go.jp).
PDL_FOOTER = (
    "<footer><p>当サイトのコンテンツは、公共データ利用規約（第1.0版）（PDL1.0）に準拠して"
    "利用いただけます。</p></footer></body>"
)


def government_warc(path: Path) -> None:
    ipa = next(
        r for r in iter_warc_responses(str(REPO / "sample/ja_pages.warc.gz")) if "ipa.go.jp" in r.target_uri
    )
    itmedia = next(
        r for r in iter_warc_responses(str(REPO / "sample/ja_pages.warc.gz")) if "itmedia" in r.target_uri
    )
    with_terms = ipa.payload.replace(b"</body>", PDL_FOOTER.encode("utf-8"), 1)
    pages = [
        ("https://www.ipa.go.jp/security/topics/alert20190402.html", ipa.payload),
        ("https://www.ipa.go.jp/security/topics/alert20190402-pdl.html", with_terms),
        (itmedia.target_uri, itmedia.payload),
    ]
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for url, body in pages:
            headers = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))]
            http = StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1")
            record = writer.create_warc_record(
                url, "response", payload=io.BytesIO(body), http_headers=http,
                warc_headers_dict={"WARC-Date": "2025-01-15T00:00:00Z"},
            )  # fmt: skip
            writer.write_record(record)


def test_government_pages_are_gov_web_and_open_when_they_state_pdl(tmp_path):
    government_warc(tmp_path / "gov.warc.gz")
    source = {"local": {"enabled": True, "paths": [str(tmp_path / "gov.warc.gz")]}}
    fetch = fetch_stage(tmp_path, source)
    docs, rows, _, _ = fetch_all(fetch)
    assert [d["source"] for d in docs] == ["gov_web", "gov_web", "local"]
    assert json.loads(rows[0]["locator"])["via"] == "local"

    import pyarrow as pa

    from manifests.io import atomic_write_parquet, manifest_table, write_manifest
    from manifests.layout import docs_path, manifest_path
    from pipeline.stages.fetch import FETCH_SCHEMA

    run = fetch.ctx.run_dir
    atomic_write_parquet(
        docs_path(run, "fetch", "part-00000"), pa.Table.from_pylist(docs, schema=FETCH_SCHEMA)
    )
    write_manifest(manifest_path(run, "fetch", "part-00000"), manifest_table(rows))
    extract = ExtractStage(fetch.ctx)
    extract.setup()
    try:
        result = extract.process(
            ShardSpec(
                0,
                {
                    "docs": docs_path(run, "fetch", "part-00000"),
                    "manifest": manifest_path(run, "fetch", "part-00000"),
                },
            )
        )
    finally:
        extract.teardown()
    plain, pdl, other = result.manifest
    assert pdl["license"] == "PDL-1.0" and pdl["legal_basis"] == ["JP-Copyright-Art30-4", "PDL-1.0"]
    assert (pdl["osaid_class"], pdl["redistribution"]) == ("open", "text")
    assert pdl["attribution"].startswith(
        "出典：www.ipa.go.jp（https://www.ipa.go.jp/security/topics/alert20190402-pdl.html）、公共データ利用規約（第1.0版）"
    )
    for row in (plain, other):  # no stated terms: the rights of the way the page came
        assert (row["license"], row["osaid_class"], row["attribution"]) == ("NOASSERTION", "public", None)
    checks = {d["check"]: d["passed"] for d in pdl["decisions"]}
    assert checks["gov_terms"] is True
    assert {d["check"]: d["passed"] for d in plain["decisions"]}["gov_terms"] is False
    assert "gov_terms" not in {d["check"] for d in other["decisions"]}
