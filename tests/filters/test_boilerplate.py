"""filters.boilerplate: Swallow's footer trim on real pages, table leftovers, HojiChar's BBS and ad
measures. Expected values were counted by hand (the counts are written next to them)."""

from __future__ import annotations

import hashlib
import pathlib
import time

import pytest

from filters import boilerplate as bp
from filters.boilerplate import (
    BOILERPLATE_ID,
    Trim,
    ad_line_count,
    bbs_comment_score,
    drop_table_artifacts,
    footer_keyword_ratio,
    trim_footer,
)
from filters.rights import detect_rights_notices

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SAMPLE_WARC = REPO_ROOT / "sample" / "ja_pages.warc.gz"


# --- real pages from sample/ja_pages.warc.gz ----------------------------------------------------


@pytest.fixture(scope="module")
def sample_texts() -> dict[str, str]:
    """URL -> main text, extracted as the pipeline does (decode_html + extract_main_text)."""
    pytest.importorskip("trafilatura")
    from filters.html import decode_html, extract_main_text
    from sources.warc import iter_warc_responses

    texts = {}
    for response in iter_warc_responses(str(SAMPLE_WARC)):
        if response.http_status != 200:
            continue
        decoded = decode_html(response.payload, response.content_type)
        text = extract_main_text(decoded.text, url=response.target_uri)
        if text:
            texts[response.target_uri] = text
    return texts


ITMEDIA = "https://www.itmedia.co.jp/pcuser/articles/1902/22/news089.html"
AFFILIATE_MAGAZINE = "http://1affliate.com/"
PHPSPOT = "http://phpspot.org/blog/archives/2019/04/treeviz.html"

# Every sample page whose text trim_footer changes (extraction: the default "jcorpus" preset).
EXPECTED_TRIMMED = {
    AFFILIATE_MAGAZINE: 7,
    PHPSPOT: 8,
    "http://www.accessories-brand.com/": 2,
    "http://www.moongift.jp/2019/04/wasm-module-rust%e3%81%aewebassembly%e3%81%ae%e4%b8%ad%e3%81%a7"
    "dom%e3%82%92%e6%89%b1%e3%81%86/": 1,
    "https://buzzap.jp/news/20190302-reduced-tax-rate-benefit/": 1,
    ITMEDIA: 1,
    "https://www.publickey1.jp/blog/19/1ssdintel_ssd_d5-p4326qlc14643d_nandssd.html": 2,
}


def test_itmedia_copyright_footer_is_cut_and_the_article_kept(sample_texts):
    text = sample_texts[ITMEDIA]
    trim = trim_footer(text)
    assert trim.removed_lines == ("Copyright © ITmedia, Inc. All Rights Reserved.",)
    assert trim.rule == "swallow_footer"
    assert trim.text.splitlines()[-1] == (
        "このゲームモードを常時利用するのであれば、SSDの冷却は真剣に考えた方が無難でしょう。"
        "また、モード切り替え時にはシステムの再起動が必要になります。"
    )
    assert trim.text + "\n" + "\n".join(trim.removed_lines) == text
    # The rights notice lives only in what was removed: the integrator must read it there.
    assert {n["kind"] for n in detect_rights_notices("\n".join(trim.removed_lines))} == {
        "all_rights_reserved",
        "copyright_line",
    }
    assert detect_rights_notices(trim.text) == []


def test_mail_magazine_colophon_is_cut_from_its_first_keyword_line(sample_texts):
    trim = trim_footer(sample_texts[AFFILIATE_MAGAZINE])
    # "□　発行元：　　　かかってこい！アフィリエイト": アフィリエイト is 7 of 21 characters (0.33).
    assert trim.removed_lines[0] == "□\u3000発行元：\u3000\u3000\u3000かかってこい！アフィリエイト"
    assert "Copyright(C) 2004-2005 All Rights Reserved." in trim.removed_lines
    assert len(trim.removed_lines) == 7
    # The line before it has no keyword (発行責任者 is not one), so the colophon is cut in half.
    assert trim.text.splitlines()[-1] == "□\u3000発行責任者：\u3000伊藤哲哉"
    assert "書いていましたが、こんなライフスタイルをいつか実現したいですね。" in trim.text


