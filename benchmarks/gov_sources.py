"""Diet-minutes (国会会議録) and e-Gov (法令API) clients: parsing throughput, local end-to-end, etiquette.

    python benchmarks/gov_sources.py [--meetings 50] [--speeches-per-meeting 40] [--seconds 1.0]
                                     [--session-meetings 1000] [--latency 1.0]

1. Diet: ``json.loads`` + ``parse_meeting`` + ``meeting_document`` (and per-speech
   ``speech_documents``) on /meeting bodies in the real response shape, then the same through
   ``KokkaiClient`` (``iter_meeting_ids`` + ``fetch_meeting``) against a ThreadingHTTPServer on
   127.0.0.1 with ``pause_seconds=0``, so the figure excludes the politeness pauses.
2. e-Gov: ``parse_law_data`` on the official /law_data XML example, ``law_xml_to_text`` on the real
   行政手続法 XML, and ``EgovClient.fetch_law`` against a local server.
3. The etiquette arithmetic: how long one ordinary Diet session takes to fetch at the client's
   default pause, by formula, with the numbers filled in.

The /meeting bodies are built from the real full speeches of
``/work/shared/data/kokkai_speeches/speeches_sample2000.jsonl``: the speech texts (and their house,
meeting name, date, speaker group) are real; the grouping of speeches into meetings, the issueIDs,
speechOrder, speaker fields (taken from each speech's 「○…　」 prefix), startPage and the
speechOrder-0 header (the real but abridged header of tests/data/kokkai/kokkai_meeting_hbd.json)
are constructed. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import copy
import http.server
import inspect
import json
import math
import re
import sys
import threading
import time
import unicodedata
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lxml import etree

from sources.egov import EgovClient, parse_law_data
from sources.http_client import HttpClient
from sources.kokkai import (
    MAX_RECORDS,
    KokkaiClient,
    meeting_document,
    parse_meeting,
    speech_documents,
)
from sources.law_xml import law_xml_to_text

SPEECHES = REPO.parent / "shared" / "data" / "kokkai_speeches" / "speeches_sample2000.jsonl"
KOKKAI_DATA = REPO / "tests" / "data" / "kokkai"
EGOV_DATA = REPO / "tests" / "data" / "egov"
LAW_DATA_XML = (EGOV_DATA / "egov_v2_law_data_xml.xml").read_bytes()  # official example (12 KB)
GYOSEI_XML = (EGOV_DATA / "405AC0000000088_20240401_504AC0100000052.xml").read_bytes()  # real, 110 KB

# 「○政府委員（鈴木俊一君）　」 -> position, name; 「○井林委員　」 -> the label as a whole.
_PAREN_PREFIX = re.compile(r"^○([^（　\r\n]+)（([^）\r\n]+?)君?）　")
_PLAIN_PREFIX = re.compile(r"^○([^　\r\n]+)　")


# -- realistic /meeting bodies -------------------------------------------------------------------


def _speaker_fields(text: str) -> tuple[str | None, str | None]:
    """(speaker, speakerPosition) from the speech's own prefix; the sample has no speaker field."""
    match = _PAREN_PREFIX.match(text)
    if match:
        return match.group(2), match.group(1)
    match = _PLAIN_PREFIX.match(text)
    return (match.group(1), None) if match else (None, None)


