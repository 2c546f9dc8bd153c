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
from collections.abc import Sequence

import numpy as np

from filters.batches import char_batches

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
def _nfkc_unstable_bmp() -> tuple[int, ...]:
    """The code points below U+10000 that NFKC may change, or that may combine with the character
    before, in order (see _nfkc_unstable_runs)."""
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
    return tuple(sorted(c for c in unstable if c < 0x10000))


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
    # Every character above U+FFFF goes in the class too (emoji and CJK extension kanji, stable
    # but harmless in a piece): with a few hundred separate ranges above the BMP, the regex
    # engine tests a character against each in turn, twenty times slower than its BMP bitmap.
    ranges, codes = ["\U00010000-\U0010ffff"], list(_nfkc_unstable_bmp())
    start = previous = codes[0]
    for code in codes[1:] + [-1]:
        if code != previous + 1:
            last = "-" + re.escape(chr(previous)) if previous > start else ""
            ranges.append(re.escape(chr(start)) + last)
            start = code
        previous = code
    return re.compile("[" + "".join(ranges) + "]+")


# What each code point asks of normalize_japanese (bits of _character_flags()).
_LINE_BREAK, _CONTROL, _SURROGATE, _FULL_WIDTH_PUNCTUATION, _SPACING_MARK, _NFKC_UNSTABLE = 1, 2, 4, 8, 16, 32
_SUBSTITUTED = _LINE_BREAK | _CONTROL | _SURROGATE | _FULL_WIDTH_PUNCTUATION | _SPACING_MARK


@functools.cache
def _character_flags() -> np.ndarray:
    """A byte per code point (1.1 MB) saying which of normalize_japanese's steps act on it.

    One gather over a text's code points then tells which substitutions have anything to do and
    where NFKC's pieces are, instead of one regular-expression scan per step (a scan of the class
    of _nfkc_unstable_runs costs about 40 ns a character; the gather about 2). The classes are
    the same as the patterns': the flags come from the same character lists.
    """
    flags = np.zeros(0x110000, dtype=np.uint8)
    flags[[ord(c) for c in "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"]] |= _LINE_BREAK
    flags[[c for c in range(0x20) if chr(c) not in "\n\t"] + list(range(0x7F, 0xA0)) + [0xFEFF]] |= _CONTROL
    flags[0xD800:0xE000] |= _SURROGATE
    flags[[0xFF0C, 0xFF0E]] |= _FULL_WIDTH_PUNCTUATION
    flags[[ord(_SPACING_DAKUTEN), ord(_SPACING_HANDAKUTEN)]] |= _SPACING_MARK
    flags[list(_nfkc_unstable_bmp())] |= _NFKC_UNSTABLE
    flags[0x10000:] |= _NFKC_UNSTABLE  # as in _nfkc_unstable_runs' class
    return flags


def _unstable_edges(flags: np.ndarray) -> list[int]:
    """Where the runs of _nfkc_unstable_runs' class start and end in a text whose code points
    have these flags: [start, end, start, end, ...] (the same runs as the regular expression's)."""
    marks = np.zeros(len(flags) + 2, dtype=np.uint8)
    np.bitwise_and(flags, _NFKC_UNSTABLE, out=marks[1:-1])
    return np.flatnonzero(marks[1:] != marks[:-1]).tolist()


def _nfkc_pieces(text: str, edges: list[int]) -> str:
    """_nfkc(text) given its runs (_unstable_edges): the same pieces, found without a regex scan."""
    if not edges:
        return text
    # Each run is normalised with the character before it; two runs are at least one stable
    # character apart, so that character is never in the run before (only the first run may
    # start the text).
    starts = [start - 1 for start in edges[::2]]
    starts[0] = max(starts[0], 0)
    ends = edges[1::2]
    normalize = unicodedata.normalize
    out = [
        piece
        for before, start, end in zip([0, *ends], starts, ends)
        for piece in (text[before:start], normalize("NFKC", text[start:end]))
    ]
    out.append(text[ends[-1] :])
    return "".join(out)


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
    # Each step below is skipped when the characters it acts on are absent, which changes no
    # output: one look at every code point (see _character_flags) says which substitutions have
    # anything to do (on most pages none), and gives NFKC's pieces; the blank-line steps ask
    # with substring tests (fast C scans).
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")  # one LF for a CRLF, not two
    flags = _character_flags().take(np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32))
    present = int(np.bitwise_or.reduce(flags)) if len(flags) else 0
    return _finish(text, present, _unstable_edges(flags) if present & _NFKC_UNSTABLE else [])


# Characters whose code points normalize_japanese_many looks at in one go (about 1.3 MB of arrays).
_BATCH_CHARS = 1 << 18


def normalize_japanese_many(texts: Sequence[str]) -> list[str]:
    """:func:`normalize_japanese` of each text, the same output, with the look at the code points
    (_character_flags) made for many texts at once: numpy's per-call cost, a third of the
    normalisation of a short page, is paid once per batch of about ``_BATCH_CHARS`` characters.

    >>> normalize_japanese_many(["ｶﾞｯｺｳ", "", "本稿では，手法を示す．"])
    ['ガッコウ', '', '本稿では、手法を示す。']
    """
    texts = [text.replace("\r\n", "\n") if "\r\n" in text else text for text in texts]
    out: list[str] = []
    for batch in char_batches(texts, _BATCH_CHARS):
        out += _normalize_batch([texts[i] for i in batch])
    return out


def _normalize_batch(texts: list[str]) -> list[str]:
    # The texts joined by LF, which has no flag: no run of unstable characters crosses from one
    # text into the next, so each run found in the whole is a run of one text.
    flags = _character_flags().take(
        np.frombuffer("\n".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    )
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    starts = np.zeros(len(texts), dtype=np.int64)
    np.cumsum(lengths[:-1] + 1, out=starts[1:])
    # Each text's flags, with the LF after it (no flag). An empty text last starts past the end,
    # and reduceat gives an empty segment the code point at its start: both are set to 0.
    present = [0] * len(texts)
    if len(flags):
        present = np.bitwise_or.reduceat(flags, np.minimum(starts, len(flags) - 1))
        present[lengths == 0] = 0
        present = present.tolist()
    edges = np.asarray(_unstable_edges(flags), dtype=np.int64)
    first = np.searchsorted(edges, starts, side="left").tolist()
    last = np.searchsorted(edges, starts + lengths, side="right").tolist()
    edge_list = edges.tolist()
    out = []
    for text, start, flag, lo, hi in zip(texts, starts.tolist(), present, first, last):
        runs = [e - start for e in edge_list[lo:hi]] if flag & _NFKC_UNSTABLE else []
        out.append(_finish(text, flag, runs))
    return out


def _finish(text: str, present: int, edges: list[int]) -> str:
    """normalize_japanese after the look at the code points: ``present`` has the flags of all of
    them (_character_flags), ``edges`` the runs of NFKC's pieces (_unstable_edges)."""
    if present & _SUBSTITUTED:
        text = _nfkc(_substitute(text))
    elif present & _NFKC_UNSTABLE:
        text = _nfkc_pieces(text, edges)
    if present & (_SUBSTITUTED | _NFKC_UNSTABLE):  # else there is no combining mark
        # Whatever combining mark did not compose (or NFKC made of a half-width ﾞ) becomes the
        # spacing mark again.
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


def _substitute(text: str) -> str:
    """normalize_japanese's substitutions before NFKC, for a text holding a character that one
    of them acts on (a line break other than LF, a control character, a lone surrogate, ，or ．,
    or a spacing voiced mark)."""
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
    # kana before them; whatever did not compose is turned back into the spacing mark after NFKC.
    return text.replace(_SPACING_DAKUTEN, _COMBINING_DAKUTEN).replace(
        _SPACING_HANDAKUTEN, _COMBINING_HANDAKUTEN
    )
