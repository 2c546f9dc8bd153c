"""Character composition (Swallow v1 classes) and LLM-jp's AcceptJapanese on real text.

Expected counts were made by hand on short excerpts; the counting is written out in comments.
Every text is passed through ``normalize_japanese`` first, as the clean stage does.
"""

from __future__ import annotations

import html
import json
import re

import pytest

from filters.composition import COMPOSITION_ID, Composition, composition, composition_many, starts_japanese
from filters.normalize import normalize_japanese
from filters.quality import hiragana_fraction, japanese_char_count
from sources.law_xml import law_xml_to_text

# --- real excerpts (provenance checked in test_excerpts_come_from_the_shared_data) -------------

# JSQuAD Wikipedia paragraph (梅雨), first 12 characters.
WIKI_TSUYU = "梅雨（つゆ、ばいう）は、"
# JSQuAD Wikipedia paragraph (ポルトガル), the whole paragraph: a broken infobox line.
WIKI_PORTUGAL = "正式名称はポルトガル語で、。通称、 。"
# Diet speech 117704006X00320110415_056, first sentence.
DIET_KONDO = "○近藤副大臣\u3000副大臣の近藤でございます。"
# 行政手続法 (egov_law_xml), 第一条, start.
LAW_ARTICLE_1 = "第一条\u3000この法律は、処分、行政指導及び届出に関する手続"
# Spam blog feed charset_feeds/SHIFT_JIS/nextbeaut.com.xml, first <summary>.
SPAM_NEXTBEAUT = (
    "ついに２つの特許が解禁！！！ 特許成分、特許技術を使ったＷ特許の全く新しい化粧水！SUINA スイナウォータル"
)

