"""sources.commoncrawl_index: the CDX server (replayed by cc_server with real output lines) and
the columnar index (Parquet written with the real schema's types by write_columnar_index)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sources.commoncrawl_index import (
    IndexRecord,
    columnar_index_scanner,
    parse_cdxj_line,
    query_cdx,
    select_from_columnar_index,
)
from sources.errors import SourceError
from sources.http_client import HttpClient, HttpError, RetryPolicy

DATA = Path(__file__).resolve().parents[1] / "data" / "commoncrawl"
REAL_CDX_LINES = (DATA / "cc_cdx_api_output_CC-MAIN-2025-43.jsonl").read_text().splitlines()
RAW_INDEX_LINES = [
    line
    for line in (DATA / "cc_cdxj_raw_index_lines.txt").read_text().splitlines()
    if not line.startswith("#")
]


@pytest.fixture
def waits():
    return []


@pytest.fixture
def client(waits):
    return HttpClient(retry=RetryPolicy(max_attempts=3), timeout_seconds=5.0, sleep=waits.append)


# -- CDX server ------------------------------------------------------------------------------


def test_real_cdx_output_is_replayed_into_records(cc_server, client):
    cc_server.add_cdx("CC-MAIN-2025-43", REAL_CDX_LINES)
    records = list(query_cdx(client, cc_server.url, "CC-MAIN-2025-43", "commoncrawl.org/get-started"))
    assert records[1] == IndexRecord(
        crawl="CC-MAIN-2025-43",
        url="https://commoncrawl.org/get-started",
        warc_filename="crawl-data/CC-MAIN-2025-43/segments/1759648664410.92/warc/"
        "CC-MAIN-20251016175923-20251016205923-00549.warc.gz",
        offset=160581106,
        length=12695,
        digest="ZWUFCT57EAYE6Z2QRZ3UF4PQA5TG3BEP",
        mime="text/html",
        mime_detected="text/html",
        status=200,
        languages="eng",
        charset="UTF-8",
        timestamp="20251016192109",
    )
    assert [r.url for r in records] == [
        "https://www.commoncrawl.org/get-started",
        "https://commoncrawl.org/get-started",
    ]
    count, page = cc_server.requests
    assert count.path == "/CC-MAIN-2025-43-index"
    assert count.query == {
        "url": ["commoncrawl.org/get-started"],
        "output": ["json"],
        "showNumPages": ["true"],
    }
    assert page.query == {"url": ["commoncrawl.org/get-started"], "output": ["json"], "page": ["0"]}


def _kyoto_capture(i: int) -> dict[str, str]:
    """A capture line shaped like the real output (all strings), for a page of a Japanese city site."""
    url = f"https://www.city.kyoto.lg.jp/sogo/page/00000{i:05d}.html"
    return {
        "urlkey": f"jp,lg,kyoto,city)/sogo/page/00000{i:05d}.html",
        "timestamp": f"202405180{i % 10}1810",
        "url": url,
        "mime": "text/html",
        "mime-detected": "text/html",
        "status": "200",
        "digest": base64.b32encode(hashlib.sha1(url.encode()).digest()).decode(),
        "length": str(14000 + 37 * i),
        "offset": str(600_000_000 + 15_000 * i),
        "filename": "crawl-data/CC-MAIN-2024-22/segments/1715971057216.39/warc/"
        f"CC-MAIN-20240517233122-20240518023122-{i:05d}.warc.gz",
        "languages": "jpn" if i % 3 else "jpn,eng",
        "encoding": "UTF-8",
    }


def test_pages_are_read_in_order_with_a_pause_between_requests(cc_server, client, waits):
    cc_server.add_cdx("CC-MAIN-2024-22", [_kyoto_capture(i) for i in range(7)])
    records = list(query_cdx(client, cc_server.url, "CC-MAIN-2024-22", "city.kyoto.lg.jp/*", page_size=3))
    assert [r.offset for r in records] == [600_000_000 + 15_000 * i for i in range(7)]
    assert [r.query.get("page", ["count"])[0] for r in cc_server.requests] == ["count", "0", "1", "2"]
    assert all(r.query["pageSize"] == ["3"] for r in cc_server.requests)
    assert waits == [1.0, 1.0, 1.0]  # one polite second before each request after the first


def test_limit_stops_before_the_remaining_pages(cc_server, client):
    cc_server.add_cdx("CC-MAIN-2024-22", [_kyoto_capture(i) for i in range(7)])
    records = list(
        query_cdx(
            client,
            cc_server.url,
            "CC-MAIN-2024-22",
            "city.kyoto.lg.jp/*",
            page_size=3,
            limit=4,
            pause_seconds=0,
        )
    )
    assert len(records) == 4
    assert [r.query.get("page", ["count"])[0] for r in cc_server.requests] == ["count", "0", "1"]


def test_match_type_filters_and_time_range_are_sent_and_applied(cc_server, client):
    whirlwind = (DATA / "whirlwind_cdx_api_line.jsonl").read_text().splitlines()
    cc_server.add_cdx("CC-MAIN-2024-22", [_kyoto_capture(i) for i in range(7)] + whirlwind)
    records = list(
        query_cdx(
            client,
            cc_server.url,
            "CC-MAIN-2024-22",
            "city.kyoto.lg.jp/sogo/",
            match_type="prefix",
            filters=("=status:200", "languages:jpn,eng"),
            from_ts="2024051800",
            to_ts="20240518039999",
            pause_seconds=0,
        )
    )
    assert [r.languages for r in records] == ["jpn,eng", "jpn,eng"]  # captures 0 and 3
    query = cc_server.requests[0].query
    assert query["matchType"] == ["prefix"]
    assert query["filter"] == ["=status:200", "languages:jpn,eng"]
    assert (query["from"], query["to"]) == (["2024051800"], ["20240518039999"])


def test_no_captures_is_an_empty_result(cc_server, client):
    cc_server.add_cdx("CC-MAIN-2025-43", REAL_CDX_LINES)
    assert list(query_cdx(client, cc_server.url, "CC-MAIN-2025-43", "votemadera.com/", pause_seconds=0)) == []
    [request] = cc_server.requests
    assert request.status == 404


def test_the_replayed_no_captures_body_is_the_real_one(cc_server, client):
    """The client is tested against the server's 404 body, so that body must be the real format."""
    cc_server.add_cdx("CC-MAIN-2025-43", REAL_CDX_LINES)
    response = client.get(cc_server.url + "/CC-MAIN-2025-43-index?url=http://votemadera.com/", expect=(404,))
    real = (DATA / "cc_cdx_no_captures_404.json").read_bytes().strip()
    assert response.content == real


