"""Build the clean-stage development set: real texts, fixed selection, written to texts.jsonl.

    python benchmarks/clean_dev/build.py [--shared /work/shared/data] [--out benchmarks/clean_dev/texts.jsonl]

Every selection is deterministic (file order, sorted paths, fixed strides); running it twice gives
the same bytes. Ids are stable strings derived from the source and the origin, so labels.jsonl
(written by hand after reading each text) stays joined to the right text. See README.md for the
sources, their licences and what was done to each.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import itertools
import json
import re
import sys
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from filters.html import decode_html, extract_main_text
from sources.law_xml import law_xml_to_text
from sources.warc import iter_warc_responses

HERE = Path(__file__).resolve().parent
FEED_CODECS = {"SHIFT_JIS": "cp932", "EUC-JP": "euc_jp", "CP932": "cp932", "iso-2022-jp": "iso2022_jp"}
WIKI_COUNT = 60
KOKKAI_COUNT = 60
AOZORA_COUNT = 20
AOZORA_OPENING_CHARS = 2000  # the opening section: whole paragraphs until at least this many characters
UDE_MAX_CHARS = 6000  # the plain-text files in charset_feeds are cut to their beginning


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60]


def _short_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


# --- WARC pages (the repo's own decode + extraction) -------------------------------------------


def warc_docs(path: Path, source: str) -> list[dict]:
    docs = []
    for i, rec in enumerate(iter_warc_responses(str(path))):
        decoded = decode_html(rec.payload, rec.content_type)
        text = extract_main_text(decoded.text, rec.target_uri) or ""
        docs.append(
            {
                "id": f"{source}:{i:03d}:{_slug(rec.target_uri.split('://', 1)[-1])}",
                "source": source,
                "origin": f"{path}#offset={rec.offset} {rec.target_uri}",
                "url": rec.target_uri,
                "text": text,
                "_payload": rec.payload,
            }
        )
    return docs


# --- charset_feeds: one document per feed, entry texts with tags stripped -------------------------

_BLOCK_TAGS = re.compile(r"<\s*(br|/p|p|/div|div|/li|li|/h[1-6]|tr|/tr)\b[^>]*>", re.IGNORECASE)
_DROP_ELEMENTS = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def strip_html(fragment: str) -> str:
    fragment = _DROP_ELEMENTS.sub(" ", fragment)
    fragment = re.sub(r"<!--.*?-->", " ", fragment, flags=re.DOTALL)
    fragment = _BLOCK_TAGS.sub("\n", fragment)
    fragment = html.unescape(_TAG.sub("", fragment))
    lines = [re.sub(r"[ \t\u3000\xa0]+", " ", line).strip() for line in fragment.splitlines()]
    return "\n".join(line for line in lines if line)


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def feed_text(xml_text: str) -> str:
    from lxml import etree

    body = re.sub(r"^\s*<\?xml[^>]*\?>", "", xml_text)  # lxml refuses str input with an encoding decl
    root = etree.fromstring(body.encode("utf-8"), etree.XMLParser(recover=True, resolve_entities=False))
    entries = [el for el in root.iter() if _local(el.tag) in ("item", "entry")]
    parts = []
    for entry in entries:
        fields: dict[str, str] = {}
        for child in entry:
            name = _local(child.tag)
            if name in ("title", "description", "encoded", "content", "summary"):
                value = "".join(child.itertext()) if len(child) else (child.text or "")
                fields.setdefault(name, value)
        body_html = (
            fields.get("encoded")
            or fields.get("content")
            or fields.get("description")
            or fields.get("summary")
            or ""
        )
        title = strip_html(fields.get("title", ""))
        text = strip_html(body_html)
        parts.append("\n".join(p for p in (title, text) if p))
    return "\n\n".join(p for p in parts if p)


def feed_docs(folder: Path) -> list[dict]:
    docs, seen = [], set()
    for enc_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        codec = FEED_CODECS[enc_dir.name]
        for path in sorted(enc_dir.iterdir()):
            raw = path.read_bytes()
            decoded = raw.decode(codec, errors="replace")
            is_html = re.search(r"<html\b", decoded[:3000], re.IGNORECASE)
            if path.suffix == ".xml" and not is_html:
                text = feed_text(decoded)
            elif is_html:  # the two real CP932 HTML pages kept in chardet's folder: whole page, tags stripped
                text = strip_html(re.sub(r"(?is)^.*?<body[^>]*>", "", decoded))
            else:  # _ude_*.txt: plain text
                text = decoded.replace("\r\n", "\n").replace("\r", "\n")[:UDE_MAX_CHARS]
            key = hashlib.sha1(text.encode()).hexdigest()
            if key in seen:  # the AppWizard readme exists in three encodings: keep the first only
                continue
            seen.add(key)
            docs.append(
                {
                    "id": f"feed:{enc_dir.name}:{_slug(path.name)}",
                    "source": "charset_feed",
                    "origin": str(path),
                    "text": text,
                }
            )
    return docs


# --- Wikipedia, Diet speeches, law, Aozora ---------------------------------------------------------


def wiki_docs(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    stride = len(rows) // WIKI_COUNT
    docs = []
    for i in range(0, stride * WIKI_COUNT, stride):
        row = rows[i]
        text = row["context"].split(" [SEP] ", 1)[-1]
        docs.append(
            {
                "id": f"wiki:{i:04d}:{_short_hash(row['title'])}",
                "source": "wikipedia",
                "origin": f"{path}#line={i + 1} title={row['title']}",
                "url": "https://ja.wikipedia.org/wiki/" + quote(row["title"].replace(" ", "_")),
                "text": text,
            }
        )
    return docs


def kokkai_docs(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    stride = len(rows) // KOKKAI_COUNT
    docs = []
    for i in range(0, stride * KOKKAI_COUNT, stride):
        row = rows[i]
        docs.append(
            {
                "id": f"kokkai:{row['speech_id']}",
                "source": "kokkai",
                "origin": row["speech_url"],
                "url": row["speech_url"],
                "text": row["speech"],
            }
        )
    return docs


_LAW_SPLIT = re.compile(
    r"^(第[一二三四五六七八九十]+章(?:の[一二三四五六七八九十]+)?\u3000|附\u3000則)", re.MULTILINE
)


def law_docs(folder: Path) -> list[dict]:
    docs = []
    for path in sorted(folder.glob("*.xml")):
        law = law_xml_to_text(path.read_bytes())
        starts = [m.start() for m in _LAW_SPLIT.finditer(law.text)]
        # The title and law number go with the first chapter.
        bounds = [0] + starts[1:] + [len(law.text)]
        for n, (a, b) in enumerate(itertools.pairwise(bounds)):
            chunk = law.text[a:b].strip()
            heading = chunk.splitlines()[0] if n else chunk.splitlines()[2]
            docs.append(
                {
                    "id": f"law:{path.stem[:15]}:{n:02d}",
                    "source": "egov_law",
                    "origin": f"{path} [{heading}]",
                    "text": chunk,
                }
            )
    return docs


_RUBY = re.compile(r"《[^》]*》")
_NOTE = re.compile(r"［＃[^］]*］")


def aozora_body(raw: str) -> str:
    """The work's text without its header, symbol legend, footer, ruby and input notes."""
    text = raw.replace("\r\n", "\n")
    # Header: title/author lines, then the legend between two dashed rules (when present).
    rules = [m.end() for m in re.finditer(r"^-{20,}$", text, re.MULTILINE)]
    if len(rules) >= 2:
        text = text[rules[1] :]
    text = re.split(r"^底本：", text, maxsplit=1, flags=re.MULTILINE)[0]
    text = _RUBY.sub("", text)
    text = _NOTE.sub("", text)
    text = text.replace("｜", "")
    text = text.replace("※", "")  # gaiji marker; its description was a ［＃…］ note
    return text.strip("\n")


