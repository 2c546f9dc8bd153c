"""Japanese pre-selection (html lang / title characters) on real Japanese and Chinese pages."""

from __future__ import annotations

import gzip
import html as htmllib
import re
import time

import pytest

from filters.html import decode_html
from filters.preselect import LANG_SCAN_CHARS, japanese_preselect, title_japanese_fraction


def _title_page(title: str) -> str:
    return f"<!DOCTYPE html><html><head><title>{htmllib.escape(title)}</title></head><body></body></html>"


@pytest.mark.parametrize(
    "html, passed, signal",
    [
        ('<html lang="ja"><title>x</title>', True, "html_lang"),
        ("<HTML LANG=JA><title>x</title>", True, "html_lang"),
        ("<html class='no-js' lang='ja-JP'><title>x</title>", True, "html_lang"),
        ('<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="ja" lang="ja">', True, "html_lang"),
        # Swallow's \slang does not see xml:lang alone; the title decides.
        ('<html xml:lang="ja"><title>ぷろじぇくと、みすじら。</title>', True, "title_chars"),
        ('<html xml:lang="ja"><title>x</title>', False, "none"),
        ('<html lang="en"><title>東京の天気予報</title>', True, "title_chars"),
        ('<html lang="zh-CN"><title>东京天气预报</title>', False, "none"),
        ("<html><title>ｶﾀｶﾅﾌﾞﾛｸﾞ</title>", True, "title_chars"),  # half-width katakana
        ("<html><title>&#x3076;&#x308D;&#x3050;</title>", True, "title_chars"),  # entities
        # Kanji only: Japanese, but indistinguishable from Chinese by script -- rejected.
        ("<html><title>東京都庁</title>", False, "none"),
        ("<html><title>Andore Weblog</title>", False, "none"),
        ("<html><body>本文だけ</body></html>", False, "none"),
        ("<html>" + " " * LANG_SCAN_CHARS + ' lang="ja"><title>x</title>', False, "none"),
    ],
    ids=["lang", "upper-unquoted", "lang-ja-JP", "xhtml", "xml-lang-only-title", "xml-lang-only-latin",
         "lang-en-japanese-title", "lang-zh", "half-width-kana", "entities", "kanji-only", "latin", "no-title",
         "lang-past-scan"],
)  # fmt: skip
def test_signals(html, passed, signal):
    assert japanese_preselect(html)[:2] == (passed, signal)


@pytest.mark.parametrize(
    "threshold, passed",
    [(0.2, True), (0.5, True), (0.6, False), (0.9, False)],
)
def test_threshold_on_a_mixed_title(threshold, passed):
    # news.mynavi.jp-style title: 11 of 21 letters Japanese (0.52).
    page = _title_page("WinRAR に脆弱性、アップデートを | TECH+")
    assert japanese_preselect(page, min_title_japanese_fraction=threshold)[0] is passed


def test_prolonged_sound_mark_counts_as_japanese():
    assert title_japanese_fraction("アークランプ") == (1.0, 6, 6)


# --- real Japanese pages ---------------------------------------------------------------------------
def test_postlight_pages_pass(shared_data):
    results = {}
    for path in sorted((shared_data / "html_pages_postlight" / "fixtures").glob("*.html")):
        results[path.name] = japanese_preselect(path.read_text(encoding="utf-8"))
    assert len(results) == 29
    assert all(passed for passed, _, _ in results.values())
    # 28 declare lang="ja"/"ja-JP"; phpspot.org's XHTML has no lang and passes on its title.
    assert [name for name, (_, signal, _) in results.items() if signal == "title_chars"] == [
        "phpspot.org.html"
    ]


def test_title_alone_would_miss_latin_heavy_japanese_titles(shared_data):
    # Measured: with lang removed, 8 of the 29 pages fail the 0.5 title test, e.g. sect.iij.ad.jp's
    # "Masscan と ZMap によるスキャンの違い – IIJ Security Diary" (0.29). lang="ja" matters.
    titles = {}
    for path in sorted((shared_data / "html_pages_postlight" / "fixtures").glob("*.html")):
        found = re.search(r"<title[^>]*>([^<]*)</title", path.read_text(encoding="utf-8"), re.IGNORECASE)
        titles[path.name] = htmllib.unescape(found.group(1))
    failing = sorted(name for name, title in titles.items() if not japanese_preselect(_title_page(title))[0])
    assert failing == [
        "japan.zdnet.com.html",
        "jvndb.jvn.jp.html",
        "sect.iij.ad.jp.html",
        "www.infoq.com.html",
        "www.itmedia.co.jp.html",
        "www.moongift.jp.html",
        "www.oreilly.co.jp.html",
        "www.ossnews.jp.html",
    ]


