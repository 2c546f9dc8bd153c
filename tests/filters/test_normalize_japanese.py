"""normalize_japanese on real Japanese text: what changes, what must not."""

from __future__ import annotations

import json
import pathlib
import random

import pytest

from filters.normalize import NORMALIZER_ID, normalize_japanese

# Diet speech 117704006X00320110415_056 (kokkai_speeches/speeches_sample2000.jsonl), first lines
# as served: CRLF line ends and U+3000 after the speaker and as paragraph indent.
DIET_RAW = (
    "○近藤副大臣\u3000副大臣の近藤でございます。私の方からお答えをさせていただきます。\r\n"
    "\u3000太田委員、今質問の冒頭に、太田委員も福島県の選出であり、"
)
DIET_NORMALIZED = (
    "○近藤副大臣 副大臣の近藤でございます。私の方からお答えをさせていただきます。\n"
    " 太田委員、今質問の冒頭に、太田委員も福島県の選出であり、"
)

CASES = [
    # (input, expected, why)
    ("ｶﾞｯｺｳ", "ガッコウ", "half-width katakana with voiced mark becomes full-width ガ"),
    ("がっこう", "がっこう", "dakuten kept (datatrove's dedup normaliser would strip it)"),
    ("か\u3099っこう", "がっこう", "decomposed kana + combining dakuten composes"),
    ("は\u309aん", "ぱん", "decomposed handakuten composes"),
    ("ＡＩ研究所２０２４", "AI研究所2024", "full-width ASCII becomes ASCII"),
    ("ﾊﾟﾊﾟ", "パパ", "neologdn case: half-width handakuten"),
    ("う゛ほﾟ", "ゔぽ", "neologdn case: spacing ゛ composes with う, ﾟ with ほ"),
    ("ワ゛", "ヷ", "spacing ゛ composes where a precomposed kana exists"),
    ("ア゛ッ！", "ア゛ッ!", "no precomposed ア゛: the spacing mark stays, not ' ゙'"),
    ("ｱﾞｱﾞｱﾞ", "ア゛ア゛ア゛", "an uncomposable combining mark comes out as the spacing one"),
    ("゛", "゛", "a lone spacing mark is not turned into space + combining mark"),
    ("濁点（゜）", "濁点(゜)", "spacing ゜ after a non-kana stays"),
    (DIET_RAW, DIET_NORMALIZED, "CRLF -> LF; U+3000 -> ASCII space, indent kept as one space"),
    ("梅雨\x00は\x07東アジア\ufeff", "梅雨は東アジア", "control characters and stray BOM removed"),
    ("見出し\t本文", "見出し\t本文", "a lone tab is kept"),
    ("梅雨  は \t 東アジア", "梅雨 は 東アジア", "runs of blanks collapse to one space"),
    ("一行目\u3000 \n二行目\t", "一行目\n二行目", "trailing blanks (incl. U+3000) stripped"),
    ("一\n\n\n\n二\n\n三\n \n \n四", "一\n\n二\n\n三\n\n四", "2+ blank lines -> one blank line"),
    ("段落一\u2028段落二\x0c段落三", "段落一\n段落二\n段落三", "other line breaks become LF"),
    ("\n\u3000\u3000吾輩は猫である。\n\n", "吾輩は猫である。", "whole text stripped"),
    # NFKC's known costs, pinned so a change is a decision (and a new NORMALIZER_ID):
    ("1467～1487年", "1467~1487年", "U+FF5E (cp932's 0x8160) becomes ASCII tilde"),
    ("1467〜1487年", "1467〜1487年", "U+301C wave dash is left alone"),
    ("待って…", "待って...", "ellipsis becomes three dots"),
    ("①平成㍻", "1平成平成", "circled digits and square era names decompose"),
]


@pytest.mark.parametrize("text, expected, why", CASES, ids=[c[2] for c in CASES])
def test_normalize_japanese(text, expected, why):
    assert normalize_japanese(text) == expected, why


