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
The n-gram scores use numpy (a project dependency) instead of counting string slices, and no
hashing, so no collisions. The text's characters get dense ids (1 .. the number of distinct
characters; 0 means "past the end"), and the characters from each position are packed into a
64-bit key, as many as fit (seven on a page of fewer than 512 distinct characters). Sorting the
keys puts equal n-grams next to each other for every n up to that many at once (the order of a
suffix array cut there): two neighbours share their n-gram exactly when the XOR of their keys has
no bit in the first n characters' fields, and the runs of such neighbours are the distinct
n-grams, their lengths the counts. The next round replaces the characters sorted so far by their
rank in that order (an exact, smaller id of the prefix) and packs the following characters behind
it, and sorts only the positions whose prefix another position shares (about a quarter of them
after four characters of real text): no other position starts a repeated longer n-gram. Characters
covered by repeated n-grams (Gopher's definition) are counted with a running sum over positions.

Many texts are counted together (``ngram_scores_many``, what the clean stage does with a shard):
they lie one after the other, each followed by padding, and each position's first key starts with
its text's number, so sorting keeps every text's positions together and neighbours from two texts
never match; every count is then a per-text sum. Numpy's per-call cost, most of the time on a page
of a few hundred characters, is paid once per batch of about 32,000 characters (``BATCH_CHARS``,
sized so that a batch's arrays stay in cache): on the 984 pages of the speed benchmark that
reach this measurement, 0.23 to 0.32 s instead of 0.83 s one page at a time (the same integers).

Why not ``np.unique`` per n (what this module did before, and what a library call would be): on
a page of a few hundred characters the time goes to numpy's per-call overhead, and nine
``np.unique(return_inverse=True, return_counts=True)`` calls with their bookkeeping cost about 1 ms,
the largest share of the clean stage; two sorts with a few counting calls cost about a third of
that, with the same integers and so the same fractions bit for bit (tests/filters/
test_repetition.py compares them with the former code on the Diet speeches, Wikipedia and the
labelled set, and a batch with each text alone). Documents longer than ``MAX_NGRAM_CHARS`` are
measured on their first ``MAX_NGRAM_CHARS`` characters for the n-gram scores (line, paragraph and
sentence scores always see the whole text); the bound is a keyword argument.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from filters.batches import char_batches
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


def _sentences(text: str, split: list[str] | None = None) -> list[str]:
    # Swallow's sentences (filters.sentences.split_sentences, which keeps whitespace exactly as
    # Swallow does), stripped here and whitespace-only ones dropped, as lines are above.
    return [s for m in (split_sentences(text) if split is None else split) if (s := m.strip())]


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


def duplicate_sentences(text: str, sentences: list[str] | None = None) -> Duplicates:
    """Duplicate sentences: Swallow's ``duplicate_sentence_fraction[_in_character]``.

    Sentences are Swallow's ``[^。．！？!?]+[。．！？!?]?`` matched within each line
    (``filters.sentences.split_sentences``). A run of sentence-final marks keeps only its first mark
    ("ね！！" gives "ね！"; the second ！ starts no sentence), as in Swallow. Sentences are then
    stripped and whitespace-only ones dropped (Swallow keeps them, so a document with many lines
    holding only a full-width space has many duplicate "sentences" there). ``sentences``, if
    given, must be ``filters.sentences.split_sentences(text)`` (for a caller that has them).
    """
    return _duplicates(_sentences(text, sentences))


class _Counts(NamedTuple):
    """What the scores need of one n-gram size (every count exact)."""

    positions: int  # n-gram positions in the text: len(text) - n + 1 (or 0)
    distinct: int  # distinct n-grams
    repeated: int  # distinct n-grams occurring more than once
    top: int  # occurrences of the most frequent n-gram (0 unless asked for, or without positions)
    covered: int  # characters inside an occurrence of a repeated n-gram (0 unless asked for)


_THREAD = threading.local()


def _character_ids(codes: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense ids 1 .. (distinct characters) for code points, and the bits they need.

    A per-thread table indexed by code point (4.4 MB, written only where this text's characters
    are, so stale entries are never read) gives the ids with one gather;
    ``np.unique(return_inverse=True)`` or a binary search cost several times more on texts of a
    few hundred characters.
    """
    table = getattr(_THREAD, "table", None)
    if table is None:
        table = _THREAD.table = np.zeros(0x110000, dtype=np.uint32)
    ordered = np.sort(codes)
    alphabet = ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]
    table[alphabet] = np.arange(1, len(alphabet) + 1, dtype=np.uint32)
    return table[codes], len(alphabet).bit_length()


# Total characters counted together (a longer text is a batch of its own): the positions' ranks
# then take at most 15 bits of a key, and the arrays of one batch (about 10 of 8 bytes a
# character) stay in the core's own cache. On the 984 pages of the speed benchmark that reach
# the n-grams, batches of 2**15 characters take 0.23 to 0.32 CPU s against 0.38 to 0.39 for 2**20,
# and 0.42 to 0.53 for 2**16 and 2**17 (three runs each, in turns, on a loaded machine): the
# sort and the gathers run in cache, and a batch's ~11-bit character ids leave room to pack
# five characters after the text's number in the first round. The counts are the same.
BATCH_CHARS = 1 << 15


def _ngram_counts(
    text: str, n_max: int, top_sizes: Sequence[int] = (), covered_sizes: Sequence[int] = ()
) -> dict[int, _Counts]:
    """Exact counts of the character n-grams of ``text`` for n = 2 .. ``n_max`` (see Cost above)."""
    return _ngram_counts_many([text], n_max, top_sizes, covered_sizes)[0]


def _ngram_counts_many(
    texts: Sequence[str], n_max: int, top_sizes: Sequence[int] = (), covered_sizes: Sequence[int] = ()
) -> list[dict[int, _Counts]]:
    """:func:`_ngram_counts` of each text, counted in batches of about ``BATCH_CHARS`` characters.

    ``top`` is computed for the sizes in ``top_sizes``, ``covered`` for those in ``covered_sizes``.
    """
    out: list[dict[int, _Counts] | None] = [None] * len(texts)
    counted = []
    for i, text in enumerate(texts):
        if len(text) < 2:
            out[i] = {n: _Counts(0, 0, 0, 0, 0) for n in range(2, n_max + 1)}
        else:
            counted.append(i)
    for batch in char_batches(texts, BATCH_CHARS, counted):
        for j, counts in zip(batch, _count_batch([texts[j] for j in batch], n_max, top_sizes, covered_sizes)):
            out[j] = counts
    return out  # type: ignore[return-value]


def _count_batch(
    texts: list[str], n_max: int, top_sizes: Sequence[int], covered_sizes: Sequence[int]
) -> list[dict[int, _Counts]]:
    """The counts of texts of at least 2 characters each, all in one array (see Cost above).

    The texts lie one after the other in ``padded``, each followed by ``n_max - 1`` zeros (past
    its end), and the first key of every position starts with its text's number: sorting then
    orders the positions text by text, neighbours from two texts never share an n-gram, and
    every count is a per-text sum (a bincount by text) of what one text alone would give.

    A round sorts only the positions whose first ``done`` characters (and text) some other
    position shares: the others start no repeated n-gram for any larger n. After four
    characters that is about a quarter of the positions of real pages.
    """
    docs = len(texts)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=docs)
    total = int(lengths.sum())
    starts = np.zeros(docs, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    doc_of = np.repeat(np.arange(docs, dtype=np.int64), lengths)
    # surrogatepass: a lone surrogate (broken input) is one code point like any other.
    codes = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype="<u4")
    ids, bits = _character_ids(codes)
    at = np.arange(total, dtype=np.int64) + doc_of * (n_max - 1)  # each position's place in `padded`
    padded = np.zeros(total + docs * (n_max - 1), dtype=np.uint64)  # 0: past the end of a text
    padded[at] = ids
    shift = np.uint64(bits)
    per_size: dict[int, tuple[list[int], list[int], list[int], list[int]]] = {}
    pos = np.arange(total, dtype=np.int64)  # the positions still sorted
    done = 0  # characters of each n-gram already stood for by `rank`
    rank = doc_of.astype(np.uint64) if docs > 1 else None  # per position in `pos`: text, first `done`
    rank_bits = (docs - 1).bit_length()
    while done < n_max:
        # The key of a position: the rank of its first `done` characters (high bits), then as many
        # of the following characters as fit in 64 bits; sorting the keys orders the positions
        # by their first done + packed characters, so equal n-grams for those n are neighbours.
        # At least one character fits: ranks take about 15 bits (a batch of BATCH_CHARS; 43 for
        # any text that fits in memory), characters at most 21.
        packed = min((64 - rank_bits) // bits, n_max - done)
        sizes = range(max(done + 1, 2), done + packed + 1)
        if len(pos) < 2:  # no position left shares a prefix: nothing repeats
            zeros, ones = [0] * docs, [1] * docs
            for n in range(max(done + 1, 2), n_max + 1):
                per_size[n] = (zeros, zeros, ones if n in top_sizes else zeros, zeros)
            break
        where = at[pos] + done
        key = padded[where]
        for c in range(1, packed):
            key <<= shift
            key |= padded[where + c]
        if rank is not None:
            key |= rank << (shift * np.uint64(packed))
        order = np.argsort(key)
        ordered_key = key[order]
        ordered_pos = pos[order]
        ordered_doc = doc_of[ordered_pos]
        # Neighbours share their first n characters iff the XOR of their keys is below
        # limit(n), i.e. has no bit above the low (done + packed - n) characters; neighbours
        # from two texts (or two prefixes) differ in the rank, above every limit.
        diff = ordered_key[1:] ^ ordered_key[:-1]
        limits = np.array([1 << (bits * (done + packed - n)) for n in sizes], dtype=np.uint64)
        # Per neighbour pair, how many of these sizes it shares (limits fall as n grows). For
        # each n: merges = pairs sharing the n-gram (distinct = positions - merges), and runs of
        # such pairs, one per repeated n-gram; a run starts where a pair shares n and the one
        # before does not, so runs = merges - pairs sharing n with the pair before sharing it.
        # Each pair counts for the text of its first position.
        width = len(sizes) + 1
        shared = len(sizes) - np.searchsorted(limits[::-1], diff, side="right")
        by_doc = np.bincount(ordered_doc[:-1] * width + shared, minlength=docs * width)
        merged = np.cumsum(by_doc.reshape(docs, width)[:, ::-1], axis=1)[:, ::-1][:, 1:]
        with_previous = np.minimum(shared[1:], shared[:-1])
        by_doc = np.bincount(ordered_doc[1:-1] * width + with_previous, minlength=docs * width)
        merged_twice = np.cumsum(by_doc.reshape(docs, width)[:, ::-1], axis=1)[:, ::-1][:, 1:]
        merges_of, runs_of = merged.T.tolist(), (merged - merged_twice).T.tolist()
        for r, n in enumerate(sizes):
            top = covered = [0] * docs
            if n in top_sizes:
                # The most frequent n-gram: the largest group of sorted neighbours joined by
                # pairs sharing it (1 for a text none of whose positions is left here).
                group = np.empty(len(pos), dtype=np.int64)
                group[0] = 0
                np.cumsum(shared <= r, out=group[1:])
                first = np.concatenate(([0], np.flatnonzero(group[1:] != group[:-1]) + 1))
                largest = np.ones(docs, dtype=np.int64)
                np.maximum.at(largest, ordered_doc[first], np.bincount(group))
                top = largest.tolist()
            if n in covered_sizes:
                # A position is in a repeated n-gram if it shares it with a sorted neighbour; a
                # character is covered if such a position lies in the n before it (running sums).
                # The window of a text's first characters reaches into the text before, whose
                # last n - 1 positions hold no n-gram and so are never repeated.
                in_run = np.zeros(len(pos) + 1, dtype=bool)
                in_run[1:-1] = shared > r
                repeated = np.zeros(total, dtype=np.int32)
                repeated[ordered_pos] = in_run[:-1] | in_run[1:]
                running = np.zeros(total + n, dtype=np.int32)
                np.cumsum(repeated, out=running[n:])
                hit = (running[n:] != running[:total]).view(np.int8)
                covered = np.add.reduceat(hit, starts, dtype=np.int64).tolist()
            per_size[n] = (merges_of[r], runs_of[r], top, covered)
        done += packed
        if done < n_max:
            # The positions that share all `done` characters with a neighbour, and their dense
            # rank (a bijection on the prefixes, smaller than the count of positions sorted).
            whole = shared == len(sizes)
            keep = np.zeros(len(pos), dtype=bool)
            keep[1:] = whole
            keep[:-1] |= whole
            pos = ordered_pos[keep]
            zero = np.zeros(1, dtype=np.uint64)
            rank = np.concatenate((zero, np.cumsum(diff != 0, dtype=np.uint64)))[keep]
            rank = np.concatenate((zero, np.cumsum(rank[1:] != rank[:-1], dtype=np.uint64)))
            rank_bits = int(rank[-1]).bit_length() if len(pos) else 0
    out = []
    for d, length in enumerate(lengths.tolist()):
        counts = {}
        for n in range(2, n_max + 1):
            positions = max(length - n + 1, 0)
            if not positions:
                counts[n] = _Counts(0, 0, 0, 0, 0)
                continue
            # Positions too close to the end for an n-gram never equal a neighbour (their
            # padding 0 differs from every character), so each run is a real n-gram.
            merges, runs, top, covered = (column[d] for column in per_size[n])
            counts[n] = _Counts(positions, positions - merges, runs, top, covered)
        out.append(counts)
    return out


def _top_fraction(counts: _Counts) -> float:
    # Swallow: top_freq / total_freq, total_freq being the number of n-gram positions.
    if counts.positions == 0:
        return 0.0
    return counts.top / counts.positions


def _dup_fraction(counts: _Counts, length: int, definition: str) -> float:
    if counts.positions == 0:
        return 0.0
    if definition == "swallow":
        # distinct n-grams occurring more than once / distinct n-grams.
        return counts.repeated / counts.distinct
    # gopher: characters inside at least one occurrence of a repeated n-gram / characters.
    return counts.covered / length


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
    return _top_fraction(_ngram_counts(text[:max_chars], n, top_sizes=(n,))[n])


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
    counts = _ngram_counts(text, n, covered_sizes=(n,) if definition == "gopher" else ())[n]
    return _dup_fraction(counts, len(text), definition)


def repetition_scores(
    text: str, definition: str = "gopher", *, max_chars: int = MAX_NGRAM_CHARS
) -> dict[str, float]:
    """Every score above under stable names; ``definition`` selects the duplicate n-gram definition.

    Keys: dup_line_frac, dup_line_char_frac, dup_para_frac, dup_para_char_frac, dup_sentence_frac,
    dup_sentence_char_frac, top_{2,3,4}gram_char_frac, dup_{5..10}gram_char_frac: the union of
    :func:`element_scores` and :func:`ngram_scores` (the clean stage calls them apart, because
    the element scores cost a tenth of the n-gram scores and may already reject a document).
    """
    _check(2, definition)
    return element_scores(text) | ngram_scores(text, definition, max_chars=max_chars)


def element_scores(text: str) -> dict[str, float]:
    """Duplicate lines, paragraphs and sentences: the ``dup_{line,para,sentence}[_char]_frac`` keys."""
    lines, paras, sentences = duplicate_lines(text), duplicate_paragraphs(text), duplicate_sentences(text)
    return {
        "dup_line_frac": lines.fraction,
        "dup_line_char_frac": lines.char_fraction,
        "dup_para_frac": paras.fraction,
        "dup_para_char_frac": paras.char_fraction,
        "dup_sentence_frac": sentences.fraction,
        "dup_sentence_char_frac": sentences.char_fraction,
    }


def ngram_scores(
    text: str, definition: str = "gopher", *, max_chars: int = MAX_NGRAM_CHARS
) -> dict[str, float]:
    """The character n-gram scores: ``top_{2,3,4}gram_char_frac`` and ``dup_{5..10}gram_char_frac``."""
    return ngram_scores_many([text], definition, max_chars=max_chars)[0]


def ngram_scores_many(
    texts: Sequence[str], definition: str = "gopher", *, max_chars: int = MAX_NGRAM_CHARS
) -> list[dict[str, float]]:
    """:func:`ngram_scores` of each text, counted together: numpy's per-call cost, which is most
    of the time on a page of a few hundred characters, is paid once per batch, not per page."""
    _check(2, definition)
    ngram_texts = [text[:max_chars] for text in texts]
    covered_sizes = DUP_NGRAM_SIZES if definition == "gopher" else ()
    out = []
    for text, counts in zip(
        ngram_texts, _ngram_counts_many(ngram_texts, DUP_NGRAM_SIZES[-1], TOP_NGRAM_SIZES, covered_sizes)
    ):
        scores = {f"top_{n}gram_char_frac": _top_fraction(counts[n]) for n in TOP_NGRAM_SIZES}
        for n in DUP_NGRAM_SIZES:
            scores[f"dup_{n}gram_char_frac"] = _dup_fraction(counts[n], len(text), definition)
        out.append(scores)
    return out
