"""国会会議録検索システム 検索用API (https://kokkai.ndl.go.jp/api.html): a polite client and
document builders for the minutes of the National Diet.

Wire facts used here (research note ``docs/research/sources_and_law.md`` §1, checked against the
real responses in ``tests/data/kokkai/``):

- ``GET {base}/meeting_list`` (maximumRecords 1-100), ``/meeting`` (1-10, and it counts
  *meetings*), ``/speech`` (1-100). ``recordPacking=json`` is always sent: the default is XML.
- The whole query string may be at most 2000 bytes; longer queries are refused here, unsent.
- Paging: ``startRecord``; ``nextRecordPosition`` is the next start, ``null`` on the last page.
  With 0 hits the record array is absent: ``{"numberOfRecords":0,"numberOfReturn":0,"startRecord":1}``.
- Errors are HTTP 400 with ``{"message": "(19007)…"}`` or ``{"message": "(19011)…", "details":
  ["(0) (19028)…"]}`` (the XML form has ``<data><diagnostics><diagnostic><message>``). They become
  :class:`KokkaiError` carrying the API's own words.
- ``/meeting`` returns every speech of each matching meeting inside its ``meetingRecord``
  (``kokkai_meeting_hbd.json``: numberOfRecords 1, nextRecordPosition null, the speeches inside),
  so one request with ``issueID`` and ``maximumRecords=1`` is the whole meeting. Should a response
  ever say there is more (``nextRecordPosition`` not null), :meth:`KokkaiClient.fetch_meeting`
  follows it and merges the speeches of the records with that ``issueID`` by ``speechID``.
- Usage rule (api.html): 「多重リクエストは避けてください。また、データを取得し終えてから数秒程度
  空けて次のリクエストを行うようにしてください。」 Hence one request at a time per client (a lock)
  and ``pause_seconds`` between the end of one response and the start of the next request.

Copyright (著作権法第40条): each speech belongs to its speaker. Art. 40(1) lets public political
speeches be used freely 「同一の著作者のものを編集して利用する場合を除き」, so this module only ever
builds documents per meeting or per single speech, never a collection of one speaker's speeches.
"""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import date as _date
from urllib.parse import quote, urlencode

from sources.errors import SourceError
from sources.http_client import HttpClient, RequestSpacing, ResponsePage, RetryPolicy

DEFAULT_BASE_URL = "https://kokkai.ndl.go.jp/api"
# maximumRecords upper bound per endpoint (api.html, research note §1.1).
MAX_RECORDS = {"meeting_list": 100, "meeting": 10, "speech": 100}
MAX_QUERY_BYTES = 2000
ATTRIBUTION = "出典: 国会会議録検索システム (国立国会図書館)"
# The speaker prefix of every speech, e.g. 「○議長（額賀福志郎君）　」 (full-width space ends it).
# The note gives ``^○[^　]+　``; line breaks are excluded as well so that a prefix without its
# full-width space never swallows a line of speech.
SPEAKER_PREFIX = re.compile(r"^○[^　\r\n]+　")
# speechOrder 0 is the secretariat's 「会議録情報」 header (date, attendees, agenda).
HEADER_SPEECH_ORDER = 0


class KokkaiError(SourceError):
    """An error answer of the API (HTTP 400): ``message`` and ``details`` verbatim, ``code`` the
    number in the message's leading parentheses (``"19007"``) or None."""

    def __init__(self, uri: str, message: str, details: tuple[str, ...] = (), status: int = 400):
        problem = f"HTTP {status}: {message}"
        if details:
            problem += " details: " + " | ".join(details)
        super().__init__(uri, problem)
        self.message = message
        self.details = tuple(details)
        self.status = status
        match = re.match(r"\((\d+)\)", message)
        self.code = match.group(1) if match else None

    def __reduce__(self):
        return (type(self), (self.uri, self.message, self.details, self.status))


@dataclass(frozen=True)
class DietSpeech:
    speech_id: str
    speech_order: int
    speaker: str | None
    speaker_yomi: str | None
    speaker_group: str | None
    speaker_position: str | None
    speaker_role: str | None
    speech: str
    speech_url: str | None
    start_page: int | None


@dataclass(frozen=True)
class DietMeeting:
    issue_id: str
    session: int | None
    name_of_house: str | None
    name_of_meeting: str | None
    issue: str | None
    date: str | None  # YYYY-MM-DD; null for some 附録
    meeting_url: str
    pdf_url: str | None
    speeches: tuple[DietSpeech, ...]
    request_urls: tuple[str, ...]


# -- parsing ---------------------------------------------------------------------------------


def _int_or_none(value, what: str, uri: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise SourceError(uri, f"{what} is not an integer: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise SourceError(uri, f"{what} is not an integer: {value!r}")


def parse_speech(record: Mapping, uri: str = "kokkai") -> DietSpeech:
    """One ``speechRecord`` (of ``/meeting`` or ``/speech``); ``speechOrder`` may be int or str."""
    speech_id = record.get("speechID")
    if not speech_id:
        raise SourceError(uri, f"speechRecord without speechID: {str(dict(record))[:120]}")
    order = _int_or_none(record.get("speechOrder"), f"speechOrder of {speech_id}", uri)
    if order is None:
        raise SourceError(uri, f"speechRecord {speech_id} has no speechOrder")
    return DietSpeech(
        speech_id=speech_id,
        speech_order=order,
        speaker=record.get("speaker"),
        speaker_yomi=record.get("speakerYomi"),
        speaker_group=record.get("speakerGroup"),
        speaker_position=record.get("speakerPosition"),
        speaker_role=record.get("speakerRole"),
        speech=record.get("speech") or "",
        speech_url=record.get("speechURL"),
        start_page=_int_or_none(record.get("startPage"), f"startPage of {speech_id}", uri),
    )


def parse_meeting(record: Mapping, request_urls: tuple[str, ...] = (), uri: str = "kokkai") -> DietMeeting:
    """One ``meetingRecord`` of ``/meeting``. A missing ``meetingURL`` (the abridged real sample
    lacks it) is filled with the documented shape ``https://kokkai.ndl.go.jp/txt/<issueID>``;
    ``pdfURL`` exists only for some meetings and stays None otherwise."""
    issue_id = record.get("issueID")
    if not issue_id:
        raise SourceError(uri, "meetingRecord without issueID")
    speeches = sorted(
        (parse_speech(s, uri) for s in record.get("speechRecord") or ()), key=lambda s: s.speech_order
    )
    return DietMeeting(
        issue_id=issue_id,
        session=_int_or_none(record.get("session"), f"session of {issue_id}", uri),
        name_of_house=record.get("nameOfHouse"),
        name_of_meeting=record.get("nameOfMeeting"),
        issue=record.get("issue"),
        date=record.get("date"),
        meeting_url=record.get("meetingURL") or f"https://kokkai.ndl.go.jp/txt/{issue_id}",
        pdf_url=record.get("pdfURL"),
        speeches=tuple(speeches),
        request_urls=tuple(request_urls),
    )


def _api_error(uri: str, status: int, body: bytes) -> SourceError:
    """The API's error body (JSON or XML) as a KokkaiError; a plain SourceError if unreadable."""
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            details = data.get("details") or ()
            if isinstance(details, str):
                details = (details,)
            return KokkaiError(uri, data["message"], tuple(str(d) for d in details), status)
    except ValueError:
        pass
    try:
        root = ET.fromstring(text)
        message = root.findtext(".//diagnostic/message")
        if message is not None:
            details = tuple(d.text or "" for d in root.iterfind(".//diagnostic/details"))
            return KokkaiError(uri, message, details, status)
    except ET.ParseError:
        pass
    excerpt = " ".join(text.split())[:200]
    return SourceError(uri, f"HTTP {status} without an API error body: {excerpt!r}")


# -- the client ------------------------------------------------------------------------------


class KokkaiClient:
    """One request at a time, ``pause_seconds`` after each response before the next request.

    ``client`` defaults to an :class:`HttpClient` (``timeout_seconds``, ``retry``) with one
    connection per host whose retry backoff (429/5xx) also waits at least ``pause_seconds``; a
    client passed in keeps its own retry settings. ``pause_first`` pauses before the first
    request too. ``sleep`` and ``clock`` are injectable for tests.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        client: HttpClient | None = None,
        pause_seconds: float = 3.0,
        sleep: Callable[[float], None] = time.sleep,
        *,
        clock: Callable[[], float] = time.monotonic,
        pause_first: bool = False,
        timeout_seconds: float = 120.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.pause_seconds = pause_seconds
        self._spacing = RequestSpacing(pause_seconds, pause_first=pause_first, sleep=sleep, clock=clock)
        if client is None:
            retry = retry or RetryPolicy(max_attempts=5, backoff_base_seconds=max(pause_seconds, 1.0))
            client = HttpClient(
                timeout_seconds=timeout_seconds,
                retry=retry,
                max_connections_per_host=1,
                sleep=lambda seconds: sleep(max(seconds, pause_seconds)),
            )
        self.client = client

    # -- low level ---------------------------------------------------------------------------

    def build_url(self, endpoint: str, params: Mapping[str, object]) -> str:
        """The request URL; refuses unknown endpoints, maximumRecords above the endpoint's
        bound, and query strings over 2000 bytes (SourceError, nothing is sent)."""
        if endpoint not in MAX_RECORDS:
            raise SourceError(
                f"{self.base_url}/{endpoint}", f"unknown endpoint (known: {sorted(MAX_RECORDS)})"
            )
        query = {k: _param(v) for k, v in params.items() if v is not None and k != "recordPacking"}
        query["recordPacking"] = "json"
        uri = f"{self.base_url}/{endpoint}"
        if "maximumRecords" in query:
            try:
                n = int(query["maximumRecords"])
            except ValueError:
                raise SourceError(
                    uri, f"maximumRecords is not an integer: {query['maximumRecords']!r}"
                ) from None
            if not 1 <= n <= MAX_RECORDS[endpoint]:
                raise SourceError(
                    uri, f"maximumRecords={n} outside 1..{MAX_RECORDS[endpoint]} for /{endpoint}"
                )
        encoded = urlencode(query, quote_via=quote)
        if len(encoded.encode("ascii")) > MAX_QUERY_BYTES:
            raise SourceError(
                uri, f"query string is {len(encoded)} bytes, the API allows at most {MAX_QUERY_BYTES}"
            )
        return f"{uri}?{encoded}"

    def query(self, endpoint: str, params: Mapping[str, object]) -> tuple[dict, str]:
        """One polite request: ``(decoded JSON, request URL)``. API errors raise KokkaiError."""
        data, page = self.request(endpoint, params)
        return data, page.url

    def request(self, endpoint: str, params: Mapping[str, object]) -> tuple[dict, ResponsePage]:
        """One polite request: the decoded JSON and the response as received."""
        url = self.build_url(endpoint, params)
        with self._spacing:
            response = self.client.get(url, headers={"Accept": "application/json"}, expect=(200, 400))
        if response.status != 200:
            raise _api_error(url, response.status, response.content)
        page = ResponsePage(url, response.content, datetime.now(UTC).isoformat())
        return parse_response(page), page

    def _pages(self, endpoint: str, params: Mapping[str, object]) -> Iterator[tuple[dict, ResponsePage]]:
        start = 1
        while True:
            data, page = self.request(endpoint, {**params, "startRecord": start})
            yield data, page
            url = page.url
            following = data.get("nextRecordPosition")
            if following is None:
                return
            following = _int_or_none(following, "nextRecordPosition", url)
            if following is None or following <= start:
                raise SourceError(url, f"nextRecordPosition {following} does not advance past {start}")
            start = following

    # -- meetings ----------------------------------------------------------------------------

    def iter_meeting_ids(
        self,
        from_date: str | _date | None = None,
        until_date: str | _date | None = None,
        *,
        name_of_house: str | None = None,
        name_of_meeting: str | None = None,
        session_from: int | None = None,
        session_to: int | None = None,
    ) -> Iterator[tuple[str, str]]:
        """``(issueID, date)`` of every meeting in the date and session ranges (either may be
        None) via ``/meeting_list`` (newest first, as the API sorts), 100 per request."""
        params = {
            "from": from_date,
            "until": until_date,
            "sessionFrom": session_from,
            "sessionTo": session_to,
            "nameOfHouse": name_of_house,
            "nameOfMeeting": name_of_meeting,
            "maximumRecords": MAX_RECORDS["meeting_list"],
        }
        for data, page in self._pages("meeting_list", params):
            for record in data.get("meetingRecord") or ():
                if not record.get("issueID"):
                    raise SourceError(page.url, "meetingRecord without issueID")
                yield record["issueID"], record.get("date")

    def fetch_meeting_pages(self, issue_id: str) -> list[ResponsePage]:
        """Every ``/meeting`` answer for ``issue_id``, as received (usually one)."""
        if not re.fullmatch(r"[0-9A-Za-z]{21}", issue_id or ""):
            raise SourceError(
                f"{self.base_url}/meeting", f"issueID must be 21 alphanumerics, got {issue_id!r}"
            )
        return [page for _, page in self._pages("meeting", {"issueID": issue_id, "maximumRecords": 1})]

    def fetch_meeting(self, issue_id: str) -> DietMeeting:
        """The whole meeting ``issue_id`` (all its speeches) via ``/meeting``."""
        return meeting_from_pages(issue_id, self.fetch_meeting_pages(issue_id))


def parse_response(page: ResponsePage) -> dict:
    """A 200 answer's JSON object; an error object in a 200 answer raises KokkaiError."""
    try:
        data = json.loads(page.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        head = page.body[:60].decode("utf-8", errors="replace")
        raise SourceError(
            page.url, f"expected a JSON answer ({err.__class__.__name__}), got {head!r}"
        ) from None
    if not isinstance(data, dict):
        raise SourceError(page.url, f"expected a JSON object, got {type(data).__name__}")
    if "message" in data and "numberOfRecords" not in data:
        raise _api_error(page.url, 200, page.body)
    return data


def meeting_from_pages(issue_id: str, pages: Sequence[ResponsePage]) -> DietMeeting:
    """The meeting ``issue_id`` from its ``/meeting`` answers: the records with that issueID,
    speeches merged by speechID (should a meeting ever span several answers)."""
    records: list[dict] = []
    for page in pages:
        data = parse_response(page)
        records.extend(r for r in data.get("meetingRecord") or () if r.get("issueID") == issue_id)
    where = pages[-1].url if pages else "kokkai"
    if not records:
        raise SourceError(where, f"no meeting with issueID {issue_id}")
    merged = dict(records[0])
    speeches: dict[str, dict] = {}
    for record in records:
        for speech in record.get("speechRecord") or ():
            speeches.setdefault(speech.get("speechID"), speech)
    merged["speechRecord"] = list(speeches.values())
    return parse_meeting(merged, tuple(p.url for p in pages), where)


def _param(value: object) -> str:
    if isinstance(value, _date):
        return value.isoformat()
    return str(value)


# -- documents -------------------------------------------------------------------------------
#
# Documents are built per meeting or per single speech only. There is deliberately no
# per-speaker grouping: 著作権法第40条第1項 frees public political speeches 「同一の著作者のもの
# を編集して利用する場合を除き」, i.e. a compilation of one speaker's speeches needs permission
# (the NDL FAQ's 『○○氏演説集』 example). Shard by meeting or date, never by speaker.


def normalize_speech(text: str, *, strip_speaker_prefix: bool = True) -> str:
    """CRLF (and lone CR) to LF; optionally drop the leading 「○肩書（氏名君）　」."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if strip_speaker_prefix:
        text = SPEAKER_PREFIX.sub("", text, count=1)
    return text


def _transformations(strip_speaker_prefix: bool) -> list[str]:
    done = ["crlf_to_lf"]
    if strip_speaker_prefix:
        done.append("strip_speaker_prefix:" + SPEAKER_PREFIX.pattern)
    return done


def _meeting_locator(meeting: DietMeeting) -> dict:
    return {
        "source": "kokkai",
        "attribution": ATTRIBUTION,
        "issueID": meeting.issue_id,
        "session": meeting.session,
        "nameOfHouse": meeting.name_of_house,
        "nameOfMeeting": meeting.name_of_meeting,
        "issue": meeting.issue,
        "date": meeting.date,
        "meetingURL": meeting.meeting_url,
        "pdfURL": meeting.pdf_url,
        "requestURLs": list(meeting.request_urls),
    }


def meeting_document(meeting: DietMeeting, *, strip_speaker_prefix: bool = True) -> tuple[str, dict]:
    """The meeting's speeches (speechOrder > 0, in order) joined by blank lines, and a locator.

    The speechOrder-0 header is left out of the text; its speechID is listed under
    ``droppedSpeechIDs`` with the reason, and every normalisation under ``transformations``
    (Art. 20 integrity / manifest: record what was changed).
    """
    kept = [s for s in meeting.speeches if s.speech_order > HEADER_SPEECH_ORDER]
    dropped = [s for s in meeting.speeches if s.speech_order <= HEADER_SPEECH_ORDER]
    text = "\n\n".join(normalize_speech(s.speech, strip_speaker_prefix=strip_speaker_prefix) for s in kept)
    locator = {
        **_meeting_locator(meeting),
        "speechIDs": [s.speech_id for s in kept],
        "droppedSpeechIDs": [s.speech_id for s in dropped],
        "dropReason": "speechOrder 0 is the 会議録情報 header (attendees, agenda)" if dropped else None,
        "transformations": _transformations(strip_speaker_prefix),
    }
    return text, locator


def speech_documents(meeting: DietMeeting, *, strip_speaker_prefix: bool = True) -> list[tuple[str, dict]]:
    """One ``(text, locator)`` per speech with speechOrder > 0, in meeting order."""
    documents = []
    for speech in meeting.speeches:
        if speech.speech_order <= HEADER_SPEECH_ORDER:
            continue
        locator = {
            **_meeting_locator(meeting),
            "speechID": speech.speech_id,
            "speechOrder": speech.speech_order,
            "speechURL": speech.speech_url,
            "speaker": speech.speaker,
            "startPage": speech.start_page,
            "transformations": _transformations(strip_speaker_prefix),
        }
        documents.append(
            (normalize_speech(speech.speech, strip_speaker_prefix=strip_speaker_prefix), locator)
        )
    return documents
