"""sources.http_client against the cc_server replay server: retries, Retry-After, deadlines,
per-host limits and counters. Backoff waits go to a recorder instead of sleeping, except in
one test that checks a real wait at the server."""

from __future__ import annotations

import pickle
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from email.utils import formatdate
from pathlib import Path

import pytest

from sources.errors import SourceError
from sources.http_client import HttpClient, HttpError, RetryPolicy, parse_retry_after

CC_WARC = Path(__file__).resolve().parents[1] / "data" / "sources" / "cc_whirlwind.warc.gz"
WARC_BYTES = CC_WARC.read_bytes()
PATH = "/crawl-data/CC-MAIN-2024-22/segments/1715971057216.39/warc/whirlwind.warc.gz"


@pytest.fixture
def waits():
    return []


def make_client(waits, **overrides) -> HttpClient:
    options = {
        "retry": RetryPolicy(max_attempts=3, backoff_base_seconds=0.5, backoff_max_seconds=10.0),
        "timeout_seconds": 5.0,
        "sleep": waits.append,
    }
    return HttpClient(**{**options, **overrides})


def test_get_reads_the_whole_body_and_names_the_project(cc_server, waits):
    url = cc_server.add_file(PATH, WARC_BYTES)
    response = make_client(waits).get(url)
    assert (response.status, response.content, response.attempts) == (200, WARC_BYTES, 1)
    assert response.headers["content-length"] == str(len(WARC_BYTES))  # case-insensitive headers
    [request] = cc_server.requests
    assert request.headers["User-Agent"].startswith("jcorpus-pipeline/")
    assert waits == []


def test_a_404_is_not_retried(cc_server, waits):
    client = make_client(waits)
    with pytest.raises(HttpError) as err:
        client.get(cc_server.url + "/crawl-data/missing.warc.gz")
    assert (err.value.reason, err.value.status, err.value.attempts) == ("http_404", 404, 1)
    assert isinstance(err.value, SourceError)
    assert "Not Found" in str(err.value)  # a short text body is quoted in the message
    assert len(cc_server.requests) == 1 and waits == []
    assert client.stats() == {"failed": 1, "requests": 1, "status_404": 1}


def test_429_then_success_waits_as_retry_after_says(cc_server, waits):
    url = cc_server.add_file(PATH, WARC_BYTES)
    cc_server.fail_next(PATH, 429, times=1, retry_after=3)
    client = make_client(waits)
    response = client.get(url)
    assert (response.status, response.attempts) == (200, 2)
    assert waits == [3.0]
    assert [r.status for r in cc_server.requests] == [429, 200]
    stats = client.stats()
    assert (stats["requests"], stats["retries"], stats["status_429"], stats["status_200"]) == (2, 1, 1, 1)


def test_retry_after_as_an_http_date_is_capped_at_the_maximum_backoff(cc_server, waits):
    url = cc_server.add_file(PATH, WARC_BYTES)
    cc_server.fail_next(PATH, 503, times=1, retry_after=formatdate(time.time() + 3600, usegmt=True))
    assert make_client(waits).get(url).attempts == 2
    assert waits == [10.0]  # an hour asked, backoff_max_seconds granted


def test_retry_after_is_really_waited(cc_server):
    """The one test that sleeps: the retry reaches the server no sooner than Retry-After says."""
    url = cc_server.add_file(PATH, WARC_BYTES)
    cc_server.fail_next(PATH, 503, times=1, retry_after=1)
    client = HttpClient(retry=RetryPolicy(max_attempts=2), timeout_seconds=5.0)
    assert client.get(url).status == 200
    first, second = cc_server.requests
    assert (first.status, second.status) == (503, 200)
    assert second.time - first.time >= 1.0


def test_backoff_without_retry_after_is_full_jitter(cc_server, waits):
    url = cc_server.add_file(PATH, WARC_BYTES)
    cc_server.fail_next(PATH, 500, times=3)
    client = make_client(
        waits, retry=RetryPolicy(max_attempts=4, backoff_base_seconds=0.5, backoff_max_seconds=1.5)
    )
    assert client.get(url).attempts == 4
    ceilings = [0.5, 1.0, 1.5]  # base * 2 ** k, capped
    assert len(waits) == 3 and all(0.0 <= w <= c for w, c in zip(waits, ceilings))


def test_full_jitter_spreads_over_the_whole_interval():
    import random

    policy = RetryPolicy(backoff_base_seconds=1.0, backoff_max_seconds=60.0)
    rng = random.Random(7)
    samples = [policy.backoff_seconds(4, rng) for _ in range(2000)]
    assert 0.0 <= min(samples) < 0.5 and 7.5 < max(samples) <= 8.0  # uniform over [0, 8]
    assert max(policy.backoff_seconds(30, rng) for _ in range(200)) <= 60.0