def test_any_other_404_is_an_error(cc_server, client):
    cc_server.add_cdx("CC-MAIN-2025-43", REAL_CDX_LINES)
    with pytest.raises(HttpError) as err:
        list(
            query_cdx(
                client, cc_server.url, "CC-MAIN-1999-01", "commoncrawl.org/get-started", pause_seconds=0
            )
        )
    assert (err.value.reason, err.value.status) == ("http_404", 404)
    assert "/CC-MAIN-1999-01-index" in err.value.uri


def test_an_overloaded_index_server_is_retried(cc_server, client, waits):
    cc_server.add_cdx("CC-MAIN-2025-43", REAL_CDX_LINES)
    cc_server.fail_next("/CC-MAIN-2025-43-index", 503, times=2, retry_after=2)
    records = list(
        query_cdx(client, cc_server.url, "CC-MAIN-2025-43", "commoncrawl.org/get-started", pause_seconds=0)
    )
    assert len(records) == 2
    assert waits == [2.0, 2.0, 0]  # two Retry-After waits, then the (zero) pause before page 0


def test_a_malformed_line_names_its_page_and_line(cc_server, client):
    cc_server.add_cdx("CC-MAIN-2025-43", REAL_CDX_LINES)
    bad = json.loads(REAL_CDX_LINES[0]) | {
        "offset": "not-a-number",
        "url": "https://commoncrawl.org/get-started/x",
    }
    cc_server.add_cdx("CC-MAIN-2025-43", [bad])
    with pytest.raises(SourceError, match=r"page=0.*: line 3: CDX line with a non-integer offset"):
        list(
            query_cdx(
                client, cc_server.url, "CC-MAIN-2025-43", "commoncrawl.org/get-started*", pause_seconds=0
            )
        )


