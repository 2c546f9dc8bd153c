"""A deterministic benchmark corpus: WARC files of real Japanese text in realistic HTML, any size.

    python benchmarks/corpus_generator.py --out DIR (--documents N | --megabytes M) [--seed S]
        [--records-per-file 250]

writes DIR/corpus-NNNNN.warc.gz (one gzip member per record, a warcinfo record first, as Common
Crawl's files are), DIR/truth.jsonl (one line per record: url, record id, kind, charset, family)
and DIR/truth_pairs.jsonl (every planted near-duplicate pair: urls a and b, their exact character
5-gram Jaccard, the variant kind) and DIR/corpus.json (the parameters and counts). The same seed
and size give the same bytes, so any run can be repeated and two engines read the same input.

What the records are (``kind`` in truth.jsonl; shares by default):

- ``ja`` (80 %): real Japanese text from ../shared/data (Aozora Bunko works, Diet speeches,
  JSQuAD Wikipedia paragraphs; licences in its README) through benchmarks/dedup_corpus.py, which
  plants near-duplicates with known truth (30 % of these pages are variants of another: copies,
  character or span edits, reordered paragraphs, another site's header and footer). Each text is
  laid out as a page of a made-up site: doctype, ``<html lang="ja">``, head with title,
  description, stylesheet and an analytics script, a header with navigation, breadcrumbs, the
  article, a sidebar of popular articles and a footer. UTF-8 (70 %), Shift_JIS (15 %) or EUC-JP
  (15 %), the charset declared in the HTTP Content-Type header, in a ``<meta>``, or both;
  characters the charset lacks become numeric character references, as real pages have them.
- ``spam`` (10 %): Japanese affiliate spam, constructed: keyword-stuffed lines, repeated
  "click here" lines, prices and shop names, around a few real sentences.
- ``non_ja`` (10 %): the 16 real Chinese and Russian pages of
  ../shared/data/warc_non_japanese_control (resiliparse's test WARC, Apache-2.0), their payloads
  and Content-Type as recorded, cycled under new URLs.

Every record is a pure function of (seed, position), so a file can be written without the rest.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import html
import io
import json
import math
import random
import sys
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from dedup_corpus import SHARED, DedupCorpus, load_pool, site_name  # noqa: E402

NON_JA_WARC = SHARED / "warc_non_japanese_control" / "warcfile.warc.gz"
KIND_SHARES = {"ja": 0.8, "spam": 0.1, "non_ja": 0.1}
CHARSET_SHARES = {"utf-8": 0.7, "shift_jis": 0.15, "euc-jp": 0.15}
CRAWL = "BENCH-JCORPUS-2026"
EPOCH = datetime(2024, 5, 18, tzinfo=timezone.utc)
DUP_FRACTION = 0.3


@dataclass(frozen=True)
class Truth:
    """What one record is: the benchmark's ground truth for it."""

    url: str
    record_id: str
    warc_file: str
    kind: str  # ja, spam, non_ja
    charset: str | None  # as declared (ja and spam pages); None: as the original page declares
    declared_in: str | None  # header, meta or both
    family: str | None  # ja pages: the near-duplicate family (its base document's id)
    variant_kind: str | None  # ja pages: base, exact, char_edit, ...
    text_sha256: str | None  # ja pages: SHA-256 of the planted text (UTF-8)


# --- the plan: which kind at which position ------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    seed: int
    kinds: tuple[str, ...]
    ja_index: tuple[int, ...]  # position -> index among the ja pages (-1 for other kinds)

    @property
    def n_ja(self) -> int:
        return sum(1 for k in self.kinds if k == "ja")


def make_plan(n: int, seed: int) -> Plan:
    rng = random.Random(f"{seed}:kinds")
    kinds = tuple(rng.choices(list(KIND_SHARES), list(KIND_SHARES.values()), k=n))
    ja_index, count = [], 0
    for k in kinds:
        ja_index.append(count if k == "ja" else -1)
        count += k == "ja"
    return Plan(seed, kinds, tuple(ja_index))


@functools.lru_cache(maxsize=4)
def dedup_corpus(n_ja: int, seed: int) -> DedupCorpus:
    return DedupCorpus(max(1, n_ja), seed=seed, dup_fraction=DUP_FRACTION)


