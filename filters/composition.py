"""Character composition of a document, as Swallow Corpus v1 counts it (measure only; thresholds
live in config).

Followed: the code of ``swallow-llm/swallow-corpus`` ``quality.py`` (``count_japanese_letters``,
``document_statistics``), read from a public copy; it agrees with docs/research/mission_anchors.md
§3.2 except where noted below.

- ``letters`` is Swallow's ``num_letters``: ``len(text)``, i.e. *every* code point, whitespace,
  newlines, ASCII and symbols included (the note says "all letters"; the code means all characters).
- hiragana: U+3041–U+3096.   katakana: U+30A1–U+30FA (ー U+30FC and ・ U+30FB are not katakana).
- kanji: 々 〇 〻, U+3400–U+9FFF, U+F900–U+FAFF, and U+20000–U+2FFFF. Swallow writes the last range
  as the UTF-16 surrogate pairs ``[\\uD840-\\uD87F][\\uDC00-\\uDFFF]``; in a Python 3 ``str`` a
  character such as 𠮷 (U+20BB7) is one code point, not a pair, so Swallow's regex as written never
  matches it. We follow the evident intent (and the project's earlier ``filters/quality.py``) and
  count U+20000–U+2FFFF as kanji; on text without such characters the numbers are identical.
- kuten: 。．！？ (full-width only)   toten: 、，
- ``japanese_letters`` = hiragana + katakana + kanji + kuten + toten.
- ``hiragana_fraction``/``katakana_fraction``/``kanji_fraction`` are over ``japanese_letters``;
  ``japanese_fraction`` is ``japanese_letters / letters``. Each is 0.0 when its denominator is 0.

On text normalised with ``normalize_japanese`` (NFKC), ！？ have become ASCII !? and leave the
Japanese letters, and ．， have become 。、 only after Japanese characters; half-width katakana
have become full-width and so count. Swallow measured raw (un-NFKC'd) text, so its
``japanese_letters`` can be a few kuten higher than ours on the same page.

Counting is vectorised with numpy over the UTF-32 code points: a table gives each code point's
class and one ``np.bincount`` counts them all (against 5 M chars/s for one regex ``findall`` per
class and 10–16 M chars/s for ``str.translate``, measured on the 1.6 M-character Diet sample; the
former one comparison per range and one ``str.count`` per punctuation mark cost three times as
much on pages of a few hundred characters); there is no per-character Python loop.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from filters.batches import char_batches

COMPOSITION_ID = "swallow_v1_chars"

# Half-open code point ranges [start, stop).
_HIRAGANA = ((0x3041, 0x3097),)
_KATAKANA = ((0x30A1, 0x30FB),)
_KANJI = ((0x3400, 0xA000), (0xF900, 0xFB00), (0x20000, 0x30000))
_KANJI_SINGLES = "々〇〻"  # U+3005, U+3007, U+303B: outside the ranges above
_KUTEN = "。．！？"
_TOTEN = "、，"
# HojiChar AcceptJapanese's class, copied as written: ぁ-ん is U+3041–U+3093 and ァ-ン is
# U+30A1–U+30F3, so ゔゕゖ and ヴヵヶ do not count there (they do in Swallow's classes).
_STARTS_JAPANESE_RE = re.compile(r"[ぁ-んァ-ン]")


@dataclass(frozen=True)
class Composition:
    """Character counts of one document (Swallow v1 classes; see the module docstring)."""

    letters: int  # Swallow's num_letters: len(text), every code point
    japanese_letters: int  # hiragana + katakana + kanji + kuten + toten
    hiragana: int
    katakana: int
    kanji: int
    kuten: int = 0  # 。．！？
    toten: int = 0  # 、，

    @property
    def hiragana_fraction(self) -> float:
        return self.hiragana / self.japanese_letters if self.japanese_letters else 0.0

    @property
    def katakana_fraction(self) -> float:
        return self.katakana / self.japanese_letters if self.japanese_letters else 0.0

    @property
    def kanji_fraction(self) -> float:
        return self.kanji / self.japanese_letters if self.japanese_letters else 0.0

    @property
    def japanese_fraction(self) -> float:
        return self.japanese_letters / self.letters if self.letters else 0.0


# Class of every code point, for counting all classes with one gather and one bincount (about
# 1 MB; numpy instead of a regex or a per-class scan, see the module docstring).
_OTHER, _HIRAGANA_CLASS, _KATAKANA_CLASS, _KANJI_CLASS, _KUTEN_CLASS, _TOTEN_CLASS = range(6)
_CLASS_OF = np.zeros(0x110000, dtype=np.uint8)
for _ranges, _cls in ((_HIRAGANA, _HIRAGANA_CLASS), (_KATAKANA, _KATAKANA_CLASS), (_KANJI, _KANJI_CLASS)):
    for _lo, _hi in _ranges:
        _CLASS_OF[_lo:_hi] = _cls
for _chars, _cls in ((_KANJI_SINGLES, _KANJI_CLASS), (_KUTEN, _KUTEN_CLASS), (_TOTEN, _TOTEN_CLASS)):
    _CLASS_OF[[ord(c) for c in _chars]] = _cls


def composition(text: str) -> Composition:
    """Count Swallow v1's character classes in ``text``.

    >>> c = composition("梅雨は東アジアの気象現象である。")
    >>> (c.letters, c.japanese_letters, c.hiragana, c.katakana, c.kanji, c.kuten, c.toten)
    (16, 16, 5, 3, 7, 1, 0)
    >>> c.hiragana_fraction, c.japanese_fraction
    (0.3125, 1.0)
    """
    letters = len(text)
    if text.isascii():  # O(1) in CPython: no character of any class
        return Composition(letters, 0, 0, 0, 0, 0, 0)
    # surrogatepass: a lone surrogate (json.loads of "\\ud800") must not crash a worker.
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    _, hiragana, katakana, kanji, kuten, toten = np.bincount(_CLASS_OF[codes], minlength=6).tolist()
    japanese = hiragana + katakana + kanji + kuten + toten
    return Composition(letters, japanese, hiragana, katakana, kanji, kuten, toten)


# Characters counted together by composition_many: a batch's arrays stay in cache.
_BATCH_CHARS = 1 << 16


def composition_many(texts: Sequence[str]) -> list[Composition]:
    """:func:`composition` of each text (the same counts), with one gather and one bincount for
    a batch of about ``_BATCH_CHARS`` characters instead of numpy's per-call cost on every text.

    >>> [c.hiragana for c in composition_many(["梅雨は東アジアの気象現象である。", "", "ABC"])]
    [5, 0, 0]
    """
    out: list[Composition | None] = [None] * len(texts)
    counted = []
    for i, text in enumerate(texts):
        if text.isascii():  # as in composition(): no character of any class
            out[i] = Composition(len(text), 0, 0, 0, 0, 0, 0)
        else:
            counted.append(i)
    for batch in char_batches(texts, _BATCH_CHARS, counted):
        _count_batch(texts, batch, out)
    return out  # type: ignore[return-value]


def _count_batch(texts: Sequence[str], batch: list[int], out: list[Composition | None]) -> None:
    joined = "".join(texts[i] for i in batch)
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    lengths = np.fromiter((len(texts[i]) for i in batch), dtype=np.int64, count=len(batch))
    # Each code point's class, offset by six times its text's number: one bincount counts every
    # class of every text.
    keys = np.repeat(np.arange(0, 6 * len(batch), 6, dtype=np.int64), lengths) + _CLASS_OF[codes]
    counts = np.bincount(keys, minlength=6 * len(batch)).reshape(len(batch), 6).tolist()
    for i, (_, hiragana, katakana, kanji, kuten, toten) in zip(batch, counts):
        japanese = hiragana + katakana + kanji + kuten + toten
        out[i] = Composition(len(texts[i]), japanese, hiragana, katakana, kanji, kuten, toten)


def starts_japanese(text: str, n: int = 50) -> bool:
    """HojiChar ``AcceptJapanese`` as LLM-jp v1 uses it: any ``[ぁ-んァ-ン]`` in ``text[:n]``.

    Followed: HojiChar's code. Its constructor ignores ``lookup_size`` (it always sets 50), so
    LLM-jp's rule is ``n=50`` whatever it passed; here ``n`` is honoured.

    >>> starts_japanese("a" * 50 + "あ"), starts_japanese("ほうじ茶"), starts_japanese("漢字のみ"[:2])
    (False, True, False)
    """
    return _STARTS_JAPANESE_RE.search(text[:n]) is not None
