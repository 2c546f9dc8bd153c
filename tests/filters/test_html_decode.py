"""Charset declaration and decoding on real legacy-encoded Japanese bytes."""

from __future__ import annotations

import codecs
import re

import pytest

from filters.html import (
    declared_charset,
    decode_html,
    extract_main_text,
    is_undecodable,
    undecodable_reason,
)

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


# --- the five encodings from real bytes, declared three ways, and is_undecodable ---------------


def _in_html(raw: bytes) -> bytes:
    # Real encoded text inside ASCII markup: the bytes of the text stay exactly as found.
    return (
        b"<!DOCTYPE html><html><head><title>t</title></head><body><article><pre>"
        + raw
        + b"</pre></article></body></html>"
    )


def _without_meta_charset(page: bytes) -> bytes:
    return re.sub(rb"<meta[^>]*charset[^>]*>", b"", page, flags=re.IGNORECASE)


README_PHRASE = "この universalchardet アプリケーションは、AppWizard によって作成されました。"
# name, real bytes (any charset declaration removed), label, codec, a phrase of the main text
PAGES = [
    (
        "shift_jis",
        lambda d: _in_html((d / "shift_jis_ude_2.txt").read_bytes()),
        "Shift_JIS",
        "cp932",
        README_PHRASE,
    ),
    (
        "euc_jp",
        lambda d: _in_html((d / "euc_jp_ude_1.txt").read_bytes()),
        "EUC-JP",
        "euc_jis_2004",
        README_PHRASE,
    ),
    (
        "iso_2022_jp",
        lambda d: _in_html((d / "iso2022jp_ude_1.txt").read_bytes()),
        "ISO-2022-JP",
        "iso2022_jp_ext",
        README_PHRASE,
    ),
    (
        "cp932",
        lambda d: _without_meta_charset((d / "cp932_www2.chuo-u.ac.jp-suishin.xml").read_bytes()),
        "Shift_JIS",
        "cp932",
        "このページに使われている漢字コードはＳＪＩＳです。",
    ),
    (
        "utf_8",
        lambda d: _without_meta_charset((d / "postlight_jvndb.jvn.jp.html").read_bytes()),
        "UTF-8",
        "utf-8",
        "証明書・パスワードの管理に関する脆弱性が存在します。",
    ),
]


@pytest.mark.parametrize("declared_in", ["http-header", "meta", None])
@pytest.mark.parametrize("name, load, label, codec, phrase", PAGES, ids=[p[0] for p in PAGES])
def test_five_encodings_decode_and_extract_without_mojibake(
    fixtures_dir, name, load, label, codec, phrase, declared_in
):
    page = load(fixtures_dir)
    content_type = "text/html"
    if declared_in == "http-header":
        content_type = f"text/html; charset={label}"
    elif declared_in == "meta":
        page = re.sub(
            rb"<head>", f'<head><meta charset="{label}">'.encode(), page, count=1, flags=re.IGNORECASE
        )
    decoded = decode_html(page, content_type)
    assert (decoded.charset, decoded.source, decoded.errors) == (codec, declared_in, 0)
    assert decoded.text == page.decode(codec)
    assert not is_undecodable(decoded)
    assert phrase in extract_main_text(decoded.text)


@pytest.mark.parametrize(
    "name, header_label, reason",
    [
        # Shift_JIS read as UTF-8: 32 % U+FFFD; the short ReadMe as latin1 4 %, EUC-JP as Shift_JIS 3 %.
        ("shift_jis_ooganemochi.com.xml", "UTF-8", "replacement_chars"),
        ("shift_jis_ude_2.txt", "ISO-8859-1", "replacement_chars"),
        ("euc_jp_ude_1.txt", "Shift_JIS", "replacement_chars"),
        # ISO-2022-JP read by any other codec: no U+FFFD, but its ESC bytes stay (4 % of the text).
        ("iso2022jp_ude_1.txt", "Shift_JIS", "control_chars"),
        ("iso2022jp_ude_1.txt", "UTF-8", "control_chars"),
        ("iso2022jp_ude_1.txt", "ISO-8859-1", "control_chars"),
        # EUC-JP read as Shift_JIS: 0.8 % U+FFFD (under the 1 % limit), 1,093 half-width katakana.
        ("euc_jp_manana.moo.jp.xml", "Shift_JIS", "half_width_katakana"),
        # EUC-JP read as latin1 (Apache's old AddDefaultCharset): no U+FFFD at all.
        ("euc_jp_manana.moo.jp.xml", "ISO-8859-1", "latin1_runs"),
        ("euc_jp_ude_1.txt", "ISO-8859-1", "latin1_runs"),
    ],
)
def test_wrong_label_gives_mojibake_that_is_rejected(fixtures_dir, name, header_label, reason):
    raw = (fixtures_dir / name).read_bytes()
    decoded = decode_html(raw, f"text/html; charset={header_label}")
    assert decoded.source == "http-header"
    assert (is_undecodable(decoded), undecodable_reason(decoded)) == (True, reason)
    if reason != "replacement_chars":
        assert decoded.errors <= 0.01 * len(decoded.text)  # U+FFFD alone would not have caught it


