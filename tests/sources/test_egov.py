"""sources.egov and sources.law_xml against the official e-Gov 法令API v2 examples and real law XML.

The replay server below (ThreadingHTTPServer on 127.0.0.1, OS-chosen port) serves the official
examples from tests/data/egov (origins in its README). The official ``/laws`` example is one page
with no ``next_offset``; the two-page test builds its pages in code: page 1 is the official
example plus ``next_offset``, page 2 is a second law made in the same shape (not an official
example).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import pickle
import re
from pathlib import Path

import pytest
from servers.egov import ReplayServer

from sources.egov import EgovClient, EgovError, LawListEntry, parse_law_data
from sources.errors import SourceError
from sources.http_client import HttpClient, RetryPolicy
from sources.law_xml import law_json_to_text, law_xml_to_text

DATA = Path(__file__).resolve().parents[1] / "data" / "egov"
GYOSEI_XML = (DATA / "405AC0000000088_20240401_504AC0100000052.xml").read_bytes()
LAWS_JSON = json.loads((DATA / "egov_v2_laws_json.json").read_text(encoding="utf-8"))
LAW_DATA_XML = (DATA / "egov_v2_law_data_xml.xml").read_bytes()
LAW_DATA_JSON = (DATA / "egov_v2_law_data_json.json").read_bytes()


@pytest.fixture
def server():
    replay = ReplayServer()
    yield replay
    replay.close()


@pytest.fixture
def waits():
    return []


@pytest.fixture
def egov(server, waits):
    client = HttpClient(timeout_seconds=5, retry=RetryPolicy(max_attempts=3), sleep=waits.append)
    with client:
        yield EgovClient(server.url, client=client)


def _json(data) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


# -- law_xml: golden checks on real law XML --------------------------------------------------


def test_gyosei_tetsuzuki_golden():
    law = law_xml_to_text(GYOSEI_XML)
    assert law.title == "行政手続法"
    assert law.law_num == "平成五年法律第八十八号"
    assert law.article_count == 48  # 第一条…第四十六条 plus 第三十六条の二 and 第三十六条の三
    lines = law.text.split("\n")
    assert lines[:5] == [
        "行政手続法",
        "平成五年法律第八十八号",
        "第一章　総則",
        "（目的等）",
        (
            "第一条　この法律は、処分、行政指導及び届出に関する手続並びに命令等を定める手続に関し、"
            "共通する事項を定めることによって、行政運営における公正の確保と透明性（行政上の意思決定について、"
            "その内容及び過程が国民にとって明らかであることをいう。第四十六条において同じ。）の向上を図り、"
            "もって国民の権利利益の保護に資することを目的とする。"
        ),
    ]
    assert lines[5].startswith("２　処分、行政指導及び届出に関する手続")
    # items with columns, sub-items, chapter and section headings, supplementary provisions
    assert (
        "一　法令　法律、法律に基づく命令（告示を含む。）、条例及び地方公共団体の執行機関の規則（規程を含む。以下「規則」という。）をいう。"
        in lines
    )
    assert any(line.startswith("イ　事実上の行為及び") for line in lines)
    assert "第三章　不利益処分" in lines and "第二節　聴聞" in lines
    assert "附　則　（令和四年五月二五日法律第五二号）" in lines
    assert "目次" not in lines  # the table of contents is left out
    chapters = [line for line in lines if re.match(r"第[一二三四五六七]章(の二)?　", line)]
    assert chapters[3:5] == ["第四章　行政指導", "第四章の二　処分等の求め"] and len(chapters) == 8
    assert all(line.strip() == line and line for line in lines)


def test_official_law_data_xml_example_text():
    law = law_xml_to_text(LAW_DATA_XML)  # the <Law> inside law_data_response/law_full_text
    assert (law.title, law.law_num, law.article_count) == (
        "国旗及び国歌に関する法律",
        "平成十一年法律第百二十七号",
        2,
    )
    lines = law.text.split("\n")
    assert lines[2:5] == [
        "（国旗）",
        "第一条　国旗は、日章旗とする。",
        "２　日章旗の制式は、別記第一のとおりとする。",
    ]
    # pretty-printing newlines inside <Sentence> are dropped, the ruby reading ざお is left out
    assert (
        "３　日章旗の制式については、当分の間、別記第一の規定にかかわらず、寸法の割合について縦を横の十分の七とし、"
        "かつ、日章の中心の位置について旗の中心から旗竿側に横の長さの百分の一偏した位置とすることができる。"
        in lines
    )
    assert "ざお" not in law.text and "附　則" in lines and "別記第二" in lines


def test_json_tree_renders_like_xml():
    # The official JSON example is the same law, cut short after 第一条's first (empty) Paragraph.
    tree = json.loads(LAW_DATA_JSON)["law_full_text"]
    from_json = law_json_to_text(tree)
    from_xml = law_xml_to_text(LAW_DATA_XML)
    assert from_json.text == "国旗及び国歌に関する法律\n平成十一年法律第百二十七号\n（国旗）\n第一条"
    assert from_xml.text.startswith(from_json.text)
    assert (from_json.title, from_json.law_num) == (from_xml.title, from_xml.law_num)


def test_bad_law_xml_is_a_source_error():
    with pytest.raises(SourceError, match="not well-formed"):
        law_xml_to_text(b"<Law><LawNum>")
    with pytest.raises(SourceError, match="no <Law> element"):
        law_xml_to_text(b"<other/>")


# -- /laws -----------------------------------------------------------------------------------


def _second_page() -> dict:
    """Page 2, made in code from the official example's shape (not an official example)."""
    page = copy.deepcopy(LAWS_JSON)
    law = page["laws"][0]
    law["law_info"].update(
        law_type="Act",
        law_id="405AC0000000088",
        law_num="平成五年法律第八十八号",
        law_num_era="Heisei",
        law_num_year="5",
        law_num_type="Act",
        law_num_num="088",
        promulgation_date="1993-11-12",
    )
    for key in ("revision_info", "current_revision_info"):
        law[key].update(
            law_revision_id="405AC0000000088_20240401_504AC0100000052",
            law_type="Act",
            law_title="行政手続法",
            law_title_kana="ぎょうせいてつづきほう",
            amendment_enforcement_date="2024-04-01",
        )
    page.update(total_count=2, count=1, next_offset=None)
    return page


