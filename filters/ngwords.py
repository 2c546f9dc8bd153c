"""NG-expression (adult / discrimination / violence keyword) matching for the clean stage.

Measure here; thresholds live in config. Two anchors use such lists (docs/research/mission_anchors.md):

- LLM-jp corpus v1 (§3.1): HojiChar ``NgWordsFilterJa(ignore_confused=True)`` per dictionary,
  reject if ``len(keyword_pat.findall(text)) > N`` (N = 3, strict 2). :meth:`NgDictionary.hits`
  is that count.
- Swallow v1 (§3.2): characters covered by NG expressions / Japanese letters, keep if < 0.05.
  :meth:`NgDictionary.matched_fraction` is the same idea with two documented differences: every
  occurrence counts (overlaps once), not only Swallow's greedy longest matches, and the
  denominator is all characters of the text.

Bundled dictionaries (``filters/data/ngwords/<origin>/``, copied unchanged; see SOURCES.md there)
are loaded by name, e.g. ``NgDictionary.load("llm_jp_v1/adult")``; any UTF-8 file with one
expression per line can be loaded by path. Dictionary lines are stripped (as HojiChar does);
empty or whitespace-only lines and lines starting with ``#`` are skipped; duplicates keep their
first position. Text is matched exactly as given, case-sensitively: the clean stage normalises
first. Offsets are ``str`` indices (code points).

Matching uses ``ahocorasick_rs`` (Python binding of BurntSushi's Rust ``aho-corasick`` crate,
the engine behind ``regex``/ripgrep; maintained, abi3/cp311 manylinux wheels). It was chosen over
``pyahocorasick`` because it offers *leftmost-first* match semantics, i.e. exactly what Python's
``re`` does with the alternation ``w1|w2|...`` that HojiChar/LLM-jp compile, so :meth:`hits`
reproduces their count without a regex over 1,462 alternatives; it also gives overlapping
matches with code-point offsets.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re

import ahocorasick_rs

NGWORDS_MATCHER_ID = "ngwords_aho_corasick_v1"

BUNDLED_DIR = pathlib.Path(__file__).resolve().parent / "data" / "ngwords"
# name -> path under BUNDLED_DIR. HojiChar's adult_keywords_en.txt is not bundled: HojiChar
# matches it as case-insensitive whole words, and as substrings entries like "bl" hit "blog".
BUNDLED: dict[str, str] = {
    "llm_jp_v1/adult": "llm_jp_v1/ja_adult_keywords.txt",
    "llm_jp_v1/discrimination": "llm_jp_v1/ja_discrimination_keywords.txt",
    "llm_jp_v1/violence": "llm_jp_v1/ja_violence_keywords.txt",
    "hojichar/adult": "hojichar/adult_keywords_ja.txt",
    "hojichar/discrimination": "hojichar/discrimination_keywords_ja.txt",
    "hojichar/violence": "hojichar/violence_keywords_ja.txt",
}

# HojiChar's ``ignore_confused``: an all-katakana word counts only with no katakana either side.
_KATAKANA_WORD_RE = re.compile(r"[ァ-ヴー]+")
_KATAKANA_RE = re.compile(r"[ァ-ヴー]")


def parse_words(raw: bytes) -> list[str]:
    """Dictionary expressions from file bytes (UTF-8, one per line), in file order.

    >>> parse_words(" ラーメン \\n\\n  \\n# comment\\nほうじ茶\\nラーメン\\n".encode())
    ['ラーメン', 'ほうじ茶']
    """
    words = (line.strip() for line in raw.decode("utf-8").split("\n"))
    return list(dict.fromkeys(w for w in words if w and not w.startswith("#")))


class NgDictionary:
    """An NG-expression dictionary compiled into Aho-Corasick automata.

    ``ignore_confused=True`` reproduces HojiChar's option of that name (used by LLM-jp v1): an
    all-katakana word (``[ァ-ヴー]+``) matches only when not preceded or followed by katakana, so
    アス does not hit in アスパラガス, and non-katakana words take priority over katakana ones.

    >>> d = NgDictionary(["ほうじ茶", "うじ"], name="demo")
    >>> d.matches("ほうじ茶とうじ")
    [(0, 4, 'ほうじ茶'), (1, 3, 'うじ'), (5, 7, 'うじ')]
    >>> d.hits("ほうじ茶とうじ"), d.matched_fraction("ほうじ茶とうじ")
    (2, 0.8571428571428571)
    """

    def __init__(
        self,
        words: list[str],
        *,
        name: str,
        origin: str = "custom",
        sha256: str = "",
        ignore_confused: bool = False,
    ) -> None:
        self.words: tuple[str, ...] = tuple(dict.fromkeys(w for w in words if w))
        if not self.words:
            raise ValueError(f"NG dictionary {name!r} has no expressions")
        self.name = name
        self.origin = origin
        self.sha256 = sha256
        self.ignore_confused = ignore_confused
        self._katakana_only = tuple(bool(_KATAKANA_WORD_RE.fullmatch(w)) for w in self.words)
        # Priority of each word in the regex alternation HojiChar would compile.
        if ignore_confused:
            order = sorted(range(len(self.words)), key=lambda i: (self._katakana_only[i], i))
        else:
            order = list(range(len(self.words)))
        self._priority = [0] * len(self.words)
        for rank, i in enumerate(order):
            self._priority[i] = rank
        self._all = ahocorasick_rs.AhoCorasick(self.words, matchkind=ahocorasick_rs.MatchKind.Standard)
        self._first = ahocorasick_rs.AhoCorasick(
            [self.words[i] for i in order], matchkind=ahocorasick_rs.MatchKind.LeftmostFirst
        )

    @classmethod
    def available(cls) -> list[str]:
        """Names of the bundled dictionaries."""
        return sorted(BUNDLED)

    @classmethod
    def load(cls, name_or_path: str | os.PathLike[str], *, ignore_confused: bool = False) -> NgDictionary:
        """A bundled dictionary by name (see :meth:`available`) or a dictionary file by path.

        >>> d = NgDictionary.load("llm_jp_v1/violence")
        >>> d.origin, len(d.words), len(d.sha256)
        ('llm_jp_v1', 73, 64)
        """
        key = os.fspath(name_or_path)
        if key in BUNDLED:
            path, origin, name = BUNDLED_DIR / BUNDLED[key], key.split("/")[0], key
        elif pathlib.Path(key).is_file():
            path = pathlib.Path(key)
            origin, name = "file", str(path)
        else:
            raise ValueError(
                f"unknown NG dictionary {key!r}: bundled ones are {', '.join(cls.available())}; "
                "otherwise pass the path of an existing file"
            )
        raw = path.read_bytes()
        return cls(
            parse_words(raw),
            name=name,
            origin=origin,
            sha256=hashlib.sha256(raw).hexdigest(),
            ignore_confused=ignore_confused,
        )

    def _occurrences(self, text: str) -> list[tuple[int, int, int]]:
        """(start, end, word index) of every occurrence, overlapping ones included."""
        found = self._all.find_matches_as_indexes(text, overlapping=True)
        if self.ignore_confused:
            found = [m for m in found if not self._confused(text, m)]
        return [(start, end, i) for i, start, end in found]

    def _confused(self, text: str, match: tuple[int, int, int]) -> bool:
        i, start, end = match
        return self._katakana_only[i] and (
            (start > 0 and _KATAKANA_RE.match(text, start - 1) is not None)
            or (end < len(text) and _KATAKANA_RE.match(text, end) is not None)
        )

    def matches(self, text: str) -> list[tuple[int, int, str]]:
        """Every occurrence as (start, end, word), overlapping ones included, by (start, end)."""
        return sorted((start, end, self.words[i]) for start, end, i in self._occurrences(text))

    def hits(self, text: str) -> int:
        """LLM-jp v1's count: ``len(re.findall("w1|w2|...", text))`` for this dictionary.

        Non-overlapping, leftmost-first: scanning left to right, at the first position where
        some word matches, the word listed first wins and the scan resumes after it.

        >>> NgDictionary(["うじ", "ほうじ茶"], name="demo").hits("ほうじ茶")  # ほ, then うじ
        1
        """
        if not self.ignore_confused:
            return len(self._first.find_matches_as_indexes(text))
        # Lookarounds drop occurrences, so pick the leftmost-first chain among the survivors.
        return _leftmost_first_count(self._occurrences(text), self._priority)

    def matched_fraction(self, text: str) -> float:
        """Characters covered by any occurrence (overlaps counted once) / characters; 0.0 if empty."""
        return _covered_fraction(self._occurrences(text), len(text))


def _leftmost_first_count(occurrences: list[tuple[int, int, int]], priority: list[int]) -> int:
    """Matches ``re.findall`` of the alternation would make, from every (start, end, word index)
    occurrence: at the leftmost start, the word first in ``priority`` wins; the scan resumes after it."""
    count = cursor = 0
    best: tuple[int, int, int] | None = None  # (start, priority, end) at the current start
    for start, end, i in sorted(occurrences):
        if start < cursor:
            continue
        if best is not None and start != best[0]:
            count, cursor, best = count + 1, best[2], None
            if start < cursor:
                continue
        candidate = (start, priority[i], end)
        if best is None or candidate < best:
            best = candidate
    return count + (best is not None)


def _covered_fraction(occurrences: list[tuple[int, int, int]], length: int) -> float:
    if not length:
        return 0.0
    covered = 0
    run_start = run_end = -1
    for start, end, _ in sorted(occurrences):
        if start > run_end:
            covered += run_end - run_start
            run_start, run_end = start, end
        else:
            run_end = max(run_end, end)
    covered += run_end - run_start
    return covered / length


class NgDictionaries:
    """Several dictionaries measured with one pass over the text.

    The clean stage asks each of its three dictionaries for both :meth:`NgDictionary.hits` and
    :meth:`NgDictionary.matched_fraction`: six automaton scans of the page, which cost far more
    than the rare matches they find. Here one automaton holds every word of every dictionary;
    its overlapping occurrences are handed to each dictionary that has the word (with that
    dictionary's ``ignore_confused`` lookarounds), and both measures come from them with the same
    code as above, so the values are the same (tests/filters/test_ngwords.py compares them).

    >>> group = NgDictionaries([NgDictionary(["うじ", "ほうじ茶"], name="a"), NgDictionary(["茶"], name="b")])
    >>> group.measure("ほうじ茶とうじ")
    [(2, 0.8571428571428571), (1, 0.14285714285714285)]
    """

    def __init__(self, dictionaries: list[NgDictionary]) -> None:
        self.dictionaries = tuple(dictionaries)
        index: dict[str, int] = {}
        # Per word of the union: (dictionary, the word's index there, whether lookarounds apply).
        self._owners: list[list[tuple[int, int, bool]]] = []
        for d_index, d in enumerate(self.dictionaries):
            for i, word in enumerate(d.words):
                if word not in index:
                    index[word] = len(self._owners)
                    self._owners.append([])
                self._owners[index[word]].append((d_index, i, d.ignore_confused and d._katakana_only[i]))
        self._all = ahocorasick_rs.AhoCorasick(list(index), matchkind=ahocorasick_rs.MatchKind.Standard)

    def measure(self, text: str) -> list[tuple[int, float]]:
        """(hits, matched_fraction) of each dictionary, in order."""
        occurrences: list[list[tuple[int, int, int]]] = [[] for _ in self.dictionaries]
        for word, start, end in self._all.find_matches_as_indexes(text, overlapping=True):
            for d_index, i, lookarounds in self._owners[word]:
                if lookarounds and self.dictionaries[d_index]._confused(text, (i, start, end)):
                    continue
                occurrences[d_index].append((start, end, i))
        return [
            (_leftmost_first_count(found, d._priority), _covered_fraction(found, len(text)))
            for d, found in zip(self.dictionaries, occurrences)
        ]
