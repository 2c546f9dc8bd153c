"""Sentence-level measures for the Swallow v1 and LLM-jp v1 rules (measure only; thresholds live
in config).

Sources followed (their code, read from public copies; the note is docs/research/mission_anchors.md):

- ``split_sentences`` / ``sentence_stats``: ``swallow-llm/swallow-corpus`` ``quality.py``
  (``text_to_doc``, ``document_statistics``). Lines are ``text.split("\\n")``; a sentence is a match
  of ``[^。．！？!?]+[。．！？!?]?`` inside a line. Nothing is stripped: a sentence after ``。 `` keeps
  its leading space and counts it in its length, as in Swallow. A terminator with nothing before
  it (the second 。 of ``はい。。``) belongs to no sentence.
- ``ellipsis_fraction``: Swallow counts sentences whose ``strip()`` ends with ``・`` or ``…``.
  NFKC (``normalize_japanese``) turns ``…`` into ``...``, so we also count a sentence ending in
  three ASCII full stops; ``‥`` (NFKC ``..``) is not counted, as Swallow does not count ``‥``.
  On normalised text this equals Swallow's value on the raw text, except that a "..." already
  typed in ASCII now counts too.
- ``kuten_rarity``: HojiChar ``DiscardRareKuten`` (``hojichar/filters/document_filters.py``), which
  LLM-jp v1 ``scripts/filters.py`` calls as ``has_good_average_sentence_length``.
- ``compression_ratio``: LLM-jp v1 ``scripts/filters.py`` ``has_good_compression_ratio`` with
  ``length_factor=0`` (its default).

Swallow's ``max_sentence_length`` raises on a document without sentences; we return 0 there,
and 0.0 for the average and the ellipsis fraction, as Swallow does for those two.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass

SENTENCES_ID = "swallow_v1_sentences"

# Swallow's per-line pattern, with "\n" added to the negated class so that one findall over the
# whole text gives exactly what findall over each line of text.split("\n") gives.
_SENTENCE_RE = re.compile(r"[^。．！？!?\n]+[。．！？!?]?")
_ELLIPSIS_ENDINGS = ("・", "…", "...")


def split_sentences(text: str) -> list[str]:
    """Swallow v1's sentences: ``[^。．！？!?]+[。．！？!?]?`` within each line.

    >>> split_sentences("雨季の一種である。梅雨入りは?\\n\\n見出し\\nはい。。")
    ['雨季の一種である。', '梅雨入りは?', '見出し', 'はい。']
    """
    return _SENTENCE_RE.findall(text)


@dataclass(frozen=True)
class SentenceStats:
    count: int
    average_length: float  # Swallow avg_sentence_length: mean len() in code points; 0.0 if none
    max_length: int  # Swallow max_sentence_length; 0 if none
    ellipsis_fraction: float  # sentences ending in ・ … or "..." / count; 0.0 if none
    ellipsis_count: int = 0


def sentence_stats(text: str, sentences: list[str] | None = None) -> SentenceStats:
    """Sentence count, mean and max length, and ellipsis fraction (Swallow v1 definitions).
    ``sentences``, if given, must be ``split_sentences(text)`` (for a caller that has them).

    >>> s = sentence_stats("えっと...\\nそうですね・・・。本当に?")  # lengths 6, 9, 4
    >>> s.count, s.average_length, s.max_length, s.ellipsis_count, s.ellipsis_fraction
    (3, 6.333333333333333, 9, 1, 0.3333333333333333)
    """
    if sentences is None:
        sentences = split_sentences(text)
    if not sentences:
        return SentenceStats(0, 0.0, 0, 0.0, 0)
    lengths = list(map(len, sentences))
    ellipses = sum(1 for s in sentences if s.strip().endswith(_ELLIPSIS_ENDINGS))
    count = len(sentences)
    return SentenceStats(count, sum(lengths) / count, max(lengths), ellipses / count, ellipses)


def kuten_rarity(text: str) -> float:
    """Characters per 。: ``len(text) / text.count("。")`` — ``inf`` if there is no 。 in a
    non-empty text, 0.0 for the empty text.

    HojiChar ``DiscardRareKuten(L)`` rejects when ``count("。") < len(text) / L``. For L > 0 that is
    exactly ``kuten_rarity(text) > L`` (with no 。 it rejects every non-empty text, hence ``inf``;
    ``max(count, 1)`` would wrongly keep a 100-character text without 。 at L = 250). LLM-jp v1
    uses L = 250 (``--strict``: 80). Only ``。`` counts, as in HojiChar; ``len`` is every code point,
    newlines included. Note ``inf`` when storing the value (Arrow floats hold it; JSON does not).

    >>> kuten_rarity("おはよ。"), kuten_rarity("おはよう"), kuten_rarity("")
    (4.0, inf, 0.0)
    """
    if not text:
        return 0.0
    kuten = text.count("。")
    return len(text) / kuten if kuten else math.inf


def compression_ratio(text: str) -> float:
    """zlib level-9 compressed bytes / UTF-8 bytes (LLM-jp v1 keeps [0.30, 0.70]); 0.0 if empty.

    Short texts score high (zlib's fixed overhead is 11 bytes here), very repetitive ones low.

    >>> round(compression_ratio("a" * 200), 2)
    0.06
    """
    # surrogatepass: LLM-jp encodes strictly; a lone surrogate from json.loads must not crash us.
    encoded = text.encode("utf-8", "surrogatepass")
    if not encoded:
        return 0.0
    return len(zlib.compress(encoded, 9)) / len(encoded)
