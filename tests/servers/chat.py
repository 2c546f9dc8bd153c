"""A local OpenAI-compatible chat-completions server, shaped like vLLM's (127.0.0.1, OS-chosen port).

``POST /v1/chat/completions`` answers in Japanese. Without ``"stream": true``: one compact JSON
object ``{"id": "chatcmpl-<n>", "object": "chat.completion", "created", "model", "choices":
[{"index": 0, "message": {"role": "assistant", "content", "refusal", "tool_calls": [],
"reasoning_content": null}, "logprobs": null, "finish_reason", "stop_reason": null}], "usage",
"prompt_logprobs": null}``. With ``"stream": true``: ``text/event-stream`` in chunked transfer
encoding, one ``data: {json}\\n\\n`` event per HTTP chunk, in the order vLLM sends them: a first
chunk whose delta is ``{"role": "assistant", "content": ""}``, then content deltas of
``stream_chunk_chars`` characters, the last one carrying ``finish_reason`` and ``stop_reason``,
then, if ``stream_options.include_usage`` is true, a chunk with ``"choices": []`` and the usage,
then ``data: [DONE]``. ``model`` echoes the request's model; ``id`` counts up per server.

Usage figures are characters, not tokens: ``prompt_tokens`` is the number of characters of all
string message contents, ``completion_tokens`` the characters of the reply. ``max_model_len``
(default 4096 "tokens", i.e. characters) is checked like vLLM does, against prompt plus
``max_tokens``, with a 400 in vLLM's current error shape ``{"error": {"message", "type", "param",
"code"}}``; the message is written after vLLM's wording, not captured from a live server. So is
the 400 for a body that is not JSON or lacks ``model``/``messages``. Other paths get FastAPI's
``404 {"detail": "Not Found"}``.

Configuration: ``reply(request_json) -> (content, finish_reason)`` or ``(content, finish_reason,
refusal)`` (default :func:`default_reply`: the paragraph below, cut to ``max_tokens`` characters
with ``finish_reason`` "length"); ``delay_seconds`` before answering (settable any time);
``fail_next(status, times=1, retry_after=None, body=None)`` answers the next ``times`` requests
with ``status`` first (``body``: bytes or str sent as text/plain, a dict sent as JSON, or a
callable of the :class:`LoggedRequest` returning one of those; default an OpenAI-style error
body); ``cut_next_stream(times=1, garble=False)`` ends the next streams without the usage chunk
and ``[DONE]`` (the chunked encoding is closed properly, so the HTTP exchange is complete), or
with ``garble`` sends an event that is not JSON before the rest. A refusal is sent as
``message.refusal`` / a ``delta.refusal`` chunk as OpenAI does (vLLM sends none).

Observation: ``requests`` lists :class:`LoggedRequest` (method, path, raw query, headers, parsed
JSON body, raw body, arrival time from ``time.monotonic()``), logged on arrival; ``in_flight`` and
``max_in_flight`` count a request from its arrival until just before its last bytes are written.
The server sets TCP_NODELAY (``disable_nagle_algorithm``) and a listen backlog of 256 so that 64
clients connecting at once are not dropped by the default backlog of 5.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

# The first paragraph of the article 梅雨 as it appears in the JSQuAD v1.3 valid split
# (yahoojapan/JGLUE datasets/jsquad-v1.3/valid-v1.3.json; the shared copy is
# /work/shared/data/wikipedia_paragraphs_jsquad/jsquad_valid_wikipedia_paragraphs.jsonl, line 1),
# with its "梅雨 [SEP] " prefix dropped. Japanese Wikipedia text by Wikipedia contributors,
# https://ja.wikipedia.org/wiki/梅雨, licensed CC BY-SA 4.0 (the licence text is in the same folder).
PARAGRAPH = (
    "梅雨（つゆ、ばいう）は、北海道と小笠原諸島を除く日本、朝鮮半島南部、中国の南部から長江流域にかけての"
    "沿海部、および台湾など、東アジアの広範囲においてみられる特有の気象現象で、5月から7月にかけて来る"
    "曇りや雨の多い期間のこと。雨季の一種である。"
)

Reply = Callable[[dict], tuple]


def default_reply(request: dict) -> tuple[str, str]:
    """:data:`PARAGRAPH`, cut to ``max_tokens`` characters ("length") if that is fewer."""
    limit = request.get("max_tokens") or request.get("max_completion_tokens")
    if isinstance(limit, int) and limit < len(PARAGRAPH):
        return PARAGRAPH[:limit], "length"
    return PARAGRAPH, "stop"


def prompt_characters(request: dict) -> int:
    return sum(len(m["content"]) for m in request.get("messages", []) if isinstance(m.get("content"), str))


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str  # without the query string
    query: str  # the raw query string, "" if none
    headers: dict[str, str]
    body: Any  # the parsed JSON body; None if it was not JSON
    raw: bytes
    time: float  # time.monotonic() at arrival


@dataclass
class _Fault:
    kind: str  # fail | cut | garble
    times: int
    status: int = 0
    retry_after: str | None = None
    body: Any = None


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _error_body(message: str, status: int, error_type: str = "BadRequestError") -> dict:
    return {"error": {"message": message, "type": error_type, "param": None, "code": status}}


class ChatServer:
    """See the module docstring. Use as a context manager or call ``close()``."""

    def __init__(
        self,
        *,
        reply: Reply | None = None,
        delay_seconds: float = 0.0,
        max_model_len: int = 4096,
        stream_chunk_chars: int = 4,
    ) -> None:
        self.reply = reply or default_reply
        self.delay_seconds = delay_seconds
        self.max_model_len = max_model_len
        self.stream_chunk_chars = stream_chunk_chars
        self._faults: list[_Fault] = []
        self._log: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._in_flight = 0
        self._max_in_flight = 0
        self._counter = 0
        self._stop = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.chat = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    def fail_next(self, status: int, times: int = 1, retry_after: Any = None, body: Any = None) -> None:
        value = None if retry_after is None else str(retry_after)
        with self._lock:
            self._faults.append(_Fault("fail", times, status, value, body))

    def cut_next_stream(self, times: int = 1, garble: bool = False) -> None:
        with self._lock:
            self._faults.append(_Fault("garble" if garble else "cut", times))

    def close(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- used by the handler ---------------------------------------------------------------------

    def _take_fault(self, kinds: tuple[str, ...]) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def _arrive(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _next_id(self) -> str:
        with self._lock:
            self._counter += 1
            return f"chatcmpl-{self._counter}"


class _Server(ThreadingHTTPServer):
    request_queue_size = 256


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection pool is exercised
    disable_nagle_algorithm = True

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def _handle(self, method: str) -> None:
        chat: ChatServer = self.server.chat
        arrived = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        parts = urlsplit(self.path)
        entry = LoggedRequest(method, parts.path, parts.query, dict(self.headers), body, raw, arrived)
        chat._arrive(entry)
        self._left = False
        try:
            self._answer(chat, entry)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up; nothing to do
        finally:
            self._leave(chat)

    def _leave(self, chat: ChatServer) -> None:
        if not self._left:
            self._left = True
            chat._leave()

    # -- what to answer --------------------------------------------------------------------------

    def _answer(self, chat: ChatServer, entry: LoggedRequest) -> None:
        fault = chat._take_fault(("fail",))
        if fault is not None:
            body = fault.body(entry) if callable(fault.body) else fault.body
            if body is None:
                body = _error_body(f"injected HTTP {fault.status}", fault.status, "InjectedError")
            if isinstance(body, (dict, list)):
                content_type, data = "application/json", _compact(body)
            else:
                content_type = "text/plain; charset=utf-8"
                data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            self._send(chat, fault.status, content_type, data, headers)
            return
        if entry.method != "POST" or entry.path != "/v1/chat/completions":
            self._send(chat, 404, "application/json", b'{"detail":"Not Found"}')
            return
        request = entry.body
        problem = _invalid(request, entry.raw)
        if problem is None:
            prompt = prompt_characters(request)
            wanted = request.get("max_tokens") or 0
            if isinstance(wanted, int) and prompt + wanted > chat.max_model_len:
                problem = (
                    f"This model's maximum context length is {chat.max_model_len} tokens. However, you"
                    f" requested {prompt + wanted} tokens ({prompt} in the messages, {wanted} in the"
                    " completion). Please reduce the length of the messages or completion."
                )
        if problem is not None:
            self._send(chat, 400, "application/json", _compact(_error_body(problem, 400)))
            return
        if chat.delay_seconds > 0 and chat._stop.wait(chat.delay_seconds):
            self.close_connection = True
            return
        content, finish_reason, *rest = chat.reply(request)
        refusal = rest[0] if rest else None
        prompt = prompt_characters(request)
        usage = {
            "prompt_tokens": prompt,
            "total_tokens": prompt + len(content),
            "completion_tokens": len(content),
        }
        common = {"id": chat._next_id(), "created": int(time.time()), "model": request["model"]}
        if request.get("stream") is True:
            include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
            self._stream(chat, common, content, finish_reason, refusal, usage if include_usage else None)
            return
        message = {
            "role": "assistant",
            "reasoning_content": None,
            "content": content or None,
            "refusal": refusal,
            "tool_calls": [],
        }
        answer = {
            "id": common["id"],
            "object": "chat.completion",
            "created": common["created"],
            "model": common["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish_reason,
                    "stop_reason": None,
                }
            ],
            "usage": {**usage, "prompt_tokens_details": None},
            "prompt_logprobs": None,
        }
        self._send(chat, 200, "application/json", _compact(answer))

    def _stream(self, chat, common, content, finish_reason, refusal, usage) -> None:
        fault = chat._take_fault(("cut", "garble"))
        head = {"id": common["id"], "object": "chat.completion.chunk", **common}

        def chunk(delta: dict, finish: Any = None, last: bool = False) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            if last:
                choice["stop_reason"] = None
            return b"data: " + _compact({**head, "choices": [choice]}) + b"\n\n"

        size = max(1, chat.stream_chunk_chars)
        pieces = [content[i : i + size] for i in range(0, len(content), size)]
        events = [chunk({"role": "assistant", "content": ""})]
        if fault is not None and fault.kind == "garble":
            events.append(b'data: {"id":"' + common["id"].encode() + b'","choices":[{"delta":\n\n')
        if refusal:
            events.append(chunk({"refusal": refusal}))
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            events.append(chunk({"content": piece}, finish_reason if last else None, last))
        if not pieces:
            events.append(chunk({}, finish_reason, True))
        if fault is not None and fault.kind == "cut":
            events = events[: max(1, len(events) // 2)]
        else:
            if usage is not None:
                events.append(b"data: " + _compact({**head, "choices": [], "usage": usage}) + b"\n\n")
            events.append(b"data: [DONE]\n\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in events:
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()
        self._leave(chat)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _send(self, chat, status: int, content_type: str, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self._leave(chat)
        self.wfile.write(body)
        self.wfile.flush()


def _invalid(request: Any, raw: bytes) -> str | None:
    """A 400 message for a body the server cannot use, else None."""
    if not isinstance(request, dict):
        return f"request body is not a JSON object: {raw[:80]!r}"
    if not isinstance(request.get("model"), str):
        return "Field required: model"
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return "Field required: messages (a non-empty list of objects)"
    return None
