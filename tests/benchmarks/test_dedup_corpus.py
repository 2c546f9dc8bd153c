"""The planted-duplicate corpus of benchmarks/dedup.py: deterministic, normalised, truthful."""

from __future__ import annotations

import sys
from math import comb
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import dedup_corpus as dc  # noqa: E402

from filters.lsh_clusters import candidate_pairs  # noqa: E402
from filters.minhash import MinHashParams, band_hashes, jaccard, signature  # noqa: E402
from filters.normalize import normalize_japanese  # noqa: E402

pytestmark = pytest.mark.skipif(
    not dc.AOZORA.is_dir() or not dc.KOKKAI.exists(), reason=f"shared data not found under {dc.SHARED}"
)


@pytest.fixture(scope="module")
def corpus() -> dc.DedupCorpus:
    return dc.DedupCorpus(300, seed=3)


def test_the_same_seed_gives_the_same_documents_in_any_order(corpus):
    again = dc.DedupCorpus(300, seed=3)
    positions = [299, 0, 150, 7]
    assert [again.text(p) for p in positions] == [corpus.text(p) for p in reversed(positions)][::-1]
    other = dc.DedupCorpus(300, seed=4)
    assert [other.text(p) for p in positions] != [corpus.text(p) for p in positions]


def test_plan_has_the_requested_share_of_variants_and_unique_ids(corpus):
    variants = [m for m in corpus.members if m.variant]
    assert len(variants) == round(300 * 0.3)
    assert {m.base for m in variants} <= {m.base for m in corpus.members if m.variant == 0}
    ids = [corpus.doc_id(p) for p in range(len(corpus))]
    assert len(set(ids)) == 300 and ids[0] == "d0000000"
    assert sum(len(f) for f in corpus.families.values()) == 300


def test_documents_are_normalised_and_of_realistic_length(corpus):
    for doc_id, text in corpus.iter_docs(0, 120):
        assert normalize_japanese(text) == text, doc_id
        assert 200 <= len(text) <= dc.MAX_CHARS + 300, (doc_id, len(text))


def test_truth_is_every_pair_of_every_family_with_its_exact_jaccard(corpus):
    truth = corpus.truth()
    assert len(truth) == sum(comb(len(f), 2) for f in corpus.families.values())
    for p in truth[:60]:
        assert p.jaccard == pytest.approx(
            jaccard(corpus.text(int(p.a[1:])), corpus.text(int(p.b[1:]))), abs=1e-6
        )
        assert corpus.family_of(int(p.a[1:])) == corpus.family_of(int(p.b[1:]))
    assert all(p.jaccard == 1.0 for p in truth if p.kind == "exact")
    assert all(p.jaccard < 1.0 for p in truth if "edit" in p.kind)


def test_more_editing_means_lower_jaccard():
    text = dc.load_pool().streams[0][0] * 3
    chars = dc.load_pool().chars
    light = dc.edit(text, dc.random.Random(1), 0.01, False, chars)
    heavy = dc.edit(text, dc.random.Random(1), 0.30, False, chars)
    assert 0.7 < jaccard(text, light) < 1.0
    assert jaccard(text, heavy) < 0.3


def test_aozora_markup_header_and_footer_are_removed():
    raw = (
        "題名\r\n著者\r\n\r\n-------------------------------------------------------\r\n"
        "【テキスト中に現れる記号について】\r\n《》：ルビ\r\n"
        "-------------------------------------------------------\r\n"
        "　仰《おおせ》の如《ごと》く｜実朝《さねとも》以来※［＃「月＋奏」、第3水準1-90-48］理。\r\n"
        "［＃地から２字上げ］（明治三十一年）\r\n\r\n底本：「歌よみに与ふる書」岩波文庫\r\n入力：某\r\n"
    )
    assert dc.aozora_body(raw) == ["　仰の如く実朝以来理。", "（明治三十一年）", ""]


def test_bases_are_not_near_duplicates_of_each_other():
    """No two bases share an LSH band (20 x 10 on character 5-grams): real windows, nor mixed bases
    (made once the real windows run out), nor one of each."""
    params = MinHashParams()
    corpus = dc.DedupCorpus(10, seed=5)
    first_mixed = len(dc.real_windows(5))
    bases = list(range(120)) + list(range(first_mixed, first_mixed + 120))
    bands = np.stack([band_hashes(signature(corpus.base_doc(b).text(), params), params) for b in bases])
    assert candidate_pairs(np.arange(len(bases)), bands).size == 0
