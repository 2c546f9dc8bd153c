"""A client for OpenAI-compatible chat-completions servers (vLLM, SGLang, llama.cpp server).

Wire facts this module relies on:

- ``POST {base_url}/chat/completions`` with a JSON body ``{"model", "messages", <sampling keys>}``;
  ``base_url`` ends in ``/v1`` as vLLM, SGLang and llama.cpp serve it. The key, if any, goes in
  ``Authorization: Bearer <key>`` and nowhere else.
- Non-streaming: one JSON object ``{"id", "model", "choices": [{"index", "message": {"role",
  "content", "refusal"?}, "finish_reason"}], "usage": {"prompt_tokens", "completion_tokens",
  "total_tokens"}}``. ``message.content`` is null when the model produced none (then ``""``
  here). Only ``choices[0]`` is read, so a request asking for ``n`` > 1 is refused.
- Streaming (``"stream": true`` plus ``"stream_options": {"include_usage": true}``): Server-Sent
  Events, one ``data: {json}`` per chunk, ``data: [DONE]`` last. vLLM sends a first chunk whose
  ``delta`` is ``{"role": "assistant", "content": ""}``, then ``{"content": "…"}`` deltas, the
  ``finish_reason`` on the chunk that ends the choice, then (asked for by ``include_usage``) a
  chunk with ``"choices": []`` and the ``usage``. With ``continuous_usage_stats`` every chunk
  carries a running usage: the last one is kept. A stream that ends without ``[DONE]``, or with
  an event that is not JSON, is a :class:`SourceError` naming the URL (not retried: the HTTP
  exchange itself completed; a connection cut mid-stream is retried by :class:`HttpClient`).
- Errors: OpenAI, llama.cpp and current vLLM answer ``{"error": {"message", "type", "param",
  "code"}}``; older vLLM answered ``{"object": "error", "message", "type", "param", "code"}`` at the
  top level; an API-key check may answer ``{"error": "<text>"}``. A 4xx with one of these bodies
  is a :class:`ChatError` carrying the message verbatim; the same shape inside a stream (vLLM
  sends ``data: {"error": {...}}`` then ``[DONE]`` when generation fails midway) or in a 200 is a
  :class:`ChatError` too. A 4xx without such a body is an :class:`HttpError` (``http_<status>``).
- 429 (honouring ``Retry-After``), 5xx, timeouts and broken connections are retried with backoff
  by :class:`HttpClient`; a final failure is an :class:`HttpError`. A retried request is
  generated again: chat completions are not idempotent, only repeatable.

Secrets: the API key, a password or user name in the URL, and the values of query parameters
that look like credentials are replaced by ``[redacted]`` wherever they would otherwise surface:
exception messages (always) and returned objects (``ChatResult.raw``, ``content``, … for secrets
of at least 8 characters, so that a password like ``pw`` does not eat into generated text; then
``raw`` is no longer byte-for-byte what arrived, which only happens if a server echoes a secret).
``repr`` shows neither; errors name the endpoint by :func:`public_url`.

>>> public_url("https://user:pw@llm.example/v1?api_key=sk-123&api-version=2024-06-01")
'https://llm.example/v1?api-version=2024-06-01'
>>> request = ChatRequest("m", ({"role": "user", "content": "こんにちは"},), {"temperature": 0})
>>> request.body(stream=False).decode()
'{"messages":[{"content":"こんにちは","role":"user"}],"model":"m","temperature":0}'
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Self
from urllib.parse import unquote, urlsplit, urlunsplit

from sources.errors import SourceError
from sources.http_client import HttpClient, HttpError, HttpResponse, RetryPolicy

REDACTED = "[redacted]"
# Shorter secrets are redacted from error messages only (see the module docstring).
_MIN_REDACTED_IN_BODIES = 8
# How much of an unexpected body goes into an error message.
_EXCERPT_CHARS = 200
# Keys the client sets itself; a request's sampling may not set them.
_RESERVED_KEYS = frozenset({"model", "messages", "stream", "stream_options"})
# Query parameter names (lower case, "-" and "." read as "_") that carry credentials.
_CREDENTIAL_PARAM = re.compile(
    r"(?:^|_)(?:api_?)?(?:key|token|secret|password|passwd|pwd|sig|signature|auth|authorization|"
    r"credentials?)$|^code$"
)
_SSE_LINE = re.compile(r"\r\n|\r|\n")  # not str.splitlines: U+2028 and friends may be in the JSON


def public_url(url: str) -> str:
    """``url`` without ``user:password@``, without query parameters that look like credentials
    (``key``, ``api_key``, ``token``, ``access_token``, ``secret``, ``sig``, … in any case, ``-``
    or ``_``) and without a fragment: safe to put in a manifest or an error message. The other
    parameters keep their order and their encoding.

    >>> public_url("http://127.0.0.1:8000/v1?token=abc&x=1#frag")
    'http://127.0.0.1:8000/v1?x=1'
    >>> public_url("https://AKIA@llm.example:8443/v1")
    'https://llm.example:8443/v1'
    """
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    kept = [p for p in parts.query.split("&") if p and not _is_credential_param(p)]
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(kept), ""))


def _is_credential_param(pair: str) -> bool:
    name = unquote(pair.partition("=")[0]).lower().replace("-", "_").replace(".", "_")
    return _CREDENTIAL_PARAM.search(name) is not None


def _url_secrets(url: str) -> list[str]:
    """The secret strings of a URL (user, password, credential query values), raw and decoded."""
    parts = urlsplit(url)
    found: list[str] = []
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        found += [s for s in userinfo.split(":", 1) if s]
    for pair in parts.query.split("&"):
        if _is_credential_param(pair):
            value = pair.partition("=")[2]
            found += [v for v in (value, unquote(value), unquote(value.replace("+", " "))) if v]
    return found


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to ask for. ``messages`` are ``{"role", "content"}`` mappings (copied,
    so changing the caller's dicts later changes nothing here); ``sampling`` holds the other body
    keys (``temperature``, ``top_p``, ``max_tokens``, ``seed``, ``stop``, …) as the server expects
    them. :meth:`sha256` is the request's identity: the same for the same request whether it is
    sent streaming or not, different as soon as any key or value differs."""

    model: str
    messages: tuple[Mapping[str, str], ...]
    sampling: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model must be a non-empty string, got {self.model!r}")
        if isinstance(self.messages, (str, bytes, Mapping)) or not isinstance(self.messages, Iterable):
            raise ValueError(f"messages must be a sequence of mappings, got {type(self.messages).__name__}")
        messages = tuple(self.messages)
        if not messages:
            raise ValueError("messages is empty: a chat completion needs at least one message")
        for i, message in enumerate(messages):
            if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
                raise ValueError(f"messages[{i}] must be a mapping with a string 'role', got {message!r}")
        if not isinstance(self.sampling, Mapping):
            raise ValueError(f"sampling must be a mapping, got {type(self.sampling).__name__}")
        sampling = dict(self.sampling)
        bad_keys = [k for k in sampling if not isinstance(k, str)]
        if bad_keys:
            raise ValueError(f"sampling keys must be strings, got {bad_keys!r}")
        reserved = sorted(_RESERVED_KEYS & set(sampling))
        if reserved:
            raise ValueError(f"sampling must not set {reserved}: the request and the client set them")
        if sampling.get("n") not in (None, 1):
            raise ValueError(
                f"n={sampling['n']!r}: only one choice per request is read, ask n=1 or leave n out"
            )
        # Deep copies: a caller editing a message or a ``stop`` list later must not change the identity.
        object.__setattr__(self, "messages", tuple(copy.deepcopy(dict(m)) for m in messages))
        object.__setattr__(self, "sampling", copy.deepcopy(sampling))
        try:
            self.body(stream=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"request is not JSON-serializable: {err}") from None

    def body(self, *, stream: bool) -> bytes:
        """The exact JSON sent: sorted keys, no spaces, non-ASCII as is, UTF-8; NaN is refused.
        With ``stream``, ``"stream": true`` and ``"stream_options": {"include_usage": true}``
        are added; without, neither key is sent (the servers' default is not to stream)."""
        payload: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in self.messages]}
        payload.update(self.sampling)
        if stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        return json.dumps(
            payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")

    def sha256(self) -> str:
        """Hex SHA-256 of ``body(stream=False)``."""
        return hashlib.sha256(self.body(stream=False)).hexdigest()


@dataclass(frozen=True)
class ChatResult:
    """A server's answer to one :class:`ChatRequest`. ``model`` is what the server reports;
    ``content`` the assistant text (``""`` if none); ``usage`` the integer fields of ``usage``
    (None if the server sent none); ``raw`` the response body as received (the SSE text when
    streaming); ``retrieved_at`` when it had fully arrived (ISO 8601, UTC)."""

    response_id: str | None
    model: str | None
    content: str
    finish_reason: str | None
    refusal: str | None
    usage: Mapping[str, int] | None
    raw: bytes = field(repr=False)
    retrieved_at: str


class ChatError(SourceError):
    """An error answer in the OpenAI shape. ``message`` is the server's message verbatim (secrets
    redacted), ``status`` the HTTP status (None for an error event inside a stream), ``type`` and
    ``code`` as the server sent them (``code`` may be a string or a number).
    ``str(err)`` is ``"<url>: <message> (type …, code …, HTTP …)"``."""

    def __init__(
        self,
        uri: str,
        problem: str,
        status: int | None = None,
        error_type: str | None = None,
        code: str | int | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(uri, problem)
        self.status = status
        self.type = error_type
        self.code = code
        self.message = message if message is not None else problem

    def __reduce__(self):
        return (type(self), (self.uri, self.problem, self.status, self.type, self.code, self.message))


class ChatClient:
    """Blocking, thread-safe chat completions against one server.

    ``concurrency`` bounds the requests in flight to the server, across :meth:`complete_many`
    and any threads calling :meth:`complete`. ``timeout_seconds`` bounds one attempt (connection,
    each read, and the whole answer, a stream included); ``retry`` defaults to
    :class:`RetryPolicy` ``()``; ``sleep`` receives every backoff wait (a test passes a recorder).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_seconds: float = 120.0,
        retry: RetryPolicy | None = None,
        concurrency: int = 8,
        stream: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not isinstance(base_url, str):
            raise TypeError(f"base_url must be a string, got {type(base_url).__name__}")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"base_url must start with http:// or https:// and name a host (e.g."
                f" http://127.0.0.1:8000/v1), got {public_url(base_url)!r}"
            )
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be an integer of at least 1, got {concurrency!r}")
        if not timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds!r}")
        if api_key is not None:
            if not isinstance(api_key, str) or not api_key:
                raise ValueError("api_key must be a non-empty string or None")
            if not api_key.isascii() or not api_key.isprintable() or any(c.isspace() for c in api_key):
                raise ValueError("api_key must be printable ASCII without spaces (it goes in a header)")
            if "@" in parts.netloc:
                # requests would turn the URL's user:password into Basic auth over the Bearer key.
                raise ValueError("give either api_key or user:password@ in base_url, not both")
        self.base_url = public_url(base_url)
        self.stream = bool(stream)
        self.concurrency = concurrency
        path = parts.path.rstrip("/") + "/chat/completions"
        self._endpoint = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
        self.url = public_url(self._endpoint)
        self._secrets = sorted(
            {s for s in [api_key or "", *_url_secrets(base_url)] if s}, key=len, reverse=True
        )
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if self.stream else "application/json",
        }
        if api_key is not None:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._retry = retry if retry is not None else RetryPolicy()
        # Every 4xx the policy does not retry is read whole, so its error body can be parsed.
        self._expect = (200,) + tuple(s for s in range(400, 500) if s not in self._retry.retry_statuses)
        self._http = HttpClient(
            timeout_seconds=timeout_seconds,
            retry=self._retry,
            max_connections_per_host=concurrency,
            sleep=sleep,
        )
        self._closed = threading.Event()

    def __repr__(self) -> str:
        authorized = "Authorization" in self._headers
        return (
            f"ChatClient({self.base_url!r}, stream={self.stream}, concurrency={self.concurrency},"
            f" api_key={'set' if authorized else 'none'})"
        )

    # -- one request -----------------------------------------------------------------------------

    def complete(self, request: ChatRequest) -> ChatResult:
        """Send ``request`` and wait for the whole answer. Raises :class:`ChatError` for an error
        answer, :class:`HttpError` when retries are exhausted or not worth it, and
        :class:`SourceError` for an answer that cannot be read."""
        if not isinstance(request, ChatRequest):
            raise TypeError(f"complete() takes a ChatRequest, got {type(request).__name__}")
        if self._closed.is_set():
            raise RuntimeError("ChatClient is closed")
        response, failure = None, None
        try:
            response = self._http.post(
                self._endpoint, request.body(stream=self.stream), headers=self._headers, expect=self._expect
            )
        except HttpError as err:
            # Re-raised outside this block so that no exception chain keeps the original message.
            failure = HttpError(self.url, self._redact(err.problem), err.reason, err.status, err.attempts)
        if failure is not None:
            raise failure
        assert response is not None
        retrieved_at = datetime.now(UTC).isoformat()
        raw = self._redact_bytes(response.content)
        if response.status != 200:
            raise self._error_answer(response.status, raw, response.attempts)
        if self.stream:
            result = self._parse_stream(raw, retrieved_at, response)
        else:
            result = self._parse_json(raw, retrieved_at)
        # A secret split over stream deltas is not in ``raw`` as such, but is in the joined text.
        texts = {"content": result.content, "refusal": result.refusal, "model": result.model}
        redacted = {k: self._redact(v, _MIN_REDACTED_IN_BODIES) for k, v in texts.items() if v}
        return replace(result, **redacted)

    # -- many requests -----------------------------------------------------------------------------

    def complete_many(
        self, requests: Iterable[ChatRequest]
    ) -> Iterator[tuple[ChatRequest, ChatResult | SourceError]]:
        """``(request, result or error)`` for each request, in input order, with at most
        ``concurrency`` in flight. A request that fails yields its :class:`SourceError` and the
        others go on; anything else (a bug, a wrong type) is raised. ``requests`` is read lazily,
        a bounded window ahead of what has been yielded, so it can be a long generator. Closing
        the iterator early cancels what has not started and waits for what has."""
        window = 2 * self.concurrency
        pending: deque[tuple[ChatRequest, Future]] = deque()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="chat-client") as pool:
            try:
                for request in requests:
                    pending.append((request, pool.submit(self._complete_or_error, request)))
                    while len(pending) >= window or (pending and pending[0][1].done()):
                        request_done, future = pending.popleft()
                        yield request_done, future.result()
                while pending:
                    request_done, future = pending.popleft()
                    yield request_done, future.result()
            finally:
                for _, future in pending:
                    future.cancel()

    def _complete_or_error(self, request: ChatRequest) -> ChatResult | SourceError:
        try:
            return self.complete(request)
        except SourceError as err:
            return err

    # -- housekeeping ------------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """The :class:`HttpClient` counters (attempts, retries, statuses, bytes received)."""
        return self._http.stats()

    def close(self) -> None:
        self._closed.set()
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- reading answers ---------------------------------------------------------------------------

    def _parse_json(self, raw: bytes, retrieved_at: str) -> ChatResult:
        try:
            data = json.loads(raw)
        except ValueError as err:
            raise SourceError(self.url, f"answer is not JSON ({err}); it starts {_excerpt(raw)!r}") from None
        if not isinstance(data, dict):
            raise SourceError(self.url, f"answer is a JSON {type(data).__name__}, expected an object")
        self._raise_error_object(data, 200)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise SourceError(self.url, f"no 'choices' in the answer, which starts {_excerpt(raw)!r}")
        choice = choices[0]
        message = choice.get("message")
        if message is None:
            message = {}
        if not isinstance(message, dict):
            raise SourceError(
                self.url, f"choices[0].message is a {type(message).__name__}, expected an object"
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise SourceError(
                self.url, f"choices[0].message.content is a {type(content).__name__}, expected a string"
            )
        return ChatResult(
            response_id=_str_or_none(data.get("id")),
            model=_str_or_none(data.get("model")),
            content=content or "",
            finish_reason=_str_or_none(choice.get("finish_reason")),
            refusal=_str_or_none(message.get("refusal")),
            usage=_usage(data.get("usage")),
            raw=raw,
            retrieved_at=retrieved_at,
        )

    def _parse_stream(self, raw: bytes, retrieved_at: str, response: HttpResponse) -> ChatResult:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise SourceError(self.url, f"stream is not UTF-8 at byte {err.start}") from None
        response_id = model = finish_reason = None
        usage: Mapping[str, int] | None = None
        content: list[str] = []
        refusal: list[str] = []
        saw_choice = done = False
        events = 0
        for data in _sse_data(text.removeprefix("\ufeff")):
            events += 1
            if data.strip() == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                raise SourceError(
                    self.url, f"stream event {events} is not JSON: {_excerpt(data)!r}"
                ) from None
            if not isinstance(chunk, dict):
                raise SourceError(
                    self.url, f"stream event {events} is a JSON {type(chunk).__name__}, expected an object"
                )
            self._raise_error_object(chunk, None)
            response_id = response_id or _str_or_none(chunk.get("id"))
            model = model or _str_or_none(chunk.get("model"))
            if isinstance(chunk.get("usage"), dict):
                usage = _usage(chunk["usage"])  # the last one: the total with continuous usage stats
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                saw_choice = True
                delta = choice.get("delta") or {}
                if isinstance(delta, dict):
                    if isinstance(delta.get("content"), str):
                        content.append(delta["content"])
                    if isinstance(delta.get("refusal"), str):
                        refusal.append(delta["refusal"])
                if choice.get("finish_reason") is not None:
                    finish_reason = _str_or_none(choice["finish_reason"])
        if not done:
            content_type = response.headers.get("Content-Type", "none")
            raise SourceError(
                self.url,
                f"stream ended without 'data: [DONE]' after {events} events and {len(raw)} bytes"
                f" (Content-Type {content_type}); it ends {_excerpt(raw[-_EXCERPT_CHARS:])!r}",
            )
        if not saw_choice:
            raise SourceError(self.url, f"no 'choices' in any of the {events} stream events")
        return ChatResult(
            response_id=response_id,
            model=model,
            content="".join(content),
            finish_reason=finish_reason,
            refusal="".join(refusal) if refusal else None,
            usage=usage,
            raw=raw,
            retrieved_at=retrieved_at,
        )

    def _raise_error_object(self, data: dict, status: int | None) -> None:
        """Raise :class:`ChatError` if ``data`` is an error in one of the shapes servers send."""
        error = _error_fields(data)
        if error is not None:
            raise self._chat_error(status, *error)

    def _error_answer(self, status: int, raw: bytes, attempts: int) -> SourceError:
        """The exception for a 4xx answer (a status the retry policy left alone)."""
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        error = _error_fields(data) if isinstance(data, dict) else None
        if error is None:
            detail = f": {_excerpt(raw)}" if raw.strip() else ""
            return HttpError(
                self.url,
                f"HTTP {status} without an OpenAI-style error body{detail}",
                f"http_{status}",
                status,
                attempts,
            )
        return self._chat_error(status, *error)

    def _chat_error(self, status: int | None, message: str, error_type: str | None, code: Any) -> ChatError:
        message = self._redact(message)
        error_type = self._redact(error_type) if error_type is not None else None
        if isinstance(code, str):
            code = self._redact(code)
        elif not isinstance(code, int) or isinstance(code, bool):
            code = None
        details = [f"type {error_type}" if error_type else "", f"code {code}" if code is not None else ""]
        details.append(f"HTTP {status}" if status is not None else "in the stream")
        problem = f"{message} ({', '.join(d for d in details if d)})"
        return ChatError(self.url, problem, status=status, error_type=error_type, code=code, message=message)

    # -- secrets ---------------------------------------------------------------------------------

    def _redact(self, text: str, minimum: int = 1) -> str:
        for secret in self._secrets:
            if len(secret) >= minimum:
                text = text.replace(secret, REDACTED)
        return text

    def _redact_bytes(self, data: bytes) -> bytes:
        for secret in self._secrets:
            if len(secret) < _MIN_REDACTED_IN_BODIES:
                continue
            encoded = secret.encode("utf-8")
            if encoded in data:
                data = data.replace(encoded, REDACTED.encode())
        return data


def _sse_data(text: str) -> Iterator[str]:
    """The data of each Server-Sent Event in ``text`` (WHATWG rules: ``data:`` lines joined with
    ``\\n``, one space after the colon dropped, comments and other fields ignored). An event not
    closed by a blank line at the end of the body is still given, so that a missing last newline
    after ``[DONE]`` is tolerated and a cut JSON line is reported as unparseable."""
    data: list[str] = []
    for line in _SSE_LINE.split(text):
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def _error_fields(data: Any) -> tuple[str, str | None, Any] | None:
    """(message, type, code) of an error object in any shape in the module docstring, else None."""
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"], _str_or_none(error.get("type")), error.get("code")
    if isinstance(error, str) and "choices" not in data:
        return error, None, None
    if data.get("object") == "error" and isinstance(data.get("message"), str):
        return data["message"], _str_or_none(data.get("type")), data.get("code")
    return None


def _usage(value: Any) -> Mapping[str, int] | None:
    if not isinstance(value, dict):
        return None
    return {k: v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _excerpt(data: bytes | str) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "..."
