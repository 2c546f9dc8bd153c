"""Exact-duplicate signatures.

The key hashes the *normalised* text, so copies that differ only in full-width/half-width forms,
line endings or runs of blanks collide, while texts that differ by a dakuten (がっこう / かっこう)
do not: ``normalize_japanese`` keeps combining marks, unlike datatrove's dedup normaliser.
Near-duplicate (MinHash) signatures will live beside this one.
"""

from __future__ import annotations

import hashlib

from filters.normalize import normalize_japanese


def exact_dedup_key(text: str) -> str:
    """Hex SHA-256 of ``normalize_japanese(text)`` encoded as UTF-8.

    >>> exact_dedup_key("ＡＩ研究　ｶﾞｯｺｳ") == exact_dedup_key("AI研究 ガッコウ")
    True
    >>> exact_dedup_key("がっこうへ行く") == exact_dedup_key("かっこうへ行く")
    False
    """
    return hashlib.sha256(normalize_japanese(text).encode("utf-8")).hexdigest()
