"""Exact-duplicate keys.

The key hashes the *normalised* text, so copies that differ only in full-width/half-width forms,
line endings or runs of blanks collide, while texts that differ by a dakuten (がっこう / かっこう)
do not: ``normalize_japanese`` keeps combining marks, unlike datatrove's dedup normaliser.
Near-duplicate signatures are in ``filters.minhash``.
"""

from __future__ import annotations

import hashlib

from filters.normalize import normalize_japanese


def exact_digest(normalised: str) -> bytes:
    """SHA-256 of text that is already normalised (the clean stage's output), as UTF-8."""
    return hashlib.sha256(normalised.encode("utf-8")).digest()


def exact_dedup_key(text: str) -> str:
    """Hex SHA-256 of ``normalize_japanese(text)`` encoded as UTF-8.

    >>> exact_dedup_key("ＡＩ研究　ｶﾞｯｺｳ") == exact_dedup_key("AI研究 ガッコウ")
    True
    >>> exact_dedup_key("がっこうへ行く") == exact_dedup_key("かっこうへ行く")
    False
    """
    return exact_digest(normalize_japanese(text)).hex()
