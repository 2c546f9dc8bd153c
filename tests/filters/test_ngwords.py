"""NG-expression matching (filters/ngwords.py) on real Japanese text and the bundled dictionaries."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from filters.ngwords import BUNDLED, BUNDLED_DIR, NgDictionary

LLM_JP_MAX_HITS = 3  # LLM-jp v1 rejects with more hits than this per list (mission_anchors.md §3.1)
SWALLOW_MAX_NG_FRACTION = 0.05  # Swallow v1 keeps below this (§3.2)


def _reference_findall(d: NgDictionary, text: str) -> int:
    """The count LLM-jp v1 takes: HojiChar's compiled alternation, ``len(re.findall(...))``."""
    words = [re.escape(w) for w in d.words]
    if not d.ignore_confused:
        return len(re.findall("|".join(words), text))
    kata = [re.escape(w) for w, k in zip(d.words, d._katakana_only) if k]
    other = [re.escape(w) for w, k in zip(d.words, d._katakana_only) if not k]
    return len(re.findall("|".join(other) + "|" + rf"(?<![ァ-ヴー])({'|'.join(kata)})(?![ァ-ヴー])", text))


@pytest.fixture(scope="module")
def wikipedia_paragraphs(shared_data):
    path = shared_data / "wikipedia_paragraphs_jsquad" / "jsquad_valid_wikipedia_paragraphs.jsonl"
    with path.open(encoding="utf-8") as f:
        return [json.loads(line)["context"].split(" [SEP] ", 1)[1] for line in f]


@pytest.fixture(scope="module")
def spam_feed(shared_data):
    # A 2007 Shift_JIS blog feed; read by eye: おっぱい ×5, 幼女 ×4, 巨乳, エロ, 変態 ... in its posts.
    return (shared_data / "charset_feeds" / "SHIFT_JIS" / "10e.org.xml").read_bytes().decode("cp932")


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_sha256_is_of_the_file_bytes(name):
    d = NgDictionary.load(name)
    assert d.sha256 == hashlib.sha256((BUNDLED_DIR / BUNDLED[name]).read_bytes()).hexdigest()
    assert d.origin == name.split("/")[0] and d.name == name


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_sources_md_lists_each_file_with_its_sha256(name):
    sources = (BUNDLED_DIR / "SOURCES.md").read_text(encoding="utf-8")
    assert NgDictionary.load(name).sha256 in sources
    assert BUNDLED[name].split("/")[1] in sources


def test_dictionary_sizes_match_the_anchor_notes():
    # mission_anchors.md §3.1: LLM-jp v1 lists have 1,462 / 150 / 73 lines. The discrimination
    # list repeats 9 of its words; a repeat never changes a count, so words are kept once.
    lines, words = [], []
    for category in ("adult", "discrimination", "violence"):
        d = NgDictionary.load(f"llm_jp_v1/{category}")
        raw = (BUNDLED_DIR / BUNDLED[d.name]).read_text(encoding="utf-8")
        lines.append(len([line for line in raw.split("\n") if line.strip()]))
        words.append(len(d.words))
    assert lines == [1462, 150, 73]
    assert words == [1462, 141, 73]


def test_unknown_name_is_a_clear_error_naming_the_bundled_ones():
    with pytest.raises(ValueError) as err:
        NgDictionary.load("llm_jp_v1/gambling")
    message = str(err.value)
    assert "llm_jp_v1/gambling" in message
    assert all(name in message for name in BUNDLED)


def test_spam_feed_has_hits_above_llm_jp_threshold(spam_feed):
    d = NgDictionary.load("llm_jp_v1/adult", ignore_confused=True)
    words = {w for _, _, w in d.matches(spam_feed)}
    assert {"おっぱい", "幼女", "巨乳"} <= words
    assert d.hits(spam_feed) > LLM_JP_MAX_HITS
    assert 0 < d.matched_fraction(spam_feed) < 1
    for start, end, word in d.matches(spam_feed):
        assert spam_feed[start:end] == word