def test_raw_index_lines_parse_like_api_lines():
    first, second, redirect = (parse_cdxj_line(line) for line in RAW_INDEX_LINES)
    assert first == IndexRecord(
        crawl="CC-MAIN-2024-22",  # from the filename
        url="https://an.wikipedia.org/wiki/Escopete",
        warc_filename="crawl-data/CC-MAIN-2024-22/segments/1715971057216.39/warc/"
        "CC-MAIN-20240517233122-20240518023122-00000.warc.gz",
        offset=80610731,
        length=17423,
        digest="RY7PLBUFQNI2FFV5FTUQK72W6SNPXLQU",  # "sha1:" dropped, as the columnar index has it
        mime="text/html",
        mime_detected=None,
        status=200,
        languages=None,
        charset=None,
        timestamp="20240518015810",  # from the line's second field
    )
    assert (second.charset, second.languages, second.crawl) == ("UTF-8", "slk,eng,spa", "CC-MAIN-2023-06")
    assert (redirect.redirect, redirect.offset, redirect.length) == ("https://157.245.55.71/", 3499, 689)
    assert "/crawldiagnostics/" in redirect.warc_filename


def test_api_line_says_encoding_where_raw_lines_say_charset():
    record = parse_cdxj_line(REAL_CDX_LINES[0], crawl="CC-MAIN-2025-43")
    assert (record.charset, record.timestamp, record.status) == ("UTF-8", "20251014220259", 200)


@pytest.mark.parametrize(
    "line",
    ["", "not json at all", '["a", "list"]', '{"url": "https://x.jp/"}', "org,x)/ 2024 {broken"],
)
def test_malformed_lines_are_refused(line):
    with pytest.raises(ValueError, match="CDX line"):
        parse_cdxj_line(line)


def test_index_records_round_trip_through_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [parse_cdxj_line(line) for line in RAW_INDEX_LINES]
    assert [IndexRecord.from_dict(r.to_dict()) for r in records] == records
    # All charsets None in this chunk: the explicit schema still makes it a string column.
    table = pa.Table.from_pylist([records[0].to_dict()], schema=IndexRecord.arrow_schema())
    pq.write_table(table, tmp_path / "records.parquet")
    back = pq.read_table(tmp_path / "records.parquet")
    assert back.schema.field("charset").type == pa.string()
    assert [IndexRecord.from_dict(row) for row in back.to_pylist()] == records[:1]


# -- columnar index --------------------------------------------------------------------------