def test_iter_laws_pages_until_next_offset_is_null(server, egov):
    first = {**copy.deepcopy(LAWS_JSON), "total_count": 2, "next_offset": 1}
    pages = {"0": first, "1": _second_page()}
    server.routes["/api/2/laws"] = lambda q: (200, "application/json", _json(pages[q["offset"][0]]))

    laws = list(egov.iter_laws(law_type=["CabinetOrder", "Act"], asof="2024-05-01", limit=1))

    assert laws[0] == LawListEntry(
        law_id="322CO0000000016",
        law_num="昭和二十二年政令第十六号",
        law_title="地方自治法施行令",
        law_revision_id="322CO0000000016_20240401_506CO0000000161",
        law_type="CabinetOrder",
        promulgation_date="1947-05-03",
        law_num_year=22,
        law_title_kana="ちほうじちほうしこうれい",
        amendment_enforcement_date="2024-04-01",
        current_revision_status="CurrentEnforced",
        repeal_status="None",
        updated="2024-04-19T13:42:44+09:00",
    )
    assert (laws[1].law_id, laws[1].law_title, laws[1].law_num_year) == ("405AC0000000088", "行政手続法", 5)
    assert [q["offset"] for _, q in server.requests] == [["0"], ["1"]]
    query = server.requests[0][1]
    assert query["law_type"] == ["CabinetOrder", "Act"] and query["asof"] == ["2024-05-01"]
    assert query["limit"] == ["1"] and query["response_format"] == ["json"]


def test_iter_laws_stops_when_next_offset_is_absent(server, egov):
    # The official example as published has no next_offset at all.
    server.routes["/api/2/laws"] = (200, "application/json", (DATA / "egov_v2_laws_json.json").read_bytes())
    assert [law.law_id for law in egov.iter_laws()] == ["322CO0000000016"]
    assert len(server.requests) == 1


def test_current_revision_info_quirks():
    # current_revision_info.repeal_status is `false` in the official example; used when
    # revision_info is missing, it reads "None" like the enum.
    row = copy.deepcopy(LAWS_JSON["laws"][0])
    del row["revision_info"]
    from sources.egov import _list_entry

    entry = _list_entry("u", row)
    assert entry.repeal_status == "None" and entry.law_title == "地方自治法施行令"


def test_iter_laws_refuses_a_next_offset_that_does_not_advance(server, egov):
    page = {**LAWS_JSON, "next_offset": "0"}  # a number as a string, as other fields are
    server.routes["/api/2/laws"] = (200, "application/json", _json(page))
    with pytest.raises(EgovError, match="does not move past offset 0"):
        list(egov.iter_laws())


# -- /law_data -------------------------------------------------------------------------------


