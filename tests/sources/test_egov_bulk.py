"""sources.egov_bulk against ZIPs built here from real law XML (origins in tests/data/egov/README.md).

The laws are 行政手続法 (``405AC0000000088_20240401_504AC0100000052.xml``, as served by e-Gov)
and 国旗及び国歌に関する法律, the ``<Law>`` inside the official ``/law_data`` XML example, stored
under the revision id that example gives in ``revision_info/law_revision_id``. The other members
(a law-list CSV, an image, directory entries) are made up here to stand for what is not law XML.
Expected values are read from the files with lxml or written out from the laws themselves,
never computed with sources.egov_bulk.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
from pathlib import Path

import fsspec
import pytest
from lxml import etree
from servers.egov import ReplayServer

from sources.egov_bulk import (
    DEFAULT_MAX_MEMBER_BYTES,
    BulkLaw,
    _read_capped,
    _TooLarge,
    download_bulk,
    iter_bulk_laws,
    list_bulk_members,
    parse_revision_id,
)
from sources.errors import SourceError
from sources.http_client import HttpClient, HttpError, RetryPolicy

DATA = Path(__file__).resolve().parents[1] / "data" / "egov"

GYOSEI_REV = "405AC0000000088_20240401_504AC0100000052"
GYOSEI_XML = (DATA / f"{GYOSEI_REV}.xml").read_bytes()
GYOSEI_MEMBER = f"{GYOSEI_REV}/{GYOSEI_REV}.xml"

_EXAMPLE = etree.fromstring((DATA / "egov_v2_law_data_xml.xml").read_bytes())
KOKKI_REV = _EXAMPLE.findtext("revision_info/law_revision_id").strip()
KOKKI_XML = etree.tostring(_EXAMPLE.find("law_full_text/Law"), encoding="UTF-8", xml_declaration=True)
KOKKI_MEMBER = f"{KOKKI_REV}/{KOKKI_REV}.xml"
KOKKI_TITLE = _EXAMPLE.findtext("revision_info/law_title").strip()
KOKKI_NUM = _EXAMPLE.findtext("law_info/law_num").strip()

# Made up: one row in the shape of e-Gov's law list, standing for the CSV the real ZIP is said to hold.
LAW_LIST_CSV = "\ufeff法令種別,法令番号,法令名\r\n法律,平成五年法律第八十八号,行政手続法\r\n".encode()
BULK_URL_PATH = "/bulkdownload"
BULK_QUERY = "file_section=1&only_xml_flag=true"


def _zip_bytes(members: list[tuple[str, bytes | None]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A ZIP of ``(name, data)`` in this order; ``data`` None makes a directory entry."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members:
            if data is None:
                archive.writestr(zipfile.ZipInfo(name.rstrip("/") + "/"), b"")
            else:
                archive.writestr(name, data)
    return buffer.getvalue()


def _bulk_zip() -> bytes:
    # Laws in reverse order of their names, so the listing has to sort.
    return _zip_bytes(
        [
            ("all_law_list.csv", LAW_LIST_CSV),
            (f"{KOKKI_REV}/", None),
            (KOKKI_MEMBER, KOKKI_XML),
            (f"{KOKKI_REV}/pict/H11HO127-001.jpg", b"\xff\xd8\xff\xe0 not really a JPEG"),
            (f"{GYOSEI_REV}/", None),
            (GYOSEI_MEMBER, GYOSEI_XML),
        ]
    )


@pytest.fixture
def bulk_zip(tmp_path) -> Path:
    path = tmp_path / "all_xml.zip"
    path.write_bytes(_bulk_zip())
    return path


def _laws(path, members=None, **kwargs) -> dict[str, BulkLaw | SourceError]:
    return dict(iter_bulk_laws(str(path), members, **kwargs))


# -- listing ---------------------------------------------------------------------------------


def test_lists_only_law_members_sorted(bulk_zip):
    assert list_bulk_members(str(bulk_zip)) == [
        "405AC0000000088_20240401_504AC0100000052/405AC0000000088_20240401_504AC0100000052.xml",
        "411AC0000000127_19990813_000000000000000/411AC0000000127_19990813_000000000000000.xml",
    ]


def test_law_members_under_a_top_folder_are_listed(tmp_path):
    path = tmp_path / "rezipped.zip"
    path.write_bytes(_zip_bytes([("all_xml/", None), (f"all_xml/{GYOSEI_MEMBER}", GYOSEI_XML)]))
    assert list_bulk_members(str(path)) == [f"all_xml/{GYOSEI_MEMBER}"]
    [(member, law)] = iter_bulk_laws(str(path))
    assert isinstance(law, BulkLaw), law
    assert member == law.member == f"all_xml/{GYOSEI_MEMBER}"
    assert (law.law_revision_id, law.law_title) == (GYOSEI_REV, "行政手続法")


def test_reads_a_zip_through_an_fsspec_url():
    url = "memory://egov-bulk-test/all_xml.zip"
    fs = fsspec.filesystem("memory")
    with fsspec.open(url, "wb") as f:
        f.write(_bulk_zip())
    try:
        assert list_bulk_members(url) == [GYOSEI_MEMBER, KOKKI_MEMBER]
        titles = {member: law.law_title for member, law in iter_bulk_laws(url)}
        assert titles == {GYOSEI_MEMBER: "行政手続法", KOKKI_MEMBER: "国旗及び国歌に関する法律"}
    finally:
        fs.rm("/egov-bulk-test", recursive=True)


# -- golden laws -----------------------------------------------------------------------------


def test_gyosei_tetsuzuki_golden(bulk_zip):
    law = _laws(bulk_zip)[GYOSEI_MEMBER]
    assert isinstance(law, BulkLaw), law
    assert law.member == GYOSEI_MEMBER
    assert law.law_revision_id == "405AC0000000088_20240401_504AC0100000052"
    assert law.law_id == "405AC0000000088"
    assert law.enforcement_date == "2024-04-01"
    assert law.amendment_law_id == "504AC0100000052"
    assert law.law_title == "行政手続法"
    assert law.law_num == "平成五年法律第八十八号"
    assert law.article_count == 48  # 第一条…第四十六条 plus 第三十六条の二 and 第三十六条の三
    assert law.raw_sha256 == hashlib.sha256((DATA / f"{GYOSEI_REV}.xml").read_bytes()).hexdigest()
    lines = law.text.split("\n")
    assert lines[:4] == ["行政手続法", "平成五年法律第八十八号", "第一章　総則", "（目的等）"]
    assert lines[4].startswith(
        "第一条　この法律は、処分、行政指導及び届出に関する手続並びに命令等を定める手続"
    )
    assert lines[5].startswith("２　処分、行政指導及び届出に関する手続")
    assert any(
        line.startswith("第三十六条の三　何人も、法令に違反する事実がある場合において") for line in lines
    )
    assert any(line.startswith("第四十六条　地方公共団体は、") for line in lines)


def test_kokki_kokka_from_the_official_example(bulk_zip):
    law = _laws(bulk_zip)[KOKKI_MEMBER]
    assert isinstance(law, BulkLaw), law
    assert KOKKI_REV == "411AC0000000127_19990813_000000000000000"
    assert (law.law_id, law.enforcement_date, law.amendment_law_id) == ("411AC0000000127", "1999-08-13", None)
    assert law.law_title == KOKKI_TITLE == "国旗及び国歌に関する法律"
    assert law.law_num == KOKKI_NUM == "平成十一年法律第百二十七号"
    assert law.article_count == 2
    assert law.raw_sha256 == hashlib.sha256(KOKKI_XML).hexdigest()
    lines = law.text.split("\n")
    assert "第一条　国旗は、日章旗とする。" in lines
    assert "第二条　国歌は、君が代とする。" in lines
    assert "２　君が代の歌詞及び楽曲は、別記第二のとおりとする。" in lines


def test_members_come_in_the_order_given(bulk_zip):
    order = [KOKKI_MEMBER, GYOSEI_MEMBER, KOKKI_MEMBER]
    results = list(iter_bulk_laws(str(bulk_zip), order))
    assert [member for member, _ in results] == order
    assert [law.law_id for _, law in results] == ["411AC0000000127", "405AC0000000088", "411AC0000000127"]


# -- one bad law does not stop the others -----------------------------------------------------


def test_malformed_xml_is_an_error_for_that_member_only(tmp_path):
    broken_rev = "405AC0000000087_20240401_000000000000000"  # sorts before 行政手続法
    broken = f"{broken_rev}/{broken_rev}.xml"
    path = tmp_path / "broken.zip"
    cut = "<Law><LawNum>平成五年法律第八十九号</LawNum><LawBody><LawTitle>途中で切れた法".encode()
    path.write_bytes(_zip_bytes([(broken, cut), (GYOSEI_MEMBER, GYOSEI_XML)]))
    results = list(iter_bulk_laws(str(path)))
    assert [member for member, _ in results] == [broken, GYOSEI_MEMBER]
    error = results[0][1]
    assert isinstance(error, SourceError)
    assert error.uri == str(path)
    assert str(error).startswith(f"{path}: member {broken}: not well-formed XML")
    law = results[1][1]
    assert isinstance(law, BulkLaw), law
    assert law.law_title == "行政手続法"


def test_a_failed_crc_is_an_error_for_that_member_only(tmp_path):
    data = bytearray(_zip_bytes([(GYOSEI_MEMBER, GYOSEI_XML), (KOKKI_MEMBER, KOKKI_XML)], zipfile.ZIP_STORED))
    # Stored, so the XML is in the file verbatim. Change an article number: the XML stays
    # well-formed and would render, so only the CRC can catch it.
    at = data.find(b'<Article Num="1"')
    assert 0 < at < data.find(KOKKI_XML[:40])
    data[at + len('<Article Num="') : at + len('<Article Num="1')] = b"7"
    path = tmp_path / "crc.zip"
    path.write_bytes(bytes(data))
    laws = _laws(path)
    assert isinstance(laws[GYOSEI_MEMBER], SourceError)
    assert f"member {GYOSEI_MEMBER}: " in str(laws[GYOSEI_MEMBER])
    assert "CRC" in str(laws[GYOSEI_MEMBER])
    assert isinstance(laws[KOKKI_MEMBER], BulkLaw)


def test_names_that_are_not_revision_ids_are_errors(bulk_zip, tmp_path):
    path = tmp_path / "odd.zip"
    path.write_bytes(_zip_bytes([("notes/notes.xml", KOKKI_XML), (GYOSEI_MEMBER, GYOSEI_XML)]))
    # Shaped like <rev>/<rev>.xml, so listed; its name is no revision id, so it is no law.
    assert list_bulk_members(str(path)) == [GYOSEI_MEMBER, "notes/notes.xml"]
    laws = _laws(path)
    assert "not a law revision id" in str(laws["notes/notes.xml"])
    assert isinstance(laws[GYOSEI_MEMBER], BulkLaw)

    absent_rev = "405AC0000000088_20990101_000000000000000"
    asked = ["all_law_list.csv", f"{GYOSEI_REV}/", f"{absent_rev}/{absent_rev}.xml"]
    laws = _laws(bulk_zip, asked)
    assert "not a law member" in str(laws["all_law_list.csv"])
    assert "not a law member" in str(laws[f"{GYOSEI_REV}/"])
    assert "no such member" in str(laws[asked[2]])
    assert all(str(err).startswith(f"{bulk_zip}: member ") for err in laws.values())


# -- zip bombs -------------------------------------------------------------------------------


def test_a_member_over_the_limit_is_an_error_naming_the_limit(bulk_zip):
    assert len(KOKKI_XML) < 20_000 < len(GYOSEI_XML)
    laws = _laws(bulk_zip, max_member_bytes=20_000)
    assert isinstance(laws[GYOSEI_MEMBER], SourceError)
    assert "max_member_bytes=20000" in str(laws[GYOSEI_MEMBER])
    assert str(len(GYOSEI_XML)) in str(laws[GYOSEI_MEMBER])
    assert isinstance(laws[KOKKI_MEMBER], BulkLaw)
    assert isinstance(_laws(bulk_zip)[GYOSEI_MEMBER], BulkLaw)  # the default (64 MiB) lets it through
    assert DEFAULT_MAX_MEMBER_BYTES == 64 * 1024 * 1024


def test_a_header_that_understates_the_size_does_not_pass(tmp_path):
    data = bytearray(_zip_bytes([(GYOSEI_MEMBER, GYOSEI_XML), (KOKKI_MEMBER, KOKKI_XML)]))
    _set_central_directory_size(data, GYOSEI_MEMBER, 1000)
    path = tmp_path / "liar.zip"
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo(GYOSEI_MEMBER).file_size == 1000  # the forgery took
    laws = _laws(path, max_member_bytes=20_000)
    assert isinstance(laws[GYOSEI_MEMBER], SourceError), "a truncated law must not come through"
    assert f"member {GYOSEI_MEMBER}: " in str(laws[GYOSEI_MEMBER])
    assert isinstance(laws[KOKKI_MEMBER], BulkLaw)


def test_the_count_while_reading_stops_at_the_limit():
    # zipfile stops at the declared size itself, so this guard is tested on a plain stream.
    assert _read_capped(io.BytesIO(b"x" * 1000), 1000) == b"x" * 1000
    with pytest.raises(_TooLarge):
        _read_capped(io.BytesIO(b"x" * 1001), 1000)


def _set_central_directory_size(data: bytearray, member: str, size: int) -> None:
    """Overwrite the uncompressed size that the central directory records for ``member``."""
    name = member.encode()
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + name_length] == name:
            struct.pack_into("<I", data, at + 24, size)
            return
        at = data.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"{member} not in the central directory")


# -- files that are not ZIPs -------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0.5, -10], ids=["half", "all-but-the-last-10-bytes"])
def test_a_truncated_zip_raises_naming_the_file(tmp_path, keep):
    data = _bulk_zip()
    path = tmp_path / "cut.zip"
    path.write_bytes(data[: int(len(data) * keep)] if keep > 0 else data[:keep])
    with pytest.raises(SourceError) as listing:
        list_bulk_members(str(path))
    assert str(listing.value).startswith(f"{path}: truncated or damaged ZIP")
    with pytest.raises(SourceError) as iterating:
        next(iter_bulk_laws(str(path)))
    assert iterating.value.uri == str(path)


def test_a_file_that_is_not_a_zip_raises_naming_the_file(tmp_path):
    path = tmp_path / "all_xml.zip"
    path.write_bytes("<!DOCTYPE html><html><body>メンテナンス中です</body></html>".encode())
    with pytest.raises(SourceError) as err:
        list_bulk_members(str(path))
    assert str(err.value).startswith(f"{path}: not a ZIP file (starts with b'<!DOCTYPE html>")
    with pytest.raises(SourceError, match="not a ZIP file"):
        list(iter_bulk_laws(str(path)))


def test_a_missing_file_raises_naming_the_file(tmp_path):
    path = tmp_path / "absent.zip"
    with pytest.raises(SourceError) as err:
        list_bulk_members(str(path))
    assert err.value.uri == str(path)


# -- revision ids ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("revision_id", "expected"),
    [
        (GYOSEI_REV, ("405AC0000000088", "2024-04-01", "504AC0100000052")),
        (KOKKI_REV, ("411AC0000000127", "1999-08-13", None)),
        ("321CONSTITUTION_19470503_000000000000000", ("321CONSTITUTION", "1947-05-03", None)),
        ("329M50010000056_20260910_508M60000200043", ("329M50010000056", "2026-09-10", "508M60000200043")),
        ("405AC0000000088_00000000_000000000000000", ("405AC0000000088", None, None)),
        ("405AC0000000088_20241301_504AC0100000052", ("405AC0000000088", None, "504AC0100000052")),
        ("405AC0000000088_20230229_504AC0100000052", ("405AC0000000088", None, "504AC0100000052")),
    ],
)
def test_parse_revision_id(revision_id, expected):
    assert parse_revision_id(revision_id) == expected


@pytest.mark.parametrize(
    "revision_id",
    [
        "",
        "405AC0000000088",
        "405AC0000000088_20240401",
        "405AC0000000088_2024041_504AC0100000052",
        "405AC0000000088_2024-04-01_504AC0100000052",
        "405AC0000000088_20240401_504AC0100000052_1",
        "405AC0000000088_20240401_504AC0100000052.xml",
        "405AC0000000088_２０２４０４０１_504AC0100000052",
        "_20240401_504AC0100000052",
    ],
)
def test_parse_revision_id_refuses_a_bad_id(revision_id):
    with pytest.raises(ValueError, match="not a law revision id"):
        parse_revision_id(revision_id)


# -- download --------------------------------------------------------------------------------


class BulkServer:
    """The e-Gov replay server (tests/servers/egov.py) serving ``body`` at ``/bulkdownload``, after
    answering the first ``fail_first`` requests with 503."""

    def __init__(self, body: bytes, content_type: str = "application/zip", fail_first: int = 0) -> None:
        self.replay = ReplayServer()
        self.replay.routes[BULK_URL_PATH] = (200, content_type, body)
        busy = "<html><body>しばらくお待ちください</body></html>".encode()
        self.replay.fail_next(BULK_URL_PATH, 503, fail_first, busy)
        self.url = f"{self.replay.url.removesuffix('/api/2')}{BULK_URL_PATH}?{BULK_QUERY}"

    @property
    def requests(self) -> list[tuple[str, dict[str, list[str]]]]:
        return self.replay.requests

    def close(self) -> None:
        self.replay.close()


@pytest.fixture
def serve():
    servers: list[BulkServer] = []

    def start(body: bytes, **kwargs) -> BulkServer:
        servers.append(BulkServer(body, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def waits():
    return []


@pytest.fixture
def client(waits):
    retry = RetryPolicy(max_attempts=3, backoff_base_seconds=0.001, backoff_max_seconds=0.01)
    with HttpClient(timeout_seconds=5, retry=retry, sleep=waits.append) as http:
        yield http


def test_download_retries_a_503_then_writes_the_zip(serve, client, waits, tmp_path):
    zip_bytes = _bulk_zip()
    server = serve(zip_bytes, fail_first=1)
    dest = tmp_path / "downloads" / "all_xml.zip"
    assert download_bulk(client, server.url, str(dest)) == str(dest)
    assert dest.read_bytes() == zip_bytes
    assert server.requests == [(BULK_URL_PATH, {"file_section": ["1"], "only_xml_flag": ["true"]})] * 2
    assert len(waits) == 1  # one backoff, for the 503
    assert client.stats()["status_503"] == 1
    assert sorted(p.name for p in dest.parent.iterdir()) == ["all_xml.zip"]  # no temporary left
    assert list_bulk_members(str(dest)) == [GYOSEI_MEMBER, KOKKI_MEMBER]


def test_download_of_an_html_page_raises_and_leaves_nothing(serve, client, tmp_path):
    page = "<!DOCTYPE html><html><head><title>e-Gov法令検索</title></head><body>エラー</body></html>"
    server = serve(page.encode(), content_type="text/html; charset=utf-8")
    dest = tmp_path / "downloads" / "all_xml.zip"
    with pytest.raises(SourceError) as err:
        download_bulk(client, server.url, str(dest))
    assert err.value.uri == server.url
    assert str(err.value).startswith(f"{server.url}: not a ZIP file (starts with b'<!DOCTYPE html>")
    assert "text/html" in str(err.value)
    assert not dest.exists()
    assert not dest.parent.exists() or not any(dest.parent.iterdir())


def test_download_of_a_truncated_zip_raises_and_keeps_the_old_file(serve, client, tmp_path):
    zip_bytes = _bulk_zip()
    server = serve(zip_bytes[: len(zip_bytes) // 2])
    dest = tmp_path / "all_xml.zip"
    dest.write_bytes(b"the previous download")
    with pytest.raises(SourceError, match="truncated or damaged ZIP") as err:
        download_bulk(client, server.url, str(dest))
    assert err.value.uri == server.url
    assert dest.read_bytes() == b"the previous download"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all_xml.zip"]


def test_download_gives_up_after_the_retries(serve, client, waits, tmp_path):
    server = serve(_bulk_zip(), fail_first=5)
    dest = tmp_path / "all_xml.zip"
    with pytest.raises(HttpError) as err:
        download_bulk(client, server.url, str(dest))
    assert (err.value.status, err.value.attempts) == (503, 3)
    assert len(server.requests) == 3 and len(waits) == 2
    assert not dest.exists()


@pytest.mark.parametrize(
    "name, revision",
    [
        ("322AC0000000067_20240401_505AC0000000063/322AC0000000067_20240401_505AC0000000063.xml",
         "322AC0000000067_20240401_505AC0000000063"),
        ("all_xml/405AC0000000088_20230401_504AC0000000068/405AC0000000088_20230401_504AC0000000068.xml",
         "405AC0000000088_20230401_504AC0000000068"),
        ("405AC0000000088/405AC0000000089.xml", None),
        ("405AC0000000088.xml", None),
        ("/.xml", None),
        # crafted: what a backreference regex backtracks on quadratically (a minute and more)
        ("a" * 50_000 + "/" + "a" * 49_999 + ".xml", None),
    ],
)
def test_law_members_are_recognised_by_name_in_linear_time(name, revision):
    from sources.egov_bulk import _law_member_revision

    assert _law_member_revision(name) == revision
