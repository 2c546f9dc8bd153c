"""Read a WARC record by record, so that one damaged or hostile record is rejected with its reason
and the records after it are still read.

:func:`sources.warc.iter_warc_responses` stops at the first bad record: right for a third party
checking one file, wrong for a crawl, where one truncated member or a lying Content-Length would
cost every record after it. :func:`iter_warc_records` yields a :class:`WarcRecordError` for the bad
record instead, finds where the next record starts, and goes on.

Why records are split here and not by warcio: warcio reads a stream and cannot be told to resume
after a failure (a stream is not seekable, and its reader state is spent), and it inflates a gzip
member and reads a block with no size limit. So this module cuts the file into records itself,
with every size bounded (``WarcLimits``), and hands each record's bytes to warcio (through
:mod:`sources.warc`, with its checks and digests) to parse:

- gzip per record (Common Crawl): each gzip member is inflated on its own, at most
  ``max_inflated_bytes``; after a bad member, the next member is the next ``1f 8b 08`` whose
  first inflated bytes are ``WARC/``.
- uncompressed: header up to its blank line (at most ``max_header_bytes``), then Content-Length
  bytes, then the two CRLFs that close a record; after a bad record, the next is the next line
  that starts ``WARC/1.`` and has a well-formed header.

Memory per record is bounded by the limits whatever the input: a gzip bomb is cut at
``max_inflated_bytes``, a record declaring more than ``max_record_bytes`` is skipped without
reading it into memory, and skipping scans forward in 64 KiB steps.
"""

from __future__ import annotations

import dataclasses
import io
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from sources.errors import SourceError
from sources.warc import (
    PayloadTooLarge,
    WarcResponse,
    _crawl_of_warcinfo,
    _is_http_response,
    _iter_checked_records,
    _open_stream,
    _to_response,
)

_CHUNK = 1 << 16
_GZIP_MAGIC = b"\x1f\x8b\x08"
_BLANK = b"\r\n\r\n"
# Reasons a record is rejected with; the fetch stage records them as `fetch_<reason>`.
REASONS = (
    "gzip_error",  # the bytes are not a valid gzip member (corrupt, or a member cut short mid-file)
    "truncated_gzip",  # the file ends inside a gzip member
    "gzip_bomb",  # a member inflates past max_inflated_bytes (or an HTTP body, once decoded)
    "record_too_large",  # Content-Length over max_record_bytes
    "warc_header_error",  # no blank line after the header, a line that is not a field, no Content-Length
    "content_length_mismatch",  # the block does not end where Content-Length says
    "truncated_record",  # the data ends before Content-Length bytes
    "warc_error",  # anything else warcio refuses (not a WARC record, a bad HTTP status line)
)


@dataclasses.dataclass(frozen=True)
class WarcLimits:
    """Bounds on one record, so that no input can make a reader hold more than about these."""

    # A record's declared Content-Length (Common Crawl truncates payloads at 1 MiB).
    max_record_bytes: int = 16 << 20
    # What one gzip member, or one HTTP body once its Content-Encoding is undone, may inflate to.
    max_inflated_bytes: int = 32 << 20
    # A WARC header up to its blank line (real ones are well under 2 KiB).
    max_header_bytes: int = 64 << 10


class WarcRecordError(SourceError):
    """One record that was rejected: ``reason`` (one of REASONS), and ``offset``/``length`` of the
    bytes skipped (from the record's start to where the next record was found)."""

    def __init__(self, uri: str, problem: str, reason: str, offset: int, length: int):
        super().__init__(uri, problem)
        self.reason = reason
        self.offset = offset
        self.length = length

    def __reduce__(self):
        return (type(self), (self.uri, self.problem, self.reason, self.offset, self.length))


class _Bad(Exception):
    def __init__(self, reason: str, problem: str):
        super().__init__(problem)
        self.reason = reason
        self.problem = problem


