"""Charset declaration and decoding on real legacy-encoded Japanese bytes."""

from __future__ import annotations

import codecs
import re

import pytest

from filters.html import declared_charset, decode_html

# Real feeds from chardet's test data (tests/data/filters/SOURCE.md): file, the label to declare,
# the codec that decodes it right, and a phrase the right decoding contains.
FEEDS = [
    ("shift_jis_ooganemochi.com.xml", "Shift_JIS", "cp932", "<title>ブログで大金持ち</title>"),
    ("euc_jp_manana.moo.jp.xml", "EUC-JP", "euc_jis_2004", "<title>らぐななな</title>"),
    # NEC/IBM extension characters (ⅰ, Ⅰ): Python's shift_jis codec fails on this file.
    ("cp932_www2.chuo-u.ac.jp-suishin.xml", "Shift_JIS", "cp932", "ⅰ ⅱ ⅲ"),
]


def _page(text: str, head: str) -> str:
    return f"<!DOCTYPE html><html><head>{head}<title>t</title></head><body><pre>{text}</pre></body></html>"


@pytest.mark.parametrize(
    "header, body, expected",
    [
        ("text/html; charset=Shift_JIS", b"<html>", ("shift_jis", "http-header")),
        ('text/html;charset="EUC-JP"', b"<html>", ("euc-jp", "http-header")),
        ("text/html", b'<meta charset="windows-31j">', ("windows-31j", "meta")),
        (None, b'<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=x-sjis">', ("x-sjis", "meta")),
        ("text/html; charset=EUC-JP", b'<meta charset="utf-8">', ("euc-jp", "http-header")),
        ("text/html; charset=EUC-JP", codecs.BOM_UTF8 + b"<html>", ("utf-8", "bom")),
        (None, codecs.BOM_UTF16_LE + "<html>".encode("utf-16-le"), ("utf-16-le", "bom")),
        (None, b"<html><body>no declaration</body></html>", (None, None)),
        (None, b" " * 5000 + b'<meta charset="euc-jp">', (None, None)),  # past the 4 KB scan
    ],
    ids=[
        "header",
        "quoted-header",
        "meta-charset",
        "meta-http-equiv",
        "header-beats-meta",
        "bom-beats-header",
        "utf16-bom",
        "none",
        "meta-too-late",
    ],
)
def test_declared_charset(header, body, expected):
    assert declared_charset(header, body) == expected


@pytest.mark.parametrize(
    "label, codec",
    [
        ("shift_jis", "cp932"),
        ("sjis", "cp932"),
        ("x-sjis", "cp932"),
        ("windows-31j", "cp932"),
        ("ms_kanji", "cp932"),
        ("cp932", "cp932"),
        ("euc-jp", "euc_jis_2004"),
        ("x-euc-jp", "euc_jis_2004"),
        ("iso-2022-jp", "iso2022_jp_ext"),
        ("utf-8", "utf-8"),
        ("utf8", "utf-8"),
        ("gb2312", "gb18030"),
        ("iso-8859-1", "cp1252"),
    ],
)
def test_labels_map_to_codecs_as_browsers_do(label, codec):
    assert decode_html(b"<p>ok</p>", f"text/html; charset={label}").charset == codec


@pytest.mark.parametrize("name, label, codec, phrase", FEEDS, ids=[f[0] for f in FEEDS])
def test_feed_decodes_with_header_label(fixtures_dir, name, label, codec, phrase):
    raw = (fixtures_dir / name).read_bytes()
    decoded = decode_html(raw, f"application/rss+xml; charset={label}")
    assert (decoded.charset, decoded.source, decoded.errors) == (codec, "http-header", 0)
    assert phrase in decoded.text
    assert decoded.text == raw.decode(codec)


@pytest.mark.parametrize(
    "meta",
    ['<meta charset="{label}">', '<meta http-equiv="Content-Type" content="text/html; charset={label}">'],
    ids=["meta-charset", "meta-http-equiv"],
)
@pytest.mark.parametrize("name, label, codec, phrase", FEEDS, ids=[f[0] for f in FEEDS])
def test_feed_decodes_with_meta_only(fixtures_dir, name, label, codec, phrase, meta):
    text = (fixtures_dir / name).read_bytes().decode(codec)
    page = _page(text, meta.format(label=label))
    decoded = decode_html(page.encode(codec), None)
    assert (decoded.source, decoded.errors) == ("meta", 0)
    assert decoded.text == page


@pytest.mark.parametrize("name, label, codec, phrase", FEEDS, ids=[f[0] for f in FEEDS])
def test_feed_decodes_with_no_declaration(fixtures_dir, name, label, codec, phrase):
    text = (fixtures_dir / name).read_bytes().decode(codec)
    # The CP932 file is itself an HTML page with a <meta ... charset=x-sjis>; drop it.
    text = re.sub(r"<meta[^>]*charset[^>]*>", "", text, flags=re.IGNORECASE)
    page = _page(text, "")
    decoded = decode_html(page.encode(codec), None)
    assert (decoded.charset, decoded.source, decoded.errors) == (codec, None, 0)
    assert decoded.text == page


