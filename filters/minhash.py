"""MinHash signatures and LSH band hashes on character n-grams: the pure, vectorised core of
near-duplicate removal (issue 7 builds the Ray stage on top of it).

Input is text already passed through ``filters.normalize.normalize_japanese``. That normaliser keeps
dakuten and handakuten, so がっこう (school) and かっこう (cuckoo) give different shingles here; this
is deliberate (datatrove's dedup normaliser strips them, see mission_anchors §3.5).

The scheme, versioned by ``MinHashParams.id()`` (change any output below and the id must change):

1. **Shingles.** Every window of ``shingle_size`` Unicode code points (a str's characters, so an
   emoji outside the BMP is one character; a ZWJ emoji sequence is several). A text shorter than
   ``shingle_size`` is one shingle, the whole text; an empty text has no shingles.
2. **Shingle hash.** A polynomial hash modulo the Mersenne prime ``P = 2**61 - 1``:
   ``h = sum_j (c_j + 1) * x**(k-1-j) mod P`` for the window's code points ``c_0 .. c_{k-1}``, with
   ``x`` derived from the seed by splitmix64. Two different windows (of any lengths <= size; the
   ``+ 1`` keeps the leading coefficient non-zero) are two different polynomials of degree < size,
   so they collide for at most ``size - 1`` of the ``P`` possible ``x``: about 2**-59 per pair.
   Computed by Horner's rule over shifted slices of the code-point array: ``size`` numpy passes,
   no per-shingle Python loop. Values are < P and returned as distinct, sorted uint64.
3. **Permutations.** ``num_perm = bands * rows`` universal hashes ``g_i(h) = (a_i * h + b_i) mod P``
   with ``a_i`` in [1, P) and ``b_i`` in [0, P) from splitmix64 of (seed, index) (not numpy's
   Generator, whose stream may change between numpy versions); the
   signature is ``min over shingles of g_i(h)``. The 122-bit product is reduced without overflow
   by splitting both factors into 32-bit halves and folding with ``2**61 = 1 (mod P)``
   (``_mulmod``, inlined in ``_permute_min``). ``hash_bits=32`` keeps the low 32 bits of each
   ``g_i(h)`` before taking the minimum (as datasketch does), i.e. a different but equally valid
   hash family; the truncation adds collisions only at the 2**-32 level.
4. **Bands.** The signature is cut into ``bands`` runs of ``rows`` values; each band becomes one
   uint64 by a splitmix64 chain seeded with the band's index, so equal bands at the same position
   give equal hashes and the same values in another band position do not.

Two documents become LSH candidates when they share a band hash at the same index; with Jaccard
similarity ``s`` that happens with probability ``candidate_probability(s, bands, rows)``.

An empty text gets the all-ones signature (the dtype's maximum; never a real 64-bit value since
real values are < P), so empty texts are candidates of each other and of nothing else.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

P61 = (1 << 61) - 1  # Mersenne prime 2**61 - 1
_MASK64 = (1 << 64) - 1
_P = np.uint64(P61)
_M32 = np.uint64(0xFFFFFFFF)
_M29 = np.uint64((1 << 29) - 1)

# The signature is computed on blocks of (num_perm x chunk) uint64 values, with
# chunk = max(1, CHUNK_ELEMENTS // num_perm) shingles: 2**18 elements is 2 MiB per buffer and
# ``_permute_min`` uses four, so 8 MiB of scratch per call whatever the text length (1,310
# shingles per block at 200 permutations). 2**16 to 2**20 ran at the same speed within noise.
CHUNK_ELEMENTS = 1 << 18


@dataclass(frozen=True)
class MinHashParams:
    """MinHash/LSH settings. Defaults follow LLM-jp v4's 20 bands x 10 rows (threshold about
    0.74), but on character 5-grams as Swallow does; Swallow itself uses 40 x 20."""

    shingle_size: int = 5  # character n-grams (Unicode code points)
    bands: int = 20
    rows: int = 10
    hash_bits: int = 64  # 32 or 64
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
        'minhash_char5_b20r10_h64_s1'
        """
        return f"minhash_char{self.shingle_size}_b{self.bands}r{self.rows}_h{self.hash_bits}_s{self.seed}"


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


def shingle_base(seed: int) -> int:
    """The polynomial base ``x`` in [2, P) used for shingle hashes under ``seed``."""
    return 2 + _splitmix64(seed ^ 0x5348494E474C45) % (P61 - 2)  # "SHINGLE"


def _reduce(x: np.ndarray) -> np.ndarray:
    """x mod P for uint64 x < 2**64 (in place): fold the bits above 61, then one branch-free
    conditional subtraction ((x + 1) >> 61 is 1 exactly when P <= x < 2P + 1)."""
    hi = x >> np.uint64(61)
    x &= _P
    x += hi  # < 2**61 + 8
    np.right_shift(x + np.uint64(1), np.uint64(61), out=hi)
    x += hi
    x &= _P
    return x


