"""WARC files: read HTTP responses, with the coordinates a third party needs to fetch them again.

A WARC may be a local path, an ``http(s)://`` URL (streamed with requests) or any other fsspec URL
(``s3://commoncrawl/...``, ``memory://...``). Records may be gzipped one per member, as Common Crawl
does, or not compressed at all. Every response comes with ``offset``/``length`` such that
``bytes[offset:offset + length]`` is that record alone, the same pair Common Crawl's indexes call
``warc_record_offset``/``warc_record_length``; :func:`read_warc_record_at` is the third party's side.

warcio does the parsing. The checks around it exist because warcio is lenient by design (it is
built for replaying damaged archives): a truncated gzip member or a record shorter than its
Content-Length ends quietly, and a wrong Content-Length only prints a warning. For a corpus whose
provenance must hold, each of those is an error, raised as :class:`SourceError`.
"""

from __future__ import annotations

import contextlib
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, NamedTuple

import fsspec
import requests
import urllib3
from warcio.archiveiterator import WARCIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeadersParserException

from sources.errors import SourceError

# Servers (and Common Crawl's CloudFront logs) see who is fetching; name the project.
USER_AGENT = "jcorpus-pipeline/0.1 (Japanese pre-training corpus builder; WARC reader)"

# Only these record types are read into memory; the others are skipped through.
_READ_BODY_TYPES = ("warcinfo", "response")


@dataclass(frozen=True)
class WarcResponse:
    """One HTTP response record, its payload, and where it sits in its WARC file."""

    warc_filename: str  # the URI as given to the reader
    crawl: str | None  # the warcinfo's ``isPartOf`` (e.g. CC-MAIN-2024-22), if any
    record_id: str  # WARC-Record-ID, with its angle brackets
    target_uri: str
    warc_date: str  # as in the header, e.g. 2024-05-18T01:58:10Z
    offset: int  # byte offset of the record (its gzip member, if gzipped) in the file
    # bytes[offset:offset + length] is the record on its own. For an uncompressed file this
    # leaves out the two CRLFs that close a record (warcio's count, as in pywb's CDX indexes).
    length: int
    payload_digest: str | None  # WARC-Payload-Digest as in the header
    block_digest: str | None
    # True: every digest present matched; False: one did not; None: no digest to check.
    digest_verified: bool | None
    identified_payload_type: str | None
    http_status: int
    http_headers: tuple[tuple[str, str], ...]  # as in the record, order and case kept
    content_type: str | None  # the HTTP Content-Type header value
    payload: bytes = field(repr=False)  # HTTP body, de-chunked, Content-Encoding undone


def iter_warc_responses(uri: str, *, timeout: float = 60.0) -> Iterator[WarcResponse]:
    """Yield every HTTP ``response`` record of the WARC at ``uri``, in file order.

    Request, metadata, revisit and non-HTTP records are skipped; warcinfo records are read for
    ``crawl``. ``timeout`` bounds the connection and each read of an HTTP(S) URL, so a stalled
    server raises instead of hanging. Malformed input raises :class:`SourceError` naming ``uri``
    and the byte offset of the bad record.
    """
    crawl = None
    with _open_stream(uri, timeout) as stream:
        n_records = 0
        for rec in _iter_checked_records(stream, uri):
            n_records += 1
            if rec.record.rec_type == "warcinfo":
                crawl = _crawl_of_warcinfo(rec.body) or crawl
            elif _is_http_response(rec.record):
                yield _to_response(rec, uri, crawl, rec.offset, rec.length)
        if n_records == 0:
            # A zero-byte or empty download is a failed fetch far more often than a real WARC.
            raise SourceError(uri, "no WARC records (empty input)")


def read_warc_record_at(uri: str, offset: int, length: int, *, timeout: float = 60.0) -> WarcResponse | None:
    """Fetch ``bytes[offset:offset + length]`` of the WARC at ``uri`` and parse that one record.

    This is how a third party re-obtains a Common Crawl document from the index's
    ``warc_filename``, ``warc_record_offset`` and ``warc_record_length``. HTTP(S) URLs get a
    ``Range`` request and must answer 206; local files and fsspec URLs are read with a seek.
    Returns None when the record there is not an HTTP response (e.g. the warcinfo at offset 0).
    ``crawl`` is None: the warcinfo record is not part of the range.
    """
    if offset < 0 or length <= 0:
        raise ValueError(f"need offset >= 0 and length > 0, got offset={offset} length={length}")
    data = _read_range(uri, offset, length, timeout)
    return parse_record_bytes(uri, data, offset)


def parse_record_bytes(
    uri: str, data: bytes, offset: int, *, max_body_bytes: int | None = None
) -> WarcResponse | None:
    """Parse ``data``, the bytes of exactly one WARC record found at ``offset`` of ``uri``.

    The bytes however obtained (a range request, a seek) get the same checks as a whole file:
    more or less than one record, or a damaged one, raises :class:`SourceError`. Returns None when
    the record is not an HTTP response; ``length`` is ``len(data)`` and ``crawl`` is None.
    """
    length = len(data)
    records = _iter_checked_records(io.BytesIO(data), uri, base_offset=offset, max_body_bytes=max_body_bytes)
    first = next(records, None)
    if first is None:
        raise SourceError(uri, f"no WARC record in bytes {offset}+{length}")
    if next(records, None) is not None:
        raise SourceError(uri, f"bytes {offset}+{length} hold more than one WARC record")
    if not _is_http_response(first.record):
        return None
    return _to_response(first, uri, None, offset, length)


