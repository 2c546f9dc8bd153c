"""Character-class scores for Japanese quality rules (measure here; thresholds live in config).

The counting lives in ``filters/composition.py`` (Swallow Corpus v1 classes, ``COMPOSITION_ID``
``swallow_v1_chars``; see its docstring for the exact ranges and where Swallow's code was followed).
The functions here keep their names and numbers for existing callers:

- hiragana: U+3041–U+3096
- katakana: U+30A1–U+30FA (so ー U+30FC and ・ U+30FB are *not* katakana)
- kanji: 々 〇 〻, U+3400–U+9FFF, U+F900–U+FAFF, U+20000–U+2FFFF (what Swallow's surrogate-pair
  pattern means)
- kuten: 。．！？   toten: 、，
- "Japanese letters" = hiragana + katakana + kanji + kuten + toten.

Half-width katakana are not counted; run ``normalize_japanese`` first. Note that NFKC turns
！？ into ASCII, which leaves Swallow's denominator, so scores on normalised text can be a
little higher than Swallow's on raw text.
"""

from __future__ import annotations

from filters.composition import composition

HIRAGANA_FRACTION_ID = "hiragana_fraction_v1"


def hiragana_fraction(text: str) -> float:
    """Hiragana / Japanese letters, as Swallow v1 defines it (§3.2); 0.0 if there are none.

    Same number as ``composition(text).hiragana_fraction``. Swallow v1 rejects a document
    below 0.2. The denominator is Japanese letters, not all characters: ASCII, digits and
    whitespace neither help nor hurt.

    >>> hiragana_fraction("梅雨は東アジアの気象現象である。")  # 5 hiragana / 16 letters
    0.3125
    >>> hiragana_fraction("激安ブランド財布通販【送料無料】")  # spam-style: no hiragana
    0.0
    """
    return composition(text).hiragana_fraction


def japanese_char_count(text: str) -> int:
    """Number of hiragana, katakana and kanji (Swallow's classes; punctuation not counted).

    >>> japanese_char_count("○政府委員（鈴木俊一君）　この附則の第一項は")
    18
    """
    c = composition(text)
    return c.hiragana + c.katakana + c.kanji
