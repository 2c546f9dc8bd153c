"""A polite HTTP client for the sources that fetch over the network (Common Crawl first).

One :class:`HttpClient` is shared by every thread of a worker. It keeps a pooled
``requests.Session``, allows at most ``max_connections_per_host`` requests in flight to any one
host, retries what is worth retrying (429, 5xx, timeouts, refused or reset connections, bodies
cut short) with exponential backoff and full jitter, honours ``Retry-After``, and counts what it
did. ``get`` (and ``post``) read the whole body, so a response is complete or an :class:`HttpError`
is raised.

Why not urllib3's ``Retry``: it retries statuses and connection errors, but not a body that ends
early (that happens after urllib3 has returned the response), it has no total deadline against a
server that trickles bytes, no per-host limit across threads, and its sleeps are invisible to a test.

>>> RetryPolicy().retry_statuses
(429, 500, 502, 503, 504)
"""

from __future__ import annotations

import hashlib
import http.client
import http.cookiejar
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Self
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from sources.errors import SourceError
from sources.warc import USER_AGENT

# Bytes asked of the socket per read: small enough that the deadline is checked often.
_READ_CHUNK = 64 * 1024
# How much of an error body goes into the message (a CDX server explains its 404 there).
_ERROR_BODY_EXCERPT = 300


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry. ``max_attempts`` counts the first try."""

    max_attempts: int = 5
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    retry_statuses: tuple[int, ...] = (429, 500, 502, 503, 504)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.backoff_base_seconds < 0 or self.backoff_max_seconds < 0:
            raise ValueError("backoff seconds must not be negative")

    def backoff_seconds(self, failed_attempts: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max, base * 2 ** (failed_attempts - 1))].

        Full jitter (rather than a fixed doubling) spreads out many workers that failed together,
        so they do not all come back at the same instant and overload the server again.
        """
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** (failed_attempts - 1))
        return rng.uniform(0.0, ceiling)


@dataclass(frozen=True)
class HttpResponse:
    """A complete response: every byte of the body has arrived."""

    url: str
    status: int
    headers: Mapping[str, str]  # case-insensitive, as requests gives them
    content: bytes = field(repr=False)
    attempts: int = 1  # 1 if the first try succeeded


