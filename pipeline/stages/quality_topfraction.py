"""The exact score cut that keeps the top fraction of a source, without gathering its scores.

Scores are float32 in [0, 1]. For non-negative floats the IEEE bit pattern, read as an unsigned
integer, orders like the value, so the k-th largest score is found in two counting passes over
the shards: counts of the high 16 bits (at most 16,257 distinct values in [0, 1]), which locate
the block holding the k-th largest; then counts of the low 16 bits inside that block only. Each
pass returns small count tables that the driver adds up; no process holds one source's scores,
and the cut is exact, not a histogram bin (fastText probabilities pile up just under 1.0, where
float32 values are 6e-8 apart).

>>> scores = np.array([0.9, 0.2, 0.7, 0.7, 0.1], dtype=np.float32)
>>> block, rank = locate(high_counts(scores), 2)
>>> float(cut_value(block, locate(low_counts(scores, block), rank)[0]))
0.699999988079071
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np


def keep_count(documents: int, fraction: float) -> int:
    """How many documents "the top `fraction`" means: at least one of a non-empty source.

    >>> keep_count(10, 0.25), keep_count(3, 0.01), keep_count(0, 0.5)
    (3, 1, 0)
    """
    return min(documents, max(1, math.ceil(fraction * documents))) if documents else 0


def _bits(scores: np.ndarray) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float32)
    if values.size and (np.isnan(values).any() or values.min() < 0):
        raise ValueError("scores must be non-negative numbers (probabilities)")
    return (values + np.float32(0.0)).view(np.uint32)  # + 0.0 turns -0.0 into +0.0


def high_counts(scores: np.ndarray) -> Counter:
    """How many scores fall in each block of the high 16 bits."""
    blocks, counts = np.unique(_bits(scores) >> 16, return_counts=True)
    return Counter(dict(zip(blocks.tolist(), counts.tolist())))


def low_counts(scores: np.ndarray, block: int) -> Counter:
    """How many scores of high block `block` have each low 16-bit value."""
    bits = _bits(scores)
    low, counts = np.unique(bits[(bits >> 16) == block] & 0xFFFF, return_counts=True)
    return Counter(dict(zip(low.tolist(), counts.tolist())))


def locate(counts: Counter, rank: int) -> tuple[int, int]:
    """(key, rank within that key) of the `rank`-th largest value (1-based) described by `counts`."""
    above = 0
    for key in sorted(counts, reverse=True):
        if above + counts[key] >= rank:
            return key, rank - above
        above += counts[key]
    raise ValueError(f"rank {rank} is beyond the {above} values counted")


def cut_value(block: int, low: int) -> np.float32:
    return np.array([(block << 16) | low], dtype=np.uint32).view(np.float32)[0]