def iter_warc_records(
    uri: str, *, timeout: float = 60.0, limits: WarcLimits = WarcLimits()
) -> Iterator[WarcResponse | WarcRecordError]:
    """Yield each HTTP response record of ``uri`` in file order, or a WarcRecordError for a bad one.

    Other record types are skipped (a warcinfo names the crawl). Only a file that cannot be
    opened, or that holds no record at all, raises :class:`SourceError`; a transport failure
    part way (a reset connection) is yielded as a ``warc_error`` for the rest of the file.
    """
    with _open_stream(uri, timeout) as stream:
        window = _Window(stream)
        gzipped = window.get(0, 3) == _GZIP_MAGIC
        if window.get(0, 1) == b"":
            raise SourceError(uri, "no WARC records (empty input)")
        crawl, pos = None, 0
        while pos < window.fill(pos + 1):
            try:
                if gzipped:
                    end, data = _inflate_member(window, pos, limits)
                    length = end - pos
                    data_offset = pos
                else:
                    end, data, length = _read_plain_record(window, pos, limits)
                    data_offset = pos
                record = _parse(uri, data, data_offset, limits)
            except _Bad as bad:
                resume = _resync(window, pos, gzipped)
                stop = resume if resume is not None else window.end  # the scan reached the end
                yield WarcRecordError(
                    uri, f"record at byte {pos}: {bad.problem}", bad.reason, pos, stop - pos
                )
                if resume is None:
                    return
                pos = resume
                continue
            except SourceError as err:  # the transport failed part way: nothing more can be read
                yield WarcRecordError(uri, err.problem, "warc_error", pos, window.end - pos)
                return
            window.drop_before(end)
            pos = end
            if record.record.rec_type == "warcinfo":
                crawl = _crawl_of_warcinfo(record.body) or crawl
            elif _is_http_response(record.record):
                try:
                    yield _to_response(record, uri, crawl, data_offset, length)
                except SourceError as err:
                    yield WarcRecordError(uri, err.problem, "warc_error", data_offset, length)


# -- one record ---------------------------------------------------------------------------------


def _parse(uri: str, data: bytes, offset: int, limits: WarcLimits):
    """warcio's parse of exactly one record's (inflated) bytes, with sources.warc's checks."""
    _check_framing(data, limits)
    try:
        records = _iter_checked_records(
            io.BytesIO(data), uri, base_offset=offset, max_body_bytes=limits.max_inflated_bytes
        )
        first = next(records, None)
        extra = next(records, None)
    except PayloadTooLarge as err:
        raise _Bad("gzip_bomb", err.problem.split(": ", 1)[-1] + " (max_inflated_bytes)") from None
    except SourceError as err:
        raise _Bad("warc_error", err.problem) from None
    if first is None or extra is not None:
        raise _Bad("warc_error", "not exactly one WARC record")
    return first


def _declared_length(header: bytes, limits: WarcLimits) -> int:
    """The Content-Length of a WARC header (without its blank line), after checking its shape."""
    lines = header.split(b"\r\n")
    if not lines[0].startswith(b"WARC/1."):
        raise _Bad("warc_error", f"not a WARC record: first line {_show(lines[0])}")
    length = None
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            continue  # a folded continuation line
        name, sep, value = line.partition(b":")
        if not sep or not name.strip() or b" " in name.strip():
            raise _Bad(
                "warc_header_error",
                f"header line {_show(line)} is not a field (no blank line between the header and the block?)",
            )
        if name.strip().lower() == b"content-length":
            value = value.strip()
            if not (value.isascii() and value.isdigit()):
                raise _Bad("warc_header_error", f"bad Content-Length: {_show(value)}")
            length = int(value)
    if length is None:
        raise _Bad("warc_header_error", "no Content-Length in the WARC header")
    if length > limits.max_record_bytes:
        raise _Bad(
            "record_too_large",
            f"Content-Length {length} is over the limit of {limits.max_record_bytes} bytes"
            " (max_record_bytes)",
        )
    return length


def _header_end(data: bytes, limits: WarcLimits) -> int:
    end = data.find(_BLANK, 0, limits.max_header_bytes + len(_BLANK))
    if end < 0:
        raise _Bad(
            "warc_header_error", f"no blank line ends the WARC header within {limits.max_header_bytes} bytes"
        )
    return end


def _check_framing(data: bytes, limits: WarcLimits) -> None:
    """Header, Content-Length bytes, then the two CRLFs that close a record, and nothing else."""
    header_end = _header_end(data, limits)
    declared = _declared_length(data[:header_end], limits)
    block_end = header_end + len(_BLANK) + declared
    if len(data) < block_end:
        raise _Bad(
            "truncated_record",
            f"Content-Length is {declared} but the data ends after {len(data) - header_end - 4} bytes",
        )
    if data[block_end : block_end + 4] != _BLANK or len(data) > block_end + 4:
        rest = data[block_end:]
        if _BLANK in rest[:4] and b"WARC/1." in rest[:16]:
            raise _Bad("warc_error", "the gzip member holds more than one record")
        raise _Bad(
            "content_length_mismatch",
            f"Content-Length {declared} does not match the record (no blank line where the block ends)",
        )


