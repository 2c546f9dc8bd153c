"""A replay server for e-Gov 法令API v2 (127.0.0.1, OS-chosen port).

``routes[path] = (status, content_type, body)`` or a callable of the parsed query returning that;
``fail_next(path, status, times, body)`` answers the next ``times`` requests to ``path`` with
``status`` first. ``requests`` logs ``(path, query)`` with the query parsed to lists, and
``max_in_flight`` the most requests handled at once. ``serve_laws(laws)`` routes ``/laws`` and
``/law_data/{revision id}`` for a list of ``(law_info, revision_info, Law XML bytes)``; the
``law_data_response`` wrapper around the real law XML is built here, in the shape of the
official XML example.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape


class ReplayServer:
    def __init__(self) -> None:
        self.in_flight = self.max_in_flight = 0
        self.routes: dict[str, object] = {}
        self.failures: dict[str, list[tuple[int, bytes]]] = {}
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_GET(self):
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer()
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _answer(self):
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                with server.lock:
                    server.requests.append((parts.path, query))
                    pending = server.failures.get(parts.path)
                    failure = pending.pop(0) if pending else None
                if failure is not None:
                    status, body = failure
                    self._send(status, "application/json", body)
                    return
                route = server.routes.get(parts.path)
                if route is None:
                    self._send(404, "application/json", b'{"code": "404003", "message": "not in replay"}')
                    return
                status, content_type, body = route(query) if callable(route) else route
                self._send(status, content_type, body)

            def _send(self, status, content_type, body):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/2"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def fail_next(self, path: str, status: int, times: int = 1, body: bytes = b"") -> None:
        self.failures.setdefault(path, []).extend([(status, body)] * times)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def serve_laws(self, laws: list[tuple[dict, dict, bytes]]) -> None:
        listing = {
            "total_count": len(laws),
            "count": len(laws),
            "next_offset": None,
            "laws": [
                {"law_info": info, "revision_info": rev, "current_revision_info": rev}
                for info, rev, _ in laws
            ],
        }
        self.routes["/api/2/laws"] = (
            200,
            "application/json",
            json.dumps(listing, ensure_ascii=False).encode(),
        )
        for info, rev, law_xml in laws:
            body = law_data_xml(info, rev, law_xml)
            self.routes[f"/api/2/law_data/{rev['law_revision_id']}"] = (200, "application/xml", body)


def law_data_xml(info: dict, revision: dict, law_xml: bytes) -> bytes:
    """A ``law_data_response`` (XML form) around a law's 法令標準XML."""
    law = law_xml.decode("utf-8")
    if law.startswith("<?xml"):
        law = law.split("?>", 1)[1]

    def fields(values: dict) -> str:
        return "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in values.items() if v is not None)

    return (
        '<?xml version="1.0" encoding="UTF-8"?><law_data_response>'
        f"<law_info>{fields(info)}</law_info><revision_info>{fields(revision)}</revision_info>"
        f"<law_full_text>{law}</law_full_text></law_data_response>"
    ).encode("utf-8")
