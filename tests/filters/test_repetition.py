"""Repetition scores (Gopher rules, character based, as Swallow v1 computes them) on Japanese text."""

from __future__ import annotations

import html
import json
import pathlib
import random
import re
import statistics
from collections import Counter

import pytest

from filters.repetition import (
    DEFINITIONS,
    MAX_NGRAM_CHARS,
    REPETITION_ID,
    Duplicates,
    duplicate_lines,
    duplicate_ngram_char_fraction,
    duplicate_paragraphs,
    duplicate_sentences,
    repetition_scores,
    top_ngram_char_fraction,
)

# Swallow v1 limits (docs/research/mission_anchors.md §3.2), only to put the measurements in context.
SWALLOW_LIMITS = {
    "dup_line_frac": 0.30,
    "dup_sentence_frac": 0.30,
    "dup_line_char_frac": 0.20,
    "dup_sentence_char_frac": 0.20,
    "top_2gram_char_frac": 0.20,
    "top_3gram_char_frac": 0.18,
    "top_4gram_char_frac": 0.16,
    "dup_5gram_char_frac": 0.15,
    "dup_6gram_char_frac": 0.14,
    "dup_7gram_char_frac": 0.13,
    "dup_8gram_char_frac": 0.12,
    "dup_9gram_char_frac": 0.11,
    "dup_10gram_char_frac": 0.10,
}
KEYS = [
    "dup_line_frac",
    "dup_line_char_frac",
    "dup_para_frac",
    "dup_para_char_frac",
    "dup_sentence_frac",
    "dup_sentence_char_frac",
    "top_2gram_char_frac",
    "top_3gram_char_frac",
    "top_4gram_char_frac",
    "dup_5gram_char_frac",
    "dup_6gram_char_frac",
    "dup_7gram_char_frac",
    "dup_8gram_char_frac",
    "dup_9gram_char_frac",
    "dup_10gram_char_frac",
]
LAW_XML = "egov_law_xml/405AC0000000088_20240401_504AC0100000052.xml"  # 行政手続法


def _jsonl(path, field):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)[field] for line in f]


def _speeches(shared_data):
    return _jsonl(shared_data / "kokkai_speeches" / "speeches_sample2000.jsonl", "speech")


def _wikipedia(shared_data):
    path = shared_data / "wikipedia_paragraphs_jsquad" / "jsquad_valid_wikipedia_paragraphs.jsonl"
    return [context.split(" [SEP] ", 1)[1] for context in _jsonl(path, "context")]


# --- hand-computed examples -------------------------------------------------------------------


def test_duplicate_lines_counts_repeats_of_an_earlier_line():
    # Lines 送料無料(4) 本文です。(5) 送料無料(4) 送料無料(4); the blank line is not a line.
    # 2 of 4 lines repeat an earlier one; their 8 characters of 4+5+4+4 = 17.
    text = "送料無料\n本文です。\n\n送料無料\n送料無料"
    assert duplicate_lines(text) == Duplicates(fraction=2 / 4, char_fraction=8 / 17)


def test_duplicate_lines_strips_whitespace_and_ignores_blank_lines():
    # "  送料無料\r" and "送料無料　" are the same stripped line: 1 of 2, 4 of 8 characters.
    assert duplicate_lines("  送料無料\r\n送料無料　\n") == Duplicates(0.5, 0.5)
    # Swallow would count the 5 empty lines as 4 duplicate "paragraphs"; here there are no lines.
    assert duplicate_lines("\n\n\n\n本文です。\n") == Duplicates(0.0, 0.0)


