"""sources.commoncrawl_fetch: byte-range fetches of the real Common Crawl WARC served by cc_server,
and every way a range can fail to be the record the index promised."""

from __future__ import annotations

import dataclasses
import gzip
import pickle
import threading
from pathlib import Path

import pytest

from sources.commoncrawl_fetch import RecordFetchError, fetch_record, fetch_records, record_url
from sources.commoncrawl_index import IndexRecord, parse_cdxj_line, query_cdx
from sources.errors import SourceError
from sources.http_client import HttpClient, RetryPolicy
from sources.warc import iter_warc_responses, read_warc_record_at

TESTS = Path(__file__).resolve().parents[1]
CC_WARC = TESTS / "data" / "sources" / "cc_whirlwind.warc.gz"
WARC_BYTES = CC_WARC.read_bytes()
# One CDX API line for the response record of the bundled WARC (offset 1023, length 17351). Its
# filename is the real CC-MAIN-2024-22 path this record came from, but illustrative here: the
# real file holds other records at these offsets. The server serves the bundled bytes there.
CDX_LINE = (TESTS / "data" / "commoncrawl" / "whirlwind_cdx_api_line.jsonl").read_text().strip()
RECORD = parse_cdxj_line(CDX_LINE, crawl="CC-MAIN-2024-22")
PATH = "/" + RECORD.warc_filename


@pytest.fixture
def waits():
    return []


@pytest.fixture
def client(waits):
    return HttpClient(
        retry=RetryPolicy(max_attempts=3, backoff_base_seconds=0.1), timeout_seconds=5.0, sleep=waits.append
    )


@pytest.fixture
def server(cc_server):
    cc_server.add_file(PATH, WARC_BYTES)
    return cc_server


def at(offset: int, length: int, **changes) -> IndexRecord:
    return dataclasses.replace(RECORD, offset=offset, length=length, **changes)


def fetch_error(client, server, record: IndexRecord) -> RecordFetchError:
    with pytest.raises(RecordFetchError) as err:
        fetch_record(client, server.url, record)
    assert isinstance(err.value, SourceError)
    assert f"bytes {record.offset}+{record.length}" in str(err.value)  # the coordinates, always
    return err.value


def test_the_record_is_the_index_line_of_the_fixture():
    assert (RECORD.url, RECORD.offset, RECORD.length) == (
        "https://an.wikipedia.org/wiki/Escopete",
        1023,
        17351,
    )
    assert RECORD.digest == "RY7PLBUFQNI2FFV5FTUQK72W6SNPXLQU"


def test_range_fetch_equals_reading_the_file_whole(server, client):
    fetched = fetch_record(client, server.url + "/", RECORD)
    [whole] = iter_warc_responses(str(CC_WARC))
    url = server.url + PATH
    # Same record, same payload bytes, same digest; the crawl comes from the index (the
    # warcinfo is outside the range) and agrees with the file's warcinfo.
    assert fetched == dataclasses.replace(whole, warc_filename=url)
    assert fetched.payload == whole.payload and len(fetched.payload) > 70_000
    assert (fetched.payload_digest, fetched.digest_verified) == (
        "sha1:RY7PLBUFQNI2FFV5FTUQK72W6SNPXLQU",
        True,
    )
    assert (fetched.crawl, fetched.offset, fetched.length) == ("CC-MAIN-2024-22", 1023, 17351)
    assert fetched == dataclasses.replace(read_warc_record_at(url, 1023, 17351), crawl="CC-MAIN-2024-22")
    [request] = [r for r in server.requests if r.path == PATH][:1]
    assert request.headers["Range"] == "bytes=1023-18373"  # inclusive end: offset + length - 1
    assert request.headers["Accept-Encoding"] == "identity"
    assert request.headers["User-Agent"].startswith("jcorpus-pipeline/")


def test_index_query_then_fetch(server, client):
    server.add_cdx("CC-MAIN-2024-22", [CDX_LINE])
    records = list(
        query_cdx(client, server.url, "CC-MAIN-2024-22", "an.wikipedia.org/wiki/Escopete", pause_seconds=0)
    )
    [(record, response)] = fetch_records(client, server.url, records)
    assert record == RECORD
    assert response.target_uri == record.url and response.digest_verified is True


