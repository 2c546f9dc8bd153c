"""Texts taken together by characters: the measurements that run numpy over many texts at once
(composition, normalisation, character n-grams) pay numpy's per-call cost once per batch, and a
batch's arrays stay small enough for the core's cache."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence


def char_batches(
    texts: Sequence[str], limit: int, indices: Iterable[int] | None = None
) -> Iterator[list[int]]:
    """The indices of ``texts`` (all, or those of ``indices``, in order) in consecutive runs, each
    closed by the text that brings its characters to ``limit`` or more (the last one may hold fewer).

    >>> list(char_batches(["梅雨", "は", "東アジア", "の"], 3))
    [[0, 1], [2], [3]]
    >>> list(char_batches(["梅雨", "は", "東アジア"], 3, indices=[0, 2]))
    [[0, 2]]
    """
    batch: list[int] = []
    chars = 0
    for i in range(len(texts)) if indices is None else indices:
        batch.append(i)
        chars += len(texts[i])
        if chars >= limit:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch
