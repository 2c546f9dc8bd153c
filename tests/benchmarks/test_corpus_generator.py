"""benchmarks/corpus_generator.py: same seed, same bytes; the promised mix; readable WARCs; true truth."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from filters.minhash import jaccard
from sources.warc import iter_warc_responses

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"

pytestmark = pytest.mark.skipif(
    not (SHARED / "kokkai_speeches").is_dir() or not (SHARED / "warc_non_japanese_control").is_dir(),
    reason="needs ../shared/data (the generator's real text)",
)

sys.path.insert(0, str(REPO / "benchmarks"))
import corpus_generator as gen  # noqa: E402

N = 160


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    gen.generate(out, N, seed=7, records_per_file=60)
    return out


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(corpus, tmp_path):
    gen.generate(tmp_path / "again", N, seed=7, records_per_file=60)
    assert _digests(tmp_path / "again") == _digests(corpus)
    gen.generate(tmp_path / "other", N, seed=8, records_per_file=60)
    other = _digests(tmp_path / "other")
    assert other["corpus-00000.warc.gz"] != _digests(corpus)["corpus-00000.warc.gz"]


def test_the_mix_has_every_kind_and_charset(corpus):
    truth = gen.read_truth(corpus)
    assert len(truth) == N
    kinds = Counter(t["kind"] for t in truth)
    assert set(kinds) == {"ja", "spam", "non_ja"}
    assert kinds["ja"] > 0.6 * N and kinds["spam"] >= 5 and kinds["non_ja"] >= 5
    charsets = Counter(t["charset"] for t in truth if t["kind"] == "ja")
    assert {"utf-8", "shift_jis", "euc-jp"} <= set(charsets)
    assert json.loads((corpus / "corpus.json").read_text())["by_kind"] == dict(sorted(kinds.items()))


def test_our_reader_and_warcio_read_every_record(corpus):
    truth = {t["url"]: t for t in gen.read_truth(corpus)}
    seen = {}
    for path in sorted(corpus.glob("*.warc.gz")):
        for response in iter_warc_responses(str(path)):
            assert response.digest_verified is True, response.target_uri
            assert response.crawl == gen.CRAWL
            seen[response.target_uri] = response
        with path.open("rb") as f:
            ids = [
                r.rec_headers.get_header("WARC-Record-ID")
                for r in ArchiveIterator(f)
                if r.rec_type == "response"
            ]
        assert ids == [t["record_id"] for t in truth.values() if t["warc_file"] == path.name]
    assert set(seen) == set(truth)


def _decoded_page(response, truth_row) -> str:
    """The page as its declared charset says; the charset must be declared where the truth says."""
    label = {"utf-8": "UTF-8", "shift_jis": "Shift_JIS", "euc-jp": "EUC-JP"}[truth_row["charset"]]
    in_header = f"charset={label}" in (response.content_type or "")
    in_meta = f"charset={label}".encode("ascii") in response.payload[:600]
    assert (in_header, in_meta) == {"header": (True, False), "meta": (False, True), "both": (True, True)}[
        truth_row["declared_in"]
    ]
    return response.payload.decode(truth_row["charset"])


def test_japanese_pages_hold_their_planted_text_in_their_declared_charset(corpus):
    truth = {t["url"]: t for t in gen.read_truth(corpus)}
    plan = gen.make_plan(N, 7)
    texts = gen.dedup_corpus(plan.n_ja, 7)
    checked = Counter()
    for path in sorted(corpus.glob("*.warc.gz")):
        for response in iter_warc_responses(str(path)):
            t = truth[response.target_uri]
            if t["kind"] == "non_ja":
                assert b"<html" in response.payload[:2000].lower()
                continue
            page = _decoded_page(response, t)
            assert '<html lang="ja">' in page
            if t["kind"] == "ja":
                position = int(re.search(r"/(\d{7})\.html$", t["url"]).group(1))
                text = texts.text(plan.ja_index[position])
                assert hashlib.sha256(text.encode()).hexdigest() == t["text_sha256"]
                first = text.split("\n")[0]
                # HTML-escaped, and characters outside the charset as numeric references
                escaped = first.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                escaped = escaped.encode(t["charset"], errors="xmlcharrefreplace").decode(t["charset"])
                assert escaped in page
            checked[t["charset"]] += 1
    assert checked["shift_jis"] and checked["euc-jp"]


def test_planted_pairs_are_true_near_duplicates_and_families_agree(corpus):
    truth = {t["url"]: t for t in gen.read_truth(corpus)}
    pairs = [json.loads(line) for line in (corpus / "truth_pairs.jsonl").open(encoding="utf-8")]
    assert pairs, "no planted pairs"
    plan = gen.make_plan(N, 7)
    texts = gen.dedup_corpus(plan.n_ja, 7)

    def text_of(url: str) -> str:
        return texts.text(plan.ja_index[int(re.search(r"/(\d{7})\.html$", url).group(1))])

    for p in pairs:
        a, b = truth[p["a"]], truth[p["b"]]
        assert a["kind"] == b["kind"] == "ja"
        assert a["family"] == b["family"]
        assert jaccard(text_of(p["a"]), text_of(p["b"]), 5) == pytest.approx(p["jaccard"], abs=1e-6)
        if p["kind"] == "exact":
            assert a["text_sha256"] == b["text_sha256"]
    # every family of two or more pages has all its pairs in the truth
    families = Counter(t["family"] for t in truth.values() if t["kind"] == "ja")
    assert len(pairs) == sum(n * (n - 1) // 2 for n in families.values())
