"""MinHash signatures and LSH band hashes on character n-grams: the pure, vectorised core of
near-duplicate removal (pipeline/stages/dedup*.py runs it on Ray).

Input is text already passed through ``filters.normalize.normalize_japanese``. That normaliser keeps
dakuten and handakuten, so がっこう (school) and かっこう (cuckoo) give different shingles here; this
is deliberate (datatrove's dedup normaliser strips them, see mission_anchors §3.5).

The scheme, versioned by ``MinHashParams.id()`` (change any output below and the id must change):

1. **Shingles.** Every window of ``shingle_size`` Unicode code points (a str's characters, so an
   emoji outside the BMP is one character; a ZWJ emoji sequence is several). A text shorter than
   ``shingle_size`` is one shingle, the whole text; an empty text has no shingles.
2. **Shingle hash.** A linear hash modulo 2**64 with one odd multiplier per window position:
   ``h = sum_j (c_j + 1) * K_j mod 2**64`` for the window's code points ``c_0 .. c_{k-1}``, ``K_j``
   from splitmix64 of the seed and ``j``. For two different windows (of any lengths <= size; the
   ``+ 1`` makes a missing position differ from any code point) the difference
   ``sum_j d_j * K_j`` has some ``d_j = 2**v * odd`` with ``v <= 20`` (code points are below
   2**21), so it vanishes modulo 2**64 with probability at most 2**-43 over the odd ``K_j``.
   ``size`` wrapping multiply-adds over shifted slices of the code-point array, no per-shingle
   Python loop. ``shingle_hashes`` returns them distinct and sorted.
3. **Permutations.** Each shingle is keyed by the top half of its hash, ``x = h >> 32`` (two
   different shingles of a pair of 2,000-shingle documents then coincide with probability about
   1e-3: no effect on the estimate), and permutation ``i`` is Dietzfelbinger's multiply-add-shift
   ``g_i(x) = ((a_i * x + b_i) mod 2**64) >> 32``, strongly universal from 32-bit keys to 32-bit
   values for uniform 64-bit ``a_i``, ``b_i`` ("Universal hashing and k-wise independent random
   variables via integer arithmetic without primes", STACS 1996); the coefficients come from
   splitmix64 of (seed, index), not numpy's Generator, whose stream may change between numpy
   versions. ``hash_bits=32``: the signature is ``min over shingles of g_i(x)``. ``hash_bits=64``:
   ``min of (g_i(x) << 32 | g'_i(x))`` with a second, independent pair of coefficients, so its top
   32 bits are the 32-bit signature and two different minima agree by chance with probability
   2**-64 instead of 2**-32. One wrapping uint64 multiply, add and shift per shingle and
   permutation: a tenth of the time of the exact arithmetic modulo 2**61 - 1 of scheme 1 (which
   datasketch and datatrove approximate with overflowing products anyway).
4. **Bands.** The signature is cut into ``bands`` runs of ``rows`` values; each band becomes one
   uint64 by a splitmix64 chain seeded with the band's index, so equal bands at the same position
   give equal hashes and the same values in another band position do not.

Two documents become LSH candidates when they share a band hash at the same index; with Jaccard
similarity ``s`` that happens with probability ``candidate_probability(s, bands, rows)``.

An empty text gets the all-ones signature (the dtype's maximum, which a real minimum reaches with
probability below 2**-32 per position), so empty texts are candidates of each other and, in
practice, of nothing else.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

_MASK64 = (1 << 64) - 1

# The signature is computed on blocks of (chunk x num_perm) uint64 values, with
# chunk = max(1, CHUNK_ELEMENTS // num_perm) shingles: 2**15 elements is 256 KiB per buffer (two
# for 64-bit hashes), which stays in a core's L2 cache; of 2**12 .. 2**18, 2**15 was fastest here
# for both widths (6,000-character text: 2.2 ms at 32 bits, 3.6 ms at 64; 2**18: 2.3 and 8.2).
CHUNK_ELEMENTS = 1 << 15


@dataclass(frozen=True)
class MinHashParams:
    """MinHash/LSH settings. Defaults follow LLM-jp v4's 20 bands x 10 rows (threshold about
    0.74), but on character 5-grams as Swallow does; Swallow itself uses 40 x 20."""

    shingle_size: int = 5  # character n-grams (Unicode code points)
    bands: int = 20
    rows: int = 10
    hash_bits: int = 32  # 32 or 64
    seed: int = 1

    def __post_init__(self) -> None:
        if self.shingle_size < 1 or self.bands < 1 or self.rows < 1:
            raise ValueError("shingle_size, bands and rows must be positive")
        if self.hash_bits not in (32, 64):
            raise ValueError(f"hash_bits must be 32 or 64, not {self.hash_bits}")
        if not 0 <= self.seed <= _MASK64:
            raise ValueError("seed must fit in 64 unsigned bits")

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint32 if self.hash_bits == 32 else np.uint64)

    def id(self) -> str:
        """The id recorded in manifests.

        >>> MinHashParams().id()
        'minhash2_char5_b20r10_h32_s1'
        """
        # "minhash2": scheme 2 (multiply-add-shift permutations); scheme 1's signatures differ.
        return f"minhash2_char{self.shingle_size}_b{self.bands}r{self.rows}_h{self.hash_bits}_s{self.seed}"


def _splitmix64(z: int) -> int:
    """splitmix64 step on a Python int (used for scalars derived from the seed)."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _splitmix64_np(z: np.ndarray) -> np.ndarray:
    """The same step on a uint64 array (wrapping arithmetic)."""
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@functools.lru_cache(maxsize=32)
def _position_multipliers(size: int, seed: int) -> np.ndarray:
    """The odd multipliers ``K_0 .. K_{size-1}`` of the shingle hash under ``seed``."""
    tag = seed ^ 0x5348494E474C45  # "SHINGLE"
    return np.array([_splitmix64(tag + j) | 1 for j in range(size)], dtype=np.uint64)