def test_real_frontpage_meta_label_x_sjis(fixtures_dir):
    # A 1990s FrontPage page declaring "x-sjis" in a two-line http-equiv meta.
    decoded = decode_html((fixtures_dir / "cp932_www2.chuo-u.ac.jp-suishin.xml").read_bytes(), None)
    assert (decoded.declared, decoded.source, decoded.charset, decoded.errors) == (
        "x-sjis",
        "meta",
        "cp932",
        0,
    )
    assert "<h1>相手がまともに読めない字</h1>" in decoded.text


@pytest.mark.parametrize(
    "text",
    # Titles from the EUC-JP feeds of charset_feeds: short EUC-JP strings are also valid cp932
    # (as half-width katakana mojibake such as ｷｯ for 健康), so first-clean-decode would be wrong.
    ["健康", "近況", "らぐななな", "ラーメン大盛", "L887買いました"],
)
def test_short_euc_jp_is_not_mistaken_for_cp932(text):
    data = text.encode("euc_jp")
    data.decode("cp932")  # the trap: this does not raise
    assert decode_html(data, None).text == text


def test_iso_2022_jp_is_sniffed_not_read_as_ascii(fixtures_dir):
    raw = (fixtures_dir / "iso2022jp_ude_1.txt").read_bytes()
    raw.decode("utf-8")  # 7-bit: valid UTF-8, escapes and all
    decoded = decode_html(raw, None)
    assert decoded.charset == "iso2022_jp_ext"
    assert "コンソール アプリケーション : universalchardet プロジェクトの概要" in decoded.text
    assert decode_html(raw, "text/plain; charset=ISO-2022-JP").text == decoded.text


def test_aozora_shift_jis_text_is_sniffed_as_cp932(fixtures_dir):
    decoded = decode_html((fixtures_dir / "aozora_001403_50016_ruby_37709.txt").read_bytes(), None)
    assert (decoded.charset, decoded.errors) == ("cp932", 0)
    assert decoded.text.startswith("カンナとオンナ\r\n北大路魯山人\r\n")


def test_utf8_page_under_an_old_shift_jis_meta_is_read_as_utf8():
    # A Diet speech (speech 100814720X01319500729_071) re-saved as UTF-8 under a Shift_JIS meta.
    page = _page("○政府委員（鈴木俊一君）\u3000この附則の第一項は", '<meta charset="Shift_JIS">')
    decoded = decode_html(page.encode("utf-8"), None)
    assert (decoded.charset, decoded.declared, decoded.source, decoded.errors) == (
        "utf-8",
        "shift_jis",
        "meta",
        0,
    )
    assert decoded.text == page


def test_undecodable_bytes_fall_back_to_utf8_and_count_replacements():
    data = "梅雨".encode("utf-8") + b"\x80\x80\xff"
    decoded = decode_html(data, None)
    assert (decoded.charset, decoded.errors) == ("utf-8", 3)
    assert decoded.text.startswith("梅雨")


def test_unknown_label_falls_back_to_sniffing():
    data = "吾輩は猫である。".encode("cp932")
    decoded = decode_html(data, "text/html; charset=x-unknown-jp")
    assert (decoded.text, decoded.charset) == ("吾輩は猫である。", "cp932")
    assert (decoded.declared, decoded.source) == ("x-unknown-jp", "http-header")


ENCODING_DIRS = [
    ("SHIFT_JIS", "Shift_JIS", "cp932"),
    ("CP932", "Shift_JIS", "cp932"),
    ("EUC-JP", "EUC-JP", "euc_jis_2004"),
]


@pytest.mark.parametrize("folder, label, codec", ENCODING_DIRS, ids=[d[0] for d in ENCODING_DIRS])
def test_every_shared_feed_decodes_cleanly_three_ways(shared_data, folder, label, codec):
    files = sorted((shared_data / "charset_feeds" / folder).iterdir())
    assert files
    for path in files:
        raw = path.read_bytes()
        truth = raw.decode(codec)
        by_header = decode_html(raw, f"text/xml; charset={label}")
        assert (by_header.text, by_header.errors) == (truth, 0), path.name
        sniffed = decode_html(raw, None)
        assert (sniffed.text, sniffed.errors) == (truth, 0), path.name
        page = _page(truth, f'<meta charset="{label}">')
        by_meta = decode_html(page.encode(codec), None)
        assert (by_meta.text, by_meta.source, by_meta.errors) == (page, "meta", 0), path.name


def test_every_aozora_file_sniffs_as_cp932(shared_data):
    files = sorted((shared_data / "aozora_public_domain").glob("*.txt"))
    assert len(files) == 30
    for path in files:
        raw = path.read_bytes()
        decoded = decode_html(raw, None)
        assert (decoded.charset, decoded.errors) == ("cp932", 0), path.name
        assert decoded.text == raw.decode("cp932")