# (url, content_languages, fetch_status, content_mime_detected, subset). Languages as CLD2 gives
# them in real rows: primary first, up to three.
PAGES = [
    ("https://www.asahi.com/articles/ASS5K3T2FS5KUHBI00M.html", "jpn", 200, "text/html", "warc"),
    ("https://www3.nhk.or.jp/news/html/20240517/k10014452061000.html", "jpn", 200, "text/html", "warc"),
    ("https://ja.wikipedia.org/wiki/%E4%BA%AC%E9%83%BD%E5%B8%82", "jpn,eng", 200, "text/html", "warc"),
    ("https://www.city.kyoto.lg.jp/sogo/page/0000012345.html", "jpn", 200, "text/html", "warc"),
    ("https://www.mhlw.go.jp/stf/newpage_39722.html", "jpn,eng", 200, "text/html", "warc"),
    ("https://www.aozora.gr.jp/cards/000148/files/789_14547.html", "jpn", 200, "text/html", "warc"),
    ("https://tabelog.com/tokyo/A1301/A130101/13001234/", "jpn", 200, "application/xhtml+xml", "warc"),
    ("https://note.com/mizuho_t/n/n1a2b3c4d5e6f", "jpn,eng", 200, "text/html", "warc"),
    ("https://qiita.com/tanaka/items/0123456789abcdef0123", "jpn,eng,kor", 200, "text/html", "warc"),
    ("https://www.bbc.com/japanese/articles/c4nn0000000o", "jpn", 200, "text/html", "warc"),
    ("https://www.example.com/ja/about", "eng,jpn", 200, "text/html", "warc"),
    ("https://zh.wikipedia.org/wiki/%E6%97%A5%E6%9C%AC", "zho,jpn", 200, "text/html", "warc"),
    ("https://www.jstage.jst.go.jp/article/jjsai/39/3/39_A-N12/_pdf", "jpn", 200, "application/pdf", "warc"),
    ("https://www.e-gov.go.jp/", "jpn", 200, "text/html", "warc"),
    ("https://commoncrawl.org/get-started", "eng", 200, "text/html", "warc"),
    ("https://www.kantei.go.jp/jp/101_kishida/actions/202405/17.html", "jpn", 200, "text/html", "warc"),
    ("https://www.yomiuri.co.jp/national/20240517-OYT1T50000/", None, 301, "text/html", "crawldiagnostics"),
    (
        "https://www.nikkei.com/article/DGXZQOUA170000X10C24A5000000/",
        "jpn",
        404,
        "text/html",
        "crawldiagnostics",
    ),
    ("https://www.city.osaka.lg.jp/shimin/page/0000123456.html", "jpn", 200, "text/html", "warc"),
]


def _row(i: int, crawl: str, url: str, languages, status: int, mime: str, subset: str) -> dict:
    segment = "1715971057216.39" if crawl == "CC-MAIN-2024-22" else "1718198861024.88"
    return {
        "crawl": crawl,
        "subset": subset,
        "url": url,
        "fetch_time": datetime(2024, 5, 18, 1, 58, 10, tzinfo=UTC)
        + timedelta(days=35 * (crawl != "CC-MAIN-2024-22"), minutes=i),
        "fetch_status": status,
        "content_digest": base64.b32encode(hashlib.sha1(f"{crawl}{url}".encode()).digest()).decode(),
        "content_mime_type": "text/html" if mime != "application/pdf" else "application/pdf",
        "content_mime_detected": mime,
        "content_charset": "UTF-8" if "html" in mime else None,
        "content_languages": languages,
        "warc_filename": f"crawl-data/{crawl}/segments/{segment}/{subset}/CC-MAIN-20240517233122-20240518023122-{i:05d}.warc.gz",
        "warc_record_offset": 1_000_000 + 104_729 * i,
        "warc_record_length": 9_000 + 311 * i,
        "warc_segment": segment,
        "fetch_redirect": "https://www.yomiuri.co.jp/national/" if status == 301 else None,
    }


# The real row from the whirlwind-python README, then the pages in two crawls.
ROWS = [
    {
        "crawl": "CC-MAIN-2024-22",
        "subset": "warc",
        "url": "https://an.wikipedia.org/wiki/Escopete",
        "fetch_time": datetime(2024, 5, 18, 1, 58, 10, tzinfo=UTC),
        "fetch_status": 200,
        "content_digest": "RY7PLBUFQNI2FFV5FTUQK72W6SNPXLQU",
        "content_mime_type": "text/html",
        "content_mime_detected": "text/html",
        "content_charset": "UTF-8",
        "content_languages": "spa",
        "warc_filename": "crawl-data/CC-MAIN-2024-22/segments/1715971057216.39/warc/"
        "CC-MAIN-20240517233122-20240518023122-00000.warc.gz",
        "warc_record_offset": 80610731,
        "warc_record_length": 17423,
        "warc_segment": "1715971057216.39",
    }
] + [
    _row(i, crawl, *page) for crawl in ("CC-MAIN-2024-22", "CC-MAIN-2024-26") for i, page in enumerate(PAGES)
]


def _expected(
    rows,
    *,
    crawls=None,
    languages_contain="jpn",
    primary_language_only=False,
    fetch_status=200,
    mime_types=("text/html", "application/xhtml+xml"),
    url_host_tlds=None,
    limit=None,
):
    """The same selection, written plainly over the Python rows: the oracle."""
    kept = []
    for r in rows:
        languages = r["content_languages"] or ""
        host = r["url"].split("/")[2]
        if r["subset"] != "warc":
            continue
        if crawls is not None and r["crawl"] not in crawls:
            continue
        if languages_contain and not (
            languages.startswith(languages_contain)
            if primary_language_only
            else languages_contain in languages
        ):
            continue
        if fetch_status is not None and r["fetch_status"] != fetch_status:
            continue
        if mime_types is not None and r["content_mime_detected"] not in mime_types:
            continue
        if url_host_tlds is not None and host.rsplit(".", 1)[-1] not in url_host_tlds:
            continue
        kept.append((r["crawl"], r["url"]))
    return kept[:limit]


SELECTIONS = [
    {},
    {"primary_language_only": True},
    {"url_host_tlds": ["jp"]},
    {"crawls": ["CC-MAIN-2024-26"], "url_host_tlds": ["jp"], "primary_language_only": True},
    {"mime_types": None},
    {"fetch_status": None, "languages_contain": None, "mime_types": None},
    {"languages_contain": "spa"},
    {"limit": 5},
]


@pytest.fixture
def index_file(tmp_path, write_columnar_index):
    [path] = write_columnar_index(tmp_path / "cc-index.parquet", ROWS)
    return path


@pytest.mark.parametrize("options", SELECTIONS, ids=lambda o: ",".join(o) or "defaults")
def test_columnar_selection_matches_the_plain_filter(index_file, options):
    got = [(r.crawl, r.url) for r in select_from_columnar_index(str(index_file), **options)]
    assert got == _expected(ROWS, **options)
    assert got or options == {"languages_contain": "spa"}  # each case selects something


def test_default_selection_is_japanese_html_pages_with_status_200(index_file):
    urls = {r.url for r in select_from_columnar_index(str(index_file))}
    assert "https://www3.nhk.or.jp/news/html/20240517/k10014452061000.html" in urls
    assert "https://tabelog.com/tokyo/A1301/A130101/13001234/" in urls  # application/xhtml+xml
    assert "https://www.example.com/ja/about" in urls  # Japanese second: still listed
    assert "https://www.jstage.jst.go.jp/article/jjsai/39/3/39_A-N12/_pdf" not in urls  # a PDF
    assert "https://commoncrawl.org/get-started" not in urls  # English
    assert not any("nikkei" in u or "yomiuri" in u for u in urls)  # crawldiagnostics


def test_columnar_record_values(index_file):
    [record] = select_from_columnar_index(str(index_file), languages_contain="spa")
    assert record == IndexRecord(
        crawl="CC-MAIN-2024-22",
        url="https://an.wikipedia.org/wiki/Escopete",
        warc_filename="crawl-data/CC-MAIN-2024-22/segments/1715971057216.39/warc/"
        "CC-MAIN-20240517233122-20240518023122-00000.warc.gz",
        offset=80610731,
        length=17423,
        digest="RY7PLBUFQNI2FFV5FTUQK72W6SNPXLQU",
        mime="text/html",
        mime_detected="text/html",
        status=200,
        languages="spa",
        charset="UTF-8",
        timestamp="20240518015810",
    )
    # The same capture, as the raw CDX line describes it, gives the same record but for the
    # fields that line leaves out.
    from_cdx = parse_cdxj_line(RAW_INDEX_LINES[0])
    assert (
        dataclasses.replace(from_cdx, mime_detected="text/html", languages="spa", charset="UTF-8") == record
    )