def test_duplicate_paragraphs_are_blank_line_separated_blocks():
    # Paragraphs: "今日は晴れ。\n明日は雨。" (6+1+5 = 12 chars) twice, then "今日は晴れ。" (6); the
    # full-width-space line separates like a blank one. 1 of 3 duplicates; 12 of 30 characters.
    text = "今日は晴れ。\n明日は雨。\n\n今日は晴れ。\n明日は雨。\n\n\u3000\n今日は晴れ。"
    assert duplicate_paragraphs(text) == Duplicates(1 / 3, 12 / 30)
    # The same text by lines: 今日は晴れ。(6) x3, 明日は雨。(5) x2: 3 of 5 repeat, 6+6+5 = 17 of 28.
    assert duplicate_lines(text) == Duplicates(3 / 5, 17 / 28)


def test_duplicate_sentences_follow_swallows_regex():
    # Line 1 gives ありがとう！ / ありがとう！ / また来てくださいね。 : the second ！ of ！！ starts no
    # sentence and is dropped, as in Swallow. Line 2's leading 。 is dropped too: ありがとう！.
    # 4 sentences, 2 repeat an earlier one; characters 6+6 of 6+6+10+6 = 28.
    text = "ありがとう！！ありがとう！また来てくださいね。\n。ありがとう！"
    assert duplicate_sentences(text) == Duplicates(2 / 4, 12 / 28)
    # ASCII ! and ? end sentences too; a sentence never crosses a line: 本当? twice, の\n本当 not joined.
    assert duplicate_sentences("本当?本当?") == Duplicates(0.5, 0.5)
    assert duplicate_sentences("そうな\nの") == Duplicates(0.0, 0.0)


@pytest.mark.parametrize(
    "text, n, expected",
    [
        # 2-grams ああ ああ ああ あい: top ああ 3 of 4 positions. Gopher's characters would be
        # 2 * 3 / 5 = 1.2, more than the whole text, which is why Swallow counts occurrences.
        ("ああああい", 2, 3 / 4),
        # 3-grams あああ あああ ああい: 2 of 3.
        ("ああああい", 3, 2 / 3),
        # Whitespace counts: "あ ", " あ", "あ ", " あ": 2 of 4.
        ("あ あ あ", 2, 2 / 4),
        # Nothing repeats: 梅雨 雨前 前線, 1 of 3.
        ("梅雨前線", 2, 1 / 3),
        ("あ", 2, 0.0),  # no 2-gram at all
    ],
)
def test_top_ngram_char_fraction_is_swallows_occurrence_fraction(text, n, expected):
    assert top_ngram_char_fraction(text, n) == pytest.approx(expected)


def test_duplicate_ngram_definitions_disagree():
    # 15 characters; あいうえお at positions 0 and 10, the other nine 5-grams once.
    text = "あいうえおかきくけこあいうえお"
    # gopher: positions 0-4 and 10-14 are inside a repeated 5-gram: 10 / 15 (over Swallow's 0.15).
    assert duplicate_ngram_char_fraction(text, 5, "gopher") == pytest.approx(10 / 15)
    # swallow: 1 repeated distinct 5-gram of 10 distinct: 0.1 (under Swallow's 0.15).
    assert duplicate_ngram_char_fraction(text, 5, "swallow") == pytest.approx(1 / 10)


def test_duplicate_ngram_gopher_counts_overlaps_once_and_first_occurrences():
    # "あああああ" at positions 0 and 1 overlap: the 6 characters are covered once, 6 / 6.
    assert duplicate_ngram_char_fraction("ああああああ", 5) == 1.0
    # A doubled text is all covered (datatrove's find_all_duplicate, which skips first
    # occurrences, would give about one half). swallow: あいうえお repeats, いうえおあ, うえおあい,
    # えおあいう, おあいうえ do not: 1 of 5 distinct.
    assert duplicate_ngram_char_fraction("あいうえおあいうえお", 5) == 1.0
    assert duplicate_ngram_char_fraction("あいうえおあいうえお", 5, "swallow") == pytest.approx(1 / 5)
    assert duplicate_ngram_char_fraction("あいうえお", 5) == 0.0
    assert duplicate_ngram_char_fraction("あいう", 5, "swallow") == 0.0


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="definition"):
        duplicate_ngram_char_fraction("あいうえお", 5, "datatrove")
    with pytest.raises(ValueError, match="definition"):
        repetition_scores("あいうえお", "Swallow")
    with pytest.raises(ValueError, match="at least 2"):
        top_ngram_char_fraction("あいうえお", 1)


