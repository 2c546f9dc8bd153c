"""LSH candidate pairs, connected components, survivors and cluster ids (filters/lsh_clusters.py):
small hand-checked cases, plus planted near-duplicates among real Wikipedia paragraphs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from filters.lsh_clusters import (
    Member,
    candidate_pairs,
    choose_survivors,
    cluster_ids,
    connected_components,
)
from filters.minhash import MinHashParams, band_hashes, signature
from filters.normalize import normalize_japanese


def _bands(*columns: list[int]) -> np.ndarray:
    return np.array(columns, dtype=np.uint64).T  # one list per band column -> (n_docs, bands)


def test_candidate_pairs_hand_checked():
    # band 0: rows {0,2,4} share 10 -> star on 0: (0,2), (0,4); rows 1 and 3 alone
    # band 1: rows {0,2} share 5 -> (0,2) again (deduplicated); rows {1,3} share 6 -> (1,3)
    bh = _bands([10, 20, 10, 30, 10], [5, 6, 5, 6, 8])
    pairs = candidate_pairs(np.arange(5, dtype=np.int64), bh)
    assert pairs.dtype == np.int64
    assert pairs.tolist() == [[0, 2], [0, 4], [1, 3]]
    # components by hand: {0,2,4} -> 0, {1,3} -> 1
    assert connected_components(5, pairs).tolist() == [0, 1, 0, 1, 0]


def test_candidate_pairs_star_hub_is_smallest_row_and_band_position_matters():
    # band 0: bucket {1,3,4} (value 9) is a star on row 1; bucket {0,2} (value 7) -> (0,2)
    # band 1: row 0 has 9 and row 1 has 7, the values of band 0, but in another position: no edge
    bh = _bands([7, 9, 7, 9, 9], [9, 7, 1, 2, 3])
    assert candidate_pairs(np.arange(5), bh).tolist() == [[0, 2], [1, 3], [1, 4]]
    swapped = _bands([1, 2], [2, 1])  # same values, different band positions
    assert candidate_pairs(np.arange(2), swapped).shape == (0, 2)


def test_candidate_pairs_checks_alignment():
    with pytest.raises(ValueError):
        candidate_pairs(np.arange(3), _bands([1, 1]))


def test_connected_components_hand_checked():
    # 7 nodes, edges 5-3, 3-1 and a self-loop 6-6: {1,3,5} -> 1, others alone
    edges = np.array([[5, 3], [3, 1], [6, 6]])
    assert connected_components(7, edges).tolist() == [0, 1, 2, 1, 4, 1, 6]
    # the root of {2,3,4,5} is reached only after merging two trees rooted at 4 and 2
    edges = np.array([[4, 5], [2, 3], [3, 5], [0, 1]])
    assert connected_components(6, edges).tolist() == [0, 0, 2, 2, 2, 2]


def test_connected_components_long_chain_no_recursion():
    # a path 0-1-...-4999 given from the far end: one component labelled 0
    n = 5000
    edges = np.stack([np.arange(n - 1, 0, -1), np.arange(n - 2, -1, -1)], axis=1)
    labels = connected_components(n, edges)
    assert labels.dtype == np.int64
    assert (labels == 0).all()


def test_bucket_of_1000_identical_signatures():
    params = MinHashParams()
    bh = np.tile(band_hashes(signature("同じ文書が千回現れる。", params), params), (1000, 1))
    pairs = candidate_pairs(np.arange(1000, dtype=np.int64), bh)
    # every band is one bucket of 1000 -> the same star, 999 edges (0, j), not 499,500 pairs
    assert pairs.shape == (999, 2)
    assert (pairs[:, 0] == 0).all() and pairs[:, 1].tolist() == list(range(1, 1000))
    labels = connected_components(1000, pairs)
    assert np.unique(labels).tolist() == [0]


def test_empty_input():
    empty = candidate_pairs(np.empty(0, dtype=np.int64), np.empty((0, 20), dtype=np.uint64))
    assert empty.shape == (0, 2)
    assert connected_components(0, empty).shape == (0,)
    assert connected_components(3, empty).tolist() == [0, 1, 2]  # no edges: all singletons
    assert choose_survivors(np.empty(0, dtype=np.int64), [], "newest").shape == (0,)
    assert cluster_ids(np.empty(0, dtype=np.int64), []) == []


# Components by hand: {0,1,2,3} (label 0), {4,5} (label 4), {6,7} (label 6), {8} (label 8).
LABELS = np.array([0, 0, 0, 0, 4, 4, 6, 6, 8])
MEMBERS = [
    Member(0, "d", "2024-01-01", 0.95, 2),
    Member(1, "b", "2025-03-01", 0.90, 1),
    Member(2, "a", "2025-03-01", 0.90, 1),  # ties row 1 on the date: smaller doc_id "a" wins
    Member(3, "c", None, None, 0),
    Member(4, "x", "2023-06-01", None, 5),  # the only dated one of {4,5}
    Member(5, "w", None, None, 5),  # ties row 4 on quality (both None) and priority: "w" < "x"
    Member(6, "m", "2024-05-01", 0.7, 3),  # 6 and 7 tie on every field: "k" < "m"
    Member(7, "k", "2024-05-01", 0.7, 3),
    Member(8, "z", None, None, 9),  # a singleton is always kept
]


@pytest.mark.parametrize(
    ("policy", "kept_rows"),
    [
        ("newest", [2, 4, 7, 8]),  # 2025-03 tie -> "a"; dated 4 over undated 5; tie -> "k"
        ("quality", [0, 5, 7, 8]),  # 0.95 -> row 0; None tie -> "w"; 0.7 tie -> "k"
        ("source_priority", [3, 5, 7, 8]),  # priority 0 -> row 3; 5 tie -> "w"; 3 tie -> "k"
    ],
)
def test_choose_survivors(policy, kept_rows):
    keep = choose_survivors(LABELS, MEMBERS, policy)
    assert keep.dtype == bool
    assert np.flatnonzero(keep).tolist() == kept_rows
    # member order does not matter
    assert (choose_survivors(LABELS, MEMBERS[::-1], policy) == keep).all()


def test_choose_survivors_rejects_bad_input():
    with pytest.raises(ValueError):
        choose_survivors(LABELS, MEMBERS, "oldest")
    with pytest.raises(ValueError):
        choose_survivors(LABELS, MEMBERS[:-1], "newest")  # row 8 undescribed


def test_cluster_ids_smallest_doc_id_independent_of_row_order():
    # components {0,1,3} and {2,4}: smallest doc_ids "b" and "a"
    labels = np.array([0, 0, 2, 0, 2])
    doc_ids = ["z", "b", "y", "c", "a"]
    assert cluster_ids(labels, doc_ids) == ["b", "b", "a", "b", "a"]
    # the same graph with rows reversed gives every document the same cluster id
    edges = np.array([[0, 1], [1, 3], [2, 4]])
    rev = 4 - edges
    ids_rev = cluster_ids(connected_components(5, rev), doc_ids[::-1])
    assert ids_rev[::-1] == ["b", "b", "a", "b", "a"]


def test_planted_near_duplicates_in_wikipedia(shared_data):
    path = shared_data / "wikipedia_paragraphs_jsquad" / "jsquad_valid_wikipedia_paragraphs.jsonl"
    with path.open(encoding="utf-8") as f:
        texts = [json.loads(next(f))["context"].split(" [SEP] ", 1)[1] for _ in range(30)]
    assert len(set(texts)) == 30
    # plant near-duplicates of the 5 longest paragraphs: one character changed in three of them,
    # two in the other two (a changed character touches at most 5 of the 5-gram shingles)
    planted = sorted(range(30), key=lambda i: -len(texts[i]))[:5]
    docs = list(texts)
    for k, i in enumerate(planted):
        chars = list(texts[i])
        positions = [len(chars) // 2] if k < 3 else [len(chars) // 3, 2 * len(chars) // 3]
        for p in positions:
            chars[p] = "〇" if chars[p] != "〇" else "●"
        docs.append("".join(chars))  # row 30 + k is the copy of row planted[k]
    params = MinHashParams()
    bh = np.stack([band_hashes(signature(normalize_japanese(t), params), params) for t in docs])
    pairs = candidate_pairs(np.arange(len(docs), dtype=np.int64), bh)
    labels = connected_components(len(docs), pairs)

    expected = np.arange(len(docs))
    for k, i in enumerate(planted):
        expected[30 + k] = i  # each copy joins its original; every other paragraph is alone
    assert labels.tolist() == expected.tolist()
    sizes = np.bincount(labels, minlength=len(docs))
    assert sorted(sizes[sizes > 0].tolist()) == [1] * 25 + [2] * 5