# Old blog feeds in their original encodings (charset_feeds, chardet test data), decoded by
# filters.html.decode_html without a declared charset and turned into a minimal HTML page.
FEEDS = [
    ("SHIFT_JIS/ooganemochi.com.xml", "ブログで大金持ち", True),
    ("SHIFT_JIS/setsuzei119.jp.xml", "中小企業経営者のための節税１１９番", True),
    (
        "SHIFT_JIS/nextbeaut.com.xml",
        "ダイエットサプリメント通販ブログ【コエンザイムＱ１０・αリポ酸・Ｌ－カルニチン】",
        True,
    ),
    ("SHIFT_JIS/andore.com.xml", "Andore Weblog", False),
    ("EUC-JP/manana.moo.jp.xml", "らぐななな", True),
    ("EUC-JP/blog.kabu-navi.com.xml", "負けない投資家のスイングトレード日記", True),
    ("EUC-JP/arclamp.jp.xml", "arclamp.jp アークランプ", False),  # 6 of 15 letters Japanese
    ("EUC-JP/artifact-jp.com.xml", "ARTIFACT −人工事実−", False),  # kanji, no kana
    (
        "CP932/hardsoft.at.webry.info.xml",
        "Perl 5.8.x で shiftjis 、CP932、MacJapanese の違い ハードなソフトの話/ウェブリブログ",
        False,
    ),  # 0.43
    ("CP932/y-moto.com.xml", "BD-1で楽々通勤～BD-wonderful", False),
]


def _feed_page(raw: bytes) -> tuple[str, str]:
    text = decode_html(raw, None).text
    title = htmllib.unescape(re.search(r"<title[^>]*>([^<]*)</title>", text).group(1)).strip()
    return title, _title_page(title) + "<p>" + htmllib.escape(text[:200]) + "</p>"


@pytest.mark.parametrize("name, title, passed", FEEDS, ids=[f[0] for f in FEEDS])
def test_old_blogs_by_title(shared_data, name, title, passed):
    decoded_title, page = _feed_page((shared_data / "charset_feeds" / name).read_bytes())
    assert decoded_title == title
    assert japanese_preselect(page)[:2] == ((True, "title_chars") if passed else (False, "none"))


def test_old_blogs_overall(shared_data):
    results = []
    for path in sorted((shared_data / "charset_feeds").glob("*/*")):
        text = decode_html(path.read_bytes(), None).text
        if path.name in ("LICENSE", "SOURCE.txt") or not re.search(r"<title[^>]*>[^<]*</title>", text):
            continue
        results.append(japanese_preselect(_feed_page(path.read_bytes())[1])[0])
    # Measured: 36 of 53 titled feeds pass; the rest have Latin or kanji-only titles.
    assert (sum(results), len(results)) == (36, 53)


# --- a real non-Japanese crawl ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def control_pages(shared_data) -> dict[str, str]:
    from warcio.archiveiterator import ArchiveIterator

    pages = {}
    with gzip.open(shared_data / "warc_non_japanese_control" / "warcfile.warc.gz") as stream:
        for record in ArchiveIterator(stream):
            if record.rec_type == "response":
                content_type = record.http_headers.get_header("Content-Type")
                decoded = decode_html(record.content_stream().read(), content_type)
                pages[record.rec_headers.get_header("WARC-Target-URI")] = decoded.text
    return pages


def test_no_page_of_the_chinese_control_crawl_passes(control_pages):
    assert len(control_pages) == 16
    passed = {
        url: detail
        for url, html in control_pages.items()
        for ok, _, detail in [japanese_preselect(html)]
        if ok
    }
    assert passed == {}


def test_chinese_titles_fail_only_because_they_have_no_kana(control_pages):
    han_titles = 0
    for html in control_pages.values():
        detail = japanese_preselect(html)[2]
        fraction = float(detail.removeprefix("no kana; ").split()[0])
        if fraction >= 0.5:  # a share-only test would have let these through
            han_titles += 1
            assert detail.startswith("no kana; ")
    assert han_titles == 12


def test_chinese_title_fails():
    # 044545.com's page in the control crawl.
    page = '<html lang="zh-CN"><head><title>福码堂/绿色网络/将慈善进行到底/</title></head></html>'
    assert japanese_preselect(page) == (
        False,
        "none",
        "no kana; 1.00 Japanese of 14 letters: 福码堂/绿色网络/将慈善进行到底/",
    )


def test_broken_markup_stays_linear():
    started = time.perf_counter()
    assert japanese_preselect("<title" * 100_000)[:2] == (False, "none")  # 1.2 s with <title[^>]*>
    assert time.perf_counter() - started < 0.5