def test_short_page_loses_article_text_to_swallows_rule(sample_texts):
    """Known false positive of Swallow's rule, kept on purpose (we port it as is): the page has
    only 10 lines, so its third line, "スポンサード リンク" (スポンサー + リンク = 8 of 10), is in
    the window, and everything after it goes, the article's one sentence included."""
    trim = trim_footer(sample_texts[PHPSPOT])
    assert trim.removed_lines[0] == "スポンサード リンク"
    assert "次のような図形を描画できるcodepenでのサンプルです" in trim.removed_lines
    assert trim.text == "マインドマップ風のツリーを描画できる「Treeviz」\n2019年04月04日-"


def test_which_sample_pages_are_trimmed(sample_texts):
    assert len(sample_texts) >= 70
    trimmed = {}
    for url, text in sample_texts.items():
        trim = trim_footer(text)
        if trim.removed_lines:
            trimmed[url] = len(trim.removed_lines)
        else:
            assert trim.text == text  # untouched, byte for byte
    assert trimmed == EXPECTED_TRIMMED


# --- trim_footer: the rule itself -------------------------------------------------------------


def test_ratio_must_exceed_the_threshold():
    # サイト is 3 characters: 3/10 = 0.3 is not a footer, 3/9 is.
    assert footer_keyword_ratio("サイトあいうえおかき") == pytest.approx(0.3)
    assert trim_footer("本文。\nサイトあいうえおかき").removed_lines == ()
    assert trim_footer("本文。\nサイトあいうえおか").removed_lines == ("サイトあいうえおか",)
    assert trim_footer("本文。\nサイトあいうえおか", min_keyword_ratio=0.5).removed_lines == ()


def test_longest_keywords_first_and_case_sensitive():
    # サイト内検索 (6) is taken whole; "All Rights Reserved" is not the keyword "All rights reserved",
    # so only Rights (6) + Reserved (8) count: 14 of 19.
    assert footer_keyword_ratio("サイト内検索") == 1.0
    assert footer_keyword_ratio("All Rights Reserved") == pytest.approx(14 / 19)
    assert footer_keyword_ratio("ALL RIGHTS RESERVED") == 0.0


def test_only_the_last_lines_are_scanned_and_everything_after_the_hit_goes():
    body = [f"第{i}段落の本文です。" for i in range(12)]
    # A footer-like line 11th from the end is outside the default window of 10.
    text = "\n".join(["会社概要"] + body[:10])
    assert trim_footer(text).removed_lines == ()
    assert trim_footer(text, last_lines=11).removed_lines == tuple(text.split("\n"))
    # The first footer-like line in the window cuts the rest, article lines included.
    text = "\n".join(body[:3] + ["プライバシーポリシー", "本文の続きです。", "Copyright ©"])
    trim = trim_footer(text)
    assert trim.text == "\n".join(body[:3])
    assert trim.removed_lines == ("プライバシーポリシー", "本文の続きです。", "Copyright ©")


def test_trailing_newline_and_whitespace_lines():
    trim = trim_footer("本文。\nCopyright\n")
    assert trim.text == "本文。"
    assert trim.removed_lines == ("Copyright", "")
    # Blank and full-width-space lines have no keyword characters.
    assert trim_footer("本文。\n\n\u3000\n").removed_lines == ()


def test_edge_cases_empty_long_line_emoji():
    assert trim_footer("") == Trim("", (), "swallow_footer")
    long_line = "吾輩は猫である。" * 20_000 + "Copyright"
    started = time.perf_counter()
    assert trim_footer(long_line).removed_lines == ()  # 9 of 160,009 characters
    assert time.perf_counter() - started < 2.0
    # 👍 is one code point: いいね is 3 of 7 characters.
    assert footer_keyword_ratio("👍 いいね 👍") == pytest.approx(3 / 7)
    assert trim_footer("今日の晩ごはん🍛\n👍 いいね 👍").text == "今日の晩ごはん🍛"


def test_keyword_list_is_swallows():
    words = bp.swallow_footer_keywords()
    assert len(words) == 70  # 72 lines, コメント and 問い合わせ twice
    assert words[:2] == ("All rights reserved", "All right reserved")  # 19 and 18 characters
    assert {"©", "無断転載を禁じ", "会社概要", "プライバシーポリシー", "記事", "http"} <= set(words)
    assert [len(w) for w in words] == sorted((len(w) for w in words), reverse=True)
    assert BOILERPLATE_ID == "boilerplate_v1"