# (text, letters, japanese_letters, hiragana, katakana, kanji, kuten, toten), after normalize_japanese.
COUNT_CASES = [
    pytest.param(
        # NFKC: （） -> (). 梅雨 ( つゆ 、 ばいう ) は 、 = 2+1+2+1+3+1+1+1 = 12 letters;
        # hiragana つゆばいうは = 6; kanji 梅雨 = 2; toten 2 -> 10 Japanese letters.
        WIKI_TSUYU,
        12,
        10,
        6,
        0,
        2,
        0,
        2,
        id="wikipedia-tsuyu",
    ),
    pytest.param(
        # 正式名称(4 kanji) は ポルトガル(5 kata) 語 で 、 。 通称(2) 、 space 。 = 19 letters;
        # hiragana はで = 2, katakana 5, kanji 4+1+2 = 7, kuten 2, toten 2 -> 18.
        WIKI_PORTUGAL,
        19,
        18,
        2,
        5,
        7,
        2,
        2,
        id="wikipedia-portugal",
    ),
    pytest.param(
        # ○ 近藤副大臣(5) space 副大臣(3) の 近藤(2) でございます(6) 。 = 20 letters;
        # hiragana の+でございます = 7, kanji 10, kuten 1 -> 18 (○ and the space are not Japanese).
        DIET_KONDO,
        20,
        18,
        7,
        0,
        10,
        1,
        0,
        id="diet-kondo",
    ),
    pytest.param(
        # 第一条(3) space この(2) 法律(2) は 、 処分(2) 、 行政指導及び届出(8, び is hiragana) に 関
        # する(2) 手続(2) = 27 letters; hiragana こ の は び に す る = 7;
        # kanji 第一条 法律 処分 行政指導及 届出 関 手続 = 3+2+2+5+2+1+2 = 17; toten 2 -> 26.
        LAW_ARTICLE_1,
        27,
        26,
        7,
        0,
        17,
        0,
        2,
        id="law-article-1",
    ),
    pytest.param(
        # After NFKC: ついに2つの特許が解禁!!! 特許成分、特許技術を使ったW特許の全く新しい化粧水!
        # SUINA スイナウォータル.
        # letters: ついに3 2 つの2 特許2 が1 解禁2 !!!3 sp 特許成分4 、 特許技術4 を 使 った2 W 特許2 の 全 く
        # 新 しい2 化粧水3 ! SUINA5 sp スイナウォータル8 = 55.
        # hiragana 3+2+1+1+2+1+1+2 = 13; kanji 2+2+4+4+1+2+1+1+3 = 20; katakana スイナウォタル = 7
        # (ー is not katakana); the four ！ became ASCII ! and are not kuten; toten 1 -> 41.
        SPAM_NEXTBEAUT,
        55,
        41,
        13,
        7,
        20,
        0,
        1,
        id="spam-feed-nextbeaut",
    ),
    # Edge cases.
    pytest.param("", 0, 0, 0, 0, 0, 0, 0, id="empty"),
    pytest.param("Coding the Matrix.", 18, 0, 0, 0, 0, 0, 0, id="ascii-only"),
    # 𠮷 (U+20BB7) is one code point and a kanji: 𠮷野家 牛丼 = 5 kanji, の = 1 hiragana.
    pytest.param("𠮷野家の牛丼", 6, 6, 1, 0, 5, 0, 0, id="supplementary-kanji"),
    # ｶﾞｯｺｳ (5 code points, ｶﾞ is two) -> ガッコウ: 4 katakana.
    pytest.param("ｶﾞｯｺｳ", 4, 4, 0, 4, 0, 0, 0, id="half-width-katakana"),
    # 美味しい(4) 🍣 です(2) 😊 = 8 letters; hiragana しいです = 4, kanji 美味 = 2.
    pytest.param("美味しい🍣です😊", 8, 6, 4, 0, 2, 0, 0, id="emoji"),
    # Python(6) で 機械学習(4) を 始 めよう(3) = 16; hiragana で を め よ う = 5; kanji 5.
    pytest.param("Pythonで機械学習を始めよう", 16, 10, 5, 0, 5, 0, 0, id="mixed-latin"),
    # Hangul is not Japanese; simplified Chinese 中文简体 is in U+4E00–U+9FFF, so 4 "kanji".
    pytest.param("한국어 中文简体", 8, 4, 0, 0, 4, 0, 0, id="korean-and-chinese"),
    # ゲ ム katakana; ー ・ neither; 人 々 kanji.
    pytest.param("ゲーム・人々", 6, 4, 0, 2, 2, 0, 0, id="choonpu-nakaguro-odoriji"),
    # ヴ U+30F4 and ヺ U+30FA are katakana, ・ U+30FB is not; ゔ U+3094 is hiragana.
    pytest.param("ヴヺ・ゔ", 4, 3, 1, 2, 0, 0, 0, id="katakana-range-ends"),
]


@pytest.mark.parametrize("text, letters, japanese, hiragana, katakana, kanji, kuten, toten", COUNT_CASES)
def test_composition_counts(text, letters, japanese, hiragana, katakana, kanji, kuten, toten):
    assert composition(normalize_japanese(text)) == Composition(
        letters, japanese, hiragana, katakana, kanji, kuten, toten
    )


def test_fractions_use_swallows_denominators():
    c = composition(normalize_japanese(WIKI_PORTUGAL))  # 2 hira, 5 kata, 7 kanji of 18; 19 letters
    assert c.hiragana_fraction == pytest.approx(2 / 18)
    assert c.katakana_fraction == pytest.approx(5 / 18)
    assert c.kanji_fraction == pytest.approx(7 / 18)
    assert c.japanese_fraction == pytest.approx(18 / 19)
    empty = composition("")
    assert (empty.hiragana_fraction, empty.katakana_fraction, empty.japanese_fraction) == (0.0, 0.0, 0.0)
    ascii_only = composition("Coding the Matrix.")
    assert (ascii_only.hiragana_fraction, ascii_only.japanese_fraction) == (0.0, 0.0)


def test_normalisation_moves_full_width_bangs_out_of_kuten():
    # Raw, the four ！ are Swallow kuten (41 + 4 = 45); NFKC makes them ASCII. Letters stay 55.
    raw = composition(SPAM_NEXTBEAUT)
    assert (raw.letters, raw.kuten, raw.japanese_letters) == (55, 4, 45)
    # Raw half-width katakana are not counted at all.
    assert composition("ｶﾞｯｺｳ").katakana == 0
    # ヿ (U+30FF) is past Swallow's katakana range raw; NFKC spells it コト, two katakana.
    assert composition("ヿ").katakana == 0
    assert composition(normalize_japanese("ヿ")).katakana == 2