def test_repetition_scores_names_and_values():
    text = "あいうえおかきくけこあいうえお\n送料無料\n送料無料"
    for definition in DEFINITIONS:
        scores = repetition_scores(text, definition)
        assert list(scores) == KEYS
        assert scores["dup_line_frac"] == duplicate_lines(text).fraction == 1 / 3
        assert scores["dup_sentence_char_frac"] == duplicate_sentences(text).char_fraction
        assert scores["dup_para_frac"] == duplicate_paragraphs(text).fraction == 0.0
        for n in (2, 3, 4):
            assert scores[f"top_{n}gram_char_frac"] == top_ngram_char_fraction(text, n)
        for n in range(5, 11):
            assert scores[f"dup_{n}gram_char_frac"] == duplicate_ngram_char_fraction(text, n, definition)
    assert (
        repetition_scores(text)["dup_5gram_char_frac"]
        != repetition_scores(text, "swallow")["dup_5gram_char_frac"]
    )
    assert REPETITION_ID == "repetition_v1"


def _reference(text, n, definition):
    """Naive per-position reference for both n-gram definitions and the top n-gram."""
    grams = [text[i : i + n] for i in range(len(text) - n + 1)]
    counts = Counter(grams)
    if not grams:
        return 0.0, 0.0
    top = max(counts.values()) / len(grams)
    if definition == "swallow":
        return top, sum(f > 1 for f in counts.values()) / len(counts)
    covered = set()
    for i, gram in enumerate(grams):
        if counts[gram] > 1:
            covered.update(range(i, i + n))
    return top, len(covered) / len(text)


def test_ngram_scores_match_a_naive_reference():
    rng = random.Random(20240401)
    texts = [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        for alphabet in ["ab", "あいう\n ", "😀𠮷x"] * 40
    ]
    texts += [t + t for t in texts[:30]]
    for text in texts:
        for definition in DEFINITIONS:
            scores = repetition_scores(text, definition)
            for n in range(2, 11):
                top, dup = _reference(text, n, definition)
                if n <= 4:
                    assert scores[f"top_{n}gram_char_frac"] == pytest.approx(top), (text, n)
                else:
                    assert scores[f"dup_{n}gram_char_frac"] == pytest.approx(dup), (text, n, definition)


# --- real text ----------------------------------------------------------------------------------


def test_wikipedia_paragraphs_score_low(shared_data):
    paragraphs = _wikipedia(shared_data)
    scores = [repetition_scores(p, "swallow") for p in paragraphs]
    # Measured on the 1,145 JSQuAD paragraphs: no duplicate line or sentence at all, top 2-gram at most
    # 0.087, swallow 5-gram median 0.012 (max 0.227: short list-like paragraphs).
    assert max(s["dup_line_frac"] for s in scores) == 0.0
    assert max(s["dup_sentence_frac"] for s in scores) == 0.0
    for n, limit in ((2, 0.20), (3, 0.18), (4, 0.16)):
        assert max(s[f"top_{n}gram_char_frac"] for s in scores) < limit
    assert statistics.median(s["dup_5gram_char_frac"] for s in scores) < 0.05
    assert sum(s["dup_5gram_char_frac"] <= 0.15 for s in scores) / len(scores) > 0.95


def _feed_posts(path, encoding):
    """The text of an Atom feed's <content> posts: tags stripped, <br>/</p>/</div> as newlines."""
    feed = path.read_bytes().decode(encoding)
    posts = []
    for body in re.findall(r"<content[^>]*>(.*?)</content>", feed, re.S):
        body = html.unescape(body.replace("<![CDATA[", "").replace("]]>", ""))
        body = re.sub(r"<br\s*/?>|</p>|</div>|</li>", "\n", body)
        posts.append(html.unescape(re.sub(r"<[^>]*>", "", body)))
    return "\n\n".join(posts)