def test_wikipedia_paragraphs_have_zero_or_very_low_fraction(wikipedia_paragraphs):
    for name in ("llm_jp_v1/adult", "llm_jp_v1/discrimination", "llm_jp_v1/violence"):
        d = NgDictionary.load(name, ignore_confused=True)
        fractions = [d.matched_fraction(p) for p in wikipedia_paragraphs]
        hits = [d.hits(p) for p in wikipedia_paragraphs]
        assert sorted(fractions)[len(fractions) // 2] == 0.0, name  # median paragraph: no match
        assert sum(fractions) / len(fractions) < 0.001, name
        assert sum(f < SWALLOW_MAX_NG_FRACTION for f in fractions) / len(fractions) > 0.99, name
        assert sum(h <= LLM_JP_MAX_HITS for h in hits) / len(hits) > 0.99, name


@pytest.mark.parametrize("ignore_confused", [False, True], ids=["plain", "ignore_confused"])
@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_hits_equal_llm_jp_regex_count_on_real_text(name, ignore_confused, spam_feed, wikipedia_paragraphs):
    d = NgDictionary.load(name, ignore_confused=ignore_confused)
    for text in [spam_feed, "\n".join(wikipedia_paragraphs)]:
        assert d.hits(text) == _reference_findall(d, text)


def test_overlapping_matches_are_counted_once_in_the_fraction(wikipedia_paragraphs):
    d = NgDictionary.load("llm_jp_v1/adult")
    paragraph = next(p for p in wikipedia_paragraphs if "児童ポルノ" in p)
    start = paragraph.index("児童ポルノ")
    found = d.matches(paragraph)
    assert (start, start + 5, "児童ポルノ") in found and (start + 2, start + 5, "ポルノ") in found
    covered = set()
    for s, e, _ in found:
        covered.update(range(s, e))
    assert sum(e - s for s, e, _ in found) > len(covered)
    assert d.matched_fraction(paragraph) == len(covered) / len(paragraph)
    assert d.matched_fraction("児童ポルノ") == 1.0


def test_empty_text_gives_zero():
    d = NgDictionary.load("llm_jp_v1/adult")
    assert (d.hits(""), d.matched_fraction(""), d.matches("")) == (0, 0.0, [])


def test_long_text_runs(spam_feed, wikipedia_paragraphs):
    d = NgDictionary.load("llm_jp_v1/adult", ignore_confused=True)
    text = ("\n".join(wikipedia_paragraphs) + spam_feed) * 2  # about 1.3 M characters
    assert len(text.encode("utf-8")) > 1_000_000
    assert d.hits(text) > 0 and 0 < d.matched_fraction(text) < SWALLOW_MAX_NG_FRACTION


# HojiChar's own NG-word tests (tests/filters/test_ng_words_filter.py and the doctests of
# DiscardAdultContentJa etc.). parametrized_cases.jsonl has no NG-word cases (only repetition,
# ellipsis and special-token filters), so none are ported from it.
@pytest.mark.parametrize(
    "text, rejected",
    [("ほうじ茶", True), ("ほ うじ茶", True), ("うじ茶", False), ("", False), ("ラーメン", True)],
)
def test_hojichar_dummy_ng_words(shared_data, text, rejected):
    d = NgDictionary.load(shared_data / "cases_hojichar" / "dict" / "dummy_ng_words.txt")
    assert d.origin == "file"
    assert " ラーメン " not in d.words and "" not in d.words  # stripped, blank lines skipped
    assert (d.hits(text) > 0) is rejected


@pytest.mark.parametrize(
    "name, text, rejected",
    [
        ("hojichar/adult", "<TEST_STRING_OF_ADULT_KEYWORD>", True),
        ("hojichar/adult", "ほうじ茶", False),
        ("hojichar/adult", "アスパラガス", True),  # HojiChar's documented false positive (アス)
        ("hojichar/discrimination", "<TEST_STRING_OF_DISCRIMINATION_KEYWORD>", True),
        ("hojichar/discrimination", "ほうじ茶", False),
        ("hojichar/violence", "<TEST_STRING_OF_VIOLENCE_KEYWORD>", True),
        ("hojichar/violence", "ほうじ茶", False),
    ],
)
def test_hojichar_discard_content_doctests(name, text, rejected):
    assert (NgDictionary.load(name).hits(text) > 0) is rejected


def test_ignore_confused_skips_katakana_words_inside_katakana():
    plain = NgDictionary.load("llm_jp_v1/adult")
    confused = NgDictionary.load("llm_jp_v1/adult", ignore_confused=True)
    assert plain.hits("アスパラガス") > 0
    assert confused.hits("アスパラガス") == 0 and confused.matched_fraction("アスパラガス") == 0.0
    assert confused.hits("春のアスパラと、アス。") == 1


@pytest.mark.parametrize("ignore_confused", [True, False])
def test_one_pass_over_several_dictionaries_equals_each_on_its_own(
    ignore_confused, spam_feed, wikipedia_paragraphs
):
    import random

    from filters.ngwords import NgDictionaries

    dictionaries = [NgDictionary.load(name, ignore_confused=ignore_confused) for name in sorted(BUNDLED)]
    group = NgDictionaries(dictionaries)
    # Texts dense with the words, overlapping ones and katakana words inside katakana included.
    rng = random.Random(20261129)
    words = [w for d in dictionaries for w in d.words] + ["アス", "パラ", "の", "、", "ー"]
    made = ["".join(rng.choice(words) for _ in range(rng.randint(0, 12))) for _ in range(3_000)]
    texts = [spam_feed, "", *wikipedia_paragraphs, *made]
    hits = 0
    for text in texts:
        measured = group.measure(text)
        assert measured == [(d.hits(text), d.matched_fraction(text)) for d in dictionaries], text[:40]
        hits += sum(h for h, _ in measured)
    assert hits > 10_000
