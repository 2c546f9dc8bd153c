"""MinHash signatures and LSH bands (filters/minhash.py) on real Japanese text.

Real data: JSQuAD's Wikipedia paragraphs and the 2,000 sampled Diet speeches in the shared data set,
normalised with ``normalize_japanese`` first, as the dedup stage will do.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import filters.minhash as mh
from filters.minhash import (
    MinHashParams,
    band_hashes,
    candidate_probability,
    estimated_jaccard,
    jaccard,
    shingle_hashes,
    signature,
)
from filters.normalize import normalize_japanese

P = (1 << 61) - 1
DEFAULT = MinHashParams()
# Start of the 梅雨 paragraph (JSQuAD), shortened.
TSUYU = "梅雨（つゆ、ばいう）は、東アジアの広範囲においてみられる特有の気象現象である。"


@pytest.fixture(scope="module")
def wiki(shared_data) -> list[tuple[str, str]]:
    """(title, normalised paragraph) for all 1,145 JSQuAD paragraphs, without the "title [SEP]"."""
    path = shared_data / "wikipedia_paragraphs_jsquad" / "jsquad_valid_wikipedia_paragraphs.jsonl"
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    return [(r["title"], normalize_japanese(r["context"].split(" [SEP] ", 1)[1])) for r in rows]


@pytest.fixture(scope="module")
def speeches(shared_data) -> list[str]:
    path = shared_data / "kokkai_speeches" / "speeches_sample2000.jsonl"
    return [normalize_japanese(json.loads(line)["speech"]) for line in path.open(encoding="utf-8")]


def _one_per_title(wiki, min_len=150):
    seen, out = set(), []
    for title, text in wiki:
        if len(text) >= min_len and title not in seen:
            seen.add(title)
            out.append(text)
    return out


def _edit(text: str, k: int) -> str:
    """Replace k characters spread evenly over the text (an OCR-like or typo-like edit)."""
    chars = list(text)
    for q in range(1, k + 1):
        pos = len(chars) * q // (k + 1)
        chars[pos] = "〇" if chars[pos] != "〇" else "×"
    return "".join(chars)


def _shares_band(a: str, b: str, params=DEFAULT) -> bool:
    return bool(
        (band_hashes(signature(a, params), params) == band_hashes(signature(b, params), params)).any()
    )


# --- slow pure-Python reference ---------------------------------------------------------------


def _ref_shingles(text: str, size: int) -> set[str]:
    if not text:
        return set()
    if len(text) <= size:
        return {text}
    return {text[i : i + size] for i in range(len(text) - size + 1)}


def _ref_shingle_hash(shingle: str, seed: int) -> int:
    def mix(z: int) -> int:
        z = (z + 0x9E3779B97F4A7C15) & (2**64 - 1)
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
        return z ^ (z >> 31)

    tag = seed ^ 0x5348494E474C45
    return sum((ord(ch) + 1) * (mix(tag + j) | 1) for j, ch in enumerate(shingle)) % 2**64


def _ref_signature(text: str, params: MinHashParams) -> list[int]:
    hashes = [_ref_shingle_hash(s, params.seed) for s in _ref_shingles(text, params.shingle_size)]

    # a_i, b_i, a'_i, b'_i: splitmix64 applied twice to (seed << 32) + 4i .. 4i + 3, in Python ints.
    def mix(z: int) -> int:
        z = (z + 0x9E3779B97F4A7C15) & (2**64 - 1)
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
        return z ^ (z >> 31)

    base = (params.seed & 0xFFFFFFFF) << 32
    coefficients = [mix(mix(base + i)) for i in range(4 * params.num_perm)]
    a, b, a2, b2 = (coefficients[k::4] for k in range(4))
    if not hashes:
        return [(1 << params.hash_bits) - 1] * params.num_perm
    keys = [h >> 32 for h in hashes]

    def g(a: int, b: int, x: int) -> int:  # multiply-add-shift
        return ((a * x + b) % 2**64) >> 32

    if params.hash_bits == 32:
        return [min(g(a[i], b[i], x) for x in keys) for i in range(params.num_perm)]
    return [min(g(a[i], b[i], x) << 32 | g(a2[i], b2[i], x) for x in keys) for i in range(params.num_perm)]


REF_TEXTS = [
    "がっこう",
    "a",
    "日本語のテキストです。",
    "abcabcabcabc",  # repeated shingles count once
    "家族👨\u200d👩\u200d👧で旅行😀した",  # ZWJ emoji sequence and an astral-plane emoji
    TSUYU,
]


# --- params and determinism -------------------------------------------------------------------


def test_params_id_and_num_perm():
    assert DEFAULT.num_perm == 200
    assert DEFAULT.id() == "minhash2_char5_b20r10_h32_s1"
    swallow = MinHashParams(bands=40, rows=20, hash_bits=64)
    assert swallow.num_perm == 800 and swallow.id() == "minhash2_char5_b40r20_h64_s1"
    assert MinHashParams(seed=7).id() != DEFAULT.id()
    with pytest.raises(ValueError):
        MinHashParams(hash_bits=16)
    with pytest.raises(ValueError):
        MinHashParams(rows=0)


def test_identical_texts_give_identical_signatures_and_bands(wiki):
    for params in (DEFAULT, MinHashParams(bands=40, rows=20, hash_bits=32)):
        for _, text in wiki[:20]:
            copy = "".join(list(text))  # an equal string, not the same object
            sa, sb = signature(text, params), signature(copy, params)
            assert sa.shape == (params.num_perm,) and sa.dtype == params.dtype
            assert np.array_equal(sa, sb)
            assert np.array_equal(band_hashes(sa, params), band_hashes(sb, params))
            assert estimated_jaccard(sa, sb) == 1.0


def test_golden_values_pin_the_scheme():
    # If these change (any step of the scheme), signatures stored
    # under the same MinHashParams.id() stop being comparable: change the id instead.
    p64 = MinHashParams(hash_bits=64)
    sig = signature(TSUYU, p64)
    assert [int(v) for v in sig[:3]] == [140899771025415588, 733944692841425798, 993970954453242229]
    assert int(band_hashes(sig, p64)[0]) == 15524533173946468835
    sig32 = signature(TSUYU, DEFAULT)
    assert [int(v) for v in sig32[:3]] == [32805784, 170884815, 231426897]
    assert int(band_hashes(sig32, DEFAULT)[0]) == 17523383066109103342


def test_the_top_half_of_a_64_bit_signature_is_the_32_bit_signature(wiki):
    for _, text in wiki[:20]:
        wide = signature(text, MinHashParams(hash_bits=64))
        assert np.array_equal(wide >> np.uint64(32), signature(text, DEFAULT).astype(np.uint64))


def test_band_hashes_of_a_stack_equal_those_of_each_signature(wiki):
    sigs = np.stack([signature(text, DEFAULT) for _, text in wiki[:10]])
    assert np.array_equal(band_hashes(sigs, DEFAULT), np.stack([band_hashes(s, DEFAULT) for s in sigs]))


def test_same_signature_in_another_process():
    code = (
        "import sys; from filters.minhash import MinHashParams, signature, band_hashes\n"
        "for bits in (64, 32):\n"
        "    p = MinHashParams(hash_bits=bits)\n"
        "    s = signature(sys.argv[1], p)\n"
        "    print(s.tobytes().hex(), band_hashes(s, p).tobytes().hex())\n"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run(
        [sys.executable, "-c", code, TSUYU],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=pathlib.Path(mh.__file__).resolve().parents[1],
    ).stdout.split("\n")
    for line, bits in zip(out, (64, 32)):
        p = MinHashParams(hash_bits=bits)
        s = signature(TSUYU, p)
        assert line == f"{s.tobytes().hex()} {band_hashes(s, p).tobytes().hex()}"


# --- against the slow reference ---------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 3, 5])
@pytest.mark.parametrize("text", REF_TEXTS)
def test_shingle_hashes_match_reference(text, size):
    got = shingle_hashes(text, size, seed=3)
    assert got.dtype == np.uint64
    assert [int(v) for v in got] == sorted({_ref_shingle_hash(s, 3) for s in _ref_shingles(text, size)})
    assert len(got) == len(_ref_shingles(text, size))  # no collisions on these


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("text", REF_TEXTS)
def test_signature_matches_reference(text, bits):
    params = MinHashParams(bands=4, rows=3, hash_bits=bits, seed=11)
    got = signature(text, params)
    assert got.dtype == (np.uint32 if bits == 32 else np.uint64)
    assert [int(v) for v in got] == _ref_signature(text, params)


@pytest.mark.parametrize("bits", [32, 64])
def test_signature_matches_reference_across_blocks(monkeypatch, bits):
    # Blocks of 7 shingles, so a 76-shingle text spans 11 blocks, the last one shorter.
    params = MinHashParams(bands=5, rows=4, hash_bits=bits)
    monkeypatch.setattr(mh, "CHUNK_ELEMENTS", 7 * params.num_perm)
    text = TSUYU * 3
    assert [int(v) for v in signature(text, params)] == _ref_signature(text, params)


# --- near duplicates and unrelated texts ------------------------------------------------------


def _check_pairs(pairs):
    """Estimated vs exact Jaccard, and band sharing at the defaults, over (a, b) pairs."""
    high, mid = [], []
    for a, b in pairs:
        j = jaccard(a, b, DEFAULT.shingle_size)
        est = estimated_jaccard(signature(a), signature(b))
        # The estimate is a mean of num_perm Bernoulli(J) draws: within ±0.1, or 4 standard
        # deviations where that is wider (J near 0.5: sd = 0.035 at 200 permutations).
        tolerance = max(0.1, 4 * (j * (1 - j) / DEFAULT.num_perm) ** 0.5)
        assert abs(est - j) <= tolerance, (j, est, a[:40])
        if j >= 0.9:
            high.append(_shares_band(a, b))
        elif j >= 0.8:
            mid.append(_shares_band(a, b))
    return high, mid


def test_near_duplicates_with_a_few_characters_edited(wiki):
    # 47 paragraphs (one per article, >= 150 chars) with 1, 2 or 3 characters replaced: exact
    # Jaccard 0.81-0.98. S-curve at 20 x 10: P(0.8) = 0.897, P(0.85) = 0.988, P(0.9) = 0.9998, so
    # every pair at >= 0.9 must share a band, and at least 90 % of those in [0.8, 0.9).
    # (At seed 1 one pair with J = 0.880 shares none; its S-curve chance of that is 0.15 %, and
    # test_band_sharing_rate_follows_the_s_curve checks the rate over seeds.)
    texts = _one_per_title(wiki)
    assert len(texts) >= 40
    high, mid = _check_pairs([(t, _edit(t, k)) for t in texts for k in (1, 2, 3)])
    assert len(high) >= 40 and all(high)
    assert len(mid) >= 20 and sum(mid) / len(mid) >= 0.9


def test_near_duplicates_with_one_sentence_changed(speeches, wiki):
    # Diet speeches of 400-3,000 characters with >= 5 sentences: the middle sentence is replaced by
    # one from an unrelated speech. Wikipedia paragraphs with >= 3 sentences likewise (they are
    # short, so their Jaccard is lower and only the estimate is checked).
    def swap_middle(text, donor):
        sents = [s + "。" for s in text.split("。") if s]
        other = [s + "。" for s in donor.split("。") if len(s) > 10]
        sents[len(sents) // 2] = other[0]
        return "".join(sents)

    long = [s for s in speeches if 400 <= len(s) <= 3000 and s.count("。") >= 5]
    assert len(long) >= 60
    pairs = [(a, swap_middle(a, long[-1 - i])) for i, a in enumerate(long[:30])]
    high, mid = _check_pairs(pairs)
    assert len(high) + len(mid) >= 10 and all(high) and (not mid or sum(mid) / len(mid) >= 0.9)
    paragraphs = [t for t in _one_per_title(wiki) if t.count("。") >= 3]
    _check_pairs([(a, swap_middle(a, paragraphs[-1 - i])) for i, a in enumerate(paragraphs[:10])])


def test_band_sharing_rate_follows_the_s_curve(wiki):
    # One real pair at J ~ 0.8 over 200 seeds: the fraction sharing a band matches
    # candidate_probability (binomial sd ~ 0.02; we allow 0.08), and the estimate is unbiased.
    text = _one_per_title(wiki)[1]
    other = _edit(text, 4)
    j = jaccard(text, other)
    assert 0.75 <= j <= 0.85
    shared, estimates = [], []
    for seed in range(200):
        p = MinHashParams(seed=seed)
        sa, sb = signature(text, p), signature(other, p)
        shared.append(bool((band_hashes(sa, p) == band_hashes(sb, p)).any()))
        estimates.append(estimated_jaccard(sa, sb))
    assert abs(np.mean(shared) - candidate_probability(j, 20, 10)) <= 0.08
    assert abs(np.mean(estimates) - j) <= 0.01


def test_unrelated_paragraphs_share_no_band(wiki):
    # All 1,145 paragraphs: no band bucket holds paragraphs from two different articles.
    buckets = collections.defaultdict(set)
    for title, text in wiki:
        for i, h in enumerate(band_hashes(signature(text))):
            buckets[(i, int(h))].add(title)
    assert all(len(titles) == 1 for titles in buckets.values())
    (_, a), (_, b) = wiki[0], wiki[-1]
    assert jaccard(a, b) < 0.05 and estimated_jaccard(signature(a), signature(b)) < 0.1


# --- Japanese specifics -----------------------------------------------------------------------


def test_dakuten_make_different_shingles():
    school, cuckoo = normalize_japanese("がっこう"), normalize_japanese("かっこう")
    assert school != cuckoo  # the normaliser keeps the dakuten
    assert jaccard(school, cuckoo, 5) < 1 and jaccard(school, cuckoo, 3) == pytest.approx(1 / 3)
    assert not np.array_equal(shingle_hashes(school, 5, 1), shingle_hashes(cuckoo, 5, 1))
    assert not np.array_equal(signature(school), signature(cuckoo))
    assert jaccard("がっこうへ行く", "かっこうへ行く") == 0.5
    assert jaccard(normalize_japanese("ｶﾞｯｺｳ"), "ガッコウ") == 1.0  # width folding still applies


# --- S-curve ----------------------------------------------------------------------------------

# By hand, P = 1 - (1 - s**r)**b:
#   Swallow 40 x 20:  0.7**20 = 7.979e-4, (1 - 7.979e-4)**40 = 0.96858 -> 0.0314
#                     0.8**20 = 0.011529, 0.988471**40 = 0.62886       -> 0.3711
#                     0.9**20 = 0.121577, 0.878423**40 = 0.0055996     -> 0.9944
#   LLM-jp v4 20 x 10: 0.7**10 = 0.028248, 0.971752**20 = 0.56378      -> 0.4362
#                     0.8**10 = 0.107374, 0.892626**20 = 0.10313       -> 0.8969
#                     0.9**10 = 0.348678, 0.651322**20 = 1.8876e-4     -> 0.9998
#   FineWeb-2 14 x 8: 0.7**8 = 0.057648, 0.942352**14 = 0.43550        -> 0.5645
#                     0.8**8 = 0.167772, 0.832228**14 = 0.076452       -> 0.9235
#                     0.9**8 = 0.430467, 0.569533**14 = 3.778e-4       -> 0.9996
# (mission_anchors §3.5 lists the same to three places.)
S_CURVE = [
    (40, 20, 0.7, 0.0314),
    (40, 20, 0.8, 0.3711),
    (40, 20, 0.9, 0.9944),
    (20, 10, 0.7, 0.4362),
    (20, 10, 0.8, 0.8969),
    (20, 10, 0.9, 0.9998),
    (14, 8, 0.7, 0.5645),
    (14, 8, 0.8, 0.9235),
    (14, 8, 0.9, 0.9996),
]


@pytest.mark.parametrize("bands, rows, s, expected", S_CURVE)
def test_candidate_probability(bands, rows, s, expected):
    assert candidate_probability(s, bands, rows) == pytest.approx(expected, abs=5e-5)


def test_candidate_probability_bounds():
    assert candidate_probability(0.0, 20, 10) == 0.0 and candidate_probability(1.0, 20, 10) == 1.0
    with pytest.raises(ValueError):
        candidate_probability(1.5, 20, 10)


# --- edge cases -------------------------------------------------------------------------------


def test_empty_text():
    assert shingle_hashes("", 5, 1).size == 0
    for params in (DEFAULT, MinHashParams(hash_bits=32)):
        sig = signature("", params)
        assert (sig == np.iinfo(params.dtype).max).all()
        assert np.array_equal(band_hashes(sig, params), band_hashes(signature("", params), params))
        assert estimated_jaccard(sig, signature("a", params)) == 0.0
    assert jaccard("", "") == 1.0 and jaccard("", "がっこう") == 0.0


def test_text_shorter_than_the_shingle_is_one_shingle():
    assert len(shingle_hashes("雨", 5, 1)) == 1 and len(shingle_hashes("梅雨前線", 5, 1)) == 1
    assert len(shingle_hashes("梅雨前線だ", 5, 1)) == 1  # exactly one window
    assert jaccard("梅雨", "梅雨") == 1.0 and jaccard("梅雨", "梅雨前") == 0.0
    assert not np.array_equal(signature("梅雨"), signature("雨梅"))


def test_emoji_and_surrogates():
    # An astral-plane emoji is one code point; a ZWJ sequence is several.
    assert len(shingle_hashes("😀", 5, 1)) == 1 and len(shingle_hashes("😀😀😀😀😀😀", 5, 1)) == 1
    family = "👨\u200d👩\u200d👧"  # 5 code points
    assert len(shingle_hashes(family + "と旅行", 5, 1)) == 4
    # A lone surrogate pair (as a broken decoder leaves it) is two code points, not an error,
    # and differs from the real character; normalize_japanese would have made them U+FFFD.
    broken = "\ud83d\ude00がっこう"
    assert len(shingle_hashes(broken, 5, 1)) == 2
    assert not np.array_equal(signature(broken), signature("😀がっこう"))
    assert [int(v) for v in signature(broken, MinHashParams(bands=2, rows=2))] == _ref_signature(
        broken, MinHashParams(bands=2, rows=2)
    )


def test_one_megabyte_text(speeches):
    text = ""
    for s in speeches:
        text += s
        if len(text.encode("utf-8")) >= 1_000_000:
            break
    assert len(text.encode("utf-8")) >= 1_000_000
    sig = signature(text)
    assert sig.shape == (200,) and (sig < P).all()
    assert band_hashes(sig).shape == (20,)
    assert estimated_jaccard(sig, signature(text[:-100])) > 0.95
    assert jaccard(text, text[:-100]) > 0.99


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError):
        band_hashes(np.zeros(199, dtype=np.uint64))
    with pytest.raises(ValueError):
        estimated_jaccard(np.zeros(200, dtype=np.uint64), np.zeros(100, dtype=np.uint64))
    # The same values in another band position give another hash.
    sig = np.zeros(200, dtype=np.uint64)
    bands = band_hashes(sig)
    assert len(set(bands.tolist())) == 20