def aozora_docs(folder: Path) -> list[dict]:
    paths = sorted(folder.glob("*.txt"))
    # Evenly spaced over the sorted file names, so every author is represented.
    picks = sorted({i * len(paths) // AOZORA_COUNT for i in range(AOZORA_COUNT)})
    docs = []
    for path in (paths[i] for i in picks):
        raw = path.read_bytes().decode("cp932")
        head = raw.replace("\r\n", "\n").split("\n", 2)
        title, author = head[0].strip(), head[1].strip()
        body = aozora_body(raw)
        out, size = [], 0
        for para in body.split("\n"):
            out.append(para)
            size += len(para)
            if size >= AOZORA_OPENING_CHARS:
                break
        docs.append(
            {
                "id": f"aozora:{path.stem}",
                "source": "aozora",
                "origin": f"{path} (first lines: {title} / {author})",
                "text": "\n".join(out).strip("\n"),
            }
        )
    return docs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    ap.add_argument("--sample-warc", default=str(ROOT / "sample" / "ja_pages.warc.gz"))
    ap.add_argument("--out", default=str(HERE / "texts.jsonl"))
    args = ap.parse_args(argv)
    shared = Path(args.shared)

    ja = warc_docs(Path(args.sample_warc), "warc_ja")
    # The 29 UTF-8 records of ja_pages.warc.gz are the postlight fixtures byte for byte; check it
    # and record both origins instead of adding the same page twice.
    fixtures = {p.name: p for p in (shared / "html_pages_postlight" / "fixtures").glob("*.html")}
    matched = 0
    for doc in ja:
        for path in fixtures.values():
            if path.read_bytes() == doc["_payload"]:
                doc["origin"] += f" (= {path})"
                doc["source"] = "warc_ja_postlight"
                matched += 1
                break
        else:
            doc["source"] = "warc_ja_feedpage"
    if matched != len(fixtures):
        raise SystemExit(
            f"expected all {len(fixtures)} postlight fixtures in the sample WARC, found {matched}"
        )
    zh = warc_docs(shared / "warc_non_japanese_control" / "warcfile.warc.gz", "warc_control")

    docs = ja + zh
    docs += feed_docs(shared / "charset_feeds")
    docs += wiki_docs(shared / "wikipedia_paragraphs_jsquad" / "jsquad_valid_wikipedia_paragraphs.jsonl")
    docs += kokkai_docs(shared / "kokkai_speeches" / "speeches_sample2000.jsonl")
    docs += law_docs(shared / "egov_law_xml")
    docs += aozora_docs(shared / "aozora_public_domain")

    ids = [d["id"] for d in docs]
    if len(ids) != len(set(ids)):
        raise SystemExit("duplicate ids")
    with open(args.out, "w", encoding="utf-8") as fh:
        for d in docs:
            row = {"id": d["id"], "source": d["source"], "origin": d["origin"], "text": d["text"]}
            if d.get("url"):
                row["url"] = d["url"]
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts: dict[str, int] = {}
    for d in docs:
        counts[d["source"]] = counts.get(d["source"], 0) + 1
    print(f"wrote {len(docs)} texts to {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
