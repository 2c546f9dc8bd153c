"""Sentence measures (Swallow v1) and LLM-jp's DiscardRareKuten / compression ratio on real text.

Expected values were made by hand on short excerpts; the counting is written out in comments.
Every text is passed through ``normalize_japanese`` first, as the clean stage does.
"""

from __future__ import annotations

import html
import json
import math
import re
import zlib

import pytest

from filters.normalize import normalize_japanese
from filters.sentences import (
    SENTENCES_ID,
    SentenceStats,
    compression_ratio,
    kuten_rarity,
    sentence_stats,
    split_sentences,
)
from sources.law_xml import law_xml_to_text

# --- real excerpts (provenance checked in test_excerpts_come_from_the_shared_data) -------------

# Diet speech 119804080X01220190517_044, whole (CRLF and U+3000 as in the API's text).
DIET_YAMAZAKI = (
    "○山崎委員\u3000最後に、今の最後の締めは全部うそつきですよ。（世耕国務大臣「うそつきとか言っちゃいけない」"
    "と呼ぶ）いやいやいや。安いですか、原発が。安価な電源ですか。\r\n\u3000あの福島の原発事故は、"
    "原発由来の事故ではないんですね。あれはたまたま起きてしまったので……"
)
# JSQuAD Wikipedia paragraphs (whole).
WIKI_DENSEN = "伝染形式の主な例を挙げる。詳細は感染経路を参照"
WIKI_PORTUGAL = "正式名称はポルトガル語で、。通称、 。"
# 行政手続法 (egov_law_xml) 第二条第一号: 。 inside brackets still ends a Swallow sentence.
LAW_DEFINITION = (
    "一\u3000法令\u3000法律、法律に基づく命令（告示を含む。）、"
    "条例及び地方公共団体の執行機関の規則（規程を含む。以下「規則」という。）をいう。"
)
# Spam blog feed charset_feeds/SHIFT_JIS/ooganemochi.com.xml, <summary> lines 5-7 (〜 is U+301C).
SPAM_OOGANEMOCHI = (
    "まじっすか？\nま、まじっすかぁー！？\nま、ま、ましっそよぉ\u301c♪カムサハムニダ。噛むさハムにだ！"
)
# Blog feed charset_feeds/EUC-JP/pinkupa.com.xml, channel <description>.
BLOG_PINKUPA = (
    "趣味で飼育しているウーパールーパー(アホロートル)やコリドラス等の熱帯魚に関する観察日記や飼育方法などを"
    "書き綴ってます。他にも私の大好きなピンクハウスやONE PIECE(ワンピース)のコンテンツもあります…"
)

