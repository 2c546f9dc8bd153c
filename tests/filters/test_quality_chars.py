"""Character-class scores (Swallow v1 definitions) on real text."""

from __future__ import annotations

import html
import json
import re
import statistics

import pytest

from filters.html import decode_html
from filters.quality import HIRAGANA_FRACTION_ID, hiragana_fraction, japanese_char_count

SWALLOW_MIN_HIRAGANA_FRACTION = 0.2  # Swallow v1 rejects below this (mission_anchors.md §3.2)

# Item titles of a 2005 affiliate catalogue feed
# (charset_feeds/SHIFT_JIS/accessories-brand.com.xml).
CATALOGUE_SPAM = (
    "アクセサリーブランド大辞典 ブルーム(BLOOM） ■ バカラ(Baccarat） ■ ブライトン(Brighton） ■ "
    "カメリア(CAMELLIA） ■ カレラ\u3000イ\u3000カレラ(CARRERA Y CARRERA） ■ キメント(CHIMENTO）"
)
# HojiChar test case rejected for repetition (cases_hojichar/parametrized_cases.jsonl).
KEYWORD_STUFFING = "派遣求人・派遣求人・派遣求人・派遣求人・派遣求人・派遣求人・派遣求人・派遣求人"
# JSQuAD paragraph (梅雨) and Diet speech 117704006X00320110415_056.
WIKIPEDIA_PROSE = (
    "梅雨（つゆ、ばいう）は、北海道と小笠原諸島を除く日本、朝鮮半島南部、中国の南部から長江流域に"
    "かけての沿海部、および台湾など、東アジアの広範囲においてみられる特有の気象現象で、5月から7月"
    "にかけて来る曇りや雨の多い期間のこと。雨季の一種である。"
)
DIET_SPEECH = "○近藤副大臣\u3000副大臣の近藤でございます。私の方からお答えをさせていただきます。"


@pytest.mark.parametrize(
    "text, passes_swallow",
    [(CATALOGUE_SPAM, False), (KEYWORD_STUFFING, False), (WIKIPEDIA_PROSE, True), (DIET_SPEECH, True)],
    ids=["catalogue-spam", "keyword-stuffing", "wikipedia", "diet"],
)
def test_hiragana_fraction_separates_prose_from_lists(text, passes_swallow):
    assert (hiragana_fraction(text) >= SWALLOW_MIN_HIRAGANA_FRACTION) is passes_swallow


DEFINITION_CASES = [
    ("梅雨は東アジアの気象現象である。", 5 / 16, "5 hiragana over 16 Japanese letters incl. 。"),
    ("梅雨は東アジアの気象現象である。 Rainy season, 2024", 5 / 16, "ASCII is outside the denominator"),
    ("ゲーム", 0.0, "ー is not katakana in Swallow's ranges, so 0 / 2"),
    ("あー", 1.0, "ー counts in neither numerator nor denominator"),
    ("ｶﾀｶﾅです", 1.0, "half-width katakana are not counted (normalise first)"),
    ("Coding the Matrix", 0.0, "no Japanese letters: 0.0, not a division error"),
    ("", 0.0, "empty text"),
]


@pytest.mark.parametrize("text, expected, why", DEFINITION_CASES, ids=[c[2] for c in DEFINITION_CASES])
def test_hiragana_fraction_definition(text, expected, why):
    assert hiragana_fraction(text) == pytest.approx(expected), why


@pytest.mark.parametrize(
    "text, expected",
    [
        ("○政府委員（鈴木俊一君）\u3000この附則の第一項は", 18),
        ("カタカナ", 4),
        ("ｶﾀｶﾅ", 0),
        ("𠮷野家の牛丼", 6),  # 𠮷 is U+20BB7, outside the BMP
        ("々〇〻", 3),
        ("ABC 123、。", 0),
    ],
)
def test_japanese_char_count(text, expected):
    assert japanese_char_count(text) == expected


def test_score_name_is_versioned():
    assert HIRAGANA_FRACTION_ID == "hiragana_fraction_v1"


def _jsonl(path, field):
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line)[field] for line in lines]


def test_real_corpora_against_swallow_threshold(shared_data):
    speeches = _jsonl(shared_data / "kokkai_speeches" / "speeches_sample2000.jsonl", "speech")
    paragraphs = [
        context.split(" [SEP] ", 1)[1]
        for context in _jsonl(
            shared_data / "wikipedia_paragraphs_jsquad" / "jsquad_valid_wikipedia_paragraphs.jsonl",
            "context",
        )
    ]
    assert min(hiragana_fraction(s) for s in speeches) >= SWALLOW_MIN_HIRAGANA_FRACTION
    wiki = [hiragana_fraction(p) for p in paragraphs]
    # Measured: 15 of 1,145 Wikipedia paragraphs (lists, tables of dates) fall below 0.2.
    assert sum(f >= SWALLOW_MIN_HIRAGANA_FRACTION for f in wiki) / len(wiki) >= 0.98
    assert 0.35 < statistics.median(wiki) < 0.5

    catalogue = shared_data / "charset_feeds" / "SHIFT_JIS" / "accessories-brand.com.xml"
    feed = decode_html(catalogue.read_bytes(), None)
    titles = " ".join(html.unescape(t) for t in re.findall(r"<title>(.*?)</title>", feed.text))
    assert hiragana_fraction(titles) < SWALLOW_MIN_HIRAGANA_FRACTION
