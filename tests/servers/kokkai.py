"""A replay server for the 国会会議録検索システム API, built from real responses (tests/data/kokkai/).

The server (127.0.0.1, port from the OS) plays ``/api/meeting_list``, ``/api/meeting`` and
``/api/speech`` as research note §1/§7 describe them: compact JSON when ``recordPacking=json``,
XML with root ``<data>`` otherwise; ``nextRecordPosition`` null on the last page; no record array
with 0 hits; HTTP 400 with the real 19007 / 19011 bodies; the maximumRecords bounds and the
2000-byte query limit enforced. The 250 meeting_list records are *constructed* from the real
record's shape (see tests/data/kokkai/README.md); ``/meeting`` for one of them answers the real
meeting's speeches under that issueID. ``replay.fail[path] = [503, (400, ctype, body), ...]``
answers the next requests to ``path`` with those (a bare status: a plain-text body).
"""

from __future__ import annotations

import copy
import json
import threading
import time
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

DATA = Path(__file__).resolve().parents[1] / "data" / "kokkai"
MEETING = json.loads((DATA / "kokkai_meeting_hbd.json").read_text(encoding="utf-8"))
MEETING_LIST = json.loads((DATA / "kokkai_meeting_list_hbd.json").read_text(encoding="utf-8"))
ERROR_19007 = (DATA / "kokkai_error_19007.json").read_bytes()
ERROR_19011 = (DATA / "kokkai_error_19011.json").read_bytes()
ERROR_19007_XML = (DATA / "kokkai_error_19007.xml").read_bytes()
ERROR_19011_XML = (DATA / "kokkai_error_19011.xml").read_bytes()
ISSUE_ID = "121405254X00220241004"  # the fixture meeting
SPLIT_ISSUE_ID = "121405254X09920241004"  # constructed: its answer claims a second page
CONDITIONS = {
    "nameOfHouse", "nameOfMeeting", "any", "speaker", "from", "until", "speechNumber",
    "speakerPosition", "speakerGroup", "speakerRole", "speechID", "issueID", "sessionFrom",
    "sessionTo", "issueFrom", "issueTo",
}  # fmt: skip
BOUNDS = {"meeting_list": 100, "meeting": 10, "speech": 100}
DEFAULTS = {"meeting_list": 30, "meeting": 3, "speech": 30}


def constructed_meeting_list(n: int = 250) -> list[dict]:
    """``n`` meeting_list records shaped like the real one, one per day from 2024-01-01."""
    real = MEETING_LIST["meetingRecord"][0]
    records = []
    for i in range(n):
        day = date(2024, 1, 1) + timedelta(days=i)
        issue_id = f"12140{i:04d}X001{day:%Y%m%d}"
        record = copy.deepcopy(real)
        record.update(issueID=issue_id, date=day.isoformat())
        record["meetingURL"] = f"https://kokkai.ndl.go.jp/txt/{issue_id}"
        record["pdfURL"] = f"https://kokkai.ndl.go.jp/img/{issue_id}"
        for speech in record["speechRecord"]:
            order = speech["speechOrder"]
            speech["speechID"] = f"{issue_id}_{order:03d}"
            speech["speechURL"] = f"https://kokkai.ndl.go.jp/txt/{issue_id}/{order}"
        records.append(record)
    return records


def compact(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class KokkaiReplay:
    def __init__(self) -> None:
        self.meeting_list = constructed_meeting_list()
        self.listed = {r["issueID"]: r for r in self.meeting_list}
        self.fail: dict[str, list] = {}  # path -> statuses or (status, ctype, body) to answer next
        self._log: list[dict] = []  # path, query, arrived, finished (time.monotonic)
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.replay = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def log(self) -> list[dict]:
        """The requests answered so far. A handler logs after its last bytes are sent, so the
        client can have its answer a moment before: wait (up to 2 s) until no handler is busy."""
        deadline = time.monotonic() + 2.0
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.001)
        with self.lock:
            return list(self._log)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/api"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, path: str, raw_query: str):
        with self.lock:
            statuses = self.fail.get(path)
            if statuses:
                answer = statuses.pop(0)
                return answer if isinstance(answer, tuple) else (answer, "text/plain", b"injected\n")
        query = {k: v[0] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        packing = query.get("recordPacking", "xml")
        endpoint = path.removeprefix("/api/")
        if endpoint not in BOUNDS:
            return 404, "text/plain", b"Not Found\n"
        if len(raw_query.encode()) > 2000:
            return 400, "application/json", compact({"message": "constructed: query too long"})
        if not CONDITIONS & set(query):
            return self.error(packing, ERROR_19007, ERROR_19007_XML)
        if "speakerRole" in query and query["speakerRole"] not in ("証人", "参考人", "公述人"):
            return self.error(packing, ERROR_19011, ERROR_19011_XML)
        size = int(query.get("maximumRecords", DEFAULTS[endpoint]))
        if not 1 <= size <= BOUNDS[endpoint]:
            return 400, "application/json", compact({"message": "constructed: maximumRecords out of range"})
        start = int(query.get("startRecord", 1))
        if endpoint == "meeting_list":
            low, high = query.get("from", "0000-01-01"), query.get("until", "9999-12-31")
            hits = [r for r in self.meeting_list if low <= r["date"] <= high]
            hits.sort(key=lambda r: r["date"], reverse=True)  # newest first, as the API sorts
            body = self.page(hits, start, size)
        elif endpoint == "meeting" and query.get("issueID") == ISSUE_ID:
            body = self.page(MEETING["meetingRecord"], start, size)
        elif endpoint == "meeting" and query.get("issueID") == SPLIT_ISSUE_ID:
            # Constructed: the same meeting's speeches spread over two answers.
            record = copy.deepcopy(MEETING["meetingRecord"][0])
            record["issueID"] = SPLIT_ISSUE_ID
            first, second = copy.deepcopy(record), copy.deepcopy(record)
            first["speechRecord"], second["speechRecord"] = (
                record["speechRecord"][:1],
                record["speechRecord"][1:],
            )
            second["speechRecord"][0]["speechOrder"] = "1"  # speechOrder as a string is tolerated
            body = self.page([first, second], start, size)
        elif endpoint == "meeting" and query.get("issueID") in self.listed:
            body = self.page([self.listed_meeting(query["issueID"])], start, size)
        else:
            body = self.page([], start, size)
        if packing != "json":
            xml = f"<data><numberOfRecords>{body['numberOfRecords']}</numberOfRecords></data>"
            return 200, "application/xml", xml.encode()
        return 200, "application/json", compact(body)

    def listed_meeting(self, issue_id: str) -> dict:
        """A listed (constructed) meeting's /meeting record: the real meeting's speeches, renamed."""
        record = copy.deepcopy(MEETING["meetingRecord"][0])
        listed = self.listed[issue_id]
        record.update(issueID=issue_id, date=listed["date"], meetingURL=listed["meetingURL"])
        for speech in record["speechRecord"]:
            order = int(speech["speechOrder"])
            speech["speechID"] = f"{issue_id}_{order:03d}"
            speech["speechURL"] = f"{listed['meetingURL']}/{order}"
        return record

    @staticmethod
    def page(records: list[dict], start: int, size: int) -> dict:
        if not records:
            return {"numberOfRecords": 0, "numberOfReturn": 0, "startRecord": 1}
        chunk = records[start - 1 : start - 1 + size]
        following = start + size if start - 1 + size < len(records) else None
        return {
            "numberOfRecords": len(records),
            "numberOfReturn": len(chunk),
            "startRecord": start,
            "nextRecordPosition": following,
            "meetingRecord": chunk,
        }

    @staticmethod
    def error(packing: str, json_body: bytes, xml_body: bytes):
        if packing == "json":
            return 400, "application/json", json_body
        return 400, "application/xml", xml_body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each small keep-alive answer waits ~40 ms for an ACK

    def log_message(self, *args):
        pass

    def do_GET(self):
        replay: KokkaiReplay = self.server.replay
        arrived = time.monotonic()
        with replay.lock:
            replay.in_flight += 1
            replay.max_in_flight = max(replay.max_in_flight, replay.in_flight)
        parts = urlsplit(self.path)
        try:
            status, content_type, body = replay.answer(parts.path, parts.query)
            time.sleep(0.005)  # a request that takes a moment, so overlapping ones would show
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        finally:
            with replay.lock:
                replay.in_flight -= 1
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                replay._log.append(
                    {"path": parts.path, "query": query, "arrived": arrived, "finished": time.monotonic()}
                )