# -- records -------------------------------------------------------------------------------


class _Record(NamedTuple):
    record: ArcWarcRecord
    body: bytes | None  # the content stream, read for _READ_BODY_TYPES only
    offset: int
    length: int


class PayloadTooLarge(SourceError):
    """A record's HTTP body inflates (Content-Encoding undone) past the reader's limit."""


def _iter_checked_records(
    stream: BinaryIO, uri: str, *, base_offset: int = 0, max_body_bytes: int | None = None
) -> Iterator[_Record]:
    """Read each record to its end and check it is whole before yielding it.

    warcio's own offset/length are exact member boundaries only once the record has been read
    to its end (``get_record_offset()`` itself reads the record to the end), so the body is read
    first and the offsets asked for after. ``max_body_bytes`` bounds the body as warcio hands it
    over: warcio undoes an HTTP ``Content-Encoding: gzip``, so a small record can hold a body that
    inflates without end (:class:`PayloadTooLarge`).
    """
    # check_digests=True only hashes the bytes on their way through (no second pass, no raise);
    # the verdict lands in record.digest_checker.passed.
    records = WARCIterator(stream, check_digests=True)
    try:
        for record in records:
            at = base_offset + records.offset  # start of this record, for messages
            declared = _content_length(record, uri, at)
            errors_before = records.err_count
            body = None
            if record.rec_type in _READ_BODY_TYPES:
                if max_body_bytes is None:
                    body = record.content_stream().read()
                else:
                    body = record.content_stream().read(max_body_bytes + 1)
                    if len(body) > max_body_bytes:
                        raise PayloadTooLarge(
                            uri, f"record at byte {at}: its HTTP body inflates past {max_body_bytes} bytes"
                        )
            offset = base_offset + records.get_record_offset()
            length = records.get_record_length()
            _check_whole(records, record, uri, offset, declared, errors_before)
            yield _Record(record, body, offset, length)
    except ArchiveLoadFailed as err:
        # warcio's offset has reached the start of the record it failed on.
        at = base_offset + records.offset
        raise SourceError(uri, f"not a WARC record at byte {at}: {_short(err)}") from None
    except StatusAndHeadersParserException as err:
        at = base_offset + records.offset
        raise SourceError(uri, f"bad headers in record at byte {at}: {_short(err)}") from None
    except (EOFError, ValueError, zlib.error) as err:
        at = base_offset + records.offset
        raise SourceError(uri, f"unreadable record at byte {at}: {_short(err)}") from None
    except OSError as err:
        at = base_offset + records.offset
        raise SourceError(uri, f"read failed at byte {at}: {_short(err)}") from None
    finally:
        records.close()


def _content_length(record: ArcWarcRecord, uri: str, at: int) -> int:
    value = record.rec_headers.get_header("Content-Length")
    # warcio treats a missing or non-numeric Content-Length as "read to the end" or as 0,
    # which silently merges or splits records.
    if value is None or not (value.strip().isascii() and value.strip().isdigit()):
        raise SourceError(uri, f"record at byte {at} has a bad Content-Length: {value!r}")
    return int(value)


def _check_whole(
    records: WARCIterator,
    record: ArcWarcRecord,
    uri: str,
    offset: int,
    declared: int,
    errors_before: int,
) -> None:
    missing = getattr(record.raw_stream, "limit", 0)
    if missing > 0:
        raise SourceError(
            uri,
            f"truncated record at byte {offset}: Content-Length is {declared} but the data"
            f" ends after {declared - missing} bytes (file cut short, corrupt gzip member,"
            " or Content-Length too large)",
        )
    if records.err_count > errors_before:
        # warcio found no blank line where the block should end and only printed a warning.
        raise SourceError(
            uri,
            f"record at byte {offset}: Content-Length {declared} does not match the record"
            " (no blank line where the block ends)",
        )
    decompressor = records.reader.decompressor if records.reader else None
    if decompressor is not None and not decompressor.eof:
        if records.next_line is None:
            # The block was whole but the member's end (CRLFs, CRC, size) is missing.
            raise SourceError(uri, f"truncated gzip member at byte {offset}")
        # The next record follows inside the same gzip member. warcio would only notice
        # one record later, after this record had been handed out with a wrong length.
        raise SourceError(
            uri,
            f"the gzip member at byte {offset} holds more than one record: the file is"
            " gzipped as a whole, not per record, so offsets cannot address records"
            " (`warcio recompress` fixes this)",
        )


def _is_http_response(record: ArcWarcRecord) -> bool:
    # warcio parses HTTP headers only for http(s) target URIs; dns: and the like stay None.
    return record.rec_type == "response" and record.http_headers is not None


