"""How a document becomes a fastText input line, for Japanese, which has no spaces between words.

fastText splits its input on whitespace and learns one vector per token and per hashed token
n-gram. A Japanese document has almost no whitespace, so it would be one huge token. Two ways to
make tokens, both versioned because a model only works with the features it was trained on
(the model directory's metadata records the id and the scorer uses the same one):

- ``char_v1``: every character is a token (a run of ASCII letters and digits stays one token),
  and fastText's word n-grams then give character bi- and trigrams, as Swallow's character-based
  rules and our dedup shingles do. No dictionary, no segmentation errors, fast.
- ``sudachi_v1``: Sudachi (sudachidict-core, split mode C) words, in their normalised form
  (附属 and 付属 alike), joined by spaces: what LLM-jp's word-based tools see.

Both first apply NFKC and lower-case (full-width and half-width forms are one feature) and fold
every digit to 0: numbers carry dates and prices, which say when a page was written, not how good
it is (the default classifier's negatives are 2005-08 blogs; its Diet speeches span decades).

>>> char_line("梅雨は2024年、６月に")
'梅 雨 は 0000 年 、 0 月 に'
"""

from __future__ import annotations

import functools
import re
import unicodedata

CHAR_FEATURES = "char_v1"
SUDACHI_FEATURES = "sudachi_v1"
FEATURES = {"char": CHAR_FEATURES, "sudachi": SUDACHI_FEATURES}

_DIGITS = re.compile(r"\d")
# A run of ASCII letters/digits is one token; any other non-space character is a token of its own.
_CHAR_TOKENS = re.compile(r"[a-z0-9_]+|\S")
# Sudachi refuses input over 49,149 bytes; chunks stay well under it (UTF-8 Japanese: 3 bytes a character).
_SUDACHI_MAX_CHARS = 12_000


def fold(text: str) -> str:
    """NFKC, lower case, digits to 0 (the part both feature kinds share).

    >>> fold("ＡＢＣ１２３ ｶﾞｯｺｳ")
    'abc000 ガッコウ'
    """
    return _DIGITS.sub("0", unicodedata.normalize("NFKC", text).lower())


def char_line(text: str) -> str:
    """Characters as space-separated tokens (``char_v1``)."""
    return " ".join(_CHAR_TOKENS.findall(fold(text)))


@functools.cache
def _sudachi():
    try:
        from sudachipy import Dictionary, SplitMode
    except ImportError as exc:  # a project dependency; the hint is for a partial install
        raise ImportError("sudachi features need sudachipy: pip install sudachipy sudachidict-core") from exc
    return Dictionary(dict="core").tokenizer(mode=SplitMode.C)


def _chunks(text: str, size: int) -> list[str]:
    """Pieces under `size` characters, cut at line ends where possible (a word is never cut
    unless one line is longer than `size`)."""
    chunks: list[str] = []
    current = ""
    for line in text.splitlines():
        while len(line) > size:
            chunks.append(line[:size])
            line = line[size:]
        if len(current) + len(line) + 1 > size:
            chunks.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    return chunks


def sudachi_line(text: str) -> str:
    """Sudachi words (normalised form, mode C) as space-separated tokens (``sudachi_v1``).

    >>> sudachi_line("附属病院に行った")
    '付属 病院 に 行く た'
    """
    tokenizer = _sudachi()
    words: list[str] = []
    for chunk in _chunks(fold(text), _SUDACHI_MAX_CHARS):
        words += [w for m in tokenizer.tokenize(chunk) if not (w := m.normalized_form()).isspace()]
    # A normalised form may itself contain a space (an English phrase): it would split into two tokens.
    return " ".join(w.replace(" ", "_") for w in words if w)


def feature_line(text: str, features: str) -> str:
    """The fastText input line for `text` under the feature id `features` (``char_v1``, ``sudachi_v1``)."""
    if features == CHAR_FEATURES:
        return char_line(text)
    if features == SUDACHI_FEATURES:
        return sudachi_line(text)
    raise ValueError(
        f"unknown classifier features {features!r}; expected one of {', '.join(FEATURES.values())}"
    )


def sudachi_versions() -> dict[str, str]:
    """Versions that decide Sudachi's segmentation, recorded with a model trained on it."""
    from importlib.metadata import version

    return {"sudachipy": version("sudachipy"), "sudachidict-core": version("sudachidict-core")}
