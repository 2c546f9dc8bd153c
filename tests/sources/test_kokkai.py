"""sources.kokkai against the replay server built from real API responses (tests/servers/kokkai.py)."""

from __future__ import annotations

import copy
import itertools
import json
import threading
from datetime import date

import pytest
from servers.kokkai import (
    ERROR_19007,
    ERROR_19007_XML,
    ERROR_19011,
    ERROR_19011_XML,
    ISSUE_ID,
    MEETING,
    SPLIT_ISSUE_ID,
    KokkaiReplay,
)

from sources.errors import SourceError
from sources.http_client import HttpClient, RetryPolicy
from sources.kokkai import (
    DietMeeting,
    DietSpeech,
    KokkaiClient,
    KokkaiError,
    _api_error,
    meeting_document,
    parse_meeting,
    speech_documents,
)


@pytest.fixture
def server():
    replay = KokkaiReplay()
    yield replay
    replay.close()


class FakeTime:
    """A clock that only moves when slept on: waits are recorded exactly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@pytest.fixture
def fake():
    return FakeTime()


@pytest.fixture
def kokkai(server, fake):
    return KokkaiClient(server.base_url, pause_seconds=3.0, sleep=fake.sleep, clock=fake.clock)


EXPECTED_SPEECHES = (
    DietSpeech(
        speech_id="121405254X00220241004_000",
        speech_order=0,
        speaker="会議録情報",
        speaker_yomi=None,
        speaker_group=None,
        speaker_position=None,
        speaker_role=None,
        speech="令和六年十月四日（金曜日）\r\n　　　　―――――――――――――\r\n　議事日程　第二号\r\n …",
        speech_url="https://kokkai.ndl.go.jp/txt/121405254X00220241004/0",
        start_page=1,
    ),
    DietSpeech(
        speech_id="121405254X00220241004_001",
        speech_order=1,
        speaker="額賀福志郎",
        speaker_yomi="ぬかがふくしろう",
        speaker_group="無所属",
        speaker_position="議長",
        speaker_role=None,
        speech="○議長（額賀福志郎君）　これより会議を開きます。\r\n …",
        speech_url="https://kokkai.ndl.go.jp/txt/121405254X00220241004/1",
        start_page=1,
    ),
)


# -- parsing ---------------------------------------------------------------------------------


def test_parse_meeting_reads_the_real_field_names_and_tolerates_gaps():
    record = copy.deepcopy(MEETING["meetingRecord"][0])
    record["speechRecord"][1]["speechOrder"] = "1"
    del record["speechRecord"][1]["speakerRole"], record["speechRecord"][1]["startPage"]
    meeting = parse_meeting(record, ("u",))
    assert meeting.issue_id == ISSUE_ID and meeting.session == 214 and meeting.issue == "第2号"
    assert (meeting.name_of_house, meeting.name_of_meeting, meeting.date) == (
        "衆議院",
        "本会議",
        "2024-10-04",
    )
    # meetingURL is missing from the abridged sample: the documented shape fills it; pdfURL stays None.
    assert meeting.meeting_url == "https://kokkai.ndl.go.jp/txt/121405254X00220241004"
    assert meeting.pdf_url is None
    assert meeting.speeches[1].speech_order == 1
    assert meeting.speeches[1].speaker_role is None and meeting.speeches[1].start_page is None
    assert meeting.request_urls == ("u",)
    bad = copy.deepcopy(record)
    bad["speechRecord"][0]["speechOrder"] = "zero"
    with pytest.raises(SourceError, match="speechOrder"):
        parse_meeting(bad)


def test_error_bodies_in_xml_form_are_read_too():
    err = _api_error("u", 400, ERROR_19011_XML)
    assert isinstance(err, KokkaiError) and err.code == "19011"
    assert err.message == "(19011)検索条件の入力に誤りがあります。"
    assert err.details == ("(0) (19028)speakerRole:発言者役割を証人/参考人/公述人で入力してください。",)
    assert _api_error("u", 400, ERROR_19007_XML).message == "(19007)検索条件を指定してください。"
    plain = _api_error("u", 400, b"<html>Bad Request</html>")
    assert type(plain) is SourceError and "Bad Request" in str(plain)


# -- meeting_list ----------------------------------------------------------------------------


def test_meeting_ids_are_paged_until_next_record_position_is_null(server, kokkai, fake):
    ids = list(kokkai.iter_meeting_ids("2024-01-01", date(2024, 12, 31), name_of_house="衆議院"))
    assert len(ids) == 250 and len(set(ids)) == 250
    assert ids[0] == ("121400249X00120240906", "2024-09-06")  # newest first
    assert ids[-1] == ("121400000X00120240101", "2024-01-01")
    assert [r["query"]["startRecord"] for r in server.log] == ["1", "101", "201"]
    for request in server.log:
        assert request["path"] == "/api/meeting_list"
        assert request["query"]["recordPacking"] == "json"
        assert request["query"]["maximumRecords"] == "100"
        assert (request["query"]["from"], request["query"]["until"]) == ("2024-01-01", "2024-12-31")
        assert request["query"]["nameOfHouse"] == "衆議院"
    assert fake.waits == [3.0, 3.0]  # a pause before each request but the first


def test_no_hits_yields_nothing(server, kokkai):
    assert list(kokkai.iter_meeting_ids("2030-01-01", "2030-01-02")) == []
    assert len(server.log) == 1


# -- meeting ---------------------------------------------------------------------------------


def test_fetch_meeting_is_one_request_with_every_speech(server, kokkai):
    meeting = kokkai.fetch_meeting(ISSUE_ID)
    (request,) = server.log
    assert request["path"] == "/api/meeting"
    assert request["query"] == {
        "issueID": ISSUE_ID,
        "maximumRecords": "1",
        "startRecord": "1",
        "recordPacking": "json",
    }
    assert meeting == DietMeeting(
        issue_id=ISSUE_ID,
        session=214,
        name_of_house="衆議院",
        name_of_meeting="本会議",
        issue="第2号",
        date="2024-10-04",
        meeting_url="https://kokkai.ndl.go.jp/txt/121405254X00220241004",
        pdf_url=None,
        speeches=EXPECTED_SPEECHES,
        request_urls=(
            f"{server.base_url}/meeting?issueID={ISSUE_ID}&maximumRecords=1&startRecord=1&recordPacking=json",
        ),
    )


def test_a_meeting_answer_that_claims_more_is_followed_and_merged(server, kokkai):
    meeting = kokkai.fetch_meeting(SPLIT_ISSUE_ID)
    assert [r["query"]["startRecord"] for r in server.log] == ["1", "2"]
    assert [s.speech_order for s in meeting.speeches] == [0, 1]
    assert len(meeting.request_urls) == 2


def test_unknown_or_malformed_issue_id_is_a_source_error(server, kokkai):
    with pytest.raises(SourceError, match="no meeting with issueID 121405254X00120991231"):
        kokkai.fetch_meeting("121405254X00120991231")
    with pytest.raises(SourceError, match="21 alphanumerics"):
        kokkai.fetch_meeting("../meeting_list")
    assert len(server.log) == 1


# -- documents -------------------------------------------------------------------------------


def test_meeting_document_golden(server, kokkai):
    meeting = kokkai.fetch_meeting(ISSUE_ID)
    text, locator = meeting_document(meeting)
    assert text == "これより会議を開きます。\n …"
    assert "\r" not in text and "会議録情報" not in text and "令和六年" not in text
    assert locator == {
        "source": "kokkai",
        "attribution": "出典: 国会会議録検索システム (国立国会図書館)",
        "issueID": ISSUE_ID,
        "session": 214,
        "nameOfHouse": "衆議院",
        "nameOfMeeting": "本会議",
        "issue": "第2号",
        "date": "2024-10-04",
        "meetingURL": "https://kokkai.ndl.go.jp/txt/121405254X00220241004",
        "pdfURL": None,
        "requestURLs": list(meeting.request_urls),
        "speechIDs": ["121405254X00220241004_001"],
        "droppedSpeechIDs": ["121405254X00220241004_000"],
        "dropReason": "speechOrder 0 is the 会議録情報 header (attendees, agenda)",
        "transformations": ["crlf_to_lf", "strip_speaker_prefix:^○[^　\\r\\n]+　"],
    }
    kept, _ = meeting_document(meeting, strip_speaker_prefix=False)
    assert kept == "○議長（額賀福志郎君）　これより会議を開きます。\n …"


def test_speeches_are_joined_by_blank_lines_and_split_one_per_speech():
    record = copy.deepcopy(MEETING["meetingRecord"][0])
    extra = copy.deepcopy(record["speechRecord"][1])
    extra.update(
        speechID=f"{ISSUE_ID}_002",
        speechOrder=2,
        speech="○内閣総理大臣（石破茂君）　この度、\r\n　就任いたしました。",
        speechURL=f"https://kokkai.ndl.go.jp/txt/{ISSUE_ID}/2",
    )
    record["speechRecord"].insert(0, extra)  # out of order on purpose: speechOrder decides
    meeting = parse_meeting(record)
    text, locator = meeting_document(meeting)
    assert text == "これより会議を開きます。\n …\n\nこの度、\n　就任いたしました。"
    assert locator["speechIDs"] == [f"{ISSUE_ID}_001", f"{ISSUE_ID}_002"]
    documents = speech_documents(meeting)
    assert [d[0] for d in documents] == ["これより会議を開きます。\n …", "この度、\n　就任いたしました。"]
    assert [(d[1]["speechID"], d[1]["speechOrder"], d[1]["speechURL"]) for d in documents] == [
        (f"{ISSUE_ID}_001", 1, f"https://kokkai.ndl.go.jp/txt/{ISSUE_ID}/1"),
        (f"{ISSUE_ID}_002", 2, f"https://kokkai.ndl.go.jp/txt/{ISSUE_ID}/2"),
    ]
    assert all(d[1]["issueID"] == ISSUE_ID for d in documents)


# -- errors, packing, limits -------------------------------------------------------------------


def test_api_errors_are_surfaced_verbatim(server, kokkai):
    with pytest.raises(KokkaiError) as caught:
        kokkai.query("meeting_list", {})
    assert caught.value.message == json.loads(ERROR_19007)["message"] == "(19007)検索条件を指定してください。"
    assert caught.value.code == "19007" and caught.value.details == () and caught.value.status == 400
    assert "(19007)検索条件を指定してください。" in str(caught.value)

    with pytest.raises(KokkaiError) as caught:
        kokkai.query("speech", {"speakerRole": "議員"})
    real = json.loads(ERROR_19011)
    assert caught.value.message == real["message"] and list(caught.value.details) == real["details"]
    assert str(caught.value).startswith(f"{server.base_url}/speech?speakerRole=")
    assert "(19011)検索条件の入力に誤りがあります。" in str(caught.value)
    assert "(0) (19028)speakerRole:発言者役割を証人/参考人/公述人で入力してください。" in str(caught.value)
    assert len(server.log) == 2  # a 400 is not retried


def test_the_server_defaults_to_xml_so_the_client_always_asks_for_json(server, kokkai):
    with HttpClient(retry=RetryPolicy(max_attempts=1)) as plain:
        xml = plain.get(f"{server.base_url}/meeting_list?from=2024-01-01&until=2024-01-02")
    assert xml.content.startswith(b"<data>")
    kokkai.query("meeting_list", {"from": "2024-01-01", "until": "2024-01-02", "recordPacking": "xml"})
    list(kokkai.iter_meeting_ids("2024-01-01", "2024-01-02"))
    kokkai.fetch_meeting(ISSUE_ID)
    client_requests = server.log[1:]
    assert len(client_requests) == 3
    assert all(r["query"]["recordPacking"] == "json" for r in client_requests)


def test_limits_are_checked_before_sending(server, kokkai):
    with pytest.raises(SourceError, match="at most 2000"):
        list(kokkai.iter_meeting_ids("2024-01-01", "2024-01-02", name_of_meeting="委員会" * 200))
    with pytest.raises(SourceError, match=r"maximumRecords=11 outside 1\.\.10 for /meeting"):
        kokkai.query("meeting", {"issueID": ISSUE_ID, "maximumRecords": 11})
    with pytest.raises(SourceError, match="maximumRecords=101"):
        kokkai.query("speech", {"any": "防災", "maximumRecords": 101})
    assert server.log == []
    kokkai.query("meeting", {"issueID": ISSUE_ID, "maximumRecords": 10})  # the bound itself is fine
    kokkai.query("speech", {"any": "防災", "maximumRecords": 100})
    assert len(server.log) == 2


def test_an_injected_503_is_retried_after_at_least_the_pause(server, kokkai, fake):
    server.fail["/api/meeting"] = [503]
    meeting = kokkai.fetch_meeting(ISSUE_ID)
    assert meeting.speeches == EXPECTED_SPEECHES
    assert [r["path"] for r in server.log] == ["/api/meeting", "/api/meeting"]
    assert len(fake.waits) == 1 and fake.waits[0] >= 3.0  # the backoff, no shorter than the pause


# -- politeness ------------------------------------------------------------------------------


def test_one_request_at_a_time_and_a_real_pause_between_them(server):
    pause = 0.05
    kokkai = KokkaiClient(server.base_url, pause_seconds=pause)  # the real clock and sleep
    errors = []

    def work(i):
        try:
            if i % 2:
                kokkai.fetch_meeting(ISSUE_ID)
            else:
                list(kokkai.iter_meeting_ids("2024-01-01", "2024-01-05"))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    log = sorted(server.log, key=lambda r: r["arrived"])
    assert len(log) == 6
    assert server.max_in_flight == 1
    for before, after in itertools.pairwise(log):
        assert after["arrived"] >= before["finished"]  # never two in flight
        # The client's pause starts when it has read the whole answer, a hair after the server
        # logged it as sent; allow 5 ms for that.
        assert after["arrived"] - before["finished"] >= pause - 0.005
        assert after["arrived"] - before["arrived"] >= pause
