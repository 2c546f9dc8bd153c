"""A seeded corpus of real Japanese text with planted near-duplicates, for benchmarks/dedup.py.

    python benchmarks/dedup_corpus.py --docs 2000 [--seed 0] [--out DIR] [--no-truth]

writes DIR/docs.jsonl (``{"id", "text"}``) and DIR/truth.jsonl (one planted pair a line: ``a``,
``b``, ``jaccard``, ``kind``, ``edit_rate``) and prints how the planted pairs spread over Jaccard
ranges. The same API is used in-process: ``DedupCorpus(n_docs, seed)``, ``.text(i)``,
``.iter_docs()``, ``.truth()``.

Where the text comes from (../shared/data, see its README for licences): the 30 public-domain
Aozora Bunko works (ruby, annotations, the explanation header and the 底本 footer removed; the
files themselves are not redistributed), the 2,000 Diet speeches and the 1,145 JSQuAD Wikipedia
paragraphs. Every paragraph goes through ``filters.normalize.normalize_japanese``, as the clean
stage's output has, so the dedup stage sees the very text the truth is measured on.

Base documents (lengths log-uniform between 300 and 5,000 characters):

- ``real``: consecutive paragraphs of one work, meeting or article. The windows never overlap,
  so two bases never share a passage; there are about 2,000 of them.
- ``mixed``: once the real windows are used up, paragraphs of 1-4 sentences, each drawn on its
  own from anywhere in the pool of ~32k distinct sentences, at least 8 per document. Two
  documents share a sentence rarely and half of their sentences practically never (dedup.py
  measures the Jaccard of every unplanted pair an engine puts in one cluster, to show it).
- A third of the bases (either kind) carry a web-style header and footer (site name,
  breadcrumb, date, copyright line) from one of 300 made-up sites, so unrelated pages of one site
  share some boilerplate, as real ones do.

Planted variants (``dup_fraction`` of all documents; a base gets 1-3), each derived from its base:

- ``exact``: an identical copy.
- ``char_edit``: single characters substituted, inserted or deleted at scattered positions, the
  fraction of characters touched log-uniform in 1-30 %; new characters are drawn from the pool's
  own character distribution (so mostly kana and kanji).
- ``span_edit``: the same fraction, in spans of 2-20 characters (a rewritten phrase).
- ``reorder``: paragraphs (or, in a document of fewer than three paragraphs, sentences) shuffled.
- ``boilerplate``: the header and footer replaced by another site's, or added when the base had
  none.
- ``reorder+span_edit`` and ``boilerplate+char_edit``: both, with an edit fraction of 1-10 %.

The truth is every pair inside a family (base and its variants, including variant-variant pairs
of kind ``siblings``) with its exact character 5-gram Jaccard (``filters.minhash.jaccard``).
Documents of different families are taken as non-duplicates.

Positions are shuffled, so a base and its variants land in different shards. Every document is a
pure function of (seed, position): any slice of the corpus can be generated on its own, in any
process, without holding the rest.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import random
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from filters.minhash import jaccard  # noqa: E402
from filters.normalize import normalize_japanese  # noqa: E402

SHARED = REPO.parent / "shared" / "data"  # ../shared beside the repository
AOZORA = SHARED / "aozora_public_domain"
KOKKAI = SHARED / "kokkai_speeches" / "speeches_sample2000.jsonl"
WIKIPEDIA = SHARED / "wikipedia_paragraphs_jsquad" / "jsquad_valid_wikipedia_paragraphs.jsonl"

MIN_CHARS, MAX_CHARS = 300, 5000
MAX_UNIT_CHARS = 1000  # longer paragraphs are cut at sentence ends, so windows can end anywhere
BOILERPLATE_FRACTION = 1 / 3
N_SITES = 300
# Variant kinds and how often each is planted.
KIND_WEIGHTS = {
    "exact": 0.05,
    "char_edit": 0.25,
    "span_edit": 0.25,
    "reorder": 0.10,
    "boilerplate": 0.15,
    "reorder+span_edit": 0.10,
    "boilerplate+char_edit": 0.10,
}
VARIANTS_PER_FAMILY = (1, 1, 1, 1, 2, 2, 3)  # drawn uniformly: mean 1.6
JACCARD_BUCKETS = ((0.0, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.0), (1.0, 1.0))

_ANNOTATION = re.compile(r"※?［＃[^］]*］")  # 入力者注 (gaiji descriptions, emphasis, layout)
_RUBY = re.compile(r"《[^》]*》")
_SENTENCE = re.compile(r"[^。！？!?\n]+(?:[。！？!?]+[」』）)]*|$)")


def bucket_label(lo: float, hi: float) -> str:
    if lo == hi:
        return f"={lo:g}"
    return f"<{hi:g}" if lo == 0 else f"{lo:g}-{hi:g}"


def bucket_of(j: float) -> str:
    """Label of the Jaccard range holding ``j``: <0.5, 0.5-0.7, 0.7-0.8, 0.8-0.9, 0.9-1, =1."""
    if j >= 1.0:
        return "=1"
    for lo, hi in JACCARD_BUCKETS:
        if lo <= j < hi:
            return bucket_label(lo, hi)
    raise ValueError(f"Jaccard {j} out of range")


BUCKET_LABELS = tuple(bucket_label(lo, hi) for lo, hi in JACCARD_BUCKETS)


# --- the text pool ---------------------------------------------------------------------------


def aozora_body(raw: str) -> list[str]:
    """Paragraphs of one Aozora Bunko file: no title block, explanation, annotations or footer."""
    lines = raw.replace("\r\n", "\n").split("\n")
    dashes = [i for i, line in enumerate(lines) if line.startswith("-----")]
    start = dashes[1] + 1 if len(dashes) >= 2 else 2  # after 【テキスト中に現れる記号について】
    body = []
    for line in lines[start:]:
        if line.startswith("底本："):
            break
        line = _RUBY.sub("", _ANNOTATION.sub("", line)).replace("｜", "")
        body.append(line)
    return body


def split_sentences(paragraph: str) -> list[str]:
    return [s for s in _SENTENCE.findall(paragraph) if s.strip()]


def split_long(paragraph: str, limit: int = MAX_UNIT_CHARS) -> list[str]:
    """Cut a paragraph longer than ``limit`` at sentence ends (a sentence longer than that stays whole)."""
    if len(paragraph) <= limit:
        return [paragraph]
    units, current = [], ""
    for sentence in split_sentences(paragraph):
        if current and len(current) + len(sentence) > limit:
            units.append(current)
            current = ""
        current += sentence
    if current:
        units.append(current)
    return units


def _streams() -> list[list[str]]:
    """Runs of paragraphs that belong together (a work, a meeting's speeches, an article)."""
    streams: list[list[str]] = []
    if AOZORA.is_dir():
        for path in sorted(AOZORA.glob("*.txt")):
            streams.append(aozora_body(path.read_bytes().decode("cp932", errors="replace")))
    if KOKKAI.exists():
        current, key = [], None
        for line in KOKKAI.open(encoding="utf-8"):
            rec = json.loads(line)
            k = (rec.get("date"), rec.get("meeting_name"))
            if k != key and current:
                streams.append(current)
                current = []
            key = k
            current.append(rec["speech"])
        streams.append(current)
    if WIKIPEDIA.exists():
        by_title: dict[str, list[str]] = {}
        for line in WIKIPEDIA.open(encoding="utf-8"):
            rec = json.loads(line)
            by_title.setdefault(rec["title"], []).append(rec["context"].split(" [SEP] ", 1)[-1])
        streams.extend(by_title.values())
    if not streams:
        raise SystemExit(f"no source text found under {SHARED}")
    return streams


@dataclass
class Pool:
    """Normalised paragraph units by stream, every sentence, and every character (for edits)."""

    streams: list[list[str]]
    sentences: list[str]
    chars: str


REPEAT_MIN_SENTENCE = 15  # characters: shorter sentences (ありがとうございました。) recur by nature
REPEAT_MAX_SHARE = 0.3


@functools.lru_cache(maxsize=1)
def load_pool() -> Pool:
    """The normalised pool, without units that repeat earlier text.

    The Diet sample holds the same speech twice now and then (a minister's policy speech is given
    in both houses, a bill explained to two committees): a unit whose characters lie for more than
    30 % in sentences of 15 or more characters already seen is left out, so that two bases are
    never near-duplicates by accident."""
    streams, seen = [], set()
    for stream in _streams():
        units = []
        for paragraph in stream:
            paragraph = normalize_japanese(paragraph)
            if len(paragraph) < 2:
                continue
            for unit in split_long(paragraph):
                long = [s for s in split_sentences(unit) if len(s) >= REPEAT_MIN_SENTENCE]
                if sum(len(s) for s in long if s in seen) > REPEAT_MAX_SHARE * len(unit):
                    continue
                seen.update(long)
                units.append(unit)
        if units:
            streams.append(units)
    # each sentence once, so that a recurring one is not drawn more often into mixed bases
    sentences = list(dict.fromkeys(s for units in streams for u in units for s in split_sentences(u)))
    chars = "".join(sentences).replace(" ", "")
    return Pool(streams=streams, sentences=sentences, chars=chars)


def draw_length(rng: random.Random) -> int:
    """Log-uniform between MIN_CHARS and MAX_CHARS: median about 1,200, mean about 1,700."""
    return int(math.exp(rng.uniform(math.log(MIN_CHARS), math.log(MAX_CHARS))))


@functools.lru_cache(maxsize=4)
def real_windows(seed: int) -> list[list[str]]:
    """Disjoint windows of consecutive units, each of a drawn length, in a seeded order."""
    rng = random.Random(f"{seed}:windows")
    windows = []
    for units in load_pool().streams:
        target, current, size = draw_length(rng), [], 0
        for unit in units:
            if current and size + len(unit) > MAX_CHARS:
                if size >= MIN_CHARS:
                    windows.append(current)
                target, current, size = draw_length(rng), [], 0
            current.append(unit)
            size += len(unit) + 1
            if size >= target:
                windows.append(current)
                target, current, size = draw_length(rng), [], 0
        if size >= MIN_CHARS:
            windows.append(current)
    rng.shuffle(windows)
    return windows


# --- documents -------------------------------------------------------------------------------

_SITE_HEADS = "みんなの 日本 東京 まいにち ふるさと やさしい みらい 北国 港町 青空".split()
_SITE_TAILS = "ニュース ブログ 読書ノート 文庫 アーカイブ 通信 図書館 新聞 ジャーナル 日記".split()
_SITE_KINDS = ("オンライン", "ドットコム", "ナビ")
_CATEGORIES = ("文化", "社会", "暮らし", "政治", "歴史", "コラム", "読み物", "特集")


def site_name(site: int) -> str:
    head = _SITE_HEADS[site % len(_SITE_HEADS)]
    tail = _SITE_TAILS[site // len(_SITE_HEADS) % len(_SITE_TAILS)]
    kind = _SITE_KINDS[site // (len(_SITE_HEADS) * len(_SITE_TAILS)) % len(_SITE_KINDS)]
    return head + tail + kind


@dataclass
class Doc:
    """A document as parts, so that variants can reorder paragraphs or swap boilerplate."""

    header: list[str]
    body: list[str]
    footer: list[str]

    def text(self) -> str:
        return normalize_japanese("\n".join(self.header + self.body + self.footer))


def boilerplate(rng: random.Random, title: str) -> tuple[list[str], list[str]]:
    site = site_name(rng.randrange(N_SITES))
    year, month, day = rng.randrange(2005, 2026), rng.randrange(1, 13), rng.randrange(1, 29)
    category = rng.choice(_CATEGORIES)
    header = [f"{site}", f"ホーム > {category} > {title}", f"{year}年{month}月{day}日 更新"]
    footer = [
        "このページの先頭へ戻る",
        "お問い合わせ | プライバシーポリシー | サイトマップ",
        f"Copyright © {year} {site} All Rights Reserved.",
    ]
    return header, footer


MIN_MIXED_SENTENCES = 8


def mixed_body(rng: random.Random, target: int) -> list[str]:
    """Paragraphs of 1-4 sentences, each drawn on its own from anywhere in the pool, at least
    MIN_MIXED_SENTENCES of them: a short document of a few long sentences could otherwise be
    mostly the same sentences as another document (or as a real window)."""
    sentences = load_pool().sentences
    body, size, count = [], 0, 0
    while size < target or count < MIN_MIXED_SENTENCES:
        n = rng.randint(1, 4)
        body.append("".join(sentences[rng.randrange(len(sentences))] for _ in range(n)))
        size += len(body[-1]) + 1
        count += n
    return body


def trim(body: list[str], limit: int) -> list[str]:
    """At most ``limit`` characters (newlines included), cutting the last paragraph."""
    out, size = [], 0
    for paragraph in body:
        room = limit - size
        if room <= 0:
            break
        out.append(paragraph[:room])
        size += len(out[-1]) + 1
    return out


def edit(text: str, rng: random.Random, rate: float, spans: bool, chars: str) -> str:
    """Substitute, insert or delete characters at random positions, ``rate`` of the text in all:
    one character at a time, or runs of 2-20 when ``spans``."""
    out = list(text)
    budget = max(1, round(rate * len(out)))
    # positions from the end backwards, so that an edit never shifts the ones still to do
    ops = []
    while budget > 0:
        length = min(budget, rng.randint(2, 20)) if spans else 1
        ops.append((rng.randrange(len(out) + 1), length, rng.choice("sid")))
        budget -= length
    for pos, length, op in sorted(ops, reverse=True):
        new = [chars[rng.randrange(len(chars))] for _ in range(length)]
        if op == "s":
            out[pos : pos + length] = new
        elif op == "i":
            out[pos:pos] = new
        else:
            del out[pos : pos + length]
    return "".join(out)


def reorder(body: list[str], rng: random.Random) -> list[str]:
    """Shuffle paragraphs, or sentences when there are fewer than three paragraphs."""
    units = body if len(body) >= 3 else [s for p in body for s in split_sentences(p)]
    if len(units) < 2:
        return list(body)
    shuffled = list(units)
    for _ in range(10):  # a shuffle can give the same order back; try again a few times
        rng.shuffle(shuffled)
        if shuffled != units:
            break
    return shuffled if len(body) >= 3 else ["".join(shuffled)]


@dataclass(frozen=True)
class Member:
    """What sits at one position: base ``base`` itself (variant 0) or its ``variant``-th variant."""

    base: int
    variant: int = 0
    kind: str = "base"
    rate: float = 0.0  # the planned fraction of characters edited


@dataclass(frozen=True)
class TruthPair:
    a: str
    b: str
    jaccard: float
    kind: str
    edit_rate: float


@dataclass
class DedupCorpus:
    """``n_docs`` documents at positions 0 .. n_docs-1, ids ``d0000000`` ...

    ``dup_fraction`` of them are planted variants of the others.
    """

    n_docs: int
    seed: int = 0
    dup_fraction: float = 0.3
    members: list[Member] = field(init=False, repr=False)
    families: dict[int, list[int]] = field(init=False, repr=False)  # base -> positions, base first

    def __post_init__(self) -> None:
        if self.n_docs < 1:
            raise ValueError("n_docs must be positive")
        if not 0 <= self.dup_fraction < 1:
            raise ValueError("dup_fraction must be in [0, 1)")
        self.members = self._plan()
        self.families = {}
        for pos in sorted(range(self.n_docs), key=lambda p: (self.members[p].base, self.members[p].variant)):
            self.families.setdefault(self.members[pos].base, []).append(pos)

    def _plan(self) -> list[Member]:
        rng = random.Random(f"{self.seed}:plan")
        n_variants = round(self.n_docs * self.dup_fraction)
        n_bases = self.n_docs - n_variants
        members = [Member(b) for b in range(n_bases)]
        kinds, weights = list(KIND_WEIGHTS), list(KIND_WEIGHTS.values())
        for base in rng.sample(range(n_bases), n_bases):
            if n_variants == 0:
                break
            for k in range(1, min(n_variants, rng.choice(VARIANTS_PER_FAMILY)) + 1):
                kind = rng.choices(kinds, weights)[0]
                high = 0.10 if "+" in kind else 0.30
                rate = math.exp(rng.uniform(math.log(0.01), math.log(high))) if "edit" in kind else 0.0
                members.append(Member(base, k, kind, round(rate, 4)))
                n_variants -= 1
        rng.shuffle(members)
        return members

    def __len__(self) -> int:
        return self.n_docs

    def doc_id(self, position: int) -> str:
        return f"d{position:07d}"

    def base_doc(self, base: int) -> Doc:
        rng = random.Random(f"{self.seed}:base:{base}")
        windows = real_windows(self.seed)
        body = list(windows[base]) if base < len(windows) else mixed_body(rng, draw_length(rng))
        body = trim(body, MAX_CHARS)
        header, footer = [], []
        if rng.random() < BOILERPLATE_FRACTION:
            header, footer = boilerplate(rng, body[0][:20].strip())
        return Doc(header, body, footer)

    def is_real(self, position: int) -> bool:
        return self.members[position].base < len(real_windows(self.seed))

    def text(self, position: int) -> str:
        m = self.members[position]
        doc = self.base_doc(m.base)
        if m.variant == 0 or m.kind == "exact":
            return doc.text()
        rng = random.Random(f"{self.seed}:variant:{m.base}:{m.variant}")
        if "reorder" in m.kind:
            doc = Doc(doc.header, reorder(doc.body, rng), doc.footer)
        if "boilerplate" in m.kind:
            header, footer = boilerplate(rng, doc.body[0][:20].strip())
            while header[0] == (doc.header or [None])[0]:  # another site than the base's
                header, footer = boilerplate(rng, doc.body[0][:20].strip())
            doc = Doc(header, doc.body, footer)
        text = doc.text()
        if "edit" in m.kind:
            text = normalize_japanese(edit(text, rng, m.rate, "span_edit" in m.kind, load_pool().chars))
        return text

    def iter_docs(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[str, str]]:
        for pos in range(start, self.n_docs if stop is None else min(stop, self.n_docs)):
            yield self.doc_id(pos), self.text(pos)

    def family_of(self, position: int) -> int:
        return self.members[position].base

    def truth(self) -> list[TruthPair]:
        """Every pair inside every family, with its exact character 5-gram Jaccard."""
        pairs = []
        for positions in self.families.values():
            if len(positions) < 2:
                continue
            texts = {p: self.text(p) for p in positions}
            for i, p in enumerate(positions):
                for q in positions[i + 1 :]:
                    mp, mq = self.members[p], self.members[q]
                    kind = mq.kind if mp.variant == 0 else "siblings"
                    rate = mq.rate if mp.variant == 0 else 0.0
                    j = jaccard(texts[p], texts[q], 5)
                    pairs.append(TruthPair(self.doc_id(p), self.doc_id(q), round(j, 6), kind, rate))
        return pairs


# --- summary and command line ----------------------------------------------------------------


def truth_table(pairs: list[TruthPair]) -> str:
    """Planted pairs by kind (rows) and Jaccard range (columns)."""
    counts = Counter((p.kind, bucket_of(p.jaccard)) for p in pairs)
    kinds = [k for k in ("siblings", *KIND_WEIGHTS) if any(c[0] == k for c in counts)]
    lines = [
        "| kind | " + " | ".join(BUCKET_LABELS) + " | all |",
        "|---|" + "---|" * (len(BUCKET_LABELS) + 1),
    ]
    for kind in kinds:
        row = [counts.get((kind, b), 0) for b in BUCKET_LABELS]
        lines.append(f"| {kind} | " + " | ".join(str(c) for c in row) + f" | {sum(row)} |")
    col = [sum(counts.get((k, b), 0) for k in kinds) for b in BUCKET_LABELS]
    lines.append("| all | " + " | ".join(str(c) for c in col) + f" | {sum(col)} |")
    return "\n".join(lines)


def write_jsonl(corpus: DedupCorpus, out: Path, with_truth: bool = True) -> list[TruthPair] | None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "docs.jsonl").open("w", encoding="utf-8") as f:
        for doc_id, text in corpus.iter_docs():
            f.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
    if not with_truth:
        return None
    pairs = corpus.truth()
    with (out / "truth.jsonl").open("w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(p.__dict__, ensure_ascii=False) + "\n")
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000, help="number of documents")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dup-fraction", type=float, default=0.3, help="fraction that are planted variants")
    parser.add_argument("--out", type=Path, help="write docs.jsonl and truth.jsonl here")
    parser.add_argument("--no-truth", action="store_true", help="skip the (exact Jaccard) truth")
    args = parser.parse_args(argv)

    corpus = DedupCorpus(args.docs, args.seed, args.dup_fraction)
    if args.out:
        pairs = write_jsonl(corpus, args.out, not args.no_truth)
    else:
        pairs = None if args.no_truth else corpus.truth()
    windows = len(real_windows(args.seed))
    bases = sum(1 for m in corpus.members if m.variant == 0)
    print(
        f"{args.docs} documents: {bases} bases ({min(bases, windows)} real windows of {windows}), "
        f"{args.docs - bases} planted variants, {sum(len(f) > 1 for f in corpus.families.values())} families"
    )
    if pairs is not None:
        print(f"{len(pairs)} planted pairs (all pairs inside each family):")
        print(truth_table(pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