def build_meetings(n_meetings: int, per_meeting: int) -> list[dict]:
    """``n_meetings`` meetingRecords of ``per_meeting`` real speeches each, in the /meeting shape.

    Constructed: the grouping (consecutive speeches of the sample, wrapping round when more are
    asked for than the sample has), the issueID (shape ``1<session 3><serial 5>X<issue 3><date>``
    with session, issue and date of the group's first real speech), speechOrder 1..k plus a
    speechOrder-0 header, startPage, createTime/updateTime. Real: every speech text and the house,
    meeting name, date and speakerGroup of the group's first speech.
    """
    rows = [json.loads(line) for line in SPEECHES.read_text(encoding="utf-8").splitlines() if line]
    fixture = json.loads((KOKKAI_DATA / "kokkai_meeting_hbd.json").read_text(encoding="utf-8"))
    header_template = fixture["meetingRecord"][0]["speechRecord"][0]
    meetings = []
    for m in range(n_meetings):
        group = [rows[(m * per_meeting + j) % len(rows)] for j in range(per_meeting)]
        first = group[0]
        real_issue = first["speech_id"].split("_")[0]  # e.g. 100814720X01319500729
        session, issue = int(real_issue[1:4]), int(real_issue[10:13])
        day = first["date"]
        issue_id = f"1{session:03d}{m:05d}X{issue:03d}{day.replace('-', '')}"
        meeting_url = f"https://kokkai.ndl.go.jp/txt/{issue_id}"
        header = copy.deepcopy(header_template)
        header.update(speechID=f"{issue_id}_000", speechURL=f"{meeting_url}/0")
        speech_records = [header]
        for order, row in enumerate(group, start=1):
            speaker, position = _speaker_fields(row["speech"])
            speech_records.append(
                {
                    "speechID": f"{issue_id}_{order:03d}",
                    "speechOrder": order,
                    "speaker": speaker,
                    "speakerYomi": None,
                    "speakerGroup": row["speaker_group"],
                    "speakerPosition": position,
                    "speakerRole": None,
                    "speech": row["speech"],
                    "startPage": 1 + order // 8,
                    "createTime": header_template["createTime"],
                    "updateTime": header_template["updateTime"],
                    "speechURL": f"{meeting_url}/{order}",
                }
            )
        meetings.append(
            {
                "issueID": issue_id,
                "imageKind": "会議録",
                "searchObject": 0,
                "session": session,
                "nameOfHouse": first["house_name"],
                "nameOfMeeting": first["meeting_name"],
                "issue": f"第{issue}号",
                "date": day,
                "closing": None,
                "speechRecord": speech_records,
                "meetingURL": meeting_url,
                "pdfURL": f"https://kokkai.ndl.go.jp/img/{issue_id}",
            }
        )
    return meetings


