"""Shared fixtures: a local replay server that speaks like Common Crawl, and a columnar-index writer.

``cc_server`` (function-scoped) is a ThreadingHTTPServer on 127.0.0.1, port chosen by the OS,
running in a thread and shut down after the test. It plays both Common Crawl hosts:

- data.commoncrawl.org: ``server.add_file("/crawl-data/.../x.warc.gz", data) -> url`` serves
  bytes, with ``Range: bytes=a-b`` / ``bytes=a-`` answered 206 + ``Content-Range``, 416 when the
  range starts past the end, 200 with the whole file when there is no Range header.
- index.commoncrawl.org: ``server.add_cdx(crawl, lines)`` registers NDJSON capture lines (str or
  dict, string values as the real API has them) for ``GET /{crawl}-index``. Supported parameters:
  ``url`` (exact, trailing ``*`` prefix, leading ``*.`` domain; scheme and ``www.`` ignored),
  ``matchType`` (exact|prefix|host|domain), ``filter`` (pywb ``[!][=|~]field:value``, plain
  means regex match), ``from``/``to``, ``limit``, ``showNumPages=true`` (``{"pages", "pageSize",
  "blocks"}``), ``page``, ``pageSize`` (in *lines* here; the real server counts 3000-line blocks;
  default ``server.cdx_page_size`` = 5). No match: 404 with the real body
  ``{"message": "No Captures found for: <url>"}``. An unknown crawl: a plain 404.
  Content types ``text/x-ndjson`` and ``application/json`` are assumptions (not captured live).
- ``server.url`` is ``http://127.0.0.1:<port>``: use it as both ``index_url`` and ``data_url``.

Faults, matched by path prefix (query string ignored), first registered first:

- ``server.fail_next(prefix, status, times=1, retry_after=None)``: answer ``status`` (with
  ``Retry-After`` if given: seconds or an HTTP date) to the next ``times`` requests.
- ``server.truncate_next(prefix, times=1)``: send the full Content-Length but only half the body,
  then close the connection.
- ``server.slow(prefix, seconds_per_chunk, chunk_size=1024)``: from now on, trickle bodies.
- ``server.ignore_range(prefix)``: from now on, answer 200 with the whole file despite Range.

Observation: ``server.requests`` is a list of ``LoggedRequest(method, path, query, headers, time,
status)`` (``time`` from ``time.monotonic()`` at arrival; ``query`` parsed, values as lists);
``server.max_in_flight`` is the most requests the server was handling at once. Since this is one
host, it is the per-host concurrency the client allowed. A request counts as in flight from its
arrival until just before its last body bytes are written, so the server never over-counts.

``sample_run`` (session-scoped) is one finished ``python -m pipeline run`` of the bundled sample with
the default config, shared by the audit, notebook and fault tests: copy it before changing it.

``write_columnar_index`` is a callable fixture: ``write_columnar_index(path, rows) -> list[Path]``
writes rows (dicts with columnar-index column names) as Parquet with the real schema's types
(``tests/data/commoncrawl/cc_index_schema_flat.json``); ``path`` ending in ``.parquet`` gives one
file with ``crawl`` and ``subset`` columns, any other path a hive-partitioned directory
``crawl=.../subset=.../part-00000.parquet`` without them, as in ``s3://commoncrawl/cc-index/table``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import pytest

# Replay servers of the APIs (tests/servers/) are shared by source, stage and benchmark code.
sys.path.insert(0, str(Path(__file__).resolve().parent))

COMMONCRAWL_DATA = Path(__file__).resolve().parent / "data" / "commoncrawl"


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]
    time: float  # time.monotonic() when the request arrived
    status: int  # what the server answered


@dataclass
class _Fault:
    kind: str  # fail | truncate | slow | ignore_range
    prefix: str
    times: float  # math.inf for the lasting ones
    status: int = 0
    retry_after: str | None = None
    seconds_per_chunk: float = 0.0
    chunk_size: int = 1024


class ReplayServer:
    """See the module docstring. Use as a context manager or call ``close()``."""

    def __init__(self) -> None:
        self.cdx_page_size = 5
        self._files: dict[str, bytes] = {}
        self._cdx: dict[str, list[tuple[str, dict[str, str]]]] = {}
        self._faults: list[_Fault] = []
        self._log: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._in_flight = 0
        self._max_in_flight = 0
        self._stop = threading.Event()  # wakes trickling handlers at shutdown
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.replay = self
        # A short poll interval: shutdown() waits for the loop to look, up to one interval.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def add_file(self, path: str, data: bytes) -> str:
        path = "/" + path.lstrip("/")
        with self._lock:
            self._files[path] = bytes(data)
        return self.url + path

    def add_cdx(self, crawl: str, lines) -> str:
        parsed = []
        for line in lines:
            text = line if isinstance(line, str) else json.dumps(line)
            if text.strip():
                parsed.append((text.strip(), json.loads(text)))
        with self._lock:
            self._cdx.setdefault(crawl, []).extend(parsed)
        return self.url

    def fail_next(self, path_prefix: str, status: int, times: int = 1, retry_after: Any = None) -> None:
        value = None if retry_after is None else str(retry_after)
        self._add_fault(_Fault("fail", path_prefix, times, status=status, retry_after=value))

    def truncate_next(self, path_prefix: str, times: int = 1) -> None:
        self._add_fault(_Fault("truncate", path_prefix, times))

    def slow(self, path_prefix: str, seconds_per_chunk: float, chunk_size: int = 1024) -> None:
        self._add_fault(
            _Fault("slow", path_prefix, math.inf, seconds_per_chunk=seconds_per_chunk, chunk_size=chunk_size)
        )

    def ignore_range(self, path_prefix: str) -> None:
        self._add_fault(_Fault("ignore_range", path_prefix, math.inf))

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    def close(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- used by the handler -----------------------------------------------------------------

    def _add_fault(self, fault: _Fault) -> None:
        if not fault.prefix.startswith("/"):
            fault.prefix = "/" + fault.prefix
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, path: str, kinds: tuple[str, ...]) -> _Fault | None:
        """The first fault of one of ``kinds`` for ``path``, used up once."""
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and fault.times > 0 and path.startswith(fault.prefix):
                    fault.times -= 1
                    return fault
        return None

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _leave(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._in_flight -= 1
            self._log.append(entry)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection pool is exercised

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        replay: ReplayServer = self.server.replay
        arrived = time.monotonic()
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        replay._enter()
        self._entry = LoggedRequest("GET", path, query, dict(self.headers), arrived, 0)
        try:
            status, headers, body, injected = self._route(replay, path, query)
            self._entry = dataclasses.replace(self._entry, status=status)
            self._send(replay, path, status, headers, body, faults_apply=not injected)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. its deadline); nothing to do
        finally:
            self._leave(replay)

    def _leave(self, replay: ReplayServer) -> None:
        """Log the request and stop counting it in flight; once, before its last bytes are sent,
        so that a client that has its answer also finds it in the log."""
        if self._entry is not None:
            replay._leave(self._entry)
            self._entry = None

    # -- what to answer ----------------------------------------------------------------------

    def _route(self, replay: ReplayServer, path: str, query):
        fault = replay._take_fault(path, ("fail",))
        if fault is not None:
            headers = {"Content-Type": "text/plain"}
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            return fault.status, headers, f"fault injected: HTTP {fault.status}\n".encode(), True
        if match := re.fullmatch(r"/(.+)-index", path):
            with replay._lock:
                lines = replay._cdx.get(match.group(1))
            if lines is not None:
                return *_cdx_answer(lines, query, replay.cdx_page_size), False
        with replay._lock:
            data = replay._files.get(path)
        if data is None:
            return 404, {"Content-Type": "text/plain"}, b"Not Found\n", False
        if replay._take_fault(path, ("ignore_range",)) is not None:
            return 200, {"Content-Type": "application/octet-stream"}, data, False
        return *_range_answer(data, self.headers.get("Range")), False

    def _send(
        self, replay, path: str, status: int, headers: dict, body: bytes, *, faults_apply: bool
    ) -> None:
        # An injected failure is sent whole: one fault per answer keeps the tests' counts simple.
        truncate = faults_apply and replay._take_fault(path, ("truncate",)) is not None
        slow = replay._take_fault(path, ("slow",)) if faults_apply else None
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if truncate:
            self.send_header("Connection", "close")
        self.end_headers()
        if truncate:
            body = body[: len(body) // 2]
            self.close_connection = True
        size = slow.chunk_size if slow else max(len(body), 1)
        chunks = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
        for i, chunk in enumerate(chunks):
            if i == len(chunks) - 1:
                self._leave(replay)
            self.wfile.write(chunk)
            self.wfile.flush()
            if slow and i < len(chunks) - 1 and replay._stop.wait(slow.seconds_per_chunk):
                self.close_connection = True
                return


def _range_answer(data: bytes, range_header: str | None):
    total = len(data)
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", (range_header or "").strip())
    if not match:  # no Range, or a form this server does not speak (RFC 9110: ignore it)
        return 200, {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}, data
    start = int(match.group(1))
    end = min(int(match.group(2)) if match.group(2) else total - 1, total - 1)
    if start >= total or end < start:
        return 416, {"Content-Range": f"bytes */{total}"}, b""
    headers = {"Content-Type": "application/octet-stream", "Content-Range": f"bytes {start}-{end}/{total}"}
    return 206, headers, data[start : end + 1]


# -- the CDX server --------------------------------------------------------------------------


def _cdx_answer(lines: list[tuple[str, dict]], query: dict[str, list[str]], default_page_size: int):
    url = query.get("url", [""])[0]
    match_type = query.get("matchType", [None])[0]
    filters = [_cdx_filter(f) for f in query.get("filter", [])]
    low = query.get("from", [""])[0].ljust(14, "0")
    high = query.get("to", [""])[0].ljust(14, "9") if "to" in query else "9" * 14
    selected = [
        text
        for text, capture in lines
        if _url_matches(url, match_type, capture.get("url", ""))
        and all(keep(capture) for keep in filters)
        and low <= capture.get("timestamp", "").ljust(14, "0") <= high
    ]
    if "limit" in query:
        selected = selected[: int(query["limit"][0])]
    page_size = int(query.get("pageSize", [default_page_size])[0])
    no_captures = (
        404,
        {"Content-Type": "application/json"},
        json.dumps({"message": f"No Captures found for: {url}"}).encode(),
    )
    if not selected:
        return no_captures
    pages = math.ceil(len(selected) / page_size)
    if query.get("showNumPages", [""])[0] == "true":
        info = {"pages": pages, "pageSize": page_size, "blocks": len(selected)}
        return 200, {"Content-Type": "application/json"}, json.dumps(info).encode()
    if "page" in query:
        page = int(query["page"][0])
        selected = selected[page * page_size : (page + 1) * page_size]
        if not selected:
            return no_captures
    return 200, {"Content-Type": "text/x-ndjson"}, "".join(line + "\n" for line in selected).encode()


def _url_key(url: str) -> str:
    return re.sub(r"^[a-z][a-z0-9+.-]*://", "", url.lower()).removeprefix("www.")


def _url_matches(pattern: str, match_type: str | None, url: str) -> bool:
    key = _url_key(url)
    host = key.split("/", 1)[0]
    if pattern.startswith("*."):
        return host == pattern[2:].lower() or host.endswith("." + pattern[2:].lower())
    if pattern.endswith("*"):
        return key.startswith(_url_key(pattern[:-1]))
    want = _url_key(pattern)
    if match_type == "prefix":
        return key.startswith(want)
    if match_type == "host":
        return host == want.split("/", 1)[0]
    if match_type == "domain":
        domain = want.split("/", 1)[0]
        return host == domain or host.endswith("." + domain)
    return key == want or key == want.rstrip("/") or key.rstrip("/") == want


def _cdx_filter(spec: str):
    invert = spec.startswith("!")
    spec = spec.lstrip("!")
    mode = spec[0] if spec[:1] in ("=", "~") else "regex"
    field, _, value = spec.lstrip("=~").partition(":")

    def keep(capture: dict) -> bool:
        actual = str(capture.get(field, ""))
        if mode == "=":
            hit = actual == value
        elif mode == "~":
            hit = value in actual
        else:
            hit = re.match(value, actual) is not None  # pywb: a regex anchored at the start
        return hit != invert

    return keep


@pytest.fixture
def cc_server():
    with ReplayServer() as server:
        yield server


# -- the columnar index ----------------------------------------------------------------------


def _columnar_schema():
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "integer": pa.int32(),
        "short": pa.int16(),
        "long": pa.int64(),
        # Spark writes timestamps as microseconds; the schema file only says "timestamp".
        "timestamp": pa.timestamp("us", tz="UTC"),
    }
    spec = json.loads((COMMONCRAWL_DATA / "cc_index_schema_flat.json").read_text())
    return pa.schema(
        [pa.field(f["name"], types[f["type"]], nullable=f.get("nullable", True)) for f in spec["fields"]]
    )


def _complete_row(row: dict[str, Any]) -> dict[str, Any]:
    """Fill the non-nullable columns a test did not care to give, from the URL and filename."""
    url = urlsplit(row["url"])
    host = url.hostname or ""
    filled = {
        "url_surtkey": ",".join(reversed(host.removeprefix("www.").split("."))) + ")" + (url.path or "/"),
        "url_host_name": host,
        "url_host_tld": host.rsplit(".", 1)[-1] if "." in host else None,
        "url_host_name_reversed": ".".join(reversed(host.split("."))),
        "url_protocol": url.scheme,
        "url_path": url.path or "/",
        "url_query": url.query or None,
        "warc_segment": row.get("warc_filename", "").split("/segments/")[-1].split("/")[0],
        "subset": "warc",
    }
    return {**filled, **row}


def write_columnar_index_fixture(path, rows: list[dict[str, Any]]) -> list[Path]:
    """Write ``rows`` as a small columnar index with the real schema's types (see module doc)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _columnar_schema()
    rows = [_complete_row(r) for r in rows]
    unknown = {k for r in rows for k in r} - set(schema.names)
    if unknown:
        raise ValueError(f"not columns of the columnar index: {sorted(unknown)}")
    path = Path(path)
    if path.suffix == ".parquet":
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
        return [path]
    # The real bucket keeps crawl and subset in the path only.
    file_schema = pa.schema([f for f in schema if f.name not in ("crawl", "subset")])
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["crawl"], row["subset"]), []).append(row)
    written = []
    for (crawl, subset), group in sorted(groups.items()):
        target = path / f"crawl={crawl}" / f"subset={subset}" / "part-00000.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        stripped = [{k: v for k, v in r.items() if k not in ("crawl", "subset")} for r in group]
        pq.write_table(pa.Table.from_pylist(stripped, schema=file_schema), target)
        written.append(target)
    return written


@pytest.fixture
def write_columnar_index():
    return write_columnar_index_fixture


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory) -> Path:
    """The bundled sample run once per session (minutes with Ray, so shared); copy it to change it.
    `audit` writes its reports into RUN_DIR/audit/, which the run-level hashes leave out."""
    run = tmp_path_factory.mktemp("sample") / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--run-dir", str(run)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if proc.returncode != 0:
        raise AssertionError(f"sample run failed, exit {proc.returncode}:\n{proc.stderr[-4000:]}")
    return run