def test_record_url_joins_data_url_and_filename():
    assert record_url("https://data.commoncrawl.org/", RECORD) == "https://data.commoncrawl.org" + PATH
    assert record_url("https://data.commoncrawl.org", RECORD) == "https://data.commoncrawl.org" + PATH


def test_a_server_that_ignores_range_is_refused_without_reading_the_file(server, client):
    server.ignore_range(PATH)
    err = fetch_error(client, server, RECORD)
    assert err.reason == "range_not_honoured"
    assert "bytes_received" not in client.stats()  # the 200 body was never taken as a record
    assert len(server.requests) == 1  # and not retried


def test_a_length_past_the_end_of_the_file_is_a_length_mismatch(server, client):
    err = fetch_error(client, server, at(18374, 600))  # the metadata member is 483 bytes, the file ends there
    assert err.reason == "range_length_mismatch"
    assert "bytes 18374-18856/18857" in str(err)


def test_a_range_past_the_end_is_http_416(server, client):
    assert fetch_error(client, server, at(20000, 100)).reason == "http_416"


@pytest.mark.parametrize(
    ("offset", "length", "says"),
    [
        (1023, 17361, "10 bytes follow the gzip member"),  # runs into the next member
        (1023, 17000, "does not end within the range"),  # stops inside the member
        (1024, 17350, "not a valid gzip member"),  # starts one byte late
    ],
)
def test_wrong_coordinates_are_gzip_errors(server, client, offset, length, says):
    err = fetch_error(client, server, at(offset, length))
    assert err.reason == "gzip_error" and says in str(err)


def test_a_corrupt_member_does_not_inflate(cc_server, client):
    damaged = bytearray(WARC_BYTES)
    damaged[9000:9016] = bytes(16)  # inside the deflate stream of the response member
    cc_server.add_file(PATH, bytes(damaged))
    err = fetch_error(client, cc_server, RECORD)
    assert err.reason == "gzip_error"


@pytest.mark.parametrize(("offset", "length"), [(0, 516), (516, 507), (18374, 483)])
def test_records_that_are_not_responses(server, client, offset, length):
    assert fetch_error(client, server, at(offset, length)).reason == "not_a_response"


def test_a_gzip_member_that_is_not_a_warc_record(cc_server, client):
    member = gzip.compress(b"<html><body>not a WARC record</body></html>\n")
    cc_server.add_file(PATH, member)
    assert fetch_error(client, cc_server, at(0, len(member))).reason == "warc_error"


def test_a_record_whose_payload_does_not_match_its_digest(cc_server, client):
    record = gzip.decompress(WARC_BYTES[1023:18374])
    at_title = record.index(b"<title>") + len(b"<title>")
    tampered = gzip.compress(
        record[:at_title] + b"X" + record[at_title + 1 :]
    )  # same length, one byte changed
    cc_server.add_file(PATH, tampered)
    err = fetch_error(client, cc_server, at(0, len(tampered)))
    assert err.reason == "digest_check_failed"


def test_the_payload_digest_must_be_the_index_digest(server, client):
    err = fetch_error(client, server, at(1023, 17351, digest="ZWUFCT57EAYE6Z2QRZ3UF4PQA5TG3BEP"))
    assert err.reason == "digest_mismatch" and "RY7PLBUFQNI2FFV5FTUQK72W6SNPXLQU" in str(err)
    # The raw CDX files write "sha1:"; that is the same digest.
    assert fetch_record(client, server.url, at(1023, 17351, digest="sha1:RY7PLBUFQNI2FFV5FTUQK72W6SNPXLQU"))
    assert fetch_record(client, server.url, at(1023, 17351, digest=None)).digest_verified is True


def test_truncated_body_is_retried_then_the_record_is_whole(server, client, waits):
    server.truncate_next(PATH, times=2)
    response = fetch_record(client, server.url, RECORD)
    assert response.digest_verified is True
    assert [r.status for r in server.requests] == [206, 206, 206] and len(waits) == 2