def test_hive_partitioned_directory_gives_the_same_selection(tmp_path, write_columnar_index, index_file):
    root = tmp_path / "table" / "cc-main" / "warc"
    files = write_columnar_index(root, ROWS)
    assert {f.parent.name for f in files} == {"subset=warc", "subset=crawldiagnostics"}
    import pyarrow.parquet as pq

    assert "crawl" not in pq.read_schema(files[0]).names  # only in the path, as in the bucket
    for options in SELECTIONS[:-1]:
        from_dir = sorted((r.crawl, r.url) for r in select_from_columnar_index(str(root), **options))
        assert from_dir == sorted(_expected(ROWS, **options)), options
    # A list of files (as cc-index-table.paths.gz gives them) reads the partitions from the paths.
    from_list = list(select_from_columnar_index([str(f) for f in files], crawls=["CC-MAIN-2024-26"]))
    assert {r.crawl for r in from_list} == {"CC-MAIN-2024-26"}
    assert len(from_list) == len(_expected(ROWS, crawls=["CC-MAIN-2024-26"]))


def test_crawldiagnostics_rows_never_come_out(tmp_path, write_columnar_index):
    root = tmp_path / "warc"
    write_columnar_index(root, ROWS)
    records = list(
        select_from_columnar_index(str(root), fetch_status=None, languages_contain=None, mime_types=None)
    )
    assert records and all(
        r.status is not None and "/crawldiagnostics/" not in r.warc_filename for r in records
    )
    assert not any(r.redirect for r in records)


def test_a_filter_on_a_column_the_index_lacks_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "no-crawl.parquet"
    row = {
        k: v
        for k, v in ROWS[0].items()
        if k in ("url", "warc_filename", "warc_record_offset", "warc_record_length")
    }
    pq.write_table(pa.Table.from_pylist([row]), path)
    with pytest.raises(SourceError, match="no column 'crawl'"):
        list(select_from_columnar_index(str(path), crawls=["CC-MAIN-2024-22"]))
    # Without that filter, the missing columns are None and the crawl comes from the filename.
    [record] = select_from_columnar_index(
        str(path), languages_contain=None, fetch_status=None, mime_types=None
    )
    assert (record.crawl, record.status, record.languages) == ("CC-MAIN-2024-22", None, None)


def test_missing_paths_are_reported(tmp_path):
    with pytest.raises(SourceError, match="no such columnar index"):
        list(select_from_columnar_index(str(tmp_path / "nowhere.parquet")))


# -- reading only what is needed -------------------------------------------------------------


def test_scanner_projects_onto_the_record_columns(index_file):
    scanner = columnar_index_scanner(str(index_file))
    assert set(scanner.projected_schema.names) == {
        "crawl",
        "url",
        "warc_filename",
        "warc_record_offset",
        "warc_record_length",
        "content_digest",
        "content_mime_type",
        "content_mime_detected",
        "fetch_status",
        "content_languages",
        "content_charset",
        "fetch_time",
        "fetch_redirect",
    }
    assert "url_query" not in scanner.projected_schema.names


def test_a_column_of_huge_strings_is_never_read(tmp_path, write_columnar_index):
    """Bytes read from storage, counted through an fsspec filesystem, stay far below the size of
    a column the selection does not need."""
    import fsspec
    from fsspec.implementations.local import LocalFileSystem

    huge = 256 * 1024
    rows = [dict(r, url_query=os.urandom(huge // 2).hex()) for r in ROWS]  # random: does not compress
    [path] = write_columnar_index(tmp_path / "huge.parquet", rows)
    size = path.stat().st_size
    assert size > 0.9 * len(rows) * huge

    class CountingFileSystem(LocalFileSystem):
        protocol = "countingfile"
        bytes_read = 0

        def _open(self, path, mode="rb", **kwargs):
            opened = super()._open(path, mode, **kwargs)
            read = opened.read

            def counting_read(*args):
                data = read(*args)
                CountingFileSystem.bytes_read += len(data)
                return data

            opened.read = counting_read
            return opened

    fsspec.register_implementation("countingfile", CountingFileSystem, clobber=True)
    records = list(select_from_columnar_index(f"countingfile://{path}"))
    assert [(r.crawl, r.url) for r in records] == _expected(ROWS)
    assert 0 < CountingFileSystem.bytes_read < size / 20