def _mulmod(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(x * y) mod P for uint64 arrays with x, y < 2**61, broadcasting, without overflow.

    With x = xh*2**32 + xl and y likewise (xh, yh < 2**29):
    x*y = xh*yh*2**64 + (xh*yl + xl*yh)*2**32 + xl*yl, and 2**64 = 8, 2**61 = 1 (mod P).
    """
    xh, xl = x >> np.uint64(32), x & _M32
    yh, yl = y >> np.uint64(32), y & _M32
    mid = xh * yl + xl * yh  # < 2**62
    low = xl * yl  # < 2**64, exact
    r = (xh * yh) << np.uint64(3)  # < 2**61
    r += mid >> np.uint64(29)  # the part of mid*2**32 at or above 2**61, folded
    r += (mid & _M29) << np.uint64(32)
    r += low >> np.uint64(61)
    r += low & _P  # sum < 2**63
    return _reduce(r)


def _code_points(text: str) -> np.ndarray:
    # surrogatepass: a lone surrogate (should normalisation be skipped) is one code point, not an error.
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.uint64)


def shingle_hashes(text: str, size: int, seed: int) -> np.ndarray:
    """Distinct, sorted uint64 hashes (all < 2**61 - 1) of the character ``size``-grams of ``text``.

    A text shorter than ``size`` is a single shingle (the whole text); an empty text has none.

    >>> [len(shingle_hashes(t, 5, 1)) for t in ("がっこうへ行く", "ab", "")]
    [3, 1, 0]
    """
    if size < 1:
        raise ValueError("size must be positive")
    cps = _code_points(text)
    if cps.size == 0:
        return np.empty(0, dtype=np.uint64)
    cps += np.uint64(1)  # no zero coefficient, so windows of different lengths differ
    k = min(size, cps.size)
    m = cps.size - k + 1
    x = np.array([shingle_base(seed)], dtype=np.uint64)
    h = cps[:m].copy()
    for j in range(1, k):
        h = _mulmod(h, x)
        h += cps[j : j + m]  # < 2**61 + 2**21
        h = _reduce(h)
    return np.unique(h)


@functools.lru_cache(maxsize=32)
def _coefficients(params: MinHashParams) -> tuple[np.ndarray, np.ndarray]:
    # From splitmix64 over (seed, index), not numpy's Generator: numpy does not promise the same
    # stream across versions, and signatures stored by one install must match another's. The
    # modulo bias of a 64-bit value reduced mod 2**61 - 1 is below 2**-60.
    state = np.uint64((params.seed & 0xFFFFFFFF) << 32)
    index = np.arange(2 * params.num_perm, dtype=np.uint64) + state
    values = _splitmix64_np(_splitmix64_np(index))
    a = values[0::2] % np.uint64(P61 - 1) + np.uint64(1)
    b = values[1::2] % np.uint64(P61)
    a.flags.writeable = False
    b.flags.writeable = False
    return a, b


def permutation_coefficients(params: MinHashParams) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) arrays of the ``num_perm`` hashes (a_i*h + b_i) mod (2**61 - 1), read-only."""
    return _coefficients(params)


def _permute_min(hashes: np.ndarray, params: MinHashParams, out: np.ndarray) -> None:
    """out = minimum(out, min over ``hashes`` of g_i(h)) for every permutation i, in blocks.

    ``_mulmod`` inlined on four preallocated (num_perm x chunk) buffers, so each numpy pass works
    in place instead of allocating a temporary.
    """
    a, b = _coefficients(params)
    a_hi, a_lo, b = (a >> np.uint64(32))[:, None], (a & _M32)[:, None], b[:, None]
    chunk = max(1, CHUNK_ELEMENTS // params.num_perm)
    n = min(chunk, hashes.size)
    mid, low, r, t = (np.empty((params.num_perm, n), dtype=np.uint64) for _ in range(4))
    s3, s29, s32, s61, one = (np.uint64(v) for v in (3, 29, 32, 61, 1))
    for start in range(0, hashes.size, chunk):
        h = hashes[start : start + chunk]
        if h.size != n:  # the last, shorter block
            mid, low, r, t = mid[:, : h.size], low[:, : h.size], r[:, : h.size], t[:, : h.size]
        h_hi, h_lo = (h >> s32)[None, :], (h & _M32)[None, :]
        np.multiply(a_hi, h_lo, out=mid)
        np.multiply(a_lo, h_hi, out=t)
        mid += t  # < 2**62
        np.multiply(a_lo, h_lo, out=low)  # < 2**64
        np.multiply(a_hi, h_hi, out=r)
        r <<= s3  # a_hi*h_hi*2**64 = a_hi*h_hi*8 (mod P)
        np.right_shift(mid, s29, out=t)
        r += t
        mid &= _M29
        mid <<= s32
        r += mid
        np.right_shift(low, s61, out=t)
        r += t
        low &= _P
        r += low  # < 2**63: a*h (mod P), not yet reduced
        r += b  # < 2**64
        np.right_shift(r, s61, out=t)  # reduce, as in _reduce
        r &= _P
        r += t
        np.add(r, one, out=t)
        t >>= s61
        r += t
        r &= _P
        if params.hash_bits == 32:
            r &= _M32
        np.minimum(out, r.min(axis=1).astype(out.dtype), out=out)


def signature(text: str, params: MinHashParams = MinHashParams()) -> np.ndarray:
    """MinHash signature of ``text``: shape ``(num_perm,)``, uint64 (or uint32 for hash_bits=32).

    >>> sig = signature("がっこうへ行く")
    >>> sig.shape, sig.dtype.name, bool((sig == signature("がっこうへ行く")).all())
    ((200,), 'uint64', True)
    """
    hashes = shingle_hashes(text, params.shingle_size, params.seed)
    out = np.full(params.num_perm, np.iinfo(params.dtype).max, dtype=params.dtype)
    if hashes.size:
        _permute_min(hashes, params, out)
    return out


def band_hashes(sig: np.ndarray, params: MinHashParams = MinHashParams()) -> np.ndarray:
    """One uint64 per band, shape ``(bands,)``; equal bands at the same index give equal hashes."""
    sig = np.asarray(sig)
    if sig.shape != (params.num_perm,):
        raise ValueError(f"signature shape {sig.shape} does not match {params.num_perm} permutations")
    rows = sig.astype(np.uint64).reshape(params.bands, params.rows)
    h = _splitmix64_np(np.arange(params.bands, dtype=np.uint64))
    for r in range(params.rows):
        h = _splitmix64_np(h ^ rows[:, r])
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