IDEMPOTENCE_CASES = [c[0] for c in CASES] + [
    "か\x00゛",  # a control char between kana and mark must not make a second pass differ
    "ｶ\u3000ﾞ",
    "ア\u3099\u3099",
]


@pytest.mark.parametrize("text", IDEMPOTENCE_CASES)
def test_normalize_is_idempotent(text):
    # Dedup keys hash normalised text; normalising twice must not change the key.
    once = normalize_japanese(text)
    assert normalize_japanese(once) == once


def test_aozora_shift_jis_file_normalises_cleanly(fixtures_dir):
    raw = (fixtures_dir / "aozora_001403_50016_ruby_37709.txt").read_bytes()
    text = normalize_japanese(raw.decode("cp932"))
    assert text.startswith("カンナとオンナ\n北大路魯山人\n")
    assert "\r" not in text
    assert "\n\n\n" not in text
    assert not any(line != line.rstrip(" \t") for line in text.split("\n"))
    assert "青空文庫" in text  # the footer Aozora Bunko asks us to keep is still there
    assert normalize_japanese(text) == text


def test_neologdn_shared_cases_that_are_pure_nfkc(shared_data):
    # neologdn does more than NFKC (drops spaces between Japanese words, tildes, long-vowel
    # runs); the cases without those extras must agree with us.
    extras = ("~", "〜", "～", "ー", "━", "-", "−", "˗", "₋", "〰", " ", "\u3000")
    agreed = 0
    with open(shared_data / "cases_neologdn" / "cases.jsonl", encoding="utf-8") as lines:
        for line in lines:
            case = json.loads(line)
            if case["function"] != "normalize" or case["kwargs"]:
                continue
            (text,) = case["args"]
            if any(c in text for c in extras):
                continue
            assert normalize_japanese(text) == case["expected"], text
            agreed += 1
    assert agreed >= 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Academic Japanese writes ，．; Swallow turns them into 、。 after Japanese characters.
        ("本研究では，新たな手法を提案する．", "本研究では、新たな手法を提案する。"),
        ("「東京」，「大阪」．", "「東京」、「大阪」。"),  # after a closing bracket
        ("カタカナ，ｶﾀｶﾅ．", "カタカナ、カタカナ。"),
        # Not after Japanese: between full-width digits and after Latin letters NFKC decides.
        ("円周率は３．１４，自然対数の底は２．７１", "円周率は3.14,自然対数の底は2.71"),
        ("ＡＢＣ，ＤＥＦ．", "ABC,DEF."),
        ("，で始まる行", ",で始まる行"),
    ],
)
def test_japanese_comma_and_period_become_toten_and_kuten(text, expected):
    assert normalize_japanese(text) == expected
    assert normalize_japanese(expected) == expected  # idempotent, as dedup keys need


def test_normalizer_id_names_the_profile_version():
    # A new output needs a new id: the punctuation rule made v2.
    assert NORMALIZER_ID.startswith("ja_nfkc_v") and int(NORMALIZER_ID.rsplit("v", 1)[1]) >= 2


# --- NFKC of the pieces that can change, against unicodedata ------------------------------------


def _real_texts(shared_data):
    dev = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "clean_dev" / "texts.jsonl"
    texts = [json.loads(line)["text"] for line in dev.read_text("utf-8").splitlines()]
    speeches = shared_data / "kokkai_speeches" / "speeches_sample2000.jsonl"
    texts += [json.loads(line)["speech"] for line in speeches.read_text("utf-8").splitlines()]
    return texts