@functools.lru_cache(maxsize=1)
def non_japanese_pages() -> tuple[tuple[str, str, bytes], ...]:
    """(url, content type, payload) of every response in the control WARC."""
    pages = []
    with NON_JA_WARC.open("rb") as f:
        for rec in ArchiveIterator(f):
            if rec.rec_type == "response" and rec.http_headers:
                ctype = rec.http_headers.get_header("Content-Type") or "text/html"
                pages.append(
                    (rec.rec_headers.get_header("WARC-Target-URI"), ctype, rec.content_stream().read())
                )
    if not pages:
        raise SystemExit(f"{NON_JA_WARC}: no response records")
    return tuple(pages)


# --- pages -----------------------------------------------------------------------------------------

_NAV = ("ホーム", "ニュース", "コラム", "特集", "ランキング", "お問い合わせ")
_SPAM_ITEMS = (
    "ブランド財布",
    "ダイエットサプリ",
    "脱毛クリーム",
    "育毛剤",
    "青汁",
    "腕時計",
    "ウォーターサーバー",
    "格安SIM",
    "FX自動売買",
    "副業マニュアル",
    "美容液",
    "酵素ドリンク",
)
_SPAM_LINES = (
    "【激安】{item}が今なら{price}円！送料無料で即日発送",
    "▼▼▼ {item}の詳細はこちらをクリック ▼▼▼",
    "{item} 通販 {item} 最安値 {item} 口コミ {item} 格安 {item} 評判",
    "今すぐ{item}をチェック！ 期間限定 {off}%OFF クーポン配布中",
    "★☆★ {shop}公式 {item} ランキング1位獲得 ★☆★",
    "楽天・Amazonより安い！{item}の最安値はこちら→",
    "【PR】{item}で人生が変わった！驚きの効果を今すぐ確認",
)
_SHOPS = ("ハッピーストア", "激安本舗", "ベストショップ", "お得市場", "スマイル商店")


def _charset_label(charset: str) -> str:
    return {"utf-8": "UTF-8", "shift_jis": "Shift_JIS", "euc-jp": "EUC-JP"}[charset]


def render_page(title: str, lines: list[str], site: str, charset: str, meta: bool, rng: random.Random) -> str:
    """The HTML of one article page of a made-up site around `lines` (one paragraph each)."""
    e = html.escape
    slug = rng.randrange(10_000, 99_999)
    meta_tag = (
        f'<meta http-equiv="Content-Type" content="text/html; charset={_charset_label(charset)}">'
        if meta
        else ""
    )
    nav = "".join(f'<li><a href="/{i}/">{e(n)}</a></li>' for i, n in enumerate(_NAV))
    popular = "".join(
        f'<li><a href="/archives/{slug + i}.html">人気記事その{i + 1}</a></li>' for i in range(5)
    )
    paragraphs = "\n".join(f"<p>{e(line)}</p>" for line in lines if line.strip())
    return f"""<!DOCTYPE html>
<html lang="ja">
<head>
{meta_tag}
<title>{e(title)} | {e(site)}</title>
<meta name="description" content="{e(lines[0][:80] if lines else title)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/css/style.css?v={slug % 97}">
<script async src="/js/analytics.js"></script>
<script>window.dataLayer = window.dataLayer || []; function gtag(){{dataLayer.push(arguments);}} gtag('js', new Date());</script>
</head>
<body class="single">
<header id="header"><div class="logo"><a href="/">{e(site)}</a></div>
<nav class="global-nav"><ul>{nav}</ul></nav></header>
<div class="breadcrumb"><a href="/">ホーム</a> &gt; <a href="/category/">記事</a> &gt; {e(title)}</div>
<div id="content"><main><article class="post">
<h1 class="entry-title">{e(title)}</h1>
<div class="entry-meta"><time>{2010 + slug % 15}年{1 + slug % 12}月{1 + slug % 28}日</time></div>
<div class="entry-content">
{paragraphs}
</div>
<div class="share">この記事をシェアする <a href="#">X</a> <a href="#">Facebook</a> <a href="#">LINE</a></div>
</article></main>
<aside id="sidebar"><h3>人気記事</h3><ul>{popular}</ul>
<h3>カテゴリー</h3><ul><li><a href="/category/1/">暮らし</a></li><li><a href="/category/2/">文化</a></li></ul></aside></div>
<footer id="footer"><ul class="footer-links"><li><a href="/privacy/">プライバシーポリシー</a></li>
<li><a href="/contact/">お問い合わせ</a></li></ul>
<p class="copyright">Copyright &copy; {e(site)} All Rights Reserved.</p></footer>
</body>
</html>
"""