def test_affiliate_spam_feed_scores_high_on_duplicate_lines(shared_data):
    # charset_feeds/SHIFT_JIS/1affliate.com.xml: 15 issues of the affiliate mail magazine
    # "あなたが知らない月30万円稼ぐアフィリエイト成功術"; every issue repeats the same banner,
    # ━━━/＝＝＝/--- rules, 目次 frame, blog plug and footer. Measured: 0.266 of lines and 0.294 of
    # line characters are repeats (Wikipedia: 0.0).
    text = _feed_posts(shared_data / "charset_feeds" / "SHIFT_JIS" / "1affliate.com.xml", "shift_jis")
    assert "アフィリエイト" in text and len(text) > 20_000
    lines = duplicate_lines(text)
    assert lines.fraction > 0.2
    assert lines.char_fraction > SWALLOW_LIMITS["dup_line_char_frac"]
    assert duplicate_sentences(text).char_fraction > SWALLOW_LIMITS["dup_sentence_char_frac"]


def test_diet_speeches_have_no_duplicate_lines_but_many_repeated_char_ngrams(shared_data):
    scores = [repetition_scores(s) for s in _speeches(shared_data)]
    swallow = [repetition_scores(s, "swallow") for s in _speeches(shared_data)[:500]]
    # Measured on 2,000 speeches: duplicate lines p95 0.0, max 0.24.
    assert sorted(s["dup_line_frac"] for s in scores)[int(0.95 * len(scores))] == 0.0
    # Gopher's definition on character 5-grams covers a median 0.27 of a speech (set phrases such as
    # お尋ねがございました): Gopher's 0.15, meant for word 5-grams, would reject most speeches.
    assert statistics.median(s["dup_5gram_char_frac"] for s in scores) > 0.15
    # Swallow's definition: median 0.054.
    assert statistics.median(s["dup_5gram_char_frac"] for s in swallow) < 0.10


def test_law_text_exceeds_swallow_ngram_limits(shared_data):
    # 行政手続法 (21,599 characters). Line, sentence and top-n-gram scores are far under Swallow's
    # limits (13 lines （施行期日） make dup_line_frac 0.066), but statute language repeats long
    # phrases (行政庁が, 不利益処分, 当該…), so both definitions of duplicate n-grams exceed every
    # Swallow limit (swallow 5-gram 0.267, gopher 0.82). The integrator must exempt law text from
    # the duplicate-n-gram rules; this test pins that so the fact is not forgotten.
    from sources.law_xml import law_xml_to_text

    text = law_xml_to_text((shared_data / LAW_XML).read_bytes()).text
    for definition in DEFINITIONS:
        scores = repetition_scores(text, definition)
        for key in ("dup_line_frac", "dup_line_char_frac", "dup_sentence_frac", "dup_sentence_char_frac"):
            assert scores[key] < SWALLOW_LIMITS[key] / 2, key
        for n in (2, 3, 4):
            assert scores[f"top_{n}gram_char_frac"] < SWALLOW_LIMITS[f"top_{n}gram_char_frac"] / 4
        assert scores["dup_5gram_char_frac"] > SWALLOW_LIMITS["dup_5gram_char_frac"], definition
        if definition == "gopher":  # 0.82 .. 0.51; swallow's 10-gram is 0.109, just over 0.10
            for n in range(5, 11):
                key = f"dup_{n}gram_char_frac"
                assert scores[key] > 3 * SWALLOW_LIMITS[key], key


# --- edge cases ---------------------------------------------------------------------------------


