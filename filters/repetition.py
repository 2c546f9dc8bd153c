"""Repetition scores for Japanese text, character based (measure here; thresholds live in config).

These are the Gopher repetition measurements (Rae et al. 2021, Table A1) as Swallow Corpus v1
computes them for Japanese: on characters, because Japanese has no spaces to split words on.
References, read in the code rather than the READMEs (docs/research/mission_anchors.md §3.2, §3.4):

- Swallow: ``swallow-llm/swallow-corpus`` ``quality.py`` (``count_duplicates``, ``duplicate_fraction``,
  ``text_to_doc``; "Assess Japanese text quality", Naoaki Okazaki, MIT). The code index did not hold
  that path; the file was found by its content, with the repository's README, so its commit is
  unconfirmed.
- Gopher as datatrove implements it: ``huggingface/datatrove``
  ``src/datatrove/pipeline/filters/gopher_repetition_filter.py`` (``find_duplicates``,
  ``find_top_duplicate``, ``find_all_duplicate``).

What counts as a character
--------------------------
A character is a Python code point (an emoji or U+20BB7 𠮷 is one character; a lone surrogate from
broken input is one character too). Swallow's n-gram scores run over the raw text, so for the n-gram
scores every character counts, whitespace and newlines included, exactly as in Swallow. For lines,
paragraphs and sentences the unit is the element, and the character fractions divide by the
characters *in the elements* (Swallow divides by ``sum(len(p) for p in P)``, not by ``len(text)`` as
datatrove does), so separators (newlines, blank lines) are not counted. Unlike Swallow, elements are
stripped of surrounding whitespace and whitespace-only elements are dropped: Swallow keeps empty lines
as paragraphs, so ten blank lines are nine "duplicate paragraphs" there (and in datatrove's lines);
here they are nothing.

Cost
----
The n-gram scores use numpy (a project dependency) instead of counting string slices: the text
becomes an array of code points, and the n-gram at position i gets an exact integer id, the rank of
the pair (id of its (n-1)-gram, its last code point), found with ``np.unique``; no hashing, so no
collisions. Characters covered by repeated n-grams are marked by OR-ing n shifted boolean arrays.
About 0.09 s for all nine n-gram sizes on 100 KB, 2 s on 1 MB (about 4x faster than
``collections.Counter`` over slices). Documents longer than ``MAX_NGRAM_CHARS`` are measured on their
first ``MAX_NGRAM_CHARS`` characters for the n-gram scores (line, paragraph and sentence scores always
see the whole text); the bound is a keyword argument.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from filters.sentences import split_sentences

REPETITION_ID = "repetition_v1"

DEFINITIONS = ("gopher", "swallow")
TOP_NGRAM_SIZES = (2, 3, 4)
DUP_NGRAM_SIZES = (5, 6, 7, 8, 9, 10)
# n-gram scores of longer documents are measured on this many leading characters (about 2 s).
MAX_NGRAM_CHARS = 1_000_000

_BLANK_LINES_RE = re.compile(r"\n[^\S\n]*(?:\n[^\S\n]*)+")


@dataclass(frozen=True)
class Duplicates:
    """Exact duplicates among a document's elements (lines, paragraphs or sentences).

    Both Swallow (``count_duplicates``: ``f - 1`` per distinct element) and Gopher/datatrove
    (``find_duplicates``: every element already seen earlier) count an element occurring f times as
    f - 1 duplicates; the first occurrence is not a duplicate.
    """

    fraction: float  # duplicate elements / elements
    char_fraction: float  # characters in the duplicate elements / characters in all elements


def _duplicates(elements: Sequence[str]) -> Duplicates:
    if not elements:
        return Duplicates(0.0, 0.0)
    counts = Counter(elements)
    dup = len(elements) - len(counts)  # = sum(f - 1)
    dup_chars = sum(len(e) * (f - 1) for e, f in counts.items() if f > 1)
    total_chars = sum(map(len, elements))
    return Duplicates(dup / len(elements), dup_chars / total_chars if total_chars else 0.0)


def _lines(text: str) -> list[str]:
    # Swallow splits on "\n" only (not str.splitlines); strip() also removes a CRLF's "\r".
    return [s for line in text.split("\n") if (s := line.strip())]


def _paragraphs(text: str) -> list[str]:
    blocks = _BLANK_LINES_RE.split(text)
    return [p for block in blocks if (p := "\n".join(_lines(block)))]


def _sentences(text: str) -> list[str]:
    # Swallow's sentences (filters.sentences.split_sentences, which keeps whitespace exactly as
    # Swallow does), stripped here and whitespace-only ones dropped, as lines are above.
    return [s for m in split_sentences(text) if (s := m.strip())]


def duplicate_lines(text: str) -> Duplicates:
    """Duplicate non-blank lines: Swallow's ``duplicate_paragraph_fraction[_in_character]``.

    Swallow calls a line a "paragraph" (its P is each line's sentences joined). Gopher's
    ``dup_line_frac``/``dup_line_char_frac`` count the same thing but datatrove divides the
    characters by ``len(text)``.

    >>> duplicate_lines("送料無料\\n本文です。\\n送料無料")  # 1 of 3 lines; 4 of 13 characters
    Duplicates(fraction=0.3333333333333333, char_fraction=0.3076923076923077)
    """
    return _duplicates(_lines(text))


def duplicate_paragraphs(text: str) -> Duplicates:
    """Duplicate blank-line separated blocks: Gopher's ``dup_para_frac``/``dup_para_char_frac``.

    Swallow has no such score (its "paragraph" is a line). A paragraph is its stripped lines joined
    by "\\n"; lines holding only whitespace separate paragraphs (datatrove splits on ``\\n{2,}``).
    """
    return _duplicates(_paragraphs(text))


def duplicate_sentences(text: str) -> Duplicates:
    """Duplicate sentences: Swallow's ``duplicate_sentence_fraction[_in_character]``.

    Sentences are Swallow's ``[^。．！？!?]+[。．！？!?]?`` matched within each line
    (``filters.sentences.split_sentences``). A run of sentence-final marks keeps only its first mark
    ("ね！！" gives "ね！"; the second ！ starts no sentence), as in Swallow. Sentences are then
    stripped and whitespace-only ones dropped (Swallow keeps them, so a document with many lines
    holding only a full-width space has many duplicate "sentences" there).
    """
    return _duplicates(_sentences(text))


@dataclass
class _Level:
    n: int
    num_positions: int  # n-gram positions in the text: len(text) - n + 1 (or 0)
    ranks: np.ndarray  # per position, the id of its n-gram (equal ids <=> equal n-grams)
    counts: np.ndarray  # per n-gram id, its number of occurrences


def _levels(text: str, n_max: int) -> Iterator[_Level]:
    """Exact n-gram ids and counts for n = 2 .. n_max.

    The id of the n-gram at i is the rank of the pair (id of the (n-1)-gram at i, code point at
    i+n-1), so no hashing and no collisions; ids stay below len(text), so the pair fits in 64 bits
    (code points need 21).
    """
    # surrogatepass: a lone surrogate (broken input) is one code point like any other.
    code_points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.uint64)
    length = len(code_points)
    ranks = code_points
    for n in range(2, n_max + 1):
        num_positions = max(length - n + 1, 0)
        keys = (ranks[:num_positions] << np.uint64(21)) | code_points[n - 1 :]
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        ranks = inverse.astype(np.uint64)
        yield _Level(n, num_positions, inverse, counts)


def _top_fraction(level: _Level) -> float:
    # Swallow: top_freq / total_freq, total_freq being the number of n-gram positions.
    if level.num_positions == 0:
        return 0.0
    return int(level.counts.max()) / level.num_positions


def _dup_fraction(level: _Level, length: int, definition: str) -> float:
    if level.num_positions == 0:
        return 0.0
    if definition == "swallow":
        # distinct n-grams occurring more than once / distinct n-grams.
        return int(np.count_nonzero(level.counts > 1)) / len(level.counts)
    # gopher: characters inside at least one occurrence of a repeated n-gram / characters. Position
    # j is covered if a repeated n-gram starts at any of j-n+1 .. j: OR the flags shifted 0 .. n-1.
    repeated = level.counts[level.ranks] > 1
    covered = np.zeros(length, dtype=bool)
    for shift in range(level.n):
        covered[shift : shift + level.num_positions] |= repeated
    return int(np.count_nonzero(covered)) / length


def _check(n: int, definition: str | None = None) -> None:
    if n < 2:
        raise ValueError(f"n-gram size must be at least 2, got {n}")
    if definition is not None and definition not in DEFINITIONS:
        raise ValueError(f"definition must be one of {DEFINITIONS}, got {definition!r}")


def top_ngram_char_fraction(text: str, n: int, *, max_chars: int = MAX_NGRAM_CHARS) -> float:
    """Occurrences of the most frequent character n-gram / all n-gram occurrences (Swallow's code).

    This reproduces Swallow's ``top_{n}gram_character_fraction``: ``top_freq / total_freq`` with
    ``total_freq = len(text) - n + 1``, over the raw text (whitespace included). It is a count
    fraction, not Gopher's character fraction ``len(top) * count / len(text)`` (datatrove's
    ``find_top_duplicate``), which for character n-grams is about n times larger; Swallow's
    thresholds (0.20/0.18/0.16 for n = 2/3/4) were applied to this count fraction. 0.0 when the text
    is shorter than n (Swallow raises an IndexError there).
    """
    _check(n)
    text = text[:max_chars]
    for level in _levels(text, n):
        if level.n == n:
            return _top_fraction(level)
    return 0.0


def duplicate_ngram_char_fraction(
    text: str, n: int, definition: str = "gopher", *, max_chars: int = MAX_NGRAM_CHARS
) -> float:
    """Repeated character n-grams, over the raw text (whitespace included).

    ``definition="gopher"``: characters covered by n-grams that occur more than once, every occurrence
    (the first too) and overlapping n-grams counted once, / ``len(text)``; the Gopher paper's
    definition. datatrove's ``find_all_duplicate`` differs: it skips first occurrences and jumps n
    positions after a hit, so an exactly doubled text scores about 0.5 there and 1.0 here.

    ``definition="swallow"``: Swallow's code, ``duplicate_{n}gram_character_fraction`` = distinct
    n-grams occurring more than once / distinct n-grams (not character weighted, and not what
    Swallow's README says). Its thresholds (0.15 .. 0.10) were applied to this definition.
    """
    _check(n, definition)
    text = text[:max_chars]
    for level in _levels(text, n):
        if level.n == n:
            return _dup_fraction(level, len(text), definition)
    return 0.0


def repetition_scores(
    text: str, definition: str = "gopher", *, max_chars: int = MAX_NGRAM_CHARS
) -> dict[str, float]:
    """Every score above under stable names; ``definition`` selects the duplicate n-gram definition.

    Keys: dup_line_frac, dup_line_char_frac, dup_para_frac, dup_para_char_frac, dup_sentence_frac,
    dup_sentence_char_frac, top_{2,3,4}gram_char_frac, dup_{5..10}gram_char_frac.
    """
    _check(2, definition)
    lines, paras, sentences = duplicate_lines(text), duplicate_paragraphs(text), duplicate_sentences(text)
    scores = {
        "dup_line_frac": lines.fraction,
        "dup_line_char_frac": lines.char_fraction,
        "dup_para_frac": paras.fraction,
        "dup_para_char_frac": paras.char_fraction,
        "dup_sentence_frac": sentences.fraction,
        "dup_sentence_char_frac": sentences.char_fraction,
    }
    ngram_text = text[:max_chars]
    for level in _levels(ngram_text, DUP_NGRAM_SIZES[-1]):
        if level.n in TOP_NGRAM_SIZES:
            scores[f"top_{level.n}gram_char_frac"] = _top_fraction(level)
        elif level.n in DUP_NGRAM_SIZES:
            scores[f"dup_{level.n}gram_char_frac"] = _dup_fraction(level, len(ngram_text), definition)
    return scores