def _generated_texts():
    """Random strings of the characters whose NFKC depends on their neighbours: combining marks
    (kana voicing, Latin accents, Greek), Hangul jamo that compose algorithmically, Indic and
    Myanmar vowel signs that compose with the character before, compatibility forms."""
    rng = random.Random(20261129)
    pool = (
        "かがカガはぱハﾊﾟｶﾞｱﾞｯｺｳ\u3099\u309a\u309b\u309cＡＢ１２，．、。 \u3000\t\n"
        "e\u0301\u0327a\u030a\u0308Å\u212b\ufb01①㍻…～－\uac00\u1100\u1161\u11a8\ud55c"
        "\u0915\u093c\u09c7\u09be\u0b47\u0b3e\u0cc6\u0cd5\u1025\u102e\u0f71\u0f72\u0f73\u2126"
        "\u00b4\u1fef𝐀𠮷😀\u200d\ufe0f\U000e0100\u0345\u0399\u1f00\u03b9\u0342"
    )
    return ["".join(rng.choice(pool) for _ in range(rng.randint(0, 40))) for _ in range(20_000)]


def test_nfkc_by_pieces_equals_unicodedata(shared_data):
    import unicodedata

    from filters.normalize import _nfkc

    for text in _real_texts(shared_data) + _generated_texts():
        assert _nfkc(text) == unicodedata.normalize("NFKC", text), repr(text[:40])


def _former_normalize_japanese(text):
    """normalize_japanese as it was before its substitutions were skipped when they had nothing
    to act on and NFKC was applied by pieces (commit 3584fea), verbatim."""
    import re
    import unicodedata

    from filters import normalize as n

    text = re.sub("\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]", "\n", text)
    text = n._CONTROL_CHARS.sub("", text)
    text = n._LONE_SURROGATE.sub("\ufffd", text)
    text = n._JAPANESE_PERIOD.sub("。", n._JAPANESE_COMMA.sub("、", text))
    text = text.replace("\u309b", "\u3099").replace("\u309c", "\u309a")
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u3099", "\u309b").replace("\u309a", "\u309c")
    text = n._BLANK_RUN.sub(" ", text)
    text = n._TRAILING_BLANKS.sub("", text)
    text = n._EXTRA_BLANK_LINES.sub("\n\n", text)
    return text.strip()


def test_normalize_japanese_equals_the_former_implementation(shared_data):
    extra = ["a\r\r\nb\r", "x \t\n\ty  \n", "a\n\n\n\n", "本稿では，手法を示す．", " \t", "\r\n\r\n\r\n"]
    for text in _real_texts(shared_data) + _generated_texts() + extra:
        assert normalize_japanese(text) == _former_normalize_japanese(text), repr(text[:40])


def _substitution_texts():
    """Random strings that also hold what the substitutions act on (CR, other line breaks,
    control characters, a BOM, lone surrogates, ，．after Japanese and after digits, spacing
    voiced marks), so that every branch of normalize_japanese's look at the code points runs."""
    rng = random.Random(20261130)
    pool = (
        "かがカはﾊﾟｶﾞｱﾞｯ\u3099\u309b\u309cＡ１，．、。 \u3000\t\n\n\r\x0b\x0c\x85\u2028"
        "\x00\x1b\x7f\ufeff\ud83d\udc00e\u0301①…😀𠮷"
    )
    return ["".join(rng.choice(pool) for _ in range(rng.randint(0, 30))) for _ in range(20_000)]


@pytest.mark.parametrize("batch_chars", [1 << 18, 1_000, 1])
def test_normalising_many_texts_at_once_equals_each_alone(shared_data, batch_chars, monkeypatch):
    """normalize_japanese_many (the clean stage's path: one look at the code points of many
    texts) gives every text what normalize_japanese gives it alone, and that is the former
    implementation's output; empty texts anywhere, the last one too, and any batch size."""
    from filters import normalize as module

    monkeypatch.setattr(module, "_BATCH_CHARS", batch_chars)
    texts = _real_texts(shared_data)[::3] + _generated_texts()[:5_000] + _substitution_texts()
    texts += ["", "a", "", "ｶﾞｯｺｳ", "\r\n", ""]
    random.Random(5).shuffle(texts)
    texts.append("")
    together = module.normalize_japanese_many(texts)
    assert together == [normalize_japanese(t) for t in texts]
    assert together == [_former_normalize_japanese(t) for t in texts]
    assert module.normalize_japanese_many([]) == [] and module.normalize_japanese_many([""]) == [""]