def test_empty_and_whitespace_text():
    scores = repetition_scores("")
    assert list(scores) == KEYS
    assert set(scores.values()) == {0.0}
    # Whitespace-only text has no lines, paragraphs or sentences, but its characters are n-gram
    # characters as in Swallow: "\n\n\n" has the 2-gram "\n\n" twice, 2 of 2 positions.
    scores = repetition_scores("\n\n\n")
    assert {k: v for k, v in scores.items() if v} == {"top_2gram_char_frac": 1.0, "top_3gram_char_frac": 1.0}
    assert duplicate_lines(" \u3000\t\n\r\n") == Duplicates(0.0, 0.0)


def test_one_very_long_line(shared_data):
    speeches = _speeches(shared_data)
    line = "".join(s.replace("\n", "") for s in speeches[:200])
    assert len(line) > 100_000 and "\n" not in line
    scores = repetition_scores(line, "swallow")
    assert scores["dup_line_frac"] == scores["dup_para_frac"] == 0.0
    # Sentences are still found inside the line: the speeches' stock phrases repeat.
    assert 0.0 < scores["dup_sentence_frac"] < 0.3
    # Doubling the line makes every 10-gram of it occur twice: all characters covered.
    assert repetition_scores(line + line)["dup_10gram_char_frac"] == 1.0


def test_emoji_and_surrogate_pairs_are_one_character():
    # 👍🏻 is two code points (thumbs up + skin tone), いいね three: each line is 5 characters.
    assert duplicate_lines("👍🏻いいね\n👍🏻いいね") == Duplicates(0.5, 0.5)
    # 𠮷 (U+20BB7, a surrogate pair in UTF-16) is one character: 3-grams 𠮷野家 野家𠮷 家𠮷野 𠮷野家,
    # top 2 of 4. Counted in UTF-16 units there would be 6 positions.
    assert top_ngram_char_fraction("𠮷野家𠮷野家", 3) == pytest.approx(2 / 4)
    # Six 😀: five 2-grams, all 😀😀.
    assert top_ngram_char_fraction("😀" * 6, 2) == 1.0
    # Lone surrogates (broken input) are single code points and do not raise: pairs
    # (D83D,DE00) (DE00,D83D) (D83D,DE00): top 2 of 3.
    broken = "\ud83d\ude00\ud83d\ude00"
    assert len(broken) == 4
    assert top_ngram_char_fraction(broken, 2) == pytest.approx(2 / 3)
    assert list(repetition_scores(broken + "です。")) == KEYS


def test_ngram_scores_are_bounded_to_the_leading_characters():
    text = "あいうえおかきくけこ" + "さしすせそ" * 100
    bounded = repetition_scores(text, max_chars=10)
    assert bounded["dup_5gram_char_frac"] == 0.0  # the first 10 characters repeat nothing
    assert repetition_scores(text)["dup_5gram_char_frac"] > 0.9
    assert duplicate_ngram_char_fraction(text, 5, max_chars=10) == 0.0
    assert top_ngram_char_fraction(text, 2, max_chars=10) == pytest.approx(1 / 9)
    # Element scores always see the whole text.
    assert repetition_scores("A\nB\nA", max_chars=1)["dup_line_frac"] == pytest.approx(1 / 3)
    assert MAX_NGRAM_CHARS >= 1_000_000


def test_one_megabyte_document_runs(shared_data):
    # The first 500,000 characters of the joined speeches, twice: 1 MB, every line but the one cut
    # at the seam occurs twice, and every 10-gram inside either half occurs in the other.
    half = "\n".join(_speeches(shared_data))[:500_000]
    text = half + half
    assert len(text) == 1_000_000
    scores = repetition_scores(text)
    assert list(scores) == KEYS
    assert 0.45 < scores["dup_line_frac"] < 0.55  # the speeches repeat a few lines themselves
    assert scores["dup_10gram_char_frac"] == 1.0


# --- the one-sort n-gram counting against the former implementation -----------------------------