def spam_lines(rng: random.Random) -> list[str]:
    item, shop = rng.choice(_SPAM_ITEMS), rng.choice(_SHOPS)
    lines = []
    for _ in range(rng.randint(8, 20)):
        line = rng.choice(_SPAM_LINES).format(
            item=item, shop=shop, price=rng.choice((980, 1980, 2980, 4980)), off=rng.choice((30, 50, 70))
        )
        lines.append(line)
    sentences = load_pool().sentences
    for _ in range(rng.randint(1, 3)):  # a few real sentences, as spinners paste them in
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(sentences))
    return lines


@dataclass(frozen=True)
class Record:
    url: str
    headers: tuple[tuple[str, str], ...]
    payload: bytes
    truth: Truth


def record_id(seed: int, position: int) -> str:
    digest = hashlib.sha256(f"{seed}:record:{position}".encode()).digest()[:16]
    return f"<urn:uuid:{uuid.UUID(bytes=digest)}>"


def make_record(plan: Plan, position: int, warc_file: str) -> Record:
    seed, kind = plan.seed, plan.kinds[position]
    rng = random.Random(f"{seed}:page:{position}")
    rid = record_id(seed, position)
    if kind == "non_ja":
        url0, ctype, payload = non_japanese_pages()[position % len(non_japanese_pages())]
        url = f"{url0}{'&' if '?' in url0 else '?'}bench={position}"
        truth = Truth(url, rid, warc_file, kind, None, None, None, None, None)
        return Record(url, (("Content-Type", ctype),), payload, truth)

    charset = rng.choices(list(CHARSET_SHARES), list(CHARSET_SHARES.values()))[0]
    declared_in = (
        rng.choice(("header", "meta", "both")) if charset != "utf-8" else rng.choice(("header", "both"))
    )
    site_no = rng.randrange(300)
    site = site_name(site_no)
    host = f"site{site_no:03d}.example.jp"
    family = variant = text_sha = None
    if kind == "ja":
        corpus = dedup_corpus(plan.n_ja, seed)
        k = plan.ja_index[position]
        text = corpus.text(k)
        lines = text.split("\n")
        member = corpus.members[k]
        family, variant = corpus.doc_id(corpus.families[member.base][0]), member.kind
        text_sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        url = f"https://{host}/archives/{position:07d}.html"
    else:
        lines = spam_lines(rng)
        url = f"https://{host}/shop/{position:07d}.html"
    title = lines[0][:40] if lines else site
    page = render_page(title, lines, site, charset, declared_in in ("meta", "both"), rng)
    payload = page.encode(charset, errors="xmlcharrefreplace")
    ctype = (
        f"text/html; charset={_charset_label(charset)}" if declared_in in ("header", "both") else "text/html"
    )
    truth = Truth(url, rid, warc_file, kind, charset, declared_in, family, variant, text_sha)
    return Record(url, (("Content-Type", ctype), ("Server", "nginx")), payload, truth)


# --- WARC files ------------------------------------------------------------------------------------


