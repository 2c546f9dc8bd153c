"""Unicode and whitespace normalisation for Japanese text.

The text every later rule sees, and the text exact dedup hashes, so its behaviour is versioned by
``NORMALIZER_ID``: change the output of ``normalize_japanese`` and the id must change.

What it does, in order:

1. CRLF and CR become LF; the other line breaks ``str.splitlines`` knows (VT, FF, NEL, U+2028,
   U+2029, ...) become LF too, so "a line" means the same thing to every rule.
2. Unicode NFKC: full-width ASCII becomes ASCII (ＡＢＣ１２３ -> ABC123), half-width katakana
   becomes full-width (ｶﾞｯｺｳ -> ガッコウ), decomposed kana compose (か + U+3099 -> が).
   Dakuten and handakuten are kept: unlike datatrove's dedup normaliser we never strip
   combining marks, because がっこう (school) and かっこう (cuckoo) are different words.
3. The spacing marks ゛ (U+309B) and ゜ (U+309C) are protected from NFKC, which would turn them
   into a space plus a combining mark. A spacing mark after a kana that has a voiced form
   composes with it (か゛ -> が, as neologdn does); any other one stays a spacing mark. For the
   same reason a combining mark that cannot compose (ｱﾞ, ア + U+3099) comes out as ア゛, so every
   spelling of one visible string gets one form.
4. Control characters (Unicode category Cc) are removed except LF and TAB; U+FEFF (a BOM left in
   the middle of concatenated text) too. This happens before NFKC (see the code for why).
   A lone surrogate (half of a pair, as a broken JSON escape leaves) becomes U+FFFD.
   Full-width ， and ． become 、 and 。 where they follow a Japanese character or a closing
   bracket, as Swallow's modification step does (「本稿では，手法を示す．」 -> 「本稿では、手法を示す。」);
   between full-width digits (１．５) they are left for NFKC, which makes them "," and ".".
5. Ideographic space U+3000 becomes an ASCII space. This is NFKC's own mapping and we keep it on
   purpose: text spaced with U+3000 and text spaced with U+0020 should hash alike and tokenise
   alike. A paragraph indent of one U+3000 therefore becomes one leading ASCII space (kept:
   only trailing blanks are stripped).
6. Within a line, a run of two or more blanks (spaces/tabs) becomes one space; a lone TAB stays.
   Trailing blanks are stripped from each line.
7. Two or more consecutive blank lines become one blank line, and the whole text is stripped.

NFKC also changes a few characters Japanese text uses often; we accept these as NFKC's cost:
～ (U+FF5E, what cp932 decodes 0x8160 to) -> "~", － (U+FF0D) -> "-", … -> "...", ① -> "1",
㍻ -> 平成. Rules that look for … (ellipsis endings) must look for "..." on normalised text.
"""

from __future__ import annotations

import re
import unicodedata

NORMALIZER_ID = "ja_nfkc_v2"  # v2: ，．after Japanese become 、。

_SPACING_DAKUTEN = "\u309b"  # ゛
_SPACING_HANDAKUTEN = "\u309c"  # ゜
_COMBINING_DAKUTEN = "\u3099"
_COMBINING_HANDAKUTEN = "\u309a"

# Line breaks other than LF that str.splitlines() honours; mapped to LF rather than deleted so
# that a form feed or U+2028 between two paragraphs does not glue them together.
_OTHER_LINE_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_CONTROL_CHARS = re.compile(
    "[" + "".join(chr(c) for c in range(0x20) if chr(c) not in "\n\t") + "\x7f-\x9f\ufeff]"
)
# Kana (with half-width and small forms), kanji, 々〆ヶ, and closing brackets.
_JAPANESE_BEFORE = (
    "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f々〆ヶ」』）】〕〉》〙〗"
)
_JAPANESE_COMMA = re.compile(f"(?<=[{_JAPANESE_BEFORE}])\uff0c")
_JAPANESE_PERIOD = re.compile(f"(?<=[{_JAPANESE_BEFORE}])\uff0e")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str, a surrogate is always a lone half
_BLANK_RUN = re.compile(r"[ \t]{2,}")
_TRAILING_BLANKS = re.compile(r"[ \t]+$", re.MULTILINE)
_EXTRA_BLANK_LINES = re.compile(r"\n{3,}")


def normalize_japanese(text: str) -> str:
    """Return ``text`` in the project's canonical form (``NORMALIZER_ID``).

    >>> normalize_japanese("ｶﾞｯｺｳの　ＡＩ研究\\r\\n\\r\\n\\r\\n\\r\\nがっこう  ")
    'ガッコウの AI研究\\n\\nがっこう'
    >>> normalize_japanese("う゛ほﾟ")  # neologdn's case: spacing marks compose with their kana
    'ゔぽ'
    >>> normalize_japanese("ア゛ッ！")  # no precomposed ア゛, so the spacing mark stays
    'ア゛ッ!'
    >>> normalize_japanese("本稿では，手法を示す．精度は１．５倍，速度は２倍．")
    '本稿では、手法を示す。精度は1.5倍、速度は2倍。'
    >>> normalize_japanese("ＪＲ東日本のｽｲｶで１２０円")  # full-width ASCII and half-width katakana fold
    'JR東日本のスイカで120円'
    >>> normalize_japanese("がっこう と か\\u3099っこう")  # dakuten kept; a combining mark composes
    'がっこう と がっこう'
    >>> normalize_japanese("一行目\\r\\n二行目\\u2028三行目\\x0c四行目")  # every line break becomes LF
    '一行目\\n二行目\\n三行目\\n四行目'
    >>> normalize_japanese("梅\\x00雨\\ufeffの\\x1b季節")  # control characters and stray BOMs go
    '梅雨の季節'
    >>> normalize_japanese("\\ud83d壊れた絵文字")  # a lone surrogate half
    '\\ufffd壊れた絵文字'
    >>> normalize_japanese("東京　　都\\t\\t千代田区  \\n\\n\\n\\n永田町")  # blanks and blank lines collapse
    '東京 都 千代田区\\n\\n永田町'
    """
    text = _OTHER_LINE_BREAKS.sub("\n", text)
    # Before NFKC: a control character between a kana and its mark would block composition now
    # and vanish later, and a second pass would then compose; removing it first keeps
    # normalize_japanese idempotent, which dedup keys rely on.
    text = _CONTROL_CHARS.sub("", text)
    # A lone surrogate (a JSON "\ud83d" without its pair) is not text; every encoder downstream
    # (UTF-8 output, fastText, Aho-Corasick) refuses it.
    text = _LONE_SURROGATE.sub("\ufffd", text)
    # Before NFKC, which would make ，and ． ASCII and lose that they were Japanese punctuation.
    text = _JAPANESE_PERIOD.sub("。", _JAPANESE_COMMA.sub("、", text))
    # Turn spacing marks into combining ones so NFKC's composition step can merge them with the
    # kana before them; whatever did not compose is turned back into the spacing mark below.
    text = text.replace(_SPACING_DAKUTEN, _COMBINING_DAKUTEN).replace(
        _SPACING_HANDAKUTEN, _COMBINING_HANDAKUTEN
    )
    text = unicodedata.normalize("NFKC", text)
    text = text.replace(_COMBINING_DAKUTEN, _SPACING_DAKUTEN).replace(
        _COMBINING_HANDAKUTEN, _SPACING_HANDAKUTEN
    )
    text = _BLANK_RUN.sub(" ", text)
    text = _TRAILING_BLANKS.sub("", text)
    text = _EXTRA_BLANK_LINES.sub("\n\n", text)
    return text.strip()