def test_503_every_time_fails_after_max_attempts(cc_server, waits):
    url = cc_server.add_file(PATH, WARC_BYTES)
    cc_server.fail_next(PATH, 503, times=10)
    client = make_client(waits)
    with pytest.raises(HttpError) as err:
        client.get(url)
    assert (err.value.reason, err.value.status, err.value.attempts) == ("http_503", 503, 3)
    assert "after 3 attempts" in str(err.value)
    assert len(cc_server.requests) == 3 and len(waits) == 2
    assert client.stats()["failed"] == 1


def test_truncated_body_is_retried_then_complete(cc_server, waits):
    url = cc_server.add_file(PATH, WARC_BYTES)
    cc_server.truncate_next(PATH, times=2)
    client = make_client(waits)
    response = client.get(url)
    assert (response.content, response.attempts) == (WARC_BYTES, 3)
    assert client.stats()["error_truncated_body"] == 2


def test_body_truncated_every_time_is_an_error(cc_server, waits):
    url = cc_server.add_file(PATH, WARC_BYTES)
    cc_server.truncate_next(PATH, times=3)
    with pytest.raises(HttpError) as err:
        make_client(waits).get(url)
    assert (err.value.reason, err.value.status, err.value.attempts) == ("truncated_body", None, 3)
    assert f"of {len(WARC_BYTES)} bytes" in str(err.value)


def test_slow_loris_is_cut_by_the_deadline(cc_server, waits):
    url = cc_server.add_file(PATH, WARC_BYTES)
    # A chunk every 0.1 s never trips a 0.5 s socket timeout; the whole body would take 7 s.
    cc_server.slow(PATH, seconds_per_chunk=0.1, chunk_size=256)
    client = make_client(waits, timeout_seconds=0.5, retry=RetryPolicy(max_attempts=2))
    started = time.monotonic()
    with pytest.raises(HttpError) as err:
        client.get(url)
    elapsed = time.monotonic() - started
    assert (err.value.reason, err.value.status, err.value.attempts) == ("timeout", None, 2)
    assert "deadline" in str(err.value)
    assert elapsed < 2.5  # two attempts of about 0.5 s each


def test_max_body_bytes_refuses_a_larger_body_without_retrying(cc_server, waits):
    url = cc_server.add_file(PATH, WARC_BYTES)
    with pytest.raises(HttpError) as err:
        make_client(waits).get(url, max_body_bytes=1000)
    assert (err.value.reason, err.value.attempts) == ("too_large", 1)


def test_connection_refused_is_retried(waits):
    with socket.socket() as probe:  # a port that was free a moment ago, with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(waits)
    with pytest.raises(HttpError) as err:
        client.get(f"http://127.0.0.1:{port}/x")
    assert (err.value.reason, err.value.status, err.value.attempts) == ("connection", None, 3)
    assert client.stats()["error_connection"] == 3


def test_connection_reset_before_an_answer_is_retried(waits):
    """A server that hangs up on the first two connections (as an overloaded proxy does), then answers."""
    body = b"ok\n"
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve():
            for n in range(3):
                conn, _ = listener.accept()
                with conn:
                    conn.recv(65536)
                    if n < 2:
                        conn.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                        )
                        continue  # closed with RST, no answer
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n" + body)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        client = make_client(waits)
        response = client.get(f"http://127.0.0.1:{port}/x")
        thread.join(5)
    assert (response.content, response.attempts) == (body, 3)
    assert client.stats()["error_connection"] == 2


def test_no_host_gets_more_than_its_limit_of_concurrent_requests(cc_server, waits):
    url = cc_server.add_file(PATH, WARC_BYTES)
    cc_server.slow(PATH, seconds_per_chunk=0.02, chunk_size=4096)  # about 0.1 s a request
    client = make_client(waits, max_connections_per_host=3)
    with ThreadPoolExecutor(max_workers=12) as pool:
        bodies = list(pool.map(lambda _: client.get(url).content, range(12)))
    assert bodies == [WARC_BYTES] * 12
    assert cc_server.max_in_flight == 3  # reached, never exceeded
    assert client.stats()["requests"] == 12


def test_http_error_survives_pickling():
    err = HttpError("http://127.0.0.1/x", "HTTP 503 Service Unavailable", "http_503", 503, 5)
    copy = pickle.loads(pickle.dumps(err))
    assert (str(copy), copy.reason, copy.status, copy.attempts) == (str(err), "http_503", 503, 5)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0.0), ("17", 17.0), (" 5 ", 5.0), ("", None), (None, None), ("-3", None), ("soon", None)],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date():
    from datetime import datetime

    now = datetime(2025, 10, 16, 19, 21, 0, tzinfo=UTC)
    assert parse_retry_after("Thu, 16 Oct 2025 19:21:09 GMT", now=now) == 9.0
    assert parse_retry_after("Thu, 16 Oct 2025 19:20:00 GMT", now=now) == 0.0  # in the past: now
