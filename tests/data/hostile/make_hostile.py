"""Builds the hostile-input corpus of README.md in this folder, deterministically, into a directory.

Nothing here is committed as data but the Japanese text (ja_text.txt): a 50 MB page or a gzip
bomb would bloat the repository, and every file is cheap to make. The same call gives the same
bytes (fixed record ids, dates and random seeds; gzip members with mtime 0).

    python tests/data/hostile/make_hostile.py OUT_DIR    # writes every file listed in README.md

``CASES`` says, for each hostile record, the stage that must refuse it and the manifest's
``exclusion_reason``; ``GOOD`` lists the well-formed pages that must come through beside them.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import io
import random
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

HERE = Path(__file__).resolve().parent
# 林芙美子「小さい花」(public domain, Aozora Bunko; see README.md), one paragraph a line.
TEXT = (HERE / "ja_text.txt").read_text(encoding="utf-8")
PARAGRAPHS = [line for line in TEXT.splitlines() if len(line) > 60]
DATE = "2024-05-18T01:58:10Z"
# Sizes of the large cases: the bombs inflate to 8 times the default limit of 32 MiB.
BOMB_INFLATED_BYTES = 256 << 20
BIG_PAGE_BYTES = 50_000_000
LONG_LINE_BYTES = 10_000_000


def page(title: str, paragraphs: list[str], charset: str = "utf-8") -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f'<html lang="ja"><head><meta charset="{charset}"><title>{title}</title></head>'
        f"<body><article><h1>{title}</h1>{body}</article></body></html>"
    )


def response_record(
    url: str, body: bytes, content_type: str | None, extra_headers: tuple = (), n: int = 0
) -> bytes:
    """One uncompressed WARC response record (with its closing CRLFs), written by warcio."""
    headers = [("Content-Length", str(len(body))), *extra_headers]
    if content_type is not None:
        headers.insert(0, ("Content-Type", content_type))
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=False)
    record = writer.create_warc_record(
        url,
        "response",
        payload=io.BytesIO(body),
        http_headers=StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1"),
        warc_headers_dict={
            "WARC-Date": DATE,
            "WARC-Record-ID": f"<urn:uuid:00000000-0000-4000-8000-{n:012d}>",
        },
    )
    writer.write_record(record)
    return out.getvalue()


def member(record: bytes) -> bytes:
    return gzip.compress(record, compresslevel=6, mtime=0)


def _zeros_gzip(size: int, prefix: bytes = b"", wbits: int = 31) -> bytes:
    """A gzip member of ``prefix`` and ``size`` zero bytes, compressed without holding them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    parts = [packer.compress(prefix)]
    chunk = bytes(1 << 20)
    for _ in range(size >> 20):
        parts.append(packer.compress(chunk))
    parts.append(packer.flush())
    return b"".join(parts)


# -- the good pages ---------------------------------------------------------------------------


def _good(n: int, charset: str, label: str) -> bytes:
    text = page(f"小さい花 その{n}", PARAGRAPHS[n : n + 6], label)
    url = f"https://good.example.jp/chiisai-hana/{n}"
    return response_record(url, text.encode(charset), f"text/html; charset={label}", n=100 + n)


GOOD = {
    "good_utf8": lambda: _good(0, "utf-8", "utf-8"),
    "good_shift_jis": lambda: _good(1, "cp932", "Shift_JIS"),
    "good_euc_jp": lambda: _good(2, "euc_jp", "EUC-JP"),
    "good_few_nul_bytes": lambda: response_record(
        # A few NUL bytes (under extract.max_replacement_fraction) are not a reason to lose a page:
        # it comes through, and trafilatura leaves them out of the text.
        "https://good.example.jp/nul",
        page("小さい花 NUL", PARAGRAPHS[3:9]).replace("。", "。\x00", 3).encode(),
        "text/html; charset=utf-8",
        n=110,
    ),
}


# -- the hostile records ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    stage: str  # the stage that refuses it
    reason: str  # the manifest's exclusion_reason
    what: str  # for the README table
    build: Callable[[], bytes]  # gzip member(s) for the .warc.gz corpus, or record bytes (plain)
    gzipped: bool = True
    # Its file of its own ends with a good record (a cut member mid-file is not one at the end).
    followed_by_good: bool = False


def _html(n: int, url: str, body: bytes, content_type: str | None, extra: tuple = ()) -> bytes:
    return member(response_record(url, body, content_type, extra, n=n))


