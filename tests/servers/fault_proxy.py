"""A reverse proxy on 127.0.0.1 that breaks HTTP answers on purpose, in front of any replay server.

One fault layer for every API the pipeline talks to (Common Crawl's data host, the Diet minutes API,
e-Gov), so the same table of faults is tried on each client. ``proxy.url_for(upstream_url)`` gives
the address to configure; requests are forwarded with their path, query, ``Range`` and
``User-Agent``, and the upstream answer (status, ``Content-Type``, ``Content-Range``, body) is
passed on unless a fault matches. ``proxy.add(prefix, kind, times=1, ...)`` breaks the next
``times`` requests whose path and query (``/api/meeting?issueID=...``) start with ``prefix``:

- ``status``: answer ``status`` (429, 503, ...) with ``Retry-After: retry_after`` if given;
- ``reset``: read the request, then close the socket with an RST (SO_LINGER 0), no answer;
- ``truncate``: the real Content-Length, half the body, then close;
- ``length_over``: a Content-Length 100 bytes larger than the body, the whole body, then close;
- ``length_under``: a Content-Length 100 bytes smaller than the body, the whole body, then close
  (a client that trusts the header gets a short body, as behind a broken middlebox);
- ``slow``: the body ``chunk_size`` bytes at a time, ``seconds_per_chunk`` apart (slow loris).

``proxy.log`` lists ``(path and query, fault kind or None)`` per request.
"""

from __future__ import annotations

import socket
import struct
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

FAULT_KINDS = ("status", "reset", "truncate", "length_over", "length_under", "slow")
PASSED_HEADERS = ("Content-Type", "Content-Range", "Retry-After")


@dataclass
class Fault:
    prefix: str
    kind: str
    times: int
    status: int = 503
    retry_after: str | None = None
    seconds_per_chunk: float = 0.5
    chunk_size: int = 64


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = f"{parts.scheme}://{parts.netloc}"
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.proxy = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url_for(self, upstream_url: str) -> str:
        """``upstream_url`` with the proxy's host and port instead of the upstream's."""
        parts = urlsplit(upstream_url)
        return self.url + parts.path + (f"?{parts.query}" if parts.query else "")

    def add(self, prefix: str, kind: str, times: int = 1, **options) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}: one of {FAULT_KINDS}")
        with self.lock:
            self.faults.append(Fault(prefix, kind, times, **options))

    def faults_served(self, kind: str | None = None) -> int:
        with self.lock:
            return sum(1 for _, k in self.log if k is not None and (kind is None or k == kind))

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def take(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times > 0 and path.startswith(fault.prefix):
                    fault.times -= 1
                    self.log.append((path, fault.kind))
                    return fault
            self.log.append((path, None))
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_GET(self):
        proxy: FaultProxy = self.server.proxy
        fault = proxy.take(self.path)
        if fault is not None and fault.kind == "reset":
            # SO_LINGER with a zero timeout makes close() send RST: the client sees a reset connection.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if fault is not None and fault.kind == "status":
            body = f"fault injected: HTTP {fault.status}\n".encode()
            headers = {"Content-Type": "text/plain"}
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            self._send(fault.status, headers, body, len(body))
            return
        status, headers, body = self._forward(proxy)
        try:
            if fault is None:
                self._send(status, headers, body, len(body))
            elif fault.kind == "truncate":
                self._send(status, headers, body[: len(body) // 2], len(body), close=True)
            elif fault.kind == "length_over":
                self._send(status, headers, body, len(body) + 100, close=True)
            elif fault.kind == "length_under":
                self._send(status, headers, body, max(len(body) - 100, 0), close=True)
            elif fault.kind == "slow":
                self._send(status, headers, body, len(body), trickle=fault, stop=proxy.stop)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up, as it should on a slow loris

    def _forward(self, proxy: FaultProxy) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(proxy.upstream + self.path)
        for name in ("Range", "User-Agent", "Accept"):
            if self.headers.get(name):
                request.add_header(name, self.headers[name])
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, headers, body = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as err:
            status, headers, body = err.code, err.headers, err.read()
        return status, {k: headers[k] for k in PASSED_HEADERS if headers.get(k)}, body

    def _send(self, status, headers, body, declared, *, close=False, trickle=None, stop=None):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(declared))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if trickle is None:
            self.wfile.write(body)
            self.wfile.flush()
            return
        for i in range(0, len(body), trickle.chunk_size):
            self.wfile.write(body[i : i + trickle.chunk_size])
            self.wfile.flush()
            if stop.wait(trickle.seconds_per_chunk):
                self.close_connection = True
                return
