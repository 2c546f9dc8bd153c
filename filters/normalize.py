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

import functools
import re
import unicodedata

NORMALIZER_ID = "ja_nfkc_v2"  # v2: ，．after Japanese become 、。

_SPACING_DAKUTEN = "\u309b"  # ゛
_SPACING_HANDAKUTEN = "\u309c"  # ゜
_COMBINING_DAKUTEN = "\u3099"
_COMBINING_HANDAKUTEN = "\u309a"

# Line breaks other than LF that str.splitlines() honours; mapped to LF rather than deleted so
# that a form feed or U+2028 between two paragraphs does not glue them together.
_OTHER_LINE_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")  # after CRLF -> LF
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


@functools.cache
def _nfkc_unstable_runs() -> re.Pattern[str]:
    """Runs of the characters NFKC may change, or that may combine with the character before.

    Every other character is a normalisation boundary (UAX #15 §9: NFKC_Quick_Check=Yes and
    canonical combining class 0), so NFKC of a text is NFKC of the pieces between boundaries.
    The set is derived from this Python's own ``unicodedata`` when first needed (about 0.2 s
    once per process), so it always agrees with ``unicodedata.normalize``:

    - a character with a decomposition that NFKC does not leave alone (compatibility forms,
      full-width ASCII, half-width katakana, canonical singletons);
    - a character with a non-zero combining class (U+3099 and U+309A among them);
    - NFKC_Quick_Check=Maybe, the characters that can compose with the one before: the second
      character of a two-character canonical decomposition, and the Hangul medial vowels and
      final consonants (composed algorithmically, so not in the decomposition table).

    A piece that starts at a boundary and ends before one may hold stable characters too.
    """
    decomposition, combining = unicodedata.decomposition, unicodedata.combining
    unstable: set[int] = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))
    for code in range(0x110000):
        char = chr(code)
        if combining(char):
            unstable.add(code)
        mapping = decomposition(char)
        if not mapping:
            continue
        parts = mapping.split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            unstable.add(int(parts[1], 16))
        if not unicodedata.is_normalized("NFKC", char):
            unstable.add(code)
    unstable -= set(range(0xD800, 0xE000))  # lone surrogates are replaced before NFKC
    # Every character above U+FFFF goes in the class too (emoji and CJK extension kanji, stable
    # but harmless in a piece): with a few hundred separate ranges above the BMP, the regex
    # engine tests a character against each in turn, twenty times slower than its BMP bitmap.
    ranges, codes = ["\U00010000-\U0010ffff"], sorted(c for c in unstable if c < 0x10000)
    start = previous = codes[0]
    for code in codes[1:] + [-1]:
        if code != previous + 1:
            last = "-" + re.escape(chr(previous)) if previous > start else ""
            ranges.append(re.escape(chr(start)) + last)
            start = code
        previous = code
    return re.compile("[" + "".join(ranges) + "]+")


def _nfkc(text: str) -> str:
    """``unicodedata.normalize("NFKC", text)``, normalising only the pieces that can change.

    CPython's NFKC decomposes and recomposes the whole text once any character needs it (about
    0.3 µs a character, the largest cost of the clean stage's normalisation); Japanese pages
    have a few full-width or compatibility characters among thousands of stable ones. Each run
    of unstable characters is normalised together with the boundary character before it (a kana
    that a following voiced mark composes with); tests/filters/test_normalize_japanese.py checks
    the result against ``unicodedata.normalize`` on real and generated text.
    """
    out: list[str] = []
    pos = 0
    for run in _nfkc_unstable_runs().finditer(text):
        start = max(run.start() - 1, pos)
        out.append(text[pos:start])
        out.append(unicodedata.normalize("NFKC", text[start : run.end()]))
        pos = run.end()
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


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
    # Each substitution below is skipped when the characters it acts on are absent (a substring
    # test is a fast C scan; most of these patterns cannot use the regex engine's own skipping),
    # which changes no output.
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")  # one LF for a CRLF, not two
    text = _OTHER_LINE_BREAKS.sub("\n", text)
    # Before NFKC: a control character between a kana and its mark would block composition now
    # and vanish later, and a second pass would then compose; removing it first keeps
    # normalize_japanese idempotent, which dedup keys rely on.
    text = _CONTROL_CHARS.sub("", text)
    # A lone surrogate (a JSON "\ud83d" without its pair) is not text; every encoder downstream
    # (UTF-8 output, fastText, Aho-Corasick) refuses it.
    text = _LONE_SURROGATE.sub("\ufffd", text)
    # Before NFKC, which would make ，and ． ASCII and lose that they were Japanese punctuation.
    if "\uff0c" in text:
        text = _JAPANESE_COMMA.sub("、", text)
    if "\uff0e" in text:
        text = _JAPANESE_PERIOD.sub("。", text)
    # Turn spacing marks into combining ones so NFKC's composition step can merge them with the
    # kana before them; whatever did not compose is turned back into the spacing mark below.
    text = text.replace(_SPACING_DAKUTEN, _COMBINING_DAKUTEN).replace(
        _SPACING_HANDAKUTEN, _COMBINING_HANDAKUTEN
    )
    text = _nfkc(text)
    text = text.replace(_COMBINING_DAKUTEN, _SPACING_DAKUTEN).replace(
        _COMBINING_HANDAKUTEN, _SPACING_HANDAKUTEN
    )
    if "  " in text or "\t" in text:
        text = _BLANK_RUN.sub(" ", text)
    if " \n" in text or "\t\n" in text or text.endswith((" ", "\t")):
        text = _TRAILING_BLANKS.sub("", text)
    if "\n\n\n" in text:
        text = _EXTRA_BLANK_LINES.sub("\n\n", text)
    return text.strip()
