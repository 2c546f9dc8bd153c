"""Common Crawl records fetched by byte range from a local server, then extracted, on one core.

    python benchmarks/cc_fetch_extract.py [--copies 5]

Serves sample/ja_pages.warc.gz (80 real Japanese pages in UTF-8, Shift_JIS and EUC-JP) over HTTP
on 127.0.0.1 with Range support, fetches every response record by range (`fetch_records`, as the
fetch stage does), then runs the extract stage's per-page work (decode, opt-out and rights signals,
pre-selection, guarded trafilatura) in this process. Prints records per second for each phase and
the share of the extract time spent inside trafilatura. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from filters.extract_guard import GuardedExtractor  # noqa: E402
from filters.html import TRAFILATURA_PARAMS, decode_html, extract_main_text, undecodable_reason  # noqa: E402
from filters.optout import check_optout  # noqa: E402
from filters.preselect import japanese_preselect  # noqa: E402
from filters.rights import detect_rights_notices  # noqa: E402
from sources.commoncrawl_fetch import fetch_records  # noqa: E402
from sources.commoncrawl_index import IndexRecord  # noqa: E402
from sources.http_client import HttpClient  # noqa: E402
from sources.warc import iter_warc_responses  # noqa: E402

WARC = REPO / "sample" / "ja_pages.warc.gz"


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler answers Range with the whole file; this one sends 206 and the bytes."""

    def do_GET(self):  # noqa: N802 - the http.server API
        data = WARC.read_bytes()
        first, last = (int(x) for x in self.headers["Range"].removeprefix("bytes=").split("-"))
        body = data[first : last + 1]
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=5, help="times each record is fetched")
    args = parser.parse_args()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    records = [
        IndexRecord(
            None,
            r.target_uri,
            "ja_pages.warc.gz",
            r.offset,
            r.length,
            None,
            None,
            None,
            200,
            "jpn",
            None,
            None,
        )
        for r in iter_warc_responses(str(WARC))
    ] * args.copies

    client = HttpClient(max_connections_per_host=4)
    started = time.perf_counter()
    fetched = [resp for _, resp in fetch_records(client, base, records, concurrency=4)]
    fetch_seconds = time.perf_counter() - started
    server.shutdown()
    failures = [f for f in fetched if isinstance(f, Exception)]

    trafilatura_seconds = 0.0
    started = time.perf_counter()
    with GuardedExtractor(timeout_seconds=5.0) as extractor:
        for resp in fetched:
            decoded = decode_html(resp.payload, resp.content_type)
            if undecodable_reason(decoded):
                continue
            check_optout(resp.target_uri, list(resp.http_headers), decoded.text)
            detect_rights_notices(decoded.text)
            japanese_preselect(decoded.text)
            result = extractor.extract(decoded.text, resp.target_uri)
            trafilatura_seconds += result.seconds
    extract_seconds = time.perf_counter() - started

    # trafilatura alone, in-process, for comparison with the guarded call.
    started = time.perf_counter()
    for resp in fetched[: len(fetched) // args.copies]:
        extract_main_text(
            decode_html(resp.payload, resp.content_type).text, resp.target_uri, TRAFILATURA_PARAMS
        )
    bare = (time.perf_counter() - started) * args.copies

    n = len(fetched)
    print(json.dumps({"records": n, "fetch_failures": len(failures)}))
    print(f"{'phase':<34}{'seconds':>9}{'records/s':>11}")
    print(f"{'range fetch (4 connections)':<34}{fetch_seconds:>9.2f}{n / fetch_seconds:>11.1f}")
    print(f"{'extract stage work (1 core)':<34}{extract_seconds:>9.2f}{n / extract_seconds:>11.1f}")
    print(
        f"{'  of which guarded trafilatura':<34}{trafilatura_seconds:>9.2f}"
        f"{'':>11}  {trafilatura_seconds / extract_seconds:.0%} of extract"
    )
    print(f"{'  trafilatura in-process (est.)':<34}{bare:>9.2f}")


if __name__ == "__main__":
    main()