class RequestSpacing:
    """One request at a time, at least ``pause_seconds`` between the end of one answer and the
    start of the next: ``with spacing: <one request>``. ``pause_first`` also pauses before the
    first request (another client, an earlier shard, may just have asked). The etiquette of the
    Diet minutes API, and a courtesy to e-Gov's; ``sleep`` and ``clock`` are injectable."""

    def __init__(
        self,
        pause_seconds: float,
        *,
        pause_first: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if pause_seconds < 0:
            raise ValueError(f"pause_seconds must not be negative, got {pause_seconds}")
        self.pause_seconds = pause_seconds
        self._sleep, self._clock = sleep, clock
        self._lock = threading.Lock()
        self._last_finished: float | None = clock() if pause_first else None

    def __enter__(self) -> Self:
        self._lock.acquire()
        if self._last_finished is not None:
            wait = self.pause_seconds - (self._clock() - self._last_finished)
            if wait > 0:
                self._sleep(wait)
        return self

    def __exit__(self, *exc_info) -> None:
        self._last_finished = self._clock()
        self._lock.release()


@dataclass(frozen=True)
class ResponsePage:
    """An API answer kept for provenance: the URL asked, the body's exact bytes, and when it
    arrived (ISO 8601, UTC). A document's raw_sha256 is taken of ``body``."""

    url: str
    body: bytes = field(repr=False)
    retrieved_at: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


class HttpError(SourceError):
    """A request that failed for good (after its retries, or at once if not worth retrying).

    ``reason`` is a short machine word: ``http_<status>``, ``timeout``, ``connection``,
    ``truncated_body``, ``too_large``, ``decode_error`` or ``bad_request``. ``status`` is the HTTP
    status of the last attempt, None when no response arrived.
    """

    def __init__(self, uri: str, problem: str, reason: str, status: int | None = None, attempts: int = 1):
        super().__init__(uri, problem)
        self.reason = reason
        self.status = status
        self.attempts = attempts

    def __reduce__(self):
        # SourceError pickles (uri, problem) only; keep the rest for Ray and multiprocessing.
        return (type(self), (self.uri, self.problem, self.reason, self.status, self.attempts))


class _AttemptFailed(Exception):
    """One attempt failed; ``retryable`` says whether another could succeed."""

    def __init__(
        self,
        reason: str,
        problem: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(problem)
        self.reason = reason
        self.problem = problem
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class HttpClient:
    """A pooled, thread-safe GET (and POST) client that retries politely and never floods one host.

    ``timeout_seconds`` bounds the connection, each socket read, and the whole attempt: a server
    that sends a byte every few seconds is cut off once the attempt has lasted that long.
    ``sleep`` is called for every backoff wait; a test passes a recorder instead of sleeping.
    """

    def __init__(
        self,
        user_agent: str = USER_AGENT,
        timeout_seconds: float = 60.0,
        retry: RetryPolicy = RetryPolicy(),
        max_connections_per_host: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_connections_per_host < 1:
            raise ValueError(f"max_connections_per_host must be at least 1, got {max_connections_per_host}")
        self.user_agent = user_agent
        self.timeout_seconds = timeout_seconds
        self.retry = retry
        self.max_connections_per_host = max_connections_per_host
        self.sleep = sleep
        self._session = _pooled_session(max_connections_per_host)
        self._host_slots: dict[tuple[str, str], threading.BoundedSemaphore] = {}
        self._host_slots_lock = threading.Lock()
        self._stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._rng = random.Random()
        self._rng_lock = threading.Lock()

    def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
        max_body_bytes: int | None = None,
    ) -> HttpResponse:
        """GET ``url`` and read the whole body; retry until it answers with a status in ``expect``.

        A status outside ``expect`` is retried if it is in the policy's ``retry_statuses``, and
        raised at once otherwise (a 404 will not turn into a 200). Its body is not read beyond a
        short excerpt, so an unexpected 200 with a whole multi-gigabyte WARC costs nothing.
        ``max_body_bytes`` refuses (without retrying) a larger body, reason ``too_large``.
        """
        return self._request("GET", url, None, headers, expect, max_body_bytes)

    def post(
        self,
        url: str,
        body: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
        max_body_bytes: int | None = None,
    ) -> HttpResponse:
        """POST ``body`` to ``url`` and read the whole answer, with the same retries as :meth:`get`.

        Only for requests that may be sent twice: a retried POST repeats the request. Redirects
        are not followed (requests would turn a POST answered 301/302 into a GET), so a 3xx is an
        :class:`HttpError` unless it is in ``expect``.
        """
        if not isinstance(body, bytes):
            raise TypeError(f"body must be bytes, got {type(body).__name__}")
        return self._request("POST", url, body, headers, expect, max_body_bytes)

    def _request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str] | None,
        expect: tuple[int, ...],
        max_body_bytes: int | None,
    ) -> HttpResponse:
        """The retry loop shared by :meth:`get` and :meth:`post`."""
        all_headers = {"User-Agent": self.user_agent, **(headers or {})}
        for attempt in range(1, self.retry.max_attempts + 1):
            self._count("requests")
            try:
                with self._host_slot(url):
                    response = self._attempt(url, all_headers, expect, max_body_bytes, method, body)
            except _AttemptFailed as failed:
                self._count(f"status_{failed.status}" if failed.status else f"error_{failed.reason}")
                if not failed.retryable or attempt == self.retry.max_attempts:
                    self._count("failed")
                    tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                    raise HttpError(
                        url, failed.problem + tries, failed.reason, failed.status, attempt
                    ) from None
                self._count("retries")
                # The slot is released while waiting, so a backoff never blocks other requests.
                self.sleep(self._wait_seconds(attempt, failed.retry_after))
                continue
            self._count(f"status_{response.status}")
            self._count("bytes_received", len(response.content))
            return replace(response, attempts=attempt)
        raise AssertionError("unreachable: the loop returns or raises")

    def stats(self) -> dict[str, int]:
        """Counters so far: ``requests`` (attempts sent), ``retries``, ``failed``,
        ``bytes_received``, ``status_<code>`` per answer, ``error_<reason>`` per network error."""
        with self._stats_lock:
            return dict(sorted(self._stats.items()))

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- one attempt -------------------------------------------------------------------------

    def _attempt(
        self,
        url: str,
        headers: Mapping[str, str],
        expect: tuple[int, ...],
        max_body_bytes: int | None,
        method: str = "GET",
        body: bytes | None = None,
    ) -> HttpResponse:
        started = time.monotonic()
        try:
            if method == "GET":
                response = self._session.get(url, headers=headers, stream=True, timeout=self.timeout_seconds)
            else:
                response = self._session.request(
                    method,
                    url,
                    data=body,
                    headers=headers,
                    stream=True,
                    timeout=self.timeout_seconds,
                    allow_redirects=False,
                )
        except requests.Timeout:
            raise _AttemptFailed(
                "timeout", f"no answer within {self.timeout_seconds} s", retryable=True
            ) from None
        except requests.ConnectionError as err:
            raise _AttemptFailed("connection", f"connection failed: {_short(err)}", retryable=True) from None
        except requests.RequestException as err:  # a bad URL, too many redirects: retrying won't help
            raise _AttemptFailed("bad_request", f"request failed: {_short(err)}", retryable=False) from None
        with response:
            status = response.status_code
            if status not in expect:
                retry_after = None
                if status in (429, 503):
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                detail = self._error_excerpt(response, started)
                raise _AttemptFailed(
                    f"http_{status}",
                    f"HTTP {status} {response.reason}{detail}",
                    retryable=status in self.retry.retry_statuses,
                    status=status,
                    retry_after=retry_after,
                )
            content = self._read_body(response, started, max_body_bytes)
            return HttpResponse(url=url, status=status, headers=response.headers, content=content)

    def _error_excerpt(self, response: requests.Response, started: float) -> str:
        """``": <text>"`` from the start of an error body if it is short text, else ``""``."""
        try:
            head = self._read_body(response, started, _ERROR_BODY_EXCERPT, excerpt=True)
            text = head.decode("utf-8")
        except (_AttemptFailed, UnicodeDecodeError):
            return ""  # the status is the news; a broken or binary error body is not
        if not text.strip() or not all(c.isprintable() or c.isspace() for c in text):
            return ""
        return f": {_short(text)}"

    def _read_body(
        self, response: requests.Response, started: float, limit: int | None, *, excerpt: bool = False
    ) -> bytes:
        """Read the body under the attempt's deadline; with ``excerpt``, stop quietly at ``limit``."""
        declared = _content_length(response)
        if not excerpt and limit is not None and declared is not None and declared > limit:
            raise _AttemptFailed(
                "too_large", f"body of {declared} bytes is larger than the {limit} asked for", retryable=False
            )
        parts: list[bytes] = []
        size = 0
        while True:
            elapsed = time.monotonic() - started
            if elapsed > self.timeout_seconds:
                # The socket timeout alone never fires on a server that sends a byte now and then.
                raise _AttemptFailed(
                    "timeout",
                    f"response not complete after {elapsed:.1f} s (deadline {self.timeout_seconds} s,"
                    f" {size} bytes read)",
                    retryable=True,
                )
            try:
                # read1 returns what has arrived instead of waiting to fill the chunk, so the
                # deadline is checked between every packet.
                chunk = response.raw.read1(_READ_CHUNK, decode_content=True)
            except urllib3.exceptions.ReadTimeoutError:
                raise _AttemptFailed(
                    "timeout", f"read timed out after {size} bytes of the body", retryable=True
                ) from None
            except urllib3.exceptions.DecodeError as err:
                raise _AttemptFailed(
                    "decode_error", f"bad Content-Encoding: {_short(err)}", retryable=False
                ) from None
            except (urllib3.exceptions.ProtocolError, urllib3.exceptions.HTTPError, OSError) as err:
                if _is_incomplete_read(err):
                    raise _AttemptFailed(
                        "truncated_body", f"body ended after {size} of {declared} bytes", retryable=True
                    ) from None
                raise _AttemptFailed(
                    "connection", f"connection broke after {size} bytes: {_short(err)}", retryable=True
                ) from None
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
            if limit is not None and size >= limit and excerpt:
                break
            if limit is not None and size > limit:
                raise _AttemptFailed(
                    "too_large", f"body is larger than the {limit} bytes asked for", retryable=False
                )
        body = b"".join(parts)
        encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        if not excerpt and declared is not None and not encoded and len(body) < declared:
            # urllib3 normally raises IncompleteRead itself; this is the check that does not depend on it.
            raise _AttemptFailed(
                "truncated_body", f"body ended after {len(body)} of {declared} bytes", retryable=True
            )
        return body[:limit] if excerpt and limit is not None else body

    # -- politeness --------------------------------------------------------------------------

    @contextmanager
    def _host_slot(self, url: str) -> Iterator[None]:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc.lower())
        with self._host_slots_lock:
            slot = self._host_slots.get(key)
            if slot is None:
                slot = self._host_slots[key] = threading.BoundedSemaphore(self.max_connections_per_host)
        with slot:
            yield

    def _wait_seconds(self, failed_attempts: int, retry_after: float | None) -> float:
        if retry_after is not None:
            # The server said when to come back; the cap keeps a hostile value from parking a worker.
            return min(retry_after, self.retry.backoff_max_seconds)
        with self._rng_lock:
            return self.retry.backoff_seconds(failed_attempts, self._rng)

    def _count(self, key: str, amount: int = 1) -> None:
        with self._stats_lock:
            self._stats[key] += amount


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or an HTTP date); None if unusable.

    >>> parse_retry_after("120")
    120.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT",
    ...                   now=datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC))
    30.0
    >>> parse_retry_after("soon") is None
    True
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _pooled_session(max_connections_per_host: int) -> requests.Session:
    session = requests.Session()
    # Our own loop does the retrying; urllib3's would retry behind its back and skew the counts.
    adapter = HTTPAdapter(pool_maxsize=max_connections_per_host, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # Threads share the session; refusing cookies keeps its only mutable per-response state
    # unchanged, and no source here needs a cookie.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length", "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def _is_incomplete_read(err: BaseException) -> bool:
    # urllib3 raises ProtocolError("Connection broken: ...", IncompleteRead(...)): look inside.
    incomplete = (urllib3.exceptions.IncompleteRead, http.client.IncompleteRead)
    return isinstance(err, incomplete) or any(isinstance(arg, incomplete) for arg in err.args)


def _short(err: object, limit: int = 200) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[:limit] + "..."
