"""Character-class scores for Japanese quality rules (measure here; thresholds live in config).

Character classes follow Swallow Corpus v1 (``swallow-llm/swallow-corpus`` ``quality.py`` @
2d035073, as summarised in docs/research/mission_anchors.md §3.2):

- hiragana: U+3041–U+3096
- katakana: U+30A1–U+30FA (so ー U+30FC and ・ U+30FB are *not* katakana)
- kanji: 々 〇 〻, U+3400–U+9FFF, U+F900–U+FAFF, and the supplementary ideographs Swallow matches
  as UTF-16 surrogate pairs (D840–D87F lead surrogates, i.e. U+20000–U+2FFFF)
- kuten: 。．！？   toten: 、，
- "Japanese letters" = hiragana + katakana + kanji + kuten + toten.

Half-width katakana are not counted; run ``normalize_japanese`` first. Note that NFKC turns
．！？， into ASCII, which leaves Swallow's denominator, so scores on normalised text can be a
little higher than Swallow's on raw text.
"""

from __future__ import annotations

import re

HIRAGANA_FRACTION_ID = "hiragana_fraction_v1"

_HIRAGANA = "\u3041-\u3096"
_KATAKANA = "\u30a1-\u30fa"
_KANJI = "々〇〻\u3400-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
_KUTEN_TOTEN = "。．！？、，"
_HIRAGANA_RE = re.compile(f"[{_HIRAGANA}]")
_JAPANESE_CHAR_RE = re.compile(f"[{_HIRAGANA}{_KATAKANA}{_KANJI}]")
_JAPANESE_LETTER_RE = re.compile(f"[{_HIRAGANA}{_KATAKANA}{_KANJI}{_KUTEN_TOTEN}]")


def hiragana_fraction(text: str) -> float:
    """Hiragana / Japanese letters, as Swallow v1 defines it (§3.2); 0.0 if there are none.

    Swallow v1 rejects a document below 0.2. The denominator is Japanese letters, not all
    characters: ASCII, digits and whitespace neither help nor hurt.

    >>> hiragana_fraction("梅雨は東アジアの気象現象である。")  # 5 hiragana / 16 letters
    0.3125
    >>> hiragana_fraction("激安ブランド財布通販【送料無料】")  # spam-style: no hiragana
    0.0
    """
    letters = len(_JAPANESE_LETTER_RE.findall(text))
    if letters == 0:
        return 0.0
    return len(_HIRAGANA_RE.findall(text)) / letters


def japanese_char_count(text: str) -> int:
    """Number of hiragana, katakana and kanji (Swallow's classes; punctuation not counted).

    >>> japanese_char_count("○政府委員（鈴木俊一君）　この附則の第一項は")
    18
    """
    return len(_JAPANESE_CHAR_RE.findall(text))