def _inflate_member(window: _Window, start: int, limits: WarcLimits) -> tuple[int, bytes]:
    """The gzip member at ``start``: where it ends and what it inflates to, both bounded."""
    inflater = zlib.decompressobj(wbits=31)  # gzip header and trailer, CRC checked
    out = bytearray()
    pos = start
    header_checked = False
    while not inflater.eof:
        chunk = window.get(pos, pos + _CHUNK)
        if not chunk:
            raise _Bad("truncated_gzip", "the file ends inside this gzip member")
        pos += len(chunk)
        try:
            # At most one byte past the limit: enough to know it is exceeded, never more.
            out += inflater.decompress(chunk, limits.max_inflated_bytes + 1 - len(out))
        except zlib.error as err:
            raise _Bad("gzip_error", f"not a valid gzip member ({err})") from None
        if not header_checked:
            # A record declaring too much is refused as soon as its header is in, not inflated.
            end = out.find(_BLANK, 0, limits.max_header_bytes + len(_BLANK))
            if end >= 0:
                _declared_length(bytes(out[:end]), limits)
                header_checked = True
            elif len(out) > limits.max_header_bytes:
                _header_end(bytes(out), limits)
        if len(out) > limits.max_inflated_bytes:
            raise _Bad(
                "gzip_bomb",
                f"the gzip member inflates past {limits.max_inflated_bytes} bytes (max_inflated_bytes)",
            )
    return pos - len(inflater.unused_data), bytes(out)


def _read_plain_record(window: _Window, start: int, limits: WarcLimits) -> tuple[int, bytes, int]:
    """An uncompressed record: (end after its closing CRLFs, its bytes, its length without them)."""
    header = window.get(start, start + limits.max_header_bytes + len(_BLANK))
    header_end = start + _header_end(header, limits)
    declared = _declared_length(header[: header_end - start], limits)
    block_end = header_end + len(_BLANK) + declared
    data = window.get(start, block_end + len(_BLANK))
    if len(data) < block_end - start:
        raise _Bad(
            "truncated_record",
            f"Content-Length is {declared} but the file ends after"
            f" {len(data) - (header_end + 4 - start)} bytes",
        )
    if data[block_end - start :] != _BLANK:
        raise _Bad(
            "content_length_mismatch",
            f"Content-Length {declared} does not match the record (no blank line where the block ends)",
        )
    return block_end + len(_BLANK), data, block_end - start


# -- finding the next record --------------------------------------------------------------------


def _resync(window: _Window, after: int, gzipped: bool) -> int | None:
    """The offset of the first record start after ``after``, or None at the end of the file.

    Bytes before a candidate are dropped as the scan goes, so skipping a huge bad record holds
    one chunk at a time.
    """
    pattern = _GZIP_MAGIC if gzipped else b"\nWARC/1."
    pos = after + 1
    while True:
        window.drop_before(pos)
        found = window.find(pattern, pos)
        if found is None:
            return None
        candidate = found if gzipped else found + 1
        if _looks_like_record_start(window, candidate, gzipped):
            return candidate
        pos = found + 1


def _looks_like_record_start(window: _Window, at: int, gzipped: bool) -> bool:
    head = window.get(at, at + 4096)
    if gzipped:
        try:
            return zlib.decompressobj(wbits=31).decompress(head, 16).startswith(b"WARC/1.")
        except zlib.error:
            return False
    return head.startswith(b"WARC/1.") and _BLANK in head


class _Window:
    """The stream's bytes from ``base`` on, read in chunks as they are asked for."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.buffer = bytearray()
        self.base = 0
        self.eof = False

    @property
    def end(self) -> int:
        return self.base + len(self.buffer)

    def fill(self, upto: int) -> int:
        """Read until ``upto`` (absolute) is buffered or the stream ends; return the end."""
        while self.end < upto and not self.eof:
            data = self.stream.read(min(max(_CHUNK, upto - self.end), 1 << 24))
            if not data:
                self.eof = True
            else:
                self.buffer += data
        return self.end

    def get(self, start: int, stop: int) -> bytes:
        self.fill(stop)
        return bytes(self.buffer[start - self.base : stop - self.base])

    def drop_before(self, pos: int) -> None:
        if pos > self.base:
            del self.buffer[: pos - self.base]
            self.base = pos

    def find(self, pattern: bytes, start: int) -> int | None:
        """The first ``pattern`` at or after ``start``, reading (and dropping what is scanned) as needed."""
        pos = start
        while True:
            self.drop_before(max(self.base, pos - len(pattern)))
            i = self.buffer.find(pattern, max(0, pos - self.base))
            if i >= 0:
                return self.base + i
            if self.eof:
                return None
            pos = max(pos, self.end - len(pattern) + 1)
            self.fill(self.end + _CHUNK)


def _show(value: bytes, limit: int = 60) -> str:
    text = repr(value[:limit])
    return text + ("..." if len(value) > limit else "")
