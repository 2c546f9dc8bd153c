"""From LSH band hashes to duplicate clusters and survivors: the pure step after
``filters.minhash`` in near-duplicate removal. No Ray, no pipeline wiring; the dedup stage
(pipeline/stages/dedup*.py) does the same steps partitioned across Ray tasks.

1. ``candidate_pairs``: documents sharing a band hash at the same band index are candidates.
   Each bucket of k documents gives k - 1 edges (a star on its first row), not k(k-1)/2.
2. ``connected_components``: label each row with the smallest row index of its component.
3. ``choose_survivors``: keep exactly one document per component, by a named policy.
4. ``cluster_ids``: a row-order independent id per document (the component's smallest doc_id).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

POLICIES = ("newest", "quality", "source_priority")


def candidate_pairs(doc_ids: np.ndarray, band_hashes: np.ndarray) -> np.ndarray:
    """Unique candidate edges ``(i, j)`` with ``i < j``, as row indices into ``band_hashes``.

    ``band_hashes`` has shape ``(n_docs, bands)``; ``doc_ids`` (shape ``(n_docs,)``) is only
    checked to be aligned with it, since the edges are row indices ready for
    ``connected_components``. Returns an ``(m, 2)`` int64 array sorted by (i, j).

    Every bucket (rows with equal hash in the same band column) of k rows is emitted as a
    **star**: k - 1 edges from the bucket's first (smallest) row to each other row, never all
    k(k-1)/2 pairs. A star spans the same rows as the full clique, so the connected components
    of the result equal those of the full candidate graph; the edge list is not the full set of
    candidate pairs (two non-first members of a bucket are linked only through the first).
    Vectorised per band: a stable argsort, then each row points at the start of its run.
    """
    band_hashes = np.asarray(band_hashes)
    doc_ids = np.asarray(doc_ids)
    if band_hashes.ndim != 2:
        raise ValueError(f"band_hashes must be 2-D (n_docs, bands), not shape {band_hashes.shape}")
    n, bands = band_hashes.shape
    if doc_ids.shape != (n,):
        raise ValueError(f"doc_ids shape {doc_ids.shape} does not match {n} rows of band_hashes")
    if n < 2 or bands == 0:
        return np.empty((0, 2), dtype=np.int64)
    parts = []
    for b in range(bands):
        order = np.argsort(band_hashes[:, b], kind="stable").astype(np.int64)
        values = band_hashes[order, b]
        starts = np.empty(n, dtype=bool)
        starts[0] = True
        np.not_equal(values[1:], values[:-1], out=starts[1:])
        # index (in sorted order) of each element's run start, then the row found there; the
        # stable sort makes it the smallest row of the bucket, so first < row for non-starts
        run_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
        first = order[run_start]
        keep = ~starts
        if keep.any():
            parts.append(np.stack([first[keep], order[keep]], axis=1))
    if not parts:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(parts), axis=0).astype(np.int64, copy=False)


def connected_components(n: int, edges: np.ndarray) -> np.ndarray:
    """Component label per node ``0 .. n-1``: the smallest node index in its component.

    Union-find (scipy is not a dependency): iterative find with full path compression, and union
    hooks the larger root under the smaller, so every root is its component's minimum. A final
    vectorised pointer-jumping pass resolves every node to its root.
    """
    if n < 0:
        raise ValueError("n must be non-negative")
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if edges.size and (edges.min() < 0 or edges.max() >= n):
        raise ValueError(f"edge endpoints must be in [0, {n})")
    parent = list(range(n))

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # compress the path just walked
            parent[x], x = root, parent[x]
        return root

    for a, b in edges.tolist():
        ra, rb = find(a), find(b)
        if ra < rb:
            parent[rb] = ra
        elif rb < ra:
            parent[ra] = rb
    labels = np.asarray(parent, dtype=np.int64)
    while True:
        up = labels[labels]
        if np.array_equal(up, labels):
            return labels
        labels = up


@dataclass(frozen=True)
class Member:
    """One document of a duplicate cluster, as the survivor policies see it.

    ``index`` is its row (the position in ``labels``); ``crawl_date`` is an ISO 8601 string in a
    single format across documents, so string order is time order.
    """

    index: int
    doc_id: str
    crawl_date: str | None
    quality: float | None
    source_priority: int


def _ranked(members: Sequence[Member], policy: str) -> list[Member]:
    """Members best-first under ``policy``; ties by smallest doc_id (two stable sorts)."""
    by_id = sorted(members, key=lambda m: m.doc_id)
    if policy == "newest":
        # latest crawl_date first; a missing date ranks after every dated document
        return sorted(by_id, key=lambda m: (m.crawl_date is not None, m.crawl_date or ""), reverse=True)
    if policy == "quality":
        # highest quality first; missing or NaN ranks after every scored document
        def score(m: Member) -> float:
            q = m.quality
            return -math.inf if q is None or math.isnan(q) else q

        return sorted(by_id, key=score, reverse=True)
    if policy == "source_priority":
        return sorted(by_id, key=lambda m: m.source_priority)  # lowest number first
    raise ValueError(f"unknown policy {policy!r}; expected one of {POLICIES}")


def choose_survivors(labels: np.ndarray, members: list[Member], policy: str) -> np.ndarray:
    """Boolean keep-mask over rows: exactly one True per component of ``labels``.

    ``members`` describes every row once (``Member.index`` covers ``0 .. n-1``). Order, best
    first (Python's stable sorts, so the order is the same on every run):

    - ``"newest"``: latest ``crawl_date`` (as Swallow's 2025 merge keeps the newest crawl);
      documents without a date come last;
    - ``"quality"``: highest ``quality``; None or NaN come last;
    - ``"source_priority"``: lowest ``source_priority`` (e.g. laws and Diet records over web);

    then, for every policy, the smallest ``doc_id`` (string order) among those tied.
    """
    labels = np.asarray(labels)
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; expected one of {POLICIES}")
    n = labels.shape[0]
    if sorted(m.index for m in members) != list(range(n)):
        raise ValueError("members must describe each row 0 .. n-1 exactly once")
    keep = np.zeros(n, dtype=bool)
    seen: set[int] = set()
    for m in _ranked(members, policy):
        label = int(labels[m.index])
        if label not in seen:
            seen.add(label)
            keep[m.index] = True
    return keep


def cluster_ids(labels: np.ndarray, doc_ids: Sequence) -> list[str]:
    """Per row, ``str`` of the smallest doc_id in its component (compared as given: numbers
    numerically, strings as strings), so the id does not depend on row order or labels."""
    labels = np.asarray(labels).tolist()
    doc_ids = list(np.asarray(doc_ids).tolist()) if isinstance(doc_ids, np.ndarray) else list(doc_ids)
    if len(labels) != len(doc_ids):
        raise ValueError("labels and doc_ids must have the same length")
    best: dict = {}
    for label, d in zip(labels, doc_ids):
        if label not in best or d < best[label]:
            best[label] = d
    return [str(best[label]) for label in labels]
