"""sources.warc on local files: a real Common Crawl WARC, Japanese WARCs written here, damaged copies.

HTTP transport is in test_sources_warc_http.py.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import io
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from sources.errors import SourceError
from sources.warc import WarcResponse, iter_warc_responses, read_warc_record_at

DATA = Path(__file__).resolve().parents[1] / "data" / "sources"
CC_WARC = DATA / "cc_whirlwind.warc.gz"
# (record type, offset, length) of every gzip member, as published with the fixture.
CC_MEMBERS = [
    ("warcinfo", 0, 516),
    ("request", 516, 507),
    ("response", 1023, 17351),
    ("metadata", 18374, 483),
]


def _cc_uncompressed() -> bytes:
    """The same four records without compression: each member decompresses on its own."""
    data = CC_WARC.read_bytes()
    return b"".join(gzip.decompress(data[offset : offset + length]) for _, offset, length in CC_MEMBERS)


def _gzip_per_record(records: list[bytes]) -> bytes:
    return b"".join(gzip.compress(record, mtime=0) for record in records)


def _write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# -- the real Common Crawl file --------------------------------------------------------------


def test_warcio_gives_exact_member_boundaries_once_a_record_is_read():
    # What the module relies on: asked after the body is read, warcio's offset/length are the
    # gzip member boundaries. (Asking before reading also works, but consumes the body.)
    with CC_WARC.open("rb") as f:
        records = ArchiveIterator(f)
        seen = []
        for record in records:
            record.content_stream().read()
            seen.append((record.rec_type, records.get_record_offset(), records.get_record_length()))
    assert seen == CC_MEMBERS


def test_cc_response_fields():
    [response] = list(iter_warc_responses(str(CC_WARC)))
    assert response.warc_filename == str(CC_WARC)
    assert response.crawl == "CC-MAIN-2024-22"
    assert response.record_id == "<urn:uuid:2aabeff2-67f5-4608-8466-e87c6296e2b6>"
    assert response.target_uri == "https://an.wikipedia.org/wiki/Escopete"
    assert response.warc_date == "2024-05-18T01:58:10Z"
    assert (response.offset, response.length) == (1023, 17351)
    assert response.payload_digest == "sha1:RY7PLBUFQNI2FFV5FTUQK72W6SNPXLQU"
    assert response.block_digest == "sha1:35FTUGFVNWRVTZQGCWIX2MQA3LMYC7X7"
    assert response.digest_verified is True
    assert response.identified_payload_type == "text/html"
    assert response.http_status == 200
    assert response.content_type == "text/html; charset=UTF-8"
    # Headers as recorded: order, case and repeats kept; CC renames the encodings it undid.
    assert response.http_headers[0] == ("date", "Sat, 18 May 2024 01:58:10 GMT")
    assert ("X-Crawler-content-encoding", "gzip") in response.http_headers
    assert [v for k, v in response.http_headers if k == "set-cookie"][:1] == [
        "WMF-Last-Access=18-May-2024;Path=/;HttpOnly;secure;Expires=Wed, 19 Jun 2024 00:00:00 GMT"
    ]
    assert response.http_headers[-1] == ("Content-Length", "72848")


def test_cc_payload_is_the_stored_body_and_matches_its_digest():
    [response] = list(iter_warc_responses(str(CC_WARC)))
    assert len(response.payload) == 72848
    assert response.payload.startswith(b"<!DOCTYPE html>\n<html")
    # Recompute the digest independently of warcio.
    sha1 = base64.b32encode(hashlib.sha1(response.payload).digest()).decode()
    assert response.payload_digest == f"sha1:{sha1}"
    assert "payload=" not in repr(response)  # 70 KB of HTML stays out of logs


def test_cc_offsets_slice_out_one_record():
    [response] = list(iter_warc_responses(str(CC_WARC)))
    member = CC_WARC.read_bytes()[response.offset : response.offset + response.length]
    record = gzip.decompress(member)
    assert record.startswith(b"WARC/1.0\r\nWARC-Type: response\r\n")
    assert record.endswith(b"</html>\r\n\r\n")


def test_read_at_returns_the_same_response_without_crawl():
    [streamed] = list(iter_warc_responses(str(CC_WARC)))
    fetched = read_warc_record_at(str(CC_WARC), 1023, 17351)
    # The warcinfo that names the crawl is not in the range.
    assert fetched == dataclasses.replace(streamed, crawl=None)


@pytest.mark.parametrize("offset, length", [(0, 516), (516, 507), (18374, 483)])
def test_read_at_non_response_records_is_none(offset, length):
    assert read_warc_record_at(str(CC_WARC), offset, length) is None


@pytest.mark.parametrize(
    "offset, length, message",
    [
        (516, 507 + 17351, "bytes 516+17858 hold more than one WARC record"),
        (1023, 17350, "truncated gzip member at byte 1023"),
        (1024, 17350, "not a WARC record at byte 1024"),
        (18374, 500, "asked for bytes 18374+500, got 483 bytes"),
    ],
)
def test_read_at_wrong_coordinates(offset, length, message):
    with pytest.raises(SourceError) as err:
        read_warc_record_at(str(CC_WARC), offset, length)
    assert str(err.value).startswith(f"{CC_WARC}: ")
    assert message in str(err.value)


def test_read_at_rejects_impossible_ranges():
    with pytest.raises(ValueError):
        read_warc_record_at(str(CC_WARC), 1023, 0)


def test_uncompressed_warc_offsets_exclude_the_record_separator(tmp_path):
    raw = _cc_uncompressed()
    path = _write(tmp_path, "cc.warc", raw)
    [plain] = list(iter_warc_responses(path))
    [gzipped] = list(iter_warc_responses(str(CC_WARC)))
    assert plain.payload == gzipped.payload
    assert plain.digest_verified is True
    # warcio counts the two CRLFs after a block in neither record when there is no gzip.
    assert raw[plain.offset : plain.offset + plain.length].startswith(b"WARC/1.0\r\nWARC-Type: response")
    assert raw[plain.offset + plain.length : plain.offset + plain.length + 4] == b"\r\n\r\n"
    assert read_warc_record_at(path, plain.offset, plain.length) == dataclasses.replace(plain, crawl=None)


def test_digest_mismatch_is_reported_not_raised(tmp_path):
    raw = _cc_uncompressed()
    tampered = raw.replace(b"<title>Escopete", b"<title>Escopetf", 1)
    assert tampered != raw and len(tampered) == len(raw)
    [response] = list(iter_warc_responses(_write(tmp_path, "tampered.warc", tampered)))
    assert response.digest_verified is False


def test_no_digest_means_unverified(tmp_path):
    raw = _cc_uncompressed()
    # Renaming WARC header lines leaves every Content-Length (which counts the block) valid.
    stripped = raw.replace(b"WARC-Payload-Digest:", b"X-Old-Payload-Digest:").replace(
        b"WARC-Block-Digest:", b"X-Old-Block-Digest:"
    )
    responses = list(iter_warc_responses(_write(tmp_path, "nodigest.warc", stripped)))
    assert [(r.payload_digest, r.digest_verified) for r in responses] == [(None, None)]


# -- damaged input ----------------------------------------------------------------------------


def _cc_with_content_length(value: bytes) -> list[bytes]:
    raw = _cc_uncompressed()
    records = [raw[:807], raw[807:1551], raw[1551:76725], raw[76725:]]  # uncompressed boundaries
    records[2] = records[2].replace(b"Content-Length: 74581", b"Content-Length: " + value, 1)
    return records


DAMAGED = {
    "cut inside the response": (
        lambda: CC_WARC.read_bytes()[:10000],
        ".warc.gz",
        "truncated record at byte 1023: Content-Length is 74581",
    ),
    "cut in the member trailer": (
        lambda: CC_WARC.read_bytes()[:18370],
        ".warc.gz",
        "truncated gzip member at byte 1023",
    ),
    "cut by one byte": (lambda: CC_WARC.read_bytes()[:-1], ".warc.gz", "truncated gzip member at byte 18374"),
    "garbage": (lambda: bytes(range(256)) * 40, ".warc.gz", "not a WARC record at byte 0"),
    "an HTML error page": (
        lambda: b"<html><body>404 Not Found</body></html>\n",
        ".warc",
        "not a WARC record at byte 0: Invalid WARC record, first line: <html>",
    ),
    "empty": (lambda: b"", ".warc.gz", "no WARC records (empty input)"),
    "garbage after a good record": (
        lambda: CC_WARC.read_bytes()[:1023] + b"\x00junk\r\n" * 9,
        ".warc.gz",
        "not a WARC record at byte 1023",
    ),
    "whole-file gzip": (lambda: gzip.compress(_cc_uncompressed()), ".warc.gz", "gzipped as a whole"),
    "Content-Length too small": (
        lambda: b"".join(_cc_with_content_length(b"74500")),
        ".warc",
        "record at byte 1551: Content-Length 74500 does not match the record",
    ),
    "Content-Length too small, gzip": (
        lambda: _gzip_per_record(_cc_with_content_length(b"74500")),
        ".warc.gz",
        "record at byte 1023: Content-Length 74500 does not match the record",
    ),
    "Content-Length too large, gzip": (
        lambda: _gzip_per_record(_cc_with_content_length(b"80000")),
        ".warc.gz",
        "truncated record at byte 1023: Content-Length is 80000",
    ),
    "Content-Length not a number": (
        lambda: b"".join(_cc_with_content_length(b"74_581")),
        ".warc",
        "record at byte 1551 has a bad Content-Length: '74_581'",
    ),
}


@pytest.mark.parametrize("case", DAMAGED)
def test_damaged_input_raises_source_error_naming_file_and_offset(case, tmp_path):
    make, suffix, message = DAMAGED[case]
    path = _write(tmp_path, "damaged" + suffix, make())
    with pytest.raises(SourceError) as err:
        list(iter_warc_responses(path))
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_truncated_file_yields_nothing_from_the_broken_record(tmp_path):
    path = _write(tmp_path, "cut.warc.gz", CC_WARC.read_bytes()[:10000])
    seen = []
    with pytest.raises(SourceError):
        for response in iter_warc_responses(path):
            seen.append(response)
    assert seen == []


def test_missing_file():
    with pytest.raises(SourceError, match=r"nowhere\.warc\.gz: no such file"):
        list(iter_warc_responses("/nonexistent/nowhere.warc.gz"))


# -- Japanese pages written with warcio --------------------------------------------------------

# A real Atom feed in its original Shift_JIS (see tests/data/sources/README.md).
SJIS_FEED = (DATA / "ooganemochi.com.xml").read_bytes()
FEED_URL = "http://www.ooganemochi.com/atom.xml"


def _chunked(body: bytes, size: int = 1000) -> bytes:
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


def _japanese_warc(compress: bool) -> bytes:
    """warcinfo, request, plain Shift_JIS response, gzip+chunked response, a dns: response, metadata."""
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=compress)

    def ids(n: int) -> dict[str, str]:
        return {
            "WARC-Date": "2005-10-03T05:40:00Z",
            "WARC-Record-ID": f"<urn:uuid:00000000-0000-4000-8000-00000000000{n}>",
        }

    warcinfo = writer.create_warcinfo_record("ja.warc", {"isPartOf": "JA-TEST-2005-40", "software": "warcio"})
    writer.write_record(warcinfo)
    request = StatusAndHeaders(
        "GET /atom.xml HTTP/1.1",
        [("Host", "www.ooganemochi.com"), ("User-Agent", "CCBot/2.0 (https://commoncrawl.org/faq/)")],
        is_http_request=True,
    )
    writer.write_record(
        writer.create_warc_record(FEED_URL, "request", http_headers=request, warc_headers_dict=ids(1))
    )
    plain = StatusAndHeaders(
        "200 OK",
        [
            ("Date", "Mon, 03 Oct 2005 05:40:00 GMT"),
            ("Server", "Apache/1.3.33 (Unix)"),
            ("Last-Modified", "Mon, 03 Oct 2005 05:32:05 GMT"),
            ("Content-Type", "application/atom+xml; charset=Shift_JIS"),
            ("Content-Length", str(len(SJIS_FEED))),
        ],
        protocol="HTTP/1.1",
    )
    writer.write_record(
        writer.create_warc_record(
            FEED_URL, "response", payload=io.BytesIO(SJIS_FEED), http_headers=plain, warc_headers_dict=ids(2)
        )
    )
    encoded = _chunked(gzip.compress(SJIS_FEED, mtime=0))
    compressed = StatusAndHeaders(
        "200 OK",
        [
            ("Content-Type", "application/atom+xml; charset=Shift_JIS"),
            ("Content-Encoding", "gzip"),
            ("Transfer-Encoding", "chunked"),
        ],
        protocol="HTTP/1.1",
    )
    writer.write_record(
        writer.create_warc_record(
            FEED_URL + "?gz",
            "response",
            payload=io.BytesIO(encoded),
            http_headers=compressed,
            warc_headers_dict=ids(3),
        )
    )
    writer.write_record(
        writer.create_warc_record(
            "dns:www.ooganemochi.com",
            "response",
            payload=io.BytesIO(b"20051003054000\nwww.ooganemochi.com. 3600 IN A 192.0.2.1\n"),
            warc_content_type="text/dns",
            warc_headers_dict=ids(4),
        )
    )
    writer.write_record(
        writer.create_warc_record(
            FEED_URL,
            "metadata",
            payload=io.BytesIO(b"charset-detected: Shift_JIS\r\n"),
            warc_content_type="application/warc-fields",
            warc_headers_dict=ids(5),
        )
    )
    return out.getvalue()


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "plain"])
def test_japanese_warc_round_trip(compress, tmp_path):
    path = _write(tmp_path, "ja.warc.gz" if compress else "ja.warc", _japanese_warc(compress))
    responses = list(iter_warc_responses(path))
    assert [(r.target_uri, r.record_id) for r in responses] == [
        (FEED_URL, "<urn:uuid:00000000-0000-4000-8000-000000000002>"),
        (FEED_URL + "?gz", "<urn:uuid:00000000-0000-4000-8000-000000000003>"),
    ]  # the request, dns: response and metadata records are skipped
    for response in responses:
        assert response.payload == SJIS_FEED  # byte for byte, chunking and gzip undone
        assert response.crawl == "JA-TEST-2005-40"
        assert response.warc_date == "2005-10-03T05:40:00Z"
        assert response.http_status == 200
        assert response.content_type == "application/atom+xml; charset=Shift_JIS"
        assert response.digest_verified is True
        assert "<title>ブログで大金持ち</title>" in response.payload.decode("shift_jis")
        assert read_warc_record_at(path, response.offset, response.length) == dataclasses.replace(
            response, crawl=None
        )
    assert responses[0].http_headers == (
        ("Date", "Mon, 03 Oct 2005 05:40:00 GMT"),
        ("Server", "Apache/1.3.33 (Unix)"),
        ("Last-Modified", "Mon, 03 Oct 2005 05:32:05 GMT"),
        ("Content-Type", "application/atom+xml; charset=Shift_JIS"),
        ("Content-Length", "2681"),
    )
    assert ("Content-Encoding", "gzip") in responses[1].http_headers


def test_warc_response_is_frozen():
    [response] = list(iter_warc_responses(str(CC_WARC)))
    assert isinstance(response, WarcResponse)
    with pytest.raises(dataclasses.FrozenInstanceError):
        response.offset = 0  # type: ignore[misc]


def test_fsspec_url(tmp_path):
    import fsspec

    with fsspec.open("memory://tests-sources/cc.warc.gz", "wb") as f:
        f.write(CC_WARC.read_bytes())
    [response] = list(iter_warc_responses("memory://tests-sources/cc.warc.gz"))
    assert (response.offset, response.length, response.crawl) == (1023, 17351, "CC-MAIN-2024-22")
    fetched = read_warc_record_at("memory://tests-sources/cc.warc.gz", 1023, 17351)
    assert fetched == dataclasses.replace(response, crawl=None)