SPLIT_CASES = [
    pytest.param(
        DIET_YAMAZAKI,
        [
            # ○ 山崎委員4 sp 最後2 に 、 今 の 最後2 の 締 め は 全部2 うそつきですよ7 。 = 28
            "○山崎委員 最後に、今の最後の締めは全部うそつきですよ。",
            # ( 世耕国務大臣6 「 うそつきとか6 言 っちゃいけない7 」 と 呼 ぶ ) いやいやいや6 。 = 34
            "(世耕国務大臣「うそつきとか言っちゃいけない」と呼ぶ)いやいやいや。",
            "安いですか、原発が。",  # 10
            "安価な電源ですか。",  # 9
            # U+3000 indent became one space and stays in the sentence: 1+2+2+1+4+1+1+4+1+2+8+1 = 28
            " あの福島の原発事故は、原発由来の事故ではないんですね。",
            # あれはたまたま7 起 きてしまったので8 ...... (NFKC of ……) 6 = 22
            "あれはたまたま起きてしまったので......",
        ],
        id="diet-yamazaki",
    ),
    pytest.param(
        WIKI_DENSEN,
        # 伝染形式4 の 主 な 例 を 挙 げる2 。 = 13;  詳細2 は 感染経路4 を 参照2 = 10 (no terminator)
        ["伝染形式の主な例を挙げる。", "詳細は感染経路を参照"],
        id="wikipedia-no-final-kuten",
    ),
    pytest.param(
        WIKI_PORTUGAL,
        # 正式名称4 は ポルトガル5 語 で 、 。 = 14;  通称2 、 sp 。 = 5
        ["正式名称はポルトガル語で、。", "通称、 。"],
        id="wikipedia-broken-infobox",
    ),
    pytest.param(
        LAW_DEFINITION,
        [
            "一 法令 法律、法律に基づく命令(告示を含む。",  # 1+1+2+1+2+1+2+1+3+2+1+2+1+2+1 = 23
            ")、条例及び地方公共団体の執行機関の規則(規程を含む。",  # 1+1+2+2+6+1+4+1+2+1+2+1+2+1 = 27
            "以下「規則」という。",  # 2+1+2+1+3+1 = 10
            ")をいう。",  # 5
        ],
        id="law-brackets",
    ),
    pytest.param(
        SPAM_OOGANEMOCHI,
        [
            "まじっすか?",  # 6 (？ -> ?)
            "ま、まじっすかぁー!",  # 10; the "?" after it has no text before it and is dropped
            "ま、ま、ましっそよぉ\u301c♪カムサハムニダ。",  # 20
            "噛むさハムにだ!",  # 8
        ],
        id="spam-feed-ooganemochi",
    ),
    # Edge cases.
    pytest.param("", [], id="empty"),
    pytest.param("\n\n\n", [], id="blank-lines"),
    pytest.param("はい。。。", ["はい。"], id="terminator-run"),
    pytest.param("!?。", [], id="terminators-only"),
    pytest.param("文。 次の文。", ["文。", " 次の文。"], id="leading-space-kept"),
    pytest.param("見出し\n本文です。", ["見出し", "本文です。"], id="line-is-a-boundary"),
    pytest.param("1.5倍です。", ["1.5倍です。"], id="ascii-period-is-not-a-terminator"),
]


@pytest.mark.parametrize("text, expected", SPLIT_CASES)
def test_split_sentences(text, expected):
    assert split_sentences(normalize_japanese(text)) == expected


STATS_CASES = [
    # 28+34+10+9+28+22 = 131 over 6; max 34; one sentence ends in "......".
    pytest.param(DIET_YAMAZAKI, SentenceStats(6, 131 / 6, 34, 1 / 6, 1), id="diet-yamazaki"),
    pytest.param(WIKI_DENSEN, SentenceStats(2, 11.5, 13, 0.0, 0), id="wikipedia-densen"),
    pytest.param(WIKI_PORTUGAL, SentenceStats(2, 9.5, 14, 0.0, 0), id="wikipedia-portugal"),
    # 23+27+10+5 = 65 over 4
    pytest.param(LAW_DEFINITION, SentenceStats(4, 16.25, 27, 0.0, 0), id="law-brackets"),
    # 6+10+20+8 = 44 over 4
    pytest.param(SPAM_OOGANEMOCHI, SentenceStats(4, 11.0, 20, 0.0, 0), id="spam-ooganemochi"),
    pytest.param(
        BLOG_PINKUPA,
        # 趣味2 で 飼育2 している4 ウーパールーパー8 ( アホロートル6 ) や コリドラス5 等 の 熱帯魚3
        # に 関 する2 観察日記4 や 飼育方法4 などを3 書 き 綴 ってます4 。 = 60;
        # 他 にも2 私 の 大好2 きな2 ピンクハウス6 や ONE3 sp PIECE5 ( ワンピース5 ) の コンテンツ5
        # もあります5 ...3 = 46 -> mean 53, and 1 of 2 ends in an ellipsis (Swallow rejects > 0.2).
        SentenceStats(2, 53.0, 60, 0.5, 1),
        id="blog-pinkupa-ellipsis",
    ),
    pytest.param("", SentenceStats(0, 0.0, 0, 0.0, 0), id="empty"),
]