def test_letters_is_every_code_point_including_whitespace():
    # Swallow's num_letters is len(text): newlines and spaces count, so they lower japanese_fraction.
    c = composition("あい\n\nう え")
    assert (c.letters, c.japanese_letters) == (7, 4)
    assert c.japanese_fraction == pytest.approx(4 / 7)


@pytest.mark.parametrize("batch_chars", [1 << 16, 500, 1])
def test_a_batch_counts_each_text_as_alone(shared_data, batch_chars, monkeypatch):
    """composition_many (the clean stage's path) gives every text exactly composition's counts,
    whatever the batch boundaries: ASCII-only, empty and non-BMP texts among real ones."""
    import filters.composition as module

    monkeypatch.setattr(module, "_BATCH_CHARS", batch_chars)
    path = shared_data / "kokkai_speeches" / "speeches_sample2000.jsonl"
    lines = path.read_text("utf-8").splitlines()[:300]
    texts = [normalize_japanese(json.loads(line)["speech"]) for line in lines]
    texts += ["", "Coding the Matrix.", SPAM_NEXTBEAUT, "𠮷野家", json.loads('"\\u3042\\ud800"'), ""]
    counted = composition_many(texts)
    assert counted == [composition(t) for t in texts]
    assert sum(c.hiragana for c in counted) > 10_000
    assert composition_many([]) == []


def test_lone_surrogate_does_not_crash():
    # json.loads('"\\ud800"') gives a lone surrogate; it is counted as a letter, nothing else.
    c = composition(json.loads('"\\u3042\\ud800"'))
    assert (c.letters, c.hiragana, c.kanji) == (2, 1, 0)


def test_one_megabyte_document_is_additive():
    unit = normalize_japanese(SPAM_NEXTBEAUT + "\n" + DIET_KONDO + "\n" + LAW_ARTICLE_1 + "𠮷")
    repeats = 1_000_000 // len(unit) + 1
    big = composition(unit * repeats)
    one = composition(unit)
    assert big.letters >= 1_000_000
    assert big == Composition(*(repeats * getattr(one, f) for f in Composition.__dataclass_fields__))


# --- starts_japanese (HojiChar AcceptJapanese: [ぁ-んァ-ン] in the first 50 characters) ---------

STARTS_CASES = [
    pytest.param(WIKI_TSUYU, 50, True, id="wikipedia"),
    # ○政府委員(鈴木俊一君) is 12 characters and a space: こ is at index 13.
    pytest.param("○政府委員（鈴木俊一君）\u3000この附則の第一項は", 13, False, id="diet-before-kana"),
    pytest.param("○政府委員（鈴木俊一君）\u3000この附則の第一項は", 14, True, id="diet-at-kana"),
    pytest.param("a" * 50 + "あ", 50, False, id="hojichar-doctest-51st-char"),
    pytest.param("This is English document", 50, False, id="english"),
    pytest.param("中文简体字", 50, False, id="kanji-only"),
    pytest.param("ヴヵヶゔー", 50, False, id="outside-hojichar-ranges"),
    pytest.param("ｶﾀｶﾅ", 50, True, id="half-width-after-normalisation"),
    pytest.param("", 50, False, id="empty"),
]


@pytest.mark.parametrize("text, n, expected", STARTS_CASES)
def test_starts_japanese(text, n, expected):
    assert starts_japanese(normalize_japanese(text), n) is expected


def test_starts_japanese_default_is_fifty_and_raw_half_width_fails():
    assert starts_japanese("x" * 49 + "あ") is True
    assert starts_japanese("x" * 50 + "あ") is False
    assert starts_japanese("ｶﾀｶﾅ") is False  # not normalised: U+FF76.. are outside [ぁ-んァ-ン]


