"""The training set of the default classifier (`wikilike` v1), from the project's shared real data.

Positives, the kind of text Swallow v2's Wikipedia-based classifier and LLM-jp's curated sources
stand for: Japanese Wikipedia paragraphs (JSQuAD), National Diet speeches and the articles of a
law (行政手続法). Negatives: the entries of real 2005-08 Japanese blog feeds, many of them
affiliate spam (chardet's test data). Every selection is a fixed stride or the whole set, so two
builds give the same documents in the same order; ids name the file and position.

    python -m pipeline.stages.quality_default --shared ../shared/data --out build/wikilike
    python -m pipeline train-classifier --name wikilike --positive build/wikilike/positives.jsonl \\
        --negative build/wikilike/negatives.jsonl --dim 8 --bucket 8192 \\
        --output filters/classifiers/data/wikilike_v1

Groups keep one article, one meeting, one chapter or one blog on one side of the validation split.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import re
import sys
from pathlib import Path

WIKI = "wikipedia_paragraphs_jsquad/jsquad_valid_wikipedia_paragraphs.jsonl"
KOKKAI = "kokkai_speeches/speeches_sample2000.jsonl"
LAW = "egov_law_xml/405AC0000000088_20240401_504AC0100000052.xml"
FEEDS = "charset_feeds"
FEED_CODECS = {"SHIFT_JIS": "cp932", "EUC-JP": "euc_jp", "CP932": "cp932"}
WIKI_STRIDE = 2  # 573 of 1,145 paragraphs
KOKKAI_STRIDE = 8  # 250 of 2,000 speeches
# Long speeches are cut: the classifier sees their opening, and training stays a few seconds.
MAX_CHARS = 3000
MIN_ENTRY_CHARS = 40  # a feed entry shorter than this is a title or a date, not a text

_TAG = re.compile(r"<[^>]+>")
_BLOCK = re.compile(r"<\s*(?:br|/?p|/?div|/?li|/?h[1-6]|/?tr)\b[^>]*>", re.IGNORECASE)
_SCRIPT = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_ARTICLE = re.compile(r"^第[一二三四五六七八九十百]+条(?:の[一二三四五六七八九十]+)?\u3000")
_CHAPTER = re.compile(r"^(第[一二三四五六七八九十]+章(?:の[一二三四五六七八九十]+)?|附\u3000則)")


def _doc(doc_id: str, text: str, group: str) -> dict[str, str]:
    return {"id": doc_id, "text": text[:MAX_CHARS], "group": group}


def wikipedia(shared: Path) -> list[dict[str, str]]:
    lines = (shared / WIKI).read_text(encoding="utf-8").splitlines()
    docs = []
    for i in range(0, len(lines), WIKI_STRIDE):
        row = json.loads(lines[i])
        title, text = row["context"].split(" [SEP] ", 1)
        docs.append(_doc(f"wiki:{i + 1:04d}", text, f"wiki:{title}"))
    return docs


def kokkai(shared: Path) -> list[dict[str, str]]:
    lines = (shared / KOKKAI).read_text(encoding="utf-8").splitlines()
    docs = []
    for i in range(0, len(lines), KOKKAI_STRIDE):
        row = json.loads(lines[i])
        meeting = row["speech_id"].rsplit("_", 1)[0]
        docs.append(_doc(f"kokkai:{row['speech_id']}", row["speech"], f"kokkai:{meeting}"))
    return docs


def law_articles(shared: Path) -> list[dict[str, str]]:
    """One document per article of 行政手続法 (its caption line with it), grouped by chapter."""
    from sources.law_xml import law_xml_to_text

    lines = law_xml_to_text((shared / LAW).read_bytes()).text.splitlines()
    docs, current, chapter = [], [], "head"
    for line in lines[2:]:  # the title and law number are not an article
        if _CHAPTER.match(line) or _ARTICLE.match(line):
            caption = current.pop() if current and current[-1].startswith("（") else None
            if any(_ARTICLE.match(c) for c in current):
                docs.append(_doc(f"law:{len(docs) + 1:03d}", "\n".join(current), f"law:{chapter}"))
            current = [caption] if caption else []
            if _CHAPTER.match(line):
                chapter = _CHAPTER.match(line).group(1)
                continue
        current.append(line)
    if any(_ARTICLE.match(c) for c in current):
        docs.append(_doc(f"law:{len(docs) + 1:03d}", "\n".join(current), f"law:{chapter}"))
    return docs


def _strip_html(fragment: str) -> str:
    # Twice: some feeds escape their HTML once more (&lt;a href=...&gt;), so tags appear after unescaping.
    for _ in range(2):
        fragment = _TAG.sub("", _BLOCK.sub("\n", _SCRIPT.sub(" ", fragment)))
        fragment = html.unescape(fragment)
    lines = (re.sub(r"\s+", " ", line).strip() for line in fragment.split("\n"))
    return "\n".join(line for line in lines if line)


def _feed_entries(xml_text: str) -> list[str]:
    from lxml import etree

    body = re.sub(r"^\s*<\?xml[^>]*\?>", "", xml_text)  # lxml refuses a str with an encoding declaration
    root = etree.fromstring(body.encode("utf-8"), etree.XMLParser(recover=True, resolve_entities=False))
    if root is None:
        return []
    entries = []
    for entry in (
        e for e in root.iter() if isinstance(e.tag, str) and e.tag.rsplit("}", 1)[-1] in ("item", "entry")
    ):
        fields: dict[str, str] = {}
        for child in entry:
            name = child.tag.rsplit("}", 1)[-1] if isinstance(child.tag, str) else ""
            if name in ("title", "encoded", "content", "description", "summary"):
                fields.setdefault(name, "".join(child.itertext()))
        content = next(
            (fields[k] for k in ("encoded", "content", "description", "summary") if fields.get(k)), ""
        )
        entries.append(
            "\n".join(p for p in (_strip_html(fields.get("title", "")), _strip_html(content)) if p)
        )
    return entries


def _blog(file_name: str) -> str:
    """One blog, however many feeds it has (overcube.com.xml and overcube.com.atom.xml, andore.com.*)."""
    stem = re.sub(r"\.(atom\.)?xml$", "", file_name)
    stem = re.sub(r"^(rdf|atom)\.", "", stem)
    match = re.match(r"(.*?\.(?:com|net|org|info|tv|to|jp))(?:\.|$)", stem)
    return match.group(1) if match else stem


def blog_entries(shared: Path) -> list[dict[str, str]]:
    """Every entry of every RSS/Atom feed in charset_feeds (not the plain texts or HTML pages),
    exact copies (a blog's RSS and Atom twins) kept once."""
    docs, seen = [], set()
    for folder in sorted(p for p in (shared / FEEDS).iterdir() if p.is_dir() and p.name in FEED_CODECS):
        for path in sorted(folder.glob("*.xml")):
            decoded = path.read_bytes().decode(FEED_CODECS[folder.name], errors="replace")
            if re.search(r"<html\b", decoded[:3000], re.IGNORECASE):
                continue
            for n, text in enumerate(_feed_entries(decoded)):
                key = hashlib.sha256(text.encode()).hexdigest()
                if len(text) < MIN_ENTRY_CHARS or key in seen:
                    continue
                seen.add(key)
                docs.append(_doc(f"feed:{folder.name}/{path.name}#{n}", text, f"blog:{_blog(path.name)}"))
    return docs


def training_sets(shared: Path) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(positives, negatives) as JSONL rows: id, text, group."""
    for rel in (WIKI, KOKKAI, LAW, FEEDS):
        if not (shared / rel).exists():
            raise FileNotFoundError(
                f"{shared / rel}: the shared data is needed to build the default classifier"
            )
    return wikipedia(shared) + kokkai(shared) + law_articles(shared), blog_entries(shared)


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    parser.add_argument("--out", required=True, help="directory for positives.jsonl and negatives.jsonl")
    args = parser.parse_args(argv)
    positives, negatives = training_sets(Path(args.shared))
    write_jsonl(Path(args.out) / "positives.jsonl", positives)
    write_jsonl(Path(args.out) / "negatives.jsonl", negatives)
    print(f"{len(positives)} positives, {len(negatives)} negatives in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