@pytest.mark.parametrize("text, expected", STATS_CASES)
def test_sentence_stats(text, expected):
    assert sentence_stats(normalize_japanese(text)) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text, is_ellipsis",
    [
        ("そうですね…", True),  # NFKC: "..."
        ("そうですね・・・", True),
        ("そうですね･･･", True),  # half-width ･ (U+FF65) -> ・
        ("そうですね...", True),
        ("そうですね・・・ ", True),  # Swallow strips before testing the ending
        ("そうですね‥", False),  # NFKC ".."; Swallow does not count ‥ either
        ("そうですね…。", False),  # ends in 。
        ("ブランド・バッグ", False),  # ・ in the middle
    ],
)
def test_ellipsis_endings(text, is_ellipsis):
    stats = sentence_stats(normalize_japanese(text))
    assert stats.count == 1
    assert stats.ellipsis_fraction == (1.0 if is_ellipsis else 0.0)


def test_single_long_line_without_kuten():
    # Keyword stuffing with no terminator: one sentence as long as the text.
    text = normalize_japanese("激安ブランド財布通販【送料無料】" * 500)  # 16 characters x 500; 【】 stay
    assert len(text) == 8000
    assert sentence_stats(text) == SentenceStats(1, 8000.0, 8000, 0.0, 0)
    assert kuten_rarity(text) == math.inf
    assert compression_ratio(text) < 0.05


# --- kuten_rarity (HojiChar DiscardRareKuten) ---------------------------------------------------

KUTEN_CASES = [
    # 131 sentence characters + 1 newline = 132; five 。 (the last sentence ends in "......").
    pytest.param(DIET_YAMAZAKI, 132 / 5, id="diet-yamazaki"),
    pytest.param(WIKI_DENSEN, 23.0, id="wikipedia-densen"),  # 23 characters, one 。
    pytest.param(LAW_DEFINITION, 65 / 4, id="law-brackets"),
    pytest.param(SPAM_OOGANEMOCHI, (6 + 1 + 11 + 1 + 28) / 1, id="spam-ooganemochi"),  # 47 chars, one 。
    pytest.param("おはよ。", 4.0, id="hojichar-doctest"),
    pytest.param("。。。。", 1.0, id="all-kuten"),
    pytest.param("おはよう", math.inf, id="no-kuten"),
    pytest.param("", 0.0, id="empty"),
]


@pytest.mark.parametrize("text, expected", KUTEN_CASES)
def test_kuten_rarity(text, expected):
    assert kuten_rarity(normalize_japanese(text)) == pytest.approx(expected)


def _hojichar_rejects(text, max_average_sentence_length):
    """HojiChar DiscardRareKuten.apply, as written."""
    return len(re.findall("。", text)) < len(text) / max_average_sentence_length


@pytest.mark.parametrize("limit", [4, 80, 250])
def test_kuten_rarity_threshold_equals_discard_rare_kuten(limit):
    texts = ["", "おはよ。", "おはよう。", "おはよう", "a" * 249 + "。", "a" * 250 + "。", "a" * 251 + "。"]
    texts += [normalize_japanese(t) for t in (DIET_YAMAZAKI, WIKI_DENSEN, LAW_DEFINITION, BLOG_PINKUPA)]
    for text in texts:
        assert (kuten_rarity(text) > limit) is _hojichar_rejects(text, limit), text[:20]


# --- compression_ratio (LLM-jp has_good_compression_ratio) --------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        # The three examples in LLM-jp's docstring (rounded to two places there).
        ("LbdJA66Ufy4Pr6ffQEIo0DL60OL7kQl6y6ohAhqYKf3laCruuR", 1.16),
        ("a" * 200, 0.06),
        ("This is a usual sentence. This sentence should pass this judgment.", 0.92),
        ("", 0.0),
    ],
)
def test_compression_ratio_llm_jp_examples(text, expected):
    assert compression_ratio(text) == pytest.approx(expected, abs=0.005)


def test_compression_ratio_is_over_utf8_bytes():
    text = "あ" * 200  # 600 UTF-8 bytes
    assert compression_ratio(text) == len(zlib.compress(text.encode("utf-8"), 9)) / 600
    assert compression_ratio(text) < compression_ratio("a" * 200)  # per character it would be higher