def _truncated_member() -> bytes:
    whole = member(
        response_record(
            "https://hostile.example.jp/cut",
            page("切れた", PARAGRAPHS[:6]).encode(),
            "text/html; charset=utf-8",
            n=1,
        )
    )
    return whole[: len(whole) // 2]


def _wrong_content_length() -> bytes:
    record = response_record(
        "https://hostile.example.jp/length", page("長さ", PARAGRAPHS[:6]).encode(), "text/html", n=2
    )
    header, _, rest = record.partition(b"\r\n\r\n")
    declared = int(header.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    return member(
        header.replace(b"Content-Length: %d" % declared, b"Content-Length: %d" % (declared - 100))
        + b"\r\n\r\n"
        + rest
    )


def _no_blank_line() -> bytes:
    record = response_record(
        "https://hostile.example.jp/header", page("見出し", PARAGRAPHS[:6]).encode(), "text/html", n=3
    )
    return member(record.replace(b"\r\n\r\n", b"\r\n", 1))


@functools.cache  # built once per process: the corpus file and the assembled WARC share it
def _member_bomb() -> bytes:
    # A small, honest record, then a quarter of a gigabyte of zeros in the same gzip member.
    record = response_record(
        "https://hostile.example.jp/bomb", page("爆弾", PARAGRAPHS[:2]).encode(), "text/html", n=4
    )
    return _zeros_gzip(BOMB_INFLATED_BYTES, prefix=record)


@functools.cache  # built once per process: the corpus file and the assembled WARC share it
def _http_bomb() -> bytes:
    # The WARC record is small and well formed; its HTTP body is gzip (Content-Encoding) of
    # a quarter of a gigabyte, which warcio would inflate when the body is read.
    body = _zeros_gzip(BOMB_INFLATED_BYTES)
    return _html(
        5, "https://hostile.example.jp/http-bomb", body, "text/html", (("Content-Encoding", "gzip"),)
    )


@functools.cache  # built once per process: the corpus file and the assembled WARC share it
def _big_page() -> bytes:
    text = "".join(f"<p>{p}</p>\n" for p in PARAGRAPHS)
    body = page("巨大", []).replace(
        "</article>", text * (BIG_PAGE_BYTES // len(text.encode()) + 1) + "</article>"
    )
    return _html(6, "https://hostile.example.jp/50mb", body.encode(), "text/html; charset=utf-8")


@functools.cache  # built once per process: the corpus file and the assembled WARC share it
def _long_line() -> bytes:
    line = "".join(PARAGRAPHS)
    body = page("一行", [line * (LONG_LINE_BYTES // len(line.encode()) + 1)])
    return _html(7, "https://hostile.example.jp/one-line", body.encode(), "text/html; charset=utf-8")


@functools.cache  # built once per process: the corpus file and the assembled WARC share it
def _deep_nesting() -> bytes:
    body = page("入れ子", []).replace(
        "<article>", "<article>" + "<div>" * 100_000 + f"<p>{PARAGRAPHS[0]}</p>" + "</div>" * 100_000
    )
    return _html(8, "https://hostile.example.jp/nested", body.encode(), "text/html; charset=utf-8")


def _binary() -> bytes:
    return _html(9, "https://hostile.example.jp/binary", random.Random(13).randbytes(200_000), "text/html")


def _invalid_utf8() -> bytes:
    data = bytearray(page("不正", PARAGRAPHS[:6]).encode())
    for i in range(200, len(data), 25):  # every 25th byte made 0xFF, which UTF-8 never has
        data[i] = 0xFF
    return _html(10, "https://hostile.example.jp/bad-utf8", bytes(data), "text/html; charset=utf-8")


def _sjis_as_utf8() -> bytes:
    body = page("シフトJIS", PARAGRAPHS[:6], "utf-8").encode("cp932")
    return _html(11, "https://hostile.example.jp/sjis-as-utf8", body, "text/html; charset=UTF-8")


def _eucjp_as_sjis() -> bytes:
    body = page("EUC-JP", PARAGRAPHS[:6], "Shift_JIS").encode("euc_jp")
    return _html(12, "https://hostile.example.jp/eucjp-as-sjis", body, "text/html; charset=Shift_JIS")


def _many_nul_bytes() -> bytes:
    # UTF-16 saved and served as UTF-8: a NUL beside every ASCII byte.
    body = page("ヌル", PARAGRAPHS[:6]).encode("utf-16-le")
    return _html(13, "https://hostile.example.jp/nul", body, "text/html; charset=utf-8")


def _plain_wrong_length() -> bytes:
    record = response_record(
        "https://hostile.example.jp/plain-length", page("長さ", PARAGRAPHS[:6]).encode(), "text/html", n=20
    )
    header, _, rest = record.partition(b"\r\n\r\n")
    declared = int(header.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    # Too large: the block would swallow the start of the next record.
    return header.replace(b"Content-Length: %d" % declared, b"Content-Length: %d" % (declared + 300)) + (
        b"\r\n\r\n" + rest
    )


def _plain_no_blank_line() -> bytes:
    record = response_record(
        "https://hostile.example.jp/plain-header", page("見出し", PARAGRAPHS[:6]).encode(), "text/html", n=21
    )
    return record.replace(b"\r\n\r\n", b"\r\n", 1)


CASES = [
    Case(
        "truncated_gzip",
        "fetch",
        "fetch:fetch_gzip_error",
        "a gzip member cut in half, followed by more records",
        _truncated_member,
        followed_by_good=True,
    ),
    Case(
        "wrong_content_length",
        "fetch",
        "fetch:fetch_content_length_mismatch",
        "Content-Length 100 bytes short of the block",
        _wrong_content_length,
    ),
    Case(
        "header_without_blank_line",
        "fetch",
        "fetch:fetch_warc_header_error",
        "WARC header running straight into the HTTP headers",
        _no_blank_line,
    ),
    Case(
        "gzip_bomb_member",
        "fetch",
        "fetch:fetch_gzip_bomb",
        "a gzip member inflating to 256 MiB (a record, then zeros)",
        _member_bomb,
    ),
    Case(
        "gzip_bomb_http_body",
        "fetch",
        "fetch:fetch_gzip_bomb",
        "an HTTP body with Content-Encoding gzip inflating to 256 MiB",
        _http_bomb,
    ),
    Case(
        "page_50mb",
        "fetch",
        "fetch:fetch_record_too_large",
        "a 50 MB HTML page (Content-Length over max_record_bytes)",
        _big_page,
    ),
    Case(
        "single_10mb_line",
        "extract",
        "extract:line_too_long",
        "a page whose text is one 10 MB line (3.4 M characters)",
        _long_line,
    ),
    Case(
        "deeply_nested_html",
        "extract",
        "extract:no_text_extracted",
        "100,000 nested <div> around the text",
        _deep_nesting,
    ),
    Case(
        "binary_as_html", "extract", "extract:charset", "200 KB of random bytes labelled text/html", _binary
    ),
    Case("invalid_utf8", "extract", "extract:charset", "UTF-8 page with every 25th byte 0xFF", _invalid_utf8),
    Case(
        "shift_jis_labelled_utf8",
        "extract",
        "extract:charset",
        "Shift_JIS bytes, charset=UTF-8",
        _sjis_as_utf8,
    ),
    Case(
        "euc_jp_labelled_shift_jis",
        "extract",
        "extract:charset",
        "EUC-JP bytes, charset=Shift_JIS",
        _eucjp_as_sjis,
    ),
    Case(
        "nul_bytes",
        "extract",
        "extract:charset",
        "UTF-16 (a NUL beside every ASCII byte) served as UTF-8",
        _many_nul_bytes,
    ),
    Case(
        "plain_wrong_content_length",
        "fetch",
        "fetch:fetch_content_length_mismatch",
        "uncompressed WARC: Content-Length 300 bytes too long",
        _plain_wrong_length,
        gzipped=False,
        followed_by_good=True,
    ),
    Case(
        "plain_header_without_blank_line",
        "fetch",
        "fetch:fetch_warc_header_error",
        "uncompressed WARC: no blank line after the WARC header",
        _plain_no_blank_line,
        gzipped=False,
    ),
]
# Cut at the very end of a file, a gzip member is `truncated_gzip` rather than `gzip_error`.
TRUNCATED_AT_END = Case(
    "truncated_gzip_at_end",
    "fetch",
    "fetch:fetch_truncated_gzip",
    "the file ends inside its last gzip member",
    _truncated_member,
)


def assembled_gz() -> bytes:
    """hostile.warc.gz: the good pages between the gzipped hostile records, the cut member last."""
    good = [member(make()) for make in GOOD.values()]
    parts = [good[0]]
    for i, case in enumerate(c for c in CASES if c.gzipped):
        parts += [case.build(), good[(i + 1) % len(good)]]
    return b"".join(parts + [TRUNCATED_AT_END.build()])


def assembled_plain() -> bytes:
    """hostile.warc: uncompressed, the good pages between the uncompressed hostile records."""
    good = [make() for make in GOOD.values()]
    parts = [good[0]]
    for i, case in enumerate(c for c in CASES if not c.gzipped):
        parts += [case.build(), good[(i + 1) % len(good)]]
    return b"".join(parts)


def write_corpus(out_dir: Path) -> dict[str, Path]:
    """Every file of README.md's table into ``out_dir``; returns name -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for case in [*CASES, TRUNCATED_AT_END]:
        path = out_dir / (case.name + (".warc.gz" if case.gzipped else ".warc"))
        good = GOOD["good_utf8"]() if case.followed_by_good else b""
        data = case.build() + (member(good) if good and case.gzipped else good)
        path.write_bytes(data)
        written[case.name] = path
    for name, data in (("hostile.warc.gz", assembled_gz()), ("hostile.warc", assembled_plain())):
        (out_dir / name).write_bytes(data)
        written[name] = out_dir / name
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_hostile.py OUT_DIR")
    for name, path in write_corpus(Path(sys.argv[1])).items():
        print(f"{path.stat().st_size:>12,}  {path}")
