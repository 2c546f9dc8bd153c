"""Fetch Common Crawl records by byte range, as a third party re-obtains them from an index.

Each record is an independent gzip member, so ``Range: bytes=offset-(offset+length-1)`` on
``https://data.commoncrawl.org/<warc_filename>`` returns exactly one record that inflates on its
own. Everything that can go wrong between the index and the bytes is checked and named, because
a wrong record would carry a wrong provenance: the server must honour the range, send exactly
``length`` bytes, those bytes must be one whole gzip member holding one HTTP response record,
its digests must verify, and its payload digest must be the one the index promised.

A failed record is returned as a :class:`RecordFetchError` by :func:`fetch_records` (which keeps
going), so the caller can reject it with its reason instead of losing the batch.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from sources.commoncrawl_index import IndexRecord, normalize_digest
from sources.errors import SourceError
from sources.http_client import HttpClient, HttpError
from sources.warc import PayloadTooLarge, WarcResponse, parse_record_bytes

# Records in flight per worker thread: enough to keep every thread busy while the caller
# consumes results in input order, small enough that memory stays a few records per thread.
_WINDOW_PER_THREAD = 2


class RecordFetchError(SourceError):
    """A record that could not be obtained or did not check out.

    ``reason`` is one of ``http_<status>``, ``timeout``, ``connection``, ``truncated_body``,
    ``range_not_honoured``, ``range_length_mismatch``, ``gzip_error``, ``gzip_bomb`` (the member or
    its HTTP body inflates past MAX_INFLATED_BYTES), ``warc_error`` (the member
    inflates but is not one valid WARC record), ``not_a_response``, ``digest_check_failed`` (the
    record's own payload or block digest does not match its bytes), ``digest_mismatch`` (the
    record's payload digest is not the index's), or ``bad_request`` (also: a ``warc_filename`` that
    is not a relative path under the data host).
    """

    def __init__(self, uri: str, problem: str, reason: str):
        super().__init__(uri, problem)
        self.reason = reason

    def __reduce__(self):
        return (type(self), (self.uri, self.problem, self.reason))


# What one record's gzip member may inflate to; Common Crawl's are under about 1.1 MiB.
MAX_INFLATED_BYTES = 32 << 20


def check_warc_filename(name: str) -> str | None:
    """Why an index's ``warc_filename`` cannot be used, or None: it must be a relative path under
    the data host, so a hostile index cannot make the client fetch outside it.

    >>> check_warc_filename("crawl-data/CC-MAIN-2024-22/segments/1/warc/x.warc.gz") is None
    True
    >>> check_warc_filename("crawl-data/../../etc/passwd")
    "has a '..' segment"
    """
    if not name or "\x00" in name or "\\" in name:
        return "is empty or holds a NUL or a backslash"
    if "://" in name or name.startswith("/"):
        return "is an absolute path or URL, not a path under the data host"
    if ".." in name.split("/"):
        return "has a '..' segment"
    return None


def record_url(data_url: str, record: IndexRecord) -> str:
    """Where the record's WARC file is: ``data_url`` joined with the index's ``warc_filename``."""
    return data_url.rstrip("/") + "/" + record.warc_filename.lstrip("/")


def fetch_record(client: HttpClient, data_url: str, record: IndexRecord) -> WarcResponse:
    """Fetch and check the one response record ``record`` points at; raise RecordFetchError.

    The result's ``warc_filename`` is the URL fetched, ``offset``/``length`` are the index's, and
    ``crawl`` is the index record's (the warcinfo record is not part of the range).
    """
    url = record_url(data_url, record)
    where = f"bytes {record.offset}+{record.length}"
    bad_name = check_warc_filename(record.warc_filename)
    if bad_name is not None:
        raise RecordFetchError(url, f"warc_filename {record.warc_filename!r} {bad_name}", "bad_request")
    if record.offset < 0 or record.length <= 0:
        raise RecordFetchError(url, f"{where}: not a byte range", "range_length_mismatch")
    end = record.offset + record.length - 1  # HTTP ranges are inclusive
    headers = {
        "Range": f"bytes={record.offset}-{end}",
        # The bytes must be the file's own: a compressed transfer would not be the member.
        "Accept-Encoding": "identity",
    }
    try:
        response = client.get(url, headers=headers, expect=(206,), max_body_bytes=record.length)
    except HttpError as err:
        if err.status == 200:
            # A 200 is the whole WARC, about a gigabyte: the client has not read it, only refused it.
            raise RecordFetchError(
                url, f"{where}: server ignored the Range header (HTTP 200)", "range_not_honoured"
            ) from None
        reason = "range_length_mismatch" if err.reason == "too_large" else err.reason
        raise RecordFetchError(url, f"{where}: {err.problem}", reason) from None

    content_range = response.headers.get("Content-Range")
    if content_range is None:
        raise RecordFetchError(url, f"{where}: HTTP 206 without a Content-Range header", "range_not_honoured")
    if (
        not content_range.startswith(f"bytes {record.offset}-{end}/")
        or len(response.content) != record.length
    ):
        # The usual cause: the index length runs past the end of the file and the server clipped it.
        raise RecordFetchError(
            url,
            f"{where}: asked for bytes {record.offset}-{end}, got Content-Range {content_range!r}"
            f" and {len(response.content)} bytes",
            "range_length_mismatch",
        )
    _check_one_gzip_member(url, where, response.content)
    try:
        parsed = parse_record_bytes(url, response.content, record.offset, max_body_bytes=MAX_INFLATED_BYTES)
    except PayloadTooLarge as err:
        raise RecordFetchError(url, f"{where}: {err.problem}", "gzip_bomb") from None
    except SourceError as err:
        raise RecordFetchError(url, f"{where}: {err.problem}", "warc_error") from None
    if parsed is None:
        raise RecordFetchError(url, f"{where}: the record there is not an HTTP response", "not_a_response")
    if parsed.digest_verified is False:
        raise RecordFetchError(
            url,
            f"{where}: the record's bytes do not match its own digests (corrupt record)",
            "digest_check_failed",
        )
    promised, found = normalize_digest(record.digest), normalize_digest(parsed.payload_digest)
    if promised and found and promised.upper() != found.upper():
        raise RecordFetchError(
            url,
            f"{where}: payload digest {parsed.payload_digest} is not the index's {record.digest}"
            " (the index points at another capture)",
            "digest_mismatch",
        )
    return dataclasses.replace(parsed, crawl=record.crawl)


def fetch_records(
    client: HttpClient,
    data_url: str,
    records: Iterable[IndexRecord],
    *,
    concurrency: int = 8,
) -> Iterator[tuple[IndexRecord, WarcResponse | RecordFetchError]]:
    """Fetch ``records`` on ``concurrency`` threads; yield (record, response or error) in input order.

    Input order makes the output deterministic whatever the timing. At most
    ``2 * concurrency`` records are in flight or waiting to be yielded, so a selection of
    millions of records is read lazily. Only :class:`RecordFetchError` is returned as a value;
    anything else (a bug) is raised. The client's per-host limit still applies: with all records
    on one host, ``max_connections_per_host`` of the threads fetch and the others wait.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    window: deque[tuple[IndexRecord, Future]] = deque()
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="cc-fetch")
    try:
        for record in records:
            window.append((record, pool.submit(_fetch_or_error, client, data_url, record)))
            if len(window) >= _WINDOW_PER_THREAD * concurrency:
                head, future = window.popleft()
                yield head, future.result()
        while window:
            head, future = window.popleft()
            yield head, future.result()
    finally:
        # A consumer that stops early does not wait for records nobody will read.
        pool.shutdown(wait=True, cancel_futures=True)