BINARY_LABELS = [None, "UTF-8", "Shift_JIS", "EUC-JP", "ISO-2022-JP", "ISO-8859-1", "windows-1251", "GBK"]


@pytest.mark.parametrize("label", BINARY_LABELS)
@pytest.mark.parametrize("name", ["binary_python.png", "binary_warcfile_first8k.warc.gz.part"])
def test_binary_labelled_text_html_is_rejected_and_yields_no_text(fixtures_dir, name, label):
    content_type = f"text/html; charset={label}" if label else "text/html"
    decoded = decode_html((fixtures_dir / name).read_bytes(), content_type)
    assert is_undecodable(decoded)
    assert extract_main_text(decoded.text) is None


def test_whole_warc_file_under_a_cyrillic_label_is_rejected_by_its_control_characters(shared_data):
    # windows-1251 maps almost every byte: 0.4 % U+FFFD, but 11 % C0 control characters.
    raw = (shared_data / "warc_non_japanese_control" / "warcfile.warc.gz").read_bytes()
    decoded = decode_html(raw, "text/html; charset=windows-1251")
    assert decoded.errors < 0.01 * len(decoded.text)
    assert undecodable_reason(decoded) == "control_chars"


def test_few_replacement_characters_are_tolerated():
    page = _page("吾輩は猫である。名前はまだ無い。" * 10, "").encode("utf-8") + b"\xff"
    decoded = decode_html(page, "text/html; charset=UTF-8")
    assert (decoded.errors, is_undecodable(decoded)) == (1, False)
    assert is_undecodable(decoded, max_replacement_fraction=0.001)


def test_empty_body_is_not_undecodable():
    assert not is_undecodable(decode_html(b"", "text/html"))


def _shared_pages(shared_data):
    for folder, label, codec in [*ENCODING_DIRS, ("iso-2022-jp", "ISO-2022-JP", "iso2022_jp_ext")]:
        for path in sorted((shared_data / "charset_feeds" / folder).iterdir()):
            yield f"{folder}/{path.name}", path.read_bytes(), label, codec


def test_no_correctly_decoded_real_page_is_rejected(shared_data):
    from warcio.archiveiterator import ArchiveIterator

    rejected = [
        name
        for name, raw, label, _ in _shared_pages(shared_data)
        if is_undecodable(decode_html(raw, f"text/html; charset={label}"))
        or is_undecodable(decode_html(raw, None))
    ]
    for path in sorted((shared_data / "html_pages_postlight" / "fixtures").iterdir()):
        if is_undecodable(decode_html(path.read_bytes(), None)):
            rejected.append(path.name)
    # The WARC control: Chinese (GBK, GB2312, UTF-8), Russian (windows-1251), German (latin1).
    with (shared_data / "warc_non_japanese_control" / "warcfile.warc.gz").open("rb") as stream:
        for record in ArchiveIterator(stream):
            if record.rec_type == "response":
                decoded = decode_html(
                    record.content_stream().read(), record.http_headers.get_header("Content-Type")
                )
                if is_undecodable(decoded):
                    rejected.append(record.rec_headers.get_header("WARC-Target-URI"))
    assert rejected == []


@pytest.mark.parametrize("wrong_label", ["Shift_JIS", "EUC-JP", "ISO-2022-JP", "UTF-8", "ISO-8859-1"])
def test_every_real_feed_under_a_wrong_japanese_or_latin_label_is_rejected(shared_data, wrong_label):
    # 59 feeds in four encodings, each read under a label it does not have. (Under windows-1251 or
    # GBK they decode into plausible Cyrillic or hanzi: language ID's job, not is_undecodable's.)
    missed = []
    for name, raw, label, codec in _shared_pages(shared_data):
        decoded = decode_html(raw, f"text/html; charset={wrong_label}")
        if decoded.text != raw.decode(codec) and not is_undecodable(decoded):
            missed.append(name)
    assert missed == []