def test_fetch_law_official_xml_example(server, egov):
    server.routes["/api/2/law_data/411AC0000000127"] = (200, "application/xml", LAW_DATA_XML)
    doc = egov.fetch_law("411AC0000000127", asof="2024-05-01")

    assert doc.law_id == "411AC0000000127"
    assert doc.law_revision_id == "411AC0000000127_19990813_000000000000000"
    assert doc.law_num == "平成十一年法律第百二十七号"
    assert doc.law_title == "国旗及び国歌に関する法律"
    assert doc.asof == "2024-05-01"
    assert doc.text == law_xml_to_text(LAW_DATA_XML).text
    assert doc.raw_sha256 == hashlib.sha256(LAW_DATA_XML).hexdigest()
    assert doc.request_url.startswith(f"{server.url}/law_data/411AC0000000127?")
    ((_, query),) = server.requests
    assert query == {"asof": ["2024-05-01"], "law_full_text_format": ["xml"], "response_format": ["xml"]}


def test_parse_law_data_json_tree_and_base64_forms():
    meta, law = parse_law_data("u", LAW_DATA_JSON)  # the official JSON example (tree form)
    assert meta == {
        "law_id": "411AC0000000127",
        "law_num": "平成十一年法律第百二十七号",
        "law_revision_id": "411AC0000000127_19990813_000000000000000",
        "law_title": "国旗及び国歌に関する法律",
    }
    assert law.text.endswith("第一条")
    # response_format=json with law_full_text_format=xml: the spec says law_full_text is Base64.
    law_xml = LAW_DATA_XML[LAW_DATA_XML.index(b"<Law ") : LAW_DATA_XML.index(b"</Law>") + 6]
    mixed = {**json.loads(LAW_DATA_JSON), "law_full_text": base64.b64encode(law_xml).decode()}
    meta2, law2 = parse_law_data("u", _json(mixed))
    assert meta2 == meta and law2 == law_xml_to_text(LAW_DATA_XML)
    with pytest.raises(EgovError, match="not Base64"):
        parse_law_data("u", _json({**mixed, "law_full_text": "@@not base64@@"}))


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "fixture", "call"),
    [
        ("/api/2/laws", "egov_v2_laws_400error_json.json", lambda c: list(c.iter_laws(asof="2024-13-01"))),
        ("/api/2/laws", "egov_v2_laws_400error_xml.xml", lambda c: list(c.iter_laws(asof="2024-13-01"))),
        (
            "/api/2/law_data/411AC0000000127",
            "egov_v2_law_data_400error_json.json",
            lambda c: c.fetch_law("411AC0000000127", asof="x"),
        ),
        (
            "/api/2/law_data/411AC0000000127",
            "egov_v2_law_data_400error_xml.xml",
            lambda c: c.fetch_law("411AC0000000127", asof="x"),
        ),
    ],
)
def test_400_error_bodies_surface_verbatim(server, egov, waits, path, fixture, call):
    server.routes[path] = (400, "application/json", (DATA / fixture).read_bytes())
    with pytest.raises(EgovError) as caught:
        call(egov)
    err = caught.value
    assert err.message == "日付（asof等）が誤っています。"
    assert (err.code, err.status) == ("400004", 400)
    assert str(err) == f"{err.uri}: 日付（asof等）が誤っています。 (code 400004, HTTP 400)"
    assert len(server.requests) == 1 and waits == []  # a 400 is not retried
    assert isinstance(err, SourceError)
    again = pickle.loads(pickle.dumps(err))
    assert (again.message, again.code, again.status, str(again)) == (
        err.message,
        err.code,
        err.status,
        str(err),
    )


def test_503_is_retried_by_http_client(server, egov, waits):
    server.routes["/api/2/law_data/411AC0000000127"] = (200, "application/xml", LAW_DATA_XML)
    server.fail_next("/api/2/law_data/411AC0000000127", 503)
    doc = egov.fetch_law("411AC0000000127")
    assert doc.law_title == "国旗及び国歌に関する法律" and doc.asof is None
    assert len(server.requests) == 2 and len(waits) == 1
    assert egov.client.stats()["status_503"] == 1


def test_500_after_retries_becomes_egov_error_with_the_api_message(server, egov, waits):
    body = (DATA / "egov_v2_law_data_500error_json.json").read_bytes()
    server.fail_next("/api/2/law_data/411AC0000000127", 500, times=3, body=body)
    with pytest.raises(EgovError) as caught:
        egov.fetch_law("411AC0000000127")
    err = caught.value
    assert (err.message, err.code, err.status) == ("サーバ内処理で異常が発生しました。", "500001", 500)
    assert len(server.requests) == 3 and len(waits) == 2
    assert err.__cause__ is not None and err.__cause__.attempts == 3


def test_non_json_200_is_an_egov_error(server, egov):
    server.routes["/api/2/laws"] = (200, "text/html", b"<html>maintenance</html>")
    with pytest.raises(EgovError, match="not JSON"):
        list(egov.iter_laws())