def _fetch_or_error(
    client: HttpClient, data_url: str, record: IndexRecord
) -> WarcResponse | RecordFetchError:
    try:
        return fetch_record(client, data_url, record)
    except RecordFetchError as err:
        return err


def _check_one_gzip_member(url: str, where: str, data: bytes) -> None:
    """The range must be exactly one complete gzip member (one record, as Common Crawl writes them).

    zlib is asked directly, before warcio, so that a wrong offset or length, or damaged bytes,
    is named as such (``gzip_error``) rather than as whatever warcio trips over next.
    """
    inflater = zlib.decompressobj(wbits=31)  # 16 + 15: gzip header and trailer, checked CRC
    try:
        # Bounded: a member of a few KB can inflate to gigabytes (a gzip bomb).
        inflated = inflater.decompress(data, MAX_INFLATED_BYTES + 1)
        if len(inflated) > MAX_INFLATED_BYTES:
            raise RecordFetchError(
                url, f"{where}: the gzip member inflates past {MAX_INFLATED_BYTES} bytes", "gzip_bomb"
            )
        inflater.flush()
    except zlib.error as err:
        raise RecordFetchError(url, f"{where}: not a valid gzip member ({err})", "gzip_error") from None
    if not inflater.eof:
        raise RecordFetchError(url, f"{where}: the gzip member does not end within the range", "gzip_error")
    if inflater.unused_data:
        raise RecordFetchError(
            url,
            f"{where}: {len(inflater.unused_data)} bytes follow the gzip member (length too long)",
            "gzip_error",
        )