def _former_ngram_scores(text, definition):
    """The n-gram scores as filters/repetition.py computed them before the one-sort rewrite
    (commit 3584fea): one ``np.unique`` per n over exact (n-1)-gram-rank/code-point pairs, kept
    here verbatim as the reference the new code must equal bit for bit."""
    import numpy as np

    code_points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.uint64)
    length = len(code_points)
    ranks = code_points
    scores = {}
    for n in range(2, 11):
        num_positions = max(length - n + 1, 0)
        keys = (ranks[:num_positions] << np.uint64(21)) | code_points[n - 1 :]
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        ranks = inverse.astype(np.uint64)
        if n <= 4:
            scores[f"top_{n}gram_char_frac"] = int(counts.max()) / num_positions if num_positions else 0.0
            continue
        if num_positions == 0:
            value = 0.0
        elif definition == "swallow":
            value = int(np.count_nonzero(counts > 1)) / len(counts)
        else:
            repeated = counts[inverse] > 1
            covered = np.zeros(length, dtype=bool)
            for shift in range(n):
                covered[shift : shift + num_positions] |= repeated
            value = int(np.count_nonzero(covered)) / length
        scores[f"dup_{n}gram_char_frac"] = value
    return scores


def _edge_texts():
    rng = random.Random(20261129)
    texts = ["", "あ", "ああ", "\n", "ab" * 3, "😀" * 11, "\ud83d\ude00\ud83d", "𠮷野家" * 7]
    # Many distinct characters: more than 2**9, 2**12 and 2**16 of them change how many
    # characters fit in a 64-bit key, and so how many sorting rounds there are.
    for count in (600, 5000, 70000):
        texts.append("".join(chr(0x4E00 + i) if i < 20000 else chr(0x20000 + i) for i in range(count)) * 2)
    texts += ["".join(rng.choice("あいう\n ") for _ in range(rng.randint(0, 200))) for _ in range(200)]
    return texts


@pytest.mark.parametrize("definition", DEFINITIONS)
def test_ngram_scores_equal_the_former_implementation_bit_for_bit(shared_data, definition):
    from filters.repetition import ngram_scores

    dev = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "clean_dev" / "texts.jsonl"
    # Every fourth speech and paragraph (the whole samples take half a minute per definition).
    texts = _speeches(shared_data)[::4] + _wikipedia(shared_data)[::4] + _jsonl(dev, "text") + _edge_texts()
    texts += [t + t for t in texts[:100]]  # every n-gram repeated
    assert len(texts) > 1_300
    for text in texts:
        assert ngram_scores(text, definition) == _former_ngram_scores(text, definition), text[:40]


@pytest.mark.parametrize("batch_chars", [1 << 20, 1 << 15, 3_000])
@pytest.mark.parametrize("definition", DEFINITIONS)
def test_ngram_scores_of_a_batch_equal_each_text_alone(shared_data, definition, batch_chars, monkeypatch):
    """Texts counted together (as the clean stage counts a shard) score exactly as alone, which
    the test above ties to the former code: neighbours from two texts share nothing, also at
    the texts' ends, and every batch boundary (small batches too) splits cleanly."""
    import filters.repetition as repetition

    monkeypatch.setattr(repetition, "BATCH_CHARS", batch_chars)
    dev = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "clean_dev" / "texts.jsonl"
    texts = _jsonl(dev, "text") + _speeches(shared_data)[:300] + _wikipedia(shared_data)[:300] + _edge_texts()
    # The same endings in different texts (a shared tail must not look like a repeat), and the
    # same text twice in a row.
    texts += ["前文。" + t[-30:] for t in texts[:50]] + [texts[5], texts[5]]
    random.Random(7).shuffle(texts)
    alone = [repetition.ngram_scores(t, definition) for t in texts]
    assert repetition.ngram_scores_many(texts, definition) == alone
    assert repetition.ngram_scores_many([], definition) == []