def warc_date(position: int) -> str:
    return (EPOCH + timedelta(seconds=position)).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_warc(path: Path, plan: Plan, positions: range) -> list[Truth]:
    """One WARC file: a warcinfo record, then one response record per position."""
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    info = f"software: jcorpus benchmarks/corpus_generator.py\r\nisPartOf: {CRAWL}\r\nseed: {plan.seed}\r\n"
    writer.write_record(
        writer.create_warc_record(
            "",
            "warcinfo",
            payload=io.BytesIO(info.encode()),
            warc_content_type="application/warc-fields",
            warc_headers_dict={
                "WARC-Record-ID": record_id(plan.seed, -1 - positions.start),
                "WARC-Date": warc_date(positions.start),
                "WARC-Filename": path.name,
            },
        )
    )
    truths = []
    for pos in positions:
        rec = make_record(plan, pos, path.name)
        http = StatusAndHeaders(
            "200 OK", [*rec.headers, ("Content-Length", str(len(rec.payload)))], protocol="HTTP/1.1"
        )
        writer.write_record(
            writer.create_warc_record(
                rec.url,
                "response",
                payload=io.BytesIO(rec.payload),
                length=len(rec.payload),
                http_headers=http,
                warc_headers_dict={"WARC-Record-ID": rec.truth.record_id, "WARC-Date": warc_date(pos)},
            )
        )
        truths.append(rec.truth)
    path.write_bytes(buf.getvalue())
    return truths


def documents_for_megabytes(megabytes: float, seed: int) -> int:
    """Records whose WARC payloads make about `megabytes` MB: the mean record measured on 200."""
    probe = make_plan(200, seed)
    sizes = [len(make_record(probe, i, "probe").payload) for i in range(200)]
    return max(1, math.ceil(megabytes * 1e6 / (sum(sizes) / len(sizes))))


@dataclass
class CorpusSummary:
    seed: int
    documents: int
    files: list[str]
    by_kind: dict[str, int]
    by_charset: dict[str, int]
    planted_pairs: int
    warc_bytes: int


def generate(out: Path, documents: int, seed: int = 0, records_per_file: int = 250) -> CorpusSummary:
    if documents < 1:
        raise ValueError(f"documents must be at least 1, not {documents}")
    if records_per_file < 1:
        raise ValueError(f"records_per_file must be at least 1, not {records_per_file}")
    out.mkdir(parents=True, exist_ok=True)
    plan = make_plan(documents, seed)
    truths, files = [], []
    for start in range(0, documents, records_per_file):
        path = out / f"corpus-{start // records_per_file:05d}.warc.gz"
        truths += write_warc(path, plan, range(start, min(documents, start + records_per_file)))
        files.append(path.name)
    with (out / "truth.jsonl").open("w", encoding="utf-8") as f:
        for t in truths:
            f.write(json.dumps(asdict(t), ensure_ascii=False, sort_keys=True) + "\n")
    pairs = planted_pairs(plan, truths)
    with (out / "truth_pairs.jsonl").open("w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(p, ensure_ascii=False, sort_keys=True) + "\n")
    summary = CorpusSummary(
        seed=seed,
        documents=documents,
        files=files,
        by_kind=_count(t.kind for t in truths),
        by_charset=_count(t.charset or "as recorded" for t in truths),
        planted_pairs=len(pairs),
        warc_bytes=sum((out / name).stat().st_size for name in files),
    )
    (out / "corpus.json").write_text(json.dumps(asdict(summary), indent=2, sort_keys=True) + "\n")
    return summary


def planted_pairs(plan: Plan, truths: list[Truth]) -> list[dict]:
    """dedup_corpus's truth (pairs of its document ids) as pairs of record URLs."""
    if plan.n_ja == 0:
        return []
    corpus = dedup_corpus(plan.n_ja, plan.seed)
    url_of = {corpus.doc_id(plan.ja_index[pos]): t.url for pos, t in enumerate(truths) if t.kind == "ja"}
    return [
        {
            "a": url_of[p.a],
            "b": url_of[p.b],
            "jaccard": round(p.jaccard, 6),
            "kind": p.kind,
            "edit_rate": p.edit_rate,
        }
        for p in corpus.truth()
    ]


def _count(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return dict(sorted(counts.items()))


def read_truth(out: Path) -> list[dict]:
    with (out / "truth.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="output directory")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--documents", type=int, help="number of records")
    size.add_argument("--megabytes", type=float, help="about this many MB of HTML payloads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--records-per-file", type=int, default=250, help="records per WARC file (a fetch shard)")
    args = p.parse_args(argv)
    n = args.documents if args.documents is not None else documents_for_megabytes(args.megabytes, args.seed)
    try:
        summary = generate(args.out, n, args.seed, args.records_per_file)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(summary) | {"files": len(summary.files)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