# --- drop_table_artifacts ---------------------------------------------------------------------


def test_table_leftovers_from_real_pages_are_dropped_and_cells_kept():
    # Lines as trafilatura writes them for sanwa.co.jp, elecom.co.jp and jvndb.jvn.jp in the sample.
    text = "\n".join(
        [
            "| 製品品番 | 標準価格 | 製品画像 | ",
            "|---|---|---|",
            "| MA-IRFP139BK | 9,900円（税抜き 9,000円） |  | ",
            "|  |  | ",
            "|    |",
            "| トップ > ニュースリリース > 薄型キーボード | ",
        ]
    )
    trim = drop_table_artifacts(text)
    assert trim.removed_lines == ("|---|---|---|", "|  |  | ", "|    |")
    assert trim.text == "\n".join(
        [
            "| 製品品番 | 標準価格 | 製品画像 | ",
            "| MA-IRFP139BK | 9,900円（税抜き 9,000円） |  | ",
            "| トップ > ニュースリリース > 薄型キーボード | ",
        ]
    )
    assert trim.rule == "table_artifacts"


@pytest.mark.parametrize(
    "line",
    ["|", "｜", "| :--- | ---: |", "+------+------+", "--------------------------------", "━━━━━━━━", "-"],
)
def test_artifact_lines(line):
    assert drop_table_artifacts(f"本文。\n{line}\n続き。").removed_lines == (line,)


@pytest.mark.parametrize(
    "line",
    ["", "\u3000", "ーーーーー", "- 箇条書きの項目", "2019-04-04", "| 😀 |", "：", "+"],
)
def test_lines_with_text_or_without_pipe_or_dash_are_kept(line):
    text = f"本文。\n{line}\n続き。"
    assert drop_table_artifacts(text) == Trim(text, (), "table_artifacts")


def test_table_artifacts_empty_and_long_line():
    assert drop_table_artifacts("") == Trim("", (), "table_artifacts")
    line = "-" * 200_000 + "あ"
    started = time.perf_counter()
    assert drop_table_artifacts(line).removed_lines == ()
    assert drop_table_artifacts("-" * 200_000).removed_lines == ("-" * 200_000,)
    assert time.perf_counter() - started < 1.0


# --- bbs_comment_score (HojiChar DiscardBBSComments) --------------------------------------------

BBS_THREAD = "\n".join(
    [
        # 投稿, 2019/08/18, (日): 3
        "1 名前：名無しさん＠お腹いっぱい。 投稿日：2019/08/18(日) 15:28:46.10 ID:eBvZg8h+0",
        # 質問: 1
        "このスレッドは質問用です。",
        # 投稿, 2019年8月18日, (日): 3
        "2 名前：名無しさん 投稿日：2019年8月18日(日) 15:30:12 ID:Ab3dE",
        # ページ, コメント: 2
        ">>1 乙。過去ログはページ下のコメント欄へ",
    ]
)


def test_bbs_thread_score():
    assert bbs_comment_score(BBS_THREAD) == 9
    assert bbs_comment_score(BBS_THREAD) <= bp.HOJICHAR_BBS_MAX_ALLOWED


def test_bbs_pattern_is_hojichars_not_a_guess():
    # HojiChar's doctests: 15 hits is rejected (> 14), 鏡餅 is not.
    assert bbs_comment_score("楽天市場 質問 投稿 コメント レビュー " * 3) == 15
    assert bbs_comment_score("鏡餅") == 0
    # Its pattern has no 名前：, ID: or >> anchors.
    assert bbs_comment_score("名前：名無しさん ID:eBvZg8h+0 >>1") == 0
    # Every "-" counts, except inside a date it already matched; 第3話 and SOLD OUT count.
    assert bbs_comment_score("2019-04-04 a-b-c") == 3
    assert bbs_comment_score("第3話 SOLD OUT") == 2
    assert bbs_comment_score("") == 0


# --- ad_line_count (HojiChar DiscardAds) -------------------------------------------------------


def _feed_text(shared_data: pathlib.Path, relative: str) -> str:
    from filters.html import decode_html

    path = shared_data / "charset_feeds" / relative
    encoding = path.parent.name  # the folder names the true encoding
    decoded = decode_html(path.read_bytes(), f"text/xml; charset={encoding}")
    assert decoded.errors == 0
    return decoded.text