def test_quality_module_reports_the_same_numbers():
    for text in (WIKI_TSUYU, WIKI_PORTUGAL, DIET_KONDO, LAW_ARTICLE_1, SPAM_NEXTBEAUT, "𠮷野家の牛丼"):
        text = normalize_japanese(text)
        c = composition(text)
        assert hiragana_fraction(text) == c.hiragana_fraction
        assert japanese_char_count(text) == c.hiragana + c.katakana + c.kanji


def test_composition_id():
    assert COMPOSITION_ID == "swallow_v1_chars"


# --- real corpora --------------------------------------------------------------------------------


def _swallow_reference(text):
    """Swallow quality.py count_japanese_letters, per character, kanji pattern as code points."""
    hiragana = katakana = kuten = toten = 0
    for ch in text:
        if 0x3041 <= ord(ch) <= 0x3096:
            hiragana += 1
        elif 0x30A1 <= ord(ch) <= 0x30FA:
            katakana += 1
        elif ch in "、，":
            toten += 1
        elif ch in "。．！？":
            kuten += 1
    kanji = len(re.findall("[々〇〻\u3400-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]", text))
    japanese = hiragana + katakana + kanji + kuten + toten
    return Composition(len(text), japanese, hiragana, katakana, kanji, kuten, toten)


def _real_documents(shared_data):
    wiki = shared_data / "wikipedia_paragraphs_jsquad" / "jsquad_valid_wikipedia_paragraphs.jsonl"
    diet = shared_data / "kokkai_speeches" / "speeches_sample2000.jsonl"
    with open(wiki, encoding="utf-8") as lines:
        paragraphs = [json.loads(line)["context"].split(" [SEP] ", 1)[1] for line in lines]
    with open(diet, encoding="utf-8") as lines:
        speeches = [json.loads(line)["speech"] for line in lines]
    return paragraphs, speeches


def test_matches_swallow_reference_on_real_corpora(shared_data):
    paragraphs, speeches = _real_documents(shared_data)
    assert (len(paragraphs), len(speeches)) == (1145, 2000)
    for text in paragraphs + speeches:
        for variant in (text, normalize_japanese(text)):
            assert composition(variant) == _swallow_reference(variant), variant[:40]
        assert starts_japanese(text) is bool(re.search("[ぁ-んァ-ン]", text[:50]))


def test_excerpts_come_from_the_shared_data(shared_data):
    paragraphs, speeches = _real_documents(shared_data)
    assert any(p.startswith(WIKI_TSUYU) for p in paragraphs)
    assert WIKI_PORTUGAL in paragraphs
    assert any(s.startswith(DIET_KONDO) for s in speeches)
    law = law_xml_to_text(next((shared_data / "egov_law_xml").glob("*.xml")).read_bytes()).text
    assert LAW_ARTICLE_1 in law
    feed = (shared_data / "charset_feeds" / "SHIFT_JIS" / "nextbeaut.com.xml").read_bytes()
    assert SPAM_NEXTBEAUT in html.unescape(feed.decode("shift_jis"))


def test_class_table_matches_the_reference_at_every_range_edge():
    # Each range's first and last code point and their neighbours, the single kanji and marks,
    # characters above the BMP and a lone surrogate, alone and mixed.
    edges = [0x3001, 0x3002, 0x3003, 0x3005, 0x3007, 0x303B, 0x3040, 0x3041, 0x3096, 0x3097, 0x30A0, 0x30A1]
    edges += [0x30FA, 0x30FB, 0x30FC, 0x33FF, 0x3400, 0x9FFF, 0xA000, 0xF8FF, 0xF900, 0xFAFF, 0xFB00]
    edges += [0xFF01, 0xFF0C, 0xFF0E, 0xFF1F, 0xD800, 0x1FFFF, 0x20000, 0x2FFFF, 0x30000, 0x10FFFF, 0x41]
    chars = [chr(c) for c in edges]
    texts = chars + ["".join(chars)] + [c * 3 + "a" for c in chars]
    for text in texts:
        assert composition(text) == _swallow_reference(text), [hex(ord(c)) for c in text]