def _to_response(rec: _Record, uri: str, crawl: str | None, offset: int, length: int) -> WarcResponse:
    headers = rec.record.rec_headers
    http = rec.record.http_headers
    try:
        status = int(http.get_statuscode())
    except (TypeError, ValueError):
        raise SourceError(uri, f"record at byte {offset}: bad HTTP status line {http.statusline!r}") from None
    return WarcResponse(
        warc_filename=uri,
        crawl=crawl,
        record_id=headers.get_header("WARC-Record-ID"),
        target_uri=headers.get_header("WARC-Target-URI"),
        warc_date=headers.get_header("WARC-Date"),
        offset=offset,
        length=length,
        payload_digest=headers.get_header("WARC-Payload-Digest"),
        block_digest=headers.get_header("WARC-Block-Digest"),
        digest_verified=rec.record.digest_checker.passed,
        identified_payload_type=headers.get_header("WARC-Identified-Payload-Type"),
        http_status=status,
        http_headers=tuple((name, value) for name, value in http.headers),
        content_type=http.get_header("Content-Type"),
        payload=rec.body,
    )


def _crawl_of_warcinfo(block: bytes | None) -> str | None:
    """The ``isPartOf`` field of a warcinfo block (``application/warc-fields``)."""
    for line in (block or b"").decode("utf-8", "replace").splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == "ispartof":
            return value.strip() or None
    return None


def _short(err: BaseException, limit: int = 160) -> str:
    # warcio quotes the offending line, which for binary garbage can be kilobytes long.
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[:limit] + "..."


# -- transport -----------------------------------------------------------------------------


def _is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


@contextlib.contextmanager
def _open_stream(uri: str, timeout: float) -> Iterator[BinaryIO]:
    if _is_http(uri):
        response = _http_get(uri, timeout)
        try:
            yield _HttpBody(response, uri)
        finally:
            response.close()
    else:
        try:
            opened = fsspec.open(uri, "rb").open()
        except FileNotFoundError:
            raise SourceError(uri, "no such file") from None
        except (OSError, ValueError) as err:
            raise SourceError(uri, f"cannot open: {_short(err)}") from None
        with opened:
            yield opened


def _http_get(uri: str, timeout: float, headers: dict[str, str] | None = None) -> requests.Response:
    """GET with our User-Agent, streamed; any failure or non-2xx status is a SourceError."""
    # identity: the bytes must be the file's own, or offsets would not be its offsets.
    all_headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(headers or {})}
    try:
        response = requests.get(uri, headers=all_headers, stream=True, timeout=timeout)
    except requests.Timeout:
        raise SourceError(uri, f"HTTP request timed out after {timeout} s") from None
    except requests.RequestException as err:
        raise SourceError(uri, f"HTTP request failed: {_short(err)}") from None
    if not 200 <= response.status_code < 300:
        response.close()
        raise SourceError(uri, f"HTTP {response.status_code} {response.reason}")
    return response


class _HttpBody(io.RawIOBase):
    """A response body as a file: raw bytes (no decoding), a byte count for tell(), and
    transport errors turned into SourceError with the position reached."""

    def __init__(self, response: requests.Response, uri: str) -> None:
        self._raw = response.raw
        self._uri = uri
        self._pos = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        # warcio computes offsets from tell(); urllib3's own tell() counts wire bytes.
        return self._pos

    def readinto(self, buffer) -> int:
        try:
            # read1: hand over what has arrived instead of blocking until the buffer is full,
            # so a stall is reported at the byte where it happened.
            data = self._raw.read1(len(buffer), decode_content=False)
        except urllib3.exceptions.ReadTimeoutError:
            raise SourceError(self._uri, f"read timed out at byte {self._pos}") from None
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise SourceError(self._uri, f"read failed at byte {self._pos}: {_short(err)}") from None
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def _read_range(uri: str, offset: int, length: int, timeout: float) -> bytes:
    end = offset + length - 1  # HTTP ranges are inclusive
    if _is_http(uri):
        response = _http_get(uri, timeout, {"Range": f"bytes={offset}-{end}"})
        with response:
            if response.status_code != 206:
                # A 200 is the whole file, gigabytes for a Common Crawl WARC: refuse it.
                raise SourceError(
                    uri, f"server ignored Range bytes={offset}-{end} (HTTP {response.status_code})"
                )
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-{end}/"):
                raise SourceError(uri, f"asked for bytes {offset}-{end}, got Content-Range {content_range!r}")
            data = _read_up_to(_HttpBody(response, uri), length + 1)
    else:
        try:
            with fsspec.open(uri, "rb") as f:
                f.seek(offset)
                data = f.read(length)
        except FileNotFoundError:
            raise SourceError(uri, "no such file") from None
        except (OSError, ValueError) as err:
            raise SourceError(uri, f"cannot read bytes {offset}+{length}: {_short(err)}") from None
    if len(data) != length:
        raise SourceError(uri, f"asked for bytes {offset}+{length}, got {len(data)} bytes")
    return data


def _read_up_to(stream: BinaryIO, limit: int) -> bytes:
    """Read until ``limit`` bytes or end of stream (a raw stream may return short reads)."""
    parts, size = [], 0
    while size < limit:
        chunk = stream.read(limit - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)