def compact(obj) -> bytes:
    """The real API answers compact JSON (research note §1.3)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def meeting_body(record: dict) -> bytes:
    """The /meeting answer to ``issueID=<id>&maximumRecords=1``: one record, nextRecordPosition null."""
    return compact(
        {
            "numberOfRecords": 1,
            "numberOfReturn": 1,
            "startRecord": 1,
            "nextRecordPosition": None,
            "meetingRecord": [record],
        }
    )


def list_record(record: dict) -> dict:
    """The meeting_list form of a meeting: speechRecord stubs (speechID, speechOrder, speaker, speechURL)."""
    stub = {k: v for k, v in record.items() if k != "speechRecord"}
    stub["speechRecord"] = [
        {k: s[k] for k in ("speechID", "speechOrder", "speaker", "speechURL")} for s in record["speechRecord"]
    ]
    return stub


# -- local servers -------------------------------------------------------------------------------


class Replay(http.server.BaseHTTPRequestHandler):
    """Serves ``self.server.routes(path, query) -> (status, content_type, body)``, keep-alive."""

    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY the body of a small answer waits for the delayed ACK of the header
    # segment (~40 ms on Linux loopback): an artefact of http.server, not of the clients.
    disable_nagle_algorithm = True

    def do_GET(self):
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        status, content_type, body = self.server.routes(parts.path, query)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(routes) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Replay)
    server.daemon_threads = True
    server.routes = routes
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def kokkai_routes(meetings: list[dict]):
    bodies = {m["issueID"]: meeting_body(m) for m in meetings}
    listed = sorted((list_record(m) for m in meetings), key=lambda r: r["date"], reverse=True)
    empty = compact({"numberOfRecords": 0, "numberOfReturn": 0, "startRecord": 1})

    def routes(path: str, query: dict) -> tuple[int, str, bytes]:
        if path == "/api/meeting":
            body = bodies.get(query.get("issueID"), empty)
            return 200, "application/json", body
        if path == "/api/meeting_list":
            low, high = query.get("from", "0000-01-01"), query.get("until", "9999-12-31")
            hits = [r for r in listed if low <= r["date"] <= high]
            if not hits:
                return 200, "application/json", empty
            start, size = int(query.get("startRecord", 1)), int(query.get("maximumRecords", 30))
            chunk = hits[start - 1 : start - 1 + size]
            following = start + size if start - 1 + size < len(hits) else None
            page = {
                "numberOfRecords": len(hits),
                "numberOfReturn": len(chunk),
                "startRecord": start,
                "nextRecordPosition": following,
                "meetingRecord": chunk,
            }
            return 200, "application/json", compact(page)
        return 404, "text/plain", b"not found\n"

    return routes


def gyosei_law_data_response() -> bytes:
    """Constructed: the official /law_data XML example with its Law replaced by the real 行政手続法
    Law and the law_info / revision_info fields that name the law changed to match."""
    root = etree.fromstring(LAW_DATA_XML)
    law = etree.fromstring(GYOSEI_XML)
    full = root.find("law_full_text")
    full.replace(full.find("Law"), law)
    for path, value in (
        ("law_info/law_id", "405AC0000000088"),
        ("law_info/law_num", "平成五年法律第八十八号"),
        ("revision_info/law_revision_id", "405AC0000000088_20240401_504AC0100000052"),
        ("revision_info/law_title", "行政手続法"),
        ("revision_info/law_title_kana", "ぎょうせいてつづきほう"),
    ):
        root.find(path).text = value
    return etree.tostring(root, encoding="utf-8", xml_declaration=False)


# -- measuring -----------------------------------------------------------------------------------


def repeat(fn, seconds: float) -> tuple[int, float]:
    """Run ``fn`` (one pass) until at least ``seconds`` have passed: (passes, elapsed)."""
    passes = 0
    started = time.perf_counter()
    while True:
        fn()
        passes += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return passes, elapsed


def timed_gets(http: HttpClient) -> dict[str, list[float]]:
    """Wrap ``http.get`` on this instance only: seconds per request, keyed by endpoint path."""
    inner = http.get
    log: dict[str, list[float]] = {}

    def get(url, **kwargs):
        started = time.perf_counter()
        response = inner(url, **kwargs)
        log.setdefault(urlsplit(url).path.rsplit("/", 1)[-1], []).append(time.perf_counter() - started)
        return response

    http.get = get
    return log


def pad(text: str, width: int) -> str:
    """Left-align to ``width`` terminal columns (a CJK character takes two)."""
    shown = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(0, width - shown)


def row(label: str, passes: int, elapsed: float, units: dict[str, float], mb: float, note: str = "") -> str:
    rates = "".join(
        f"{units.get(k, 0) * passes / elapsed:>12,.1f}" if k in units else f"{'':>12}" for k in COLS
    )
    return f"{pad(label, 46)}{elapsed:>7.2f}{rates}{mb * passes / elapsed:>9.1f}  {note}"


COLS = ("meetings", "speeches", "laws")


def header(first: str) -> str:
    return f"{first:<46}{'sec':>7}" + "".join(f"{c + '/s':>12}" for c in COLS) + f"{'MB/s':>9}"


# -- the three parts -----------------------------------------------------------------------------


def diet(args) -> float:
    meetings = build_meetings(args.meetings, args.speeches_per_meeting)
    bodies = [meeting_body(m) for m in meetings]
    n_meet = len(bodies)
    n_speech = sum(len(m["speechRecord"]) - 1 for m in meetings)  # speechOrder > 0: the real speeches
    mb = sum(map(len, bodies)) / 1e6
    chars = sum(len(s["speech"]) for m in meetings for s in m["speechRecord"][1:])
    print(
        f"Diet: {n_meet} /meeting bodies, {n_speech} real speeches (+1 header each), "
        f"{mb * 1e6 / n_meet / 1e3:.0f} KB per body on average ({mb:.2f} MB, {chars / n_speech:.0f} chars "
        f"per speech). Grouping into meetings constructed, speech texts real."
    )
    units = {"meetings": n_meet, "speeches": n_speech}
    parsed = [parse_meeting(json.loads(b)["meetingRecord"][0]) for b in bodies]
    decoded = [json.loads(b) for b in bodies]

    def loads():
        for b in bodies:
            json.loads(b)

    def loads_parse():
        for b in bodies:
            parse_meeting(json.loads(b)["meetingRecord"][0])

    def chain_meeting():
        for b in bodies:
            meeting_document(parse_meeting(json.loads(b)["meetingRecord"][0]))

    def chain_speech():
        for b in bodies:
            speech_documents(parse_meeting(json.loads(b)["meetingRecord"][0]))

    def parse_only():
        for d in decoded:
            parse_meeting(d["meetingRecord"][0])

    def meeting_docs_only():
        for m in parsed:
            meeting_document(m)

    def speech_docs_only():
        for m in parsed:
            speech_documents(m)

    print(header("Diet, in process (1 core)"))
    for label, fn in (
        ("json.loads + parse_meeting + meeting_document", chain_meeting),
        ("json.loads + parse_meeting + speech_documents", chain_speech),
        ("  json.loads alone", loads),
        ("  json.loads + parse_meeting", loads_parse),
        ("  parse_meeting alone (decoded dict)", parse_only),
        ("  meeting_document alone (parsed)", meeting_docs_only),
        ("  speech_documents alone (parsed)", speech_docs_only),
    ):
        print(row(label, *repeat(fn, args.seconds), units, mb))

    # End to end through KokkaiClient against 127.0.0.1, no politeness pause.
    server = serve(kokkai_routes(meetings))
    base = f"http://127.0.0.1:{server.server_port}/api"
    kokkai = KokkaiClient(base, pause_seconds=0)
    gets = timed_gets(kokkai.client)
    low = min(m["date"] for m in meetings)
    high = max(m["date"] for m in meetings)
    docs = {"meeting": 0, "speech": 0}

    def end_to_end():
        for issue_id, _ in kokkai.iter_meeting_ids(low, high):
            meeting = kokkai.fetch_meeting(issue_id)
            meeting_document(meeting)
            docs["speech"] += len(speech_documents(meeting))
            docs["meeting"] += 1

    passes, elapsed = repeat(end_to_end, args.seconds)
    server.shutdown()
    server.server_close()
    list_pages = math.ceil(n_meet / MAX_RECORDS["meeting_list"])
    note = f"{list_pages + n_meet} requests per pass ({list_pages} meeting_list + {n_meet} meeting)"
    print(row("KokkaiClient, 127.0.0.1, pause_seconds=0", passes, elapsed, units, mb, note))
    if docs["meeting"] != passes * n_meet:
        print(f"  note: {docs['meeting']} meetings fetched, expected {passes * n_meet}")
    mean_meeting = sum(gets["meeting"]) / len(gets["meeting"])
    mean_list = sum(gets["meeting_list"]) / len(gets["meeting_list"])
    http_share = (sum(gets["meeting"]) + sum(gets["meeting_list"])) / elapsed
    print(
        f"  HTTP GET (HttpClient.get) mean: /meeting {mean_meeting * 1e3:.2f} ms, /meeting_list "
        f"{mean_list * 1e3:.2f} ms (a {len(compact({'meetingRecord': [list_record(m) for m in meetings[:100]]})) / 1e3:.0f}"
        f" KB page); HTTP is {http_share:.0%} of the end-to-end time"
    )
    print()
    return mean_meeting


def egov(args) -> None:
    gyosei_response = gyosei_law_data_response()
    print(
        f"e-Gov: official /law_data XML example {len(LAW_DATA_XML) / 1e3:.1f} KB; real 行政手続法 law XML "
        f"{len(GYOSEI_XML) / 1e3:.1f} KB; the same wrapped in the example's law_data_response (constructed) "
        f"{len(gyosei_response) / 1e3:.1f} KB"
    )
    one = {"laws": 1}
    print(header("e-Gov, in process (1 core)"))
    for label, fn, size in (
        ("parse_law_data, official example", lambda: parse_law_data("u", LAW_DATA_XML), LAW_DATA_XML),
        ("law_xml_to_text, 行政手続法", lambda: law_xml_to_text(GYOSEI_XML), GYOSEI_XML),
        (
            "parse_law_data, 行政手続法 law_data_response",
            lambda: parse_law_data("u", gyosei_response),
            gyosei_response,
        ),
    ):
        print(row(label, *repeat(fn, args.seconds), one, len(size) / 1e6))

    bodies = {
        "/api/2/law_data/411AC0000000127": LAW_DATA_XML,
        "/api/2/law_data/405AC0000000088": gyosei_response,
    }
    server = serve(
        lambda path, query: (
            (200, "application/xml", bodies[path]) if path in bodies else (404, "text/plain", b"")
        )
    )
    client = EgovClient(f"http://127.0.0.1:{server.server_port}/api/2")
    gets = timed_gets(client.client)
    for label, law_id in (
        ("EgovClient.fetch_law, official example", "411AC0000000127"),
        ("EgovClient.fetch_law, 行政手続法", "405AC0000000088"),
    ):
        gets.clear()
        passes, elapsed = repeat(lambda law_id=law_id: client.fetch_law(law_id), args.seconds)
        times = gets[law_id]
        note = f"HTTP GET mean {sum(times) / len(times) * 1e3:.2f} ms"
        print(row(label, passes, elapsed, one, len(bodies[f"/api/2/law_data/{law_id}"]) / 1e6, note))
    server.shutdown()
    server.server_close()
    print()


def etiquette(args, measured_response: float) -> None:
    pause = inspect.signature(KokkaiClient.__init__).parameters["pause_seconds"].default
    m = args.session_meetings
    per_list, per_meeting = MAX_RECORDS["meeting_list"], MAX_RECORDS["meeting"]
    by_issue = math.ceil(m / per_list) + m
    by_range = math.ceil(m / per_meeting)
    print(
        f"Etiquette: one ordinary session, M = {m:,} meeting records (assumption, --session-meetings), "
        f"pause p = {pause} s (KokkaiClient.__init__ default), one request at a time"
    )
    print(
        f"  A. as the client does it: R = ceil(M/{per_list}) meeting_list pages + M /meeting requests "
        f"(issueID, maximumRecords=1) = {math.ceil(m / per_list)} + {m} = {by_issue:,}"
    )
    print(
        f"  B. /meeting by date range, {per_meeting} meetings per request (API cap): "
        f"R = ceil(M/{per_meeting}) = {by_range:,}  (no meeting_list needed; ~{per_meeting}x bigger answers)"
    )
    print(
        "  M is an estimate, not a count: per house ~30 committees, 審査会 and 調査会 meeting ~15 times"
        " each on their weekly 定例日 over ~21 weeks, plus ~35 plenaries; 2 x (30 x 15 + 35) = 970."
        " The real M for session N is numberOfRecords of one request:"
        " meeting_list?sessionFrom=N&sessionTo=N&maximumRecords=1"
    )
    print("  wall time T = R x (p + t), t = response time per request")
    for name, r in (("A", by_issue), ("B", by_range)):
        for t, what in ((measured_response, "measured on 127.0.0.1"), (args.latency, "assumed, --latency")):
            total = r * (pause + t)
            print(
                f"  {name}: T = {r:,} x ({pause} + {t:.4f}) = {total:,.0f} s = {total / 3600:.2f} h"
                f"   (t {what})"
            )
    print(f"  of which pauses alone: A {by_issue * pause / 3600:.2f} h, B {by_range * pause / 3600:.2f} h")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meetings", type=int, default=50, help="constructed /meeting bodies (default 50)")
    parser.add_argument(
        "--speeches-per-meeting",
        type=int,
        default=40,
        help="real speeches per meeting (default 40: ~120 KB bodies, the note's §1.2 meeting size)",
    )
    parser.add_argument("--seconds", type=float, default=1.0, help="time spent on each measurement")
    parser.add_argument(
        "--session-meetings",
        type=int,
        default=1000,
        help="meeting records in one ordinary session, both houses (assumption, default 1000)",
    )
    parser.add_argument(
        "--latency", type=float, default=1.0, help="assumed response time of the real API per request (s)"
    )
    args = parser.parse_args()
    measured = diet(args)
    egov(args)
    etiquette(args, measured)


if __name__ == "__main__":
    main()