def test_compression_ratio_separates_stuffing_from_speech():
    stuffing = normalize_japanese("派遣求人・" * 40)
    speech = normalize_japanese(DIET_YAMAZAKI)
    assert compression_ratio(stuffing) < 0.30  # LLM-jp's lower bound rejects it
    assert 0.30 <= compression_ratio(speech) <= 0.90


# --- large and real inputs -----------------------------------------------------------------------


def test_one_megabyte_document():
    unit = normalize_japanese(DIET_YAMAZAKI + "\n" + LAW_DEFINITION + "\n" + BLOG_PINKUPA)
    repeats = 1_000_000 // (len(unit) + 1) + 1
    text = "\n".join([unit] * repeats)
    assert len(text) >= 1_000_000
    one = sentence_stats(unit)
    big = sentence_stats(text)
    assert big.count == repeats * one.count
    assert big.max_length == one.max_length
    assert big.average_length == pytest.approx(one.average_length)
    assert big.ellipsis_count == repeats * one.ellipsis_count
    assert kuten_rarity(text) == pytest.approx(len(text) / (repeats * unit.count("。")))
    assert compression_ratio(text) < 0.01  # one unit repeated: zlib's 32 kB window finds it


def test_sentences_id():
    assert SENTENCES_ID == "swallow_v1_sentences"


def _swallow_sentences(text):
    """Swallow quality.py text_to_doc, flattened, as written."""
    pattern = re.compile(r"[^。．！？!?]+[。．！？!?]?")
    return [s for line in text.split("\n") for s in pattern.findall(line)]


def test_matches_swallow_on_real_corpora(shared_data):
    wiki = shared_data / "wikipedia_paragraphs_jsquad" / "jsquad_valid_wikipedia_paragraphs.jsonl"
    diet = shared_data / "kokkai_speeches" / "speeches_sample2000.jsonl"
    with open(wiki, encoding="utf-8") as lines:
        texts = [json.loads(line)["context"].split(" [SEP] ", 1)[1] for line in lines]
    with open(diet, encoding="utf-8") as lines:
        texts += [json.loads(line)["speech"] for line in lines]
    assert len(texts) == 3145
    for raw in texts:
        text = normalize_japanese(raw)
        reference = _swallow_sentences(text)
        assert split_sentences(text) == reference
        stats = sentence_stats(text)
        assert stats.max_length == max(map(len, reference))
        assert stats.average_length == sum(map(len, reference)) / len(reference)
        for limit in (80, 250):
            assert (kuten_rarity(text) > limit) is _hojichar_rejects(text, limit)


def test_excerpts_come_from_the_shared_data(shared_data):
    with open(shared_data / "kokkai_speeches" / "speeches_sample2000.jsonl", encoding="utf-8") as lines:
        speeches = {d["speech_id"]: d["speech"] for d in map(json.loads, lines)}
    assert speeches["119804080X01220190517_044"] == DIET_YAMAZAKI
    wiki = shared_data / "wikipedia_paragraphs_jsquad" / "jsquad_valid_wikipedia_paragraphs.jsonl"
    with open(wiki, encoding="utf-8") as lines:
        paragraphs = {json.loads(line)["context"].split(" [SEP] ", 1)[1] for line in lines}
    assert {WIKI_DENSEN, WIKI_PORTUGAL} <= paragraphs
    law = law_xml_to_text(next((shared_data / "egov_law_xml").glob("*.xml")).read_bytes()).text
    assert LAW_DEFINITION in law
    feeds = shared_data / "charset_feeds"
    ooganemochi = (feeds / "SHIFT_JIS" / "ooganemochi.com.xml").read_bytes().decode("shift_jis")
    assert SPAM_OOGANEMOCHI in ooganemochi
    pinkupa = (feeds / "EUC-JP" / "pinkupa.com.xml").read_bytes().decode("euc_jp")
    assert BLOG_PINKUPA in html.unescape(pinkupa)