def test_a_body_truncated_every_time(server, client):
    server.truncate_next(PATH, times=3)
    assert fetch_error(client, server, RECORD).reason == "truncated_body"


def test_slow_loris_is_a_timeout(server, waits):
    server.slow(PATH, seconds_per_chunk=0.1, chunk_size=512)  # 34 chunks, 3.4 s
    client = HttpClient(retry=RetryPolicy(max_attempts=2), timeout_seconds=0.4, sleep=waits.append)
    assert fetch_error(client, server, RECORD).reason == "timeout"


def test_a_record_failing_for_good_does_not_stop_the_others(cc_server, client, waits):
    """503 beyond max_attempts on one file: that record is returned as an error, the others are
    fetched, and the results come out in input order."""
    broken = "/crawl-data/CC-MAIN-2024-22/segments/1715971057216.39/warc/broken.warc.gz"
    cc_server.add_file(PATH, WARC_BYTES)
    cc_server.add_file(broken, WARC_BYTES)
    cc_server.fail_next(broken, 503, times=100)
    elsewhere = at(1023, 17351, warc_filename=broken.lstrip("/"))
    records = [RECORD, elsewhere, at(0, 516), RECORD]
    results = list(fetch_records(client, cc_server.url, records, concurrency=4))
    assert [record for record, _ in results] == records
    kinds = [r.reason if isinstance(r, RecordFetchError) else "ok" for _, r in results]
    assert kinds == ["ok", "http_503", "not_a_response", "ok"]
    assert "after 3 attempts" in str(results[1][1])
    assert sum(1 for r in cc_server.requests if r.path == broken) == 3


def test_per_host_concurrency_is_never_exceeded(server, waits):
    server.slow(PATH, seconds_per_chunk=0.02, chunk_size=4096)  # about 0.1 s a record
    client = HttpClient(max_connections_per_host=2, timeout_seconds=5.0, sleep=waits.append)
    results = list(fetch_records(client, server.url, [RECORD] * 8, concurrency=8))
    assert all(not isinstance(response, Exception) for _, response in results)
    assert server.max_in_flight == 2  # eight threads, two at a time on the host


def test_records_are_pulled_lazily(server, client):
    pulled = []

    def selection():
        for i in range(40):
            pulled.append(i)
            yield RECORD

    results = fetch_records(client, server.url, selection(), concurrency=3)
    next(results)
    assert len(pulled) <= 2 * 3 + 1  # a window, not the whole selection
    results.close()  # stopping early neither hangs nor fetches the rest
    assert len(pulled) <= 7


def test_fetch_records_on_many_threads_is_deterministic(server, client):
    records = [at(1023, 17351), at(0, 516), at(1023, 17351, digest="ZWUFCT57EAYE6Z2QRZ3UF4PQA5TG3BEP")] * 5
    first = [
        (r, getattr(x, "reason", "ok")) for r, x in fetch_records(client, server.url, records, concurrency=6)
    ]
    second = [
        (r, getattr(x, "reason", "ok")) for r, x in fetch_records(client, server.url, records, concurrency=2)
    ]
    assert first == second and [reason for _, reason in first[:3]] == [
        "ok",
        "not_a_response",
        "digest_mismatch",
    ]


def test_record_fetch_error_survives_pickling():
    err = RecordFetchError("http://127.0.0.1/x.warc.gz", "bytes 1023+17351: HTTP 503", "http_503")
    copy = pickle.loads(pickle.dumps(err))
    assert (str(copy), copy.reason) == (str(err), "http_503")


def test_fetch_records_uses_the_threads_it_is_given(server, client):
    names = set()
    original = client.get

    def spy(*args, **kwargs):
        names.add(threading.current_thread().name)
        return original(*args, **kwargs)

    client.get = spy
    list(fetch_records(client, server.url, [RECORD] * 6, concurrency=3))
    assert 1 <= len(names) <= 3 and all(n.startswith("cc-fetch") for n in names)