def test_ad_count_on_affiliate_blog_feeds(shared_data):
    # celeb.lalalu.com: ■ in "◆■ＳＨＵＩＰ ＯＮＬＩＮＥ ＳＨＯＰ■◆" twice (title and body) = 4,
    # 送料 twice ("送料が無料", "送料も無料"), 応募資格 once (a モニター募集 table): 7.
    celeb = _feed_text(shared_data, "SHIFT_JIS/celeb.lalalu.com.xml")
    assert ad_line_count(celeb) == 7
    assert celeb.count("■") == 4 and celeb.count("送料") == 2 and celeb.count("応募資格") == 1
    # accessories-brand.com: a brand link farm, "■公式サイト　⇒　http://..." twice for each of
    # its entries: 29 hits, over LLM-jp v1's limit of 10 (HojiChar's default 14 too).
    brands = _feed_text(shared_data, "SHIFT_JIS/accessories-brand.com.xml")
    assert ad_line_count(brands) == 29 == brands.count("■")
    assert ad_line_count(brands) > bp.LLM_JP_V1_ADS_MAX_ALLOWED


def test_ad_count_doctests_and_plain_text():
    assert ad_line_count("お問い合わせください 営業時間 よくある質問" * 5) == 15
    assert ad_line_count("おはよう") == 0
    assert ad_line_count("") == 0
    assert ad_line_count("吾輩は猫である。名前はまだ無い。" * 1000) == 0
    # Circled numbers are ad keywords too (①–⑥; ⑦ is not): a recipe scores 3.
    assert ad_line_count("①材料を切る②炒める③煮込む⑦盛り付ける") == 3
    # Dictionary order, non-overlapping: "お問い合わせください" is one hit, not two.
    assert ad_line_count("お問い合わせください") == 1


def test_ad_dictionary_is_hojichars_unchanged(shared_data):
    bundled = bp.HOJICHAR_AD_KEYWORDS_PATH.read_bytes()
    assert bundled == (shared_data / "cases_hojichar/dict/advertisement_keywords_ja.txt").read_bytes()
    assert hashlib.sha256(bundled).hexdigest() == (
        "d6bcc80d36bf900621b36cf779c49ae96c368cf0093a3ab4f147276f0025c178"
    )


def _former_trim_footer(text, last_lines=10, min_keyword_ratio=0.3):
    """trim_footer as it was before it skipped lines without any keyword (commit 3584fea)."""
    from filters.boilerplate import FOOTER_RULE, Trim, swallow_footer_keywords

    def ratio(line):
        total = len(line)
        if total == 0:
            return 0.0
        matched = 0
        for word in swallow_footer_keywords():
            before = len(line)
            line = line.replace(word, "")
            matched += before - len(line)
        return matched / total

    lines = text.split("\n")
    for i in range(max(0, len(lines) - last_lines), len(lines)):
        if ratio(lines[i]) > min_keyword_ratio:
            return Trim("\n".join(lines[:i]), tuple(lines[i:]), FOOTER_RULE)
    return Trim(text, (), FOOTER_RULE)


def test_trim_footer_equals_the_former_implementation(shared_data):
    import json

    dev = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "clean_dev" / "texts.jsonl"
    texts = [json.loads(line)["text"] for line in dev.read_text("utf-8").splitlines()]
    speeches = shared_data / "kokkai_speeches" / "speeches_sample2000.jsonl"
    texts += [json.loads(line)["speech"] for line in speeches.read_text("utf-8").splitlines()[:500]]
    texts += ["", "Copyright", "本文\n©", "記事\nコメント\n\n", "\n" * 10 + "©", "©" + "\n" * 10]
    trimmed = 0
    for text in texts:
        for ratio in (0.3, 0.0, -0.1):
            expected = _former_trim_footer(text, min_keyword_ratio=ratio)
            assert trim_footer(text, min_keyword_ratio=ratio) == expected, text[-80:]
            trimmed += expected.changed
        # The last lines are found from the end of the text (as many as there are, or none).
        for last_lines in (1, 9, 11, 0, -1):
            expected = _former_trim_footer(text, last_lines=last_lines)
            assert trim_footer(text, last_lines=last_lines) == expected, (last_lines, text[-80:])
    assert trimmed > 50
