"""sources.warc over HTTP against a local server that speaks like data.commoncrawl.org.

The server answers ``Range: bytes=a-b`` with 206 and ``Content-Range: bytes a-b/total``, and has
paths that fail on purpose: an error status, a stall, a cut connection, a server that ignores Range.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sources.errors import SourceError
from sources.warc import iter_warc_responses, read_warc_record_at

CC_WARC = Path(__file__).resolve().parents[1] / "data" / "sources" / "cc_whirlwind.warc.gz"
WARC_PATH = "/crawl-data/CC-MAIN-2024-22/segments/whirlwind/warc/cc_whirlwind.warc.gz"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = CC_WARC.read_bytes()

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        self.server.requests.append((self.path, dict(self.headers)))
        if status := re.fullmatch(r"/status/(\d+)", self.path):
            return self._send(int(status.group(1)), b"error\n")
        if self.path == "/stall-before-headers":
            self.server.stop.wait(5)
            return
        if self.path == "/stall-mid-body":
            return self._send(200, self.body[:4000], declared=len(self.body), then_stall=True)
        if self.path == "/cut-mid-body":
            return self._send(200, self.body[:4000], declared=len(self.body))
        if self.path == "/no-range" + WARC_PATH:
            return self._send(200, self.body)
        if self.path != WARC_PATH:
            return self._send(404, b"not found\n")
        total = len(self.body)
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        if not match:
            return self._send(200, self.body)
        start, end = int(match.group(1)), int(match.group(2))
        if start >= total:
            return self._send(416, b"", extra={"Content-Range": f"bytes */{total}"})
        end = min(end, total - 1)
        self._send(206, self.body[start : end + 1], extra={"Content-Range": f"bytes {start}-{end}/{total}"})

    def _send(self, status, body, *, declared=None, then_stall=False, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) if declared is None else declared))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if then_stall:
            self.server.stop.wait(5)
        self.close_connection = True


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.requests = []
    httpd.stop = threading.Event()  # releases stalled handlers at teardown
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.stop.set()
    httpd.shutdown()
    httpd.server_close()


def _url(server, path):
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_streamed_read_equals_local_read(server):
    url = _url(server, WARC_PATH)
    [remote] = list(iter_warc_responses(url))
    [local] = list(iter_warc_responses(str(CC_WARC)))
    assert remote == dataclasses.replace(local, warc_filename=url)
    assert (remote.offset, remote.length, remote.crawl) == (1023, 17351, "CC-MAIN-2024-22")


def test_range_fetch_equals_local_read(server):
    url = _url(server, WARC_PATH)
    server.requests.clear()
    fetched = read_warc_record_at(url, 1023, 17351)
    local = read_warc_record_at(str(CC_WARC), 1023, 17351)
    assert fetched == dataclasses.replace(local, warc_filename=url)
    assert fetched.digest_verified is True
    [(path, headers)] = server.requests
    assert headers["Range"] == "bytes=1023-18373"  # inclusive end: offset + length - 1
    assert headers["User-Agent"].startswith("jcorpus-pipeline/")
    assert headers["Accept-Encoding"] == "identity"


def test_range_fetch_of_a_non_response_record(server):
    assert read_warc_record_at(_url(server, WARC_PATH), 0, 516) is None


@pytest.mark.parametrize("status", [404, 500])
def test_http_error_status(server, status):
    url = _url(server, f"/status/{status}")
    for read in (lambda: list(iter_warc_responses(url)), lambda: read_warc_record_at(url, 1023, 17351)):
        with pytest.raises(SourceError) as err:
            read()
        assert str(err.value).startswith(f"{url}: HTTP {status}")


def test_range_past_the_end_is_an_error(server):
    url = _url(server, WARC_PATH)
    with pytest.raises(SourceError, match=r": HTTP 416"):
        read_warc_record_at(url, 10**6, 100)


def test_server_that_ignores_range(server):
    url = _url(server, "/no-range" + WARC_PATH)
    with pytest.raises(SourceError, match=r"server ignored Range bytes=1023-18373 \(HTTP 200\)"):
        read_warc_record_at(url, 1023, 17351)


@pytest.mark.parametrize(
    "path, message",
    [
        ("/stall-before-headers", r"HTTP request timed out after 0\.3 s"),
        ("/stall-mid-body", r"read timed out at byte 4000"),
    ],
)
def test_stalled_server_times_out(server, path, message):
    url = _url(server, path)
    started = time.monotonic()
    with pytest.raises(SourceError, match=message) as err:
        list(iter_warc_responses(url, timeout=0.3))
    assert str(err.value).startswith(url)
    assert time.monotonic() - started < 2


def test_connection_cut_mid_body(server):
    url = _url(server, "/cut-mid-body")
    with pytest.raises(SourceError) as err:
        list(iter_warc_responses(url, timeout=2))
    assert str(err.value).startswith(f"{url}: read failed at byte 4000")


def test_nothing_listening():
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.warc.gz"
    with pytest.raises(SourceError, match=r"HTTP request failed"):
        list(iter_warc_responses(url, timeout=1))