def _code_points(text: str) -> np.ndarray:
    # surrogatepass: a lone surrogate (should normalisation be skipped) is one code point, not an error.
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.uint64)


def _window_hashes(text: str, size: int, seed: int) -> np.ndarray:
    """The hash of every window, in text order, repeats included."""
    if size < 1:
        raise ValueError("size must be positive")
    cps = _code_points(text)
    if cps.size == 0:
        return np.empty(0, dtype=np.uint64)
    cps += np.uint64(1)  # no zero coefficient, so windows of different lengths differ
    k = min(size, cps.size)
    m = cps.size - k + 1
    multipliers = _position_multipliers(size, seed)
    h = cps[:m] * multipliers[0]
    for j in range(1, k):
        h += cps[j : j + m] * multipliers[j]  # wraps modulo 2**64, as the scheme says
    return h


def shingle_hashes(text: str, size: int, seed: int) -> np.ndarray:
    """Distinct, sorted uint64 hashes of the character ``size``-grams of ``text``.

    A text shorter than ``size`` is a single shingle (the whole text); an empty text has none.

    >>> [len(shingle_hashes(t, 5, 1)) for t in ("がっこうへ行く", "ab", "")]
    [3, 1, 0]
    """
    return np.unique(_window_hashes(text, size, seed))


@functools.lru_cache(maxsize=32)
def _coefficients(params: MinHashParams) -> tuple[np.ndarray, ...]:
    # (a, b, a', b') per permutation: splitmix64 of (seed << 32) + 4i .. 4i + 3. The first pair is
    # the same for both hash widths, so a 64-bit signature's top half is the 32-bit signature.
    state = np.uint64((params.seed & 0xFFFFFFFF) << 32)
    values = _splitmix64_np(_splitmix64_np(np.arange(4 * params.num_perm, dtype=np.uint64) + state))
    coefficients = tuple(values[k::4].copy() for k in range(4))
    for c in coefficients:
        c.flags.writeable = False
    return coefficients


def permutation_coefficients(params: MinHashParams) -> tuple[np.ndarray, ...]:
    """The (a, b, a', b') uint64 arrays of the ``num_perm`` multiply-add-shift hashes, read-only."""
    return _coefficients(params)


def _permute_min(hashes: np.ndarray, params: MinHashParams, out: np.ndarray) -> None:
    """out = minimum(out, min over ``hashes`` of each permutation), in blocks of shingles.

    Rows are shingles and columns permutations, so each block's minimum is a reduction over the
    first axis of a C-ordered array (contiguous rows), measured faster than the transpose.
    """
    a, b, a2, b2 = (c[None, :] for c in _coefficients(params))
    x = hashes >> np.uint64(32)
    chunk = max(1, CHUNK_ELEMENTS // params.num_perm)
    n = min(chunk, x.size)
    high = np.empty((n, params.num_perm), dtype=np.uint64)
    low = np.empty_like(high) if params.hash_bits == 64 else None
    s32 = np.uint64(32)
    for start in range(0, x.size, chunk):
        block = x[start : start + chunk, None]
        if block.shape[0] != high.shape[0]:  # the last, shorter block
            high = high[: block.shape[0]]
            low = None if low is None else low[: block.shape[0]]
        np.multiply(block, a, out=high)  # wraps modulo 2**64, as the scheme says
        high += b
        high >>= s32
        if low is not None:
            np.multiply(block, a2, out=low)
            low += b2
            low >>= s32
            high <<= s32
            high |= low
        np.minimum(out, high.min(axis=0).astype(out.dtype, copy=False), out=out)


def signature(text: str, params: MinHashParams = MinHashParams()) -> np.ndarray:
    """MinHash signature of ``text``: shape ``(num_perm,)``, uint32 (or uint64 for hash_bits=64).

    >>> sig = signature("がっこうへ行く")
    >>> sig.shape, sig.dtype.name, bool((sig == signature("がっこうへ行く")).all())
    ((200,), 'uint32', True)
    """
    # Repeated windows are not removed: they cannot change a minimum, and sorting them out costs
    # more than hashing them again.
    hashes = _window_hashes(text, params.shingle_size, params.seed)
    out = np.full(params.num_perm, np.iinfo(params.dtype).max, dtype=params.dtype)
    if hashes.size:
        _permute_min(hashes, params, out)
    return out


def band_hashes(sig: np.ndarray, params: MinHashParams = MinHashParams()) -> np.ndarray:
    """One uint64 per band, shape ``(bands,)``, or ``(n, bands)`` for a stack of ``n`` signatures;
    equal bands at the same index give equal hashes."""
    sig = np.asarray(sig)
    if sig.shape[-1:] != (params.num_perm,) or sig.ndim > 2:
        raise ValueError(f"signature shape {sig.shape} does not match {params.num_perm} permutations")
    rows = sig.astype(np.uint64).reshape(*sig.shape[:-1], params.bands, params.rows)
    h = np.broadcast_to(_splitmix64_np(np.arange(params.bands, dtype=np.uint64)), rows.shape[:-1])
    for r in range(params.rows):
        h = _splitmix64_np(h ^ rows[..., r])
    return h


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Fraction of equal signature positions: an unbiased estimate of the shingle-set Jaccard."""
    sig_a, sig_b = np.asarray(sig_a), np.asarray(sig_b)
    if sig_a.shape != sig_b.shape or sig_a.size == 0:
        raise ValueError("signatures must be non-empty and of the same shape")
    return float(np.count_nonzero(sig_a == sig_b)) / sig_a.size


def _shingle_set(text: str, size: int) -> set[str]:
    if len(text) <= size:
        return {text} if text else set()
    return {text[i : i + size] for i in range(len(text) - size + 1)}


def jaccard(text_a: str, text_b: str, size: int = 5) -> float:
    """Exact Jaccard similarity of the two texts' character ``size``-gram sets (the strings
    themselves, not hashes), for checking candidates. Two empty texts count as identical (1.0).

    >>> jaccard("がっこうへ行く", "かっこうへ行く", 5)
    0.5
    """
    sa, sb = _shingle_set(text_a, size), _shingle_set(text_b, size)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def candidate_probability(s: float, bands: int, rows: int) -> float:
    """Probability that two texts with Jaccard ``s`` share at least one band: 1 - (1 - s**r)**b.

    >>> round(candidate_probability(0.8, 20, 10), 3)
    0.897
    """
    if not 0.0 <= s <= 1.0:
        raise ValueError("s must be in [0, 1]")
    return 1.0 - (1.0 - s**rows) ** bands
