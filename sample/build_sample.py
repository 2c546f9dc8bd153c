#!/usr/bin/env python3
"""Rebuild the bundled sample (this folder) from the read-only shared data; see SOURCES.md.

    .venv/bin/python sample/build_sample.py --shared ../shared      # from the repo root

Every output is byte-for-byte reproducible, so tests/test_sample.py can check that this script,
and nothing else, is the origin of what is committed: WARC dates are fixed, record ids are uuid5
of the URL, and warcio gzips each record with zlib, whose gzip header has mtime 0.
"""

import argparse
import collections
import datetime as dt
import email.utils
import html
import io
import itertools
import json
import re
import shutil
import uuid
import zipfile
from pathlib import Path
from urllib.parse import quote

from lxml import etree
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

HERE = Path(__file__).resolve().parent
# Synthetic capture time: record i is dated BASE + i seconds. Not a real capture date.
BASE = dt.datetime(2025, 1, 15, tzinfo=dt.timezone.utc)
# Python codec of each chardet folder (the folder names the true encoding). All SHIFT_JIS feeds
# decode strictly as shift_jis, so that codec is used both ways: the bytes stay real Shift_JIS
# rather than gaining CP932-only codes. CP932 is Shift_JIS plus the Windows (NEC/IBM) rows.
CODECS = {"SHIFT_JIS": "shift_jis", "EUC-JP": "euc_jp", "CP932": "cp932"}
# The label a server sends in its HTTP header for each true encoding.
HEADER_LABELS = {"SHIFT_JIS": "Shift_JIS", "EUC-JP": "EUC-JP", "CP932": "Windows-31J"}
STYLES = ("header", "meta", "both")  # where a generated legacy page declares its charset
# UTF-8 pages served as bare text/html: each has a valid <meta charset> in its first 1024 bytes.
META_ONLY_UTF8 = {"sect.iij.ad.jp", "www.gizmodo.jp", "www.ipa.go.jp"}
# chardet's CP932 folder also holds two real HTML pages: kept byte-for-byte. Their URLs are not in
# chardet; the first is the page's own google_page_url, the second is rebuilt from the file name.
AS_IS = {
    "hardsoft.at.webry.info.xml": ("http://hardsoft.at.webry.info/200802/article_1.html", "Shift_JIS"),
    "www2.chuo-u.ac.jp-suishin.xml": ("http://www2.chuo-u.ac.jp/suishin/", None),
}
DATE_TAGS = ("date", "pubDate", "issued", "published", "created", "modified", "updated")
PRESCAN = [
    rb"<meta\s+charset\s*=\s*[\"']?([\w.:-]+)",  # what an HTML parser would find in <meta>
    rb"<meta\s[^>]*\bcontent\s*=\s*[\"'][^\"'>]*charset\s*=\s*([\w.:-]+)",
]


def meta_charset(body):
    """The charset a browser's prescan finds in the first 1024 bytes, or None."""
    hits = [m for p in PRESCAN for m in [re.search(p, body[:1024], re.I)] if m]
    return min(hits, key=lambda m: m.start()).group(1).decode() if hits else None


def local(el):
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def first(el, *names):
    """Stripped text of the first child named like one of `names` (in that order of preference)."""
    for name in names:
        for c in el:
            if local(c) == name and (c.text or "").strip():
                return c.text.strip()
    return ""


def link_of(el):
    for c in el:
        if local(c) == "link" and c.get("rel", "alternate") == "alternate":
            return c.get("href") or (c.text or "").strip()
    return ""


def parse_date(s):
    try:
        d = dt.datetime.fromisoformat(s)
    except ValueError:
        try:
            d = email.utils.parsedate_to_datetime(s)  # RSS 2.0 pubDate
        except (TypeError, ValueError):
            return None
    return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)


def entry_html(entry):
    """The entry's body as HTML: full content first, then the summary."""
    for name in ("encoded", "content", "description", "summary"):
        for c in (c for c in entry if local(c) == name):
            if len(c):  # inline XHTML (Atom 0.3 mode="xml"): serialise it without the namespace
                s = (c.text or "") + "".join(etree.tostring(k, encoding="unicode") for k in c)
                s = re.sub(r'\sxmlns(:\w+)?="[^"]*"', "", s).strip()
            else:  # escaped HTML or CDATA: lxml has already unescaped it to an HTML string
                s = (c.text or "").strip()
            if s and ("plain" in c.get("type", "") or not re.search(r"</?[a-zA-Z][^>]*>", s)):
                s = "<p>" + html.escape(s, quote=False).replace("\n", "<br>\n") + "</p>"
            if s:
                return s
    return ""


def render_feed(text, source, meta_tag):
    """One RSS/Atom feed (already decoded) as the blog's HTML front page; None if unparseable."""
    body = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)  # we decoded it: drop the encoding declaration
    try:
        root = etree.fromstring(
            body.encode("utf-8"), etree.XMLParser(resolve_entities=False, no_network=True)
        )
    except etree.XMLSyntaxError:
        return None
    chan = root if local(root) == "feed" else next((c for c in root if local(c) == "channel"), None)
    if chan is None:
        return None
    title, home = first(chan, "title"), link_of(chan) or source
    entries = [e for e in root.iter() if local(e) in ("item", "entry")]
    dates = [d for e in entries for d in [parse_date(first(e, *DATE_TAGS))] if d]
    owner = first(chan, "copyright", "rights") or "Copyright (c) %s %s. All rights reserved." % (
        max(dates).year if dates else "",
        first(chan, "creator", "webMaster") or title,
    )
    e = html.escape
    out = [
        '<!DOCTYPE html>\n<html lang="ja">\n<head>\n',
        meta_tag,
        f"<title>{e(title)}</title>\n",
        f'<link rel="alternate" type="application/rss+xml" title="RSS" href="{e(source)}">\n</head>\n<body>\n',
        f'<header>\n<h1><a href="{e(home)}">{e(title)}</a></h1>\n',
        f'<p class="description">{e(first(chan, "description", "tagline", "subtitle"))}</p>\n',
        f'<nav><a href="{e(home)}">ホーム</a> | <a href="{e(source)}">RSS</a></nav>\n</header>\n',
    ]
    for en in entries:
        raw_date = first(en, *DATE_TAGS)
        d = parse_date(raw_date)
        out.append(
            f'<article>\n<h2><a href="{e(link_of(en))}">{e(first(en, "title"))}</a></h2>\n'
            f'<p class="date">{d.strftime("%Y年%m月%d日 %H:%M") if d else e(raw_date)}</p>\n'
            f'<div class="entry-body">\n{entry_html(en)}\n</div>\n</article>\n'
        )
    out.append(f"<footer>\n<p>{e(owner)}</p>\n</footer>\n</body>\n</html>\n")
    return home, "".join(out), max(dates) if dates else None


def legacy_pages(shared):
    """Pages from chardet's feeds (re-rendered, re-encoded) and its two real CP932 HTML pages."""
    pages, seen, skipped = [], set(), []
    for enc in CODECS:
        n = 0
        for path in sorted((shared / "data/charset_feeds" / enc).glob("*.xml")):
            raw = path.read_bytes()
            if path.name in AS_IS:  # verbatim; header label None = only its own <meta> declares it
                url, label = AS_IS[path.name]
                pages.append(dict(url=url, body=raw, enc=enc, label=label, modified=None, src=path))
                continue
            text = raw.decode(CODECS[enc])  # strict: a wrong codec fails here, never becomes U+FFFD
            meta_label = re.search(r'encoding="([^"]+)"', text).group(1)  # the blog's own label
            style = STYLES[n % 3]
            meta_tag = (
                ""
                if style == "header"
                else f'<meta charset="{meta_label}">\n'
                if (n // 3) % 2 == 0
                else f'<meta http-equiv="Content-Type" content="text/html; charset={meta_label}">\n'
            )
            feed = render_feed(text, re.search(r"Source: (\S+)", text).group(1), meta_tag)
            if feed is None or feed[0] in seen:  # unparseable, or a 2nd feed of an already-built blog
                skipped.append(
                    (
                        path.relative_to(shared).as_posix(),
                        "unparseable" if feed is None else f"same blog as an earlier feed ({feed[0]})",
                    )
                )
                continue
            home, page, modified = feed
            seen.add(home)
            n += 1
            # A character the encoding lacks (from a numeric reference in the feed) becomes &#N;.
            body = page.encode(CODECS[enc], errors="xmlcharrefreplace")
            if body.decode(CODECS[enc]) != page:  # strict decode; today every page round-trips
                print(f"note: {path.name}: characters outside {enc} written as &#N; references")
            pages.append(
                dict(
                    url=home,
                    body=body,
                    enc=enc,
                    modified=modified,
                    src=path,
                    label=None if style == "meta" else HEADER_LABELS[enc],
                )
            )
    return pages, skipped


def utf8_pages(shared):
    """The postlight fixtures, as they are. URL and date are the ones postlight's tests use."""
    root = shared / "data/html_pages_postlight"
    gold = json.loads((root / "gold.json").read_text("utf-8"))
    pages = []
    for path in sorted((root / "fixtures").glob("*.html")):
        g, body = gold.get(path.stem, {}), path.read_bytes()
        body.decode("utf-8")  # they are UTF-8, whatever a stale <meta> in some of them says
        meta_only = path.stem in META_ONLY_UTF8
        assert not meta_only or meta_charset(body).lower() == "utf-8", path
        date = g.get("date_published")
        pages.append(
            dict(
                url=g.get("url") or f"https://{path.stem}/",
                body=body,
                enc="UTF-8",
                src=path,
                label=None if meta_only else "utf-8",
                modified=dt.datetime.fromisoformat(date) if date else None,
            )
        )
    return pages


def http_date(d):
    return email.utils.format_datetime(d.astimezone(dt.timezone.utc), usegmt=True)


def write_warc(path, pages):
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True, warc_version="1.0")  # one gzip member per record
    info = writer.create_warcinfo_record(
        path.name,
        {
            "software": "jcorpus-pipeline sample/build_sample.py (warcio 1.8)",
            "format": "WARC File Format 1.0",
            "description": "Real Japanese web pages re-packed for the bundled sample: postlight/parser "
            "fixtures (UTF-8), chardet blog feeds re-rendered as HTML in their original "
            "Shift_JIS / EUC-JP / CP932 bytes, and two real CP932 pages. HTTP headers and "
            "dates are synthetic; see SOURCES.md.",
            "isPartOf": "jcorpus-pipeline sample",
        },
    )
    info.rec_headers.replace_header(
        "WARC-Record-ID", f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, path.name)}>"
    )
    info.rec_headers.replace_header("WARC-Date", BASE.strftime("%Y-%m-%dT%H:%M:%SZ"))
    writer.write_record(info)
    for i, p in enumerate(pages, 1):
        when = BASE + dt.timedelta(seconds=i)
        headers = [("Date", http_date(when)), ("Server", "nginx" if p["enc"] == "UTF-8" else "Apache")]
        if p["modified"]:
            headers.append(("Last-Modified", http_date(p["modified"])))
        headers += [
            ("Content-Type", "text/html" + (f"; charset={p['label']}" if p["label"] else "")),
            ("Content-Length", str(len(p["body"]))),
            ("Connection", "close"),
        ]
        writer.write_record(
            writer.create_warc_record(
                p["url"],
                "response",
                payload=io.BytesIO(p["body"]),
                length=len(p["body"]),
                http_headers=StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1"),
                warc_headers_dict={
                    "WARC-Type": "response",
                    "WARC-Record-ID": f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, p['url'])}>",
                    "WARC-Date": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "WARC-Target-URI": p["url"],
                    "WARC-Identified-Payload-Type": "text/html",
                },
            )
        )
    path.write_bytes(buf.getvalue())


def write_wikipedia(shared, path, articles=40, paragraphs=3):
    """One document per article: its first paragraphs (JSQuAD lists an article's paragraphs in a row)."""
    rows = (
        json.loads(line)
        for line in open(
            shared / "data/wikipedia_paragraphs_jsquad" / "jsquad_valid_wikipedia_paragraphs.jsonl",
            encoding="utf-8",
        )
    )
    docs = []
    for title, group in itertools.islice(itertools.groupby(rows, key=lambda r: r["title"]), articles):
        paras = [r["context"].removeprefix(f"{title} [SEP] ") for r in itertools.islice(group, paragraphs)]
        url = "https://ja.wikipedia.org/wiki/" + quote(title, safe="/:(),'!")
        docs.append(
            {
                "id": f"jsquad-valid:{title}",
                "url": url,
                "text": "\n".join(paras),
                "license": "CC-BY-SA-4.0",
                "osaid_class": "open",
                "redistribution": "text",
            }
        )
    # Two deliberate exact copies (same text, new id) so exact dedup has something real to drop.
    docs += [dict(docs[i], id=docs[i]["id"] + "#copy") for i in (0, 6)]
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), "utf-8")


COPIES = {  # destination in the sample -> source under shared/
    "cc_whirlwind.warc.gz": "fixtures/sources/cc_whirlwind.warc.gz",
    **{
        f"tokenizer_llm_jp_v2.2/{n}": f"data/tokenizer_llm_jp/hf__ver2.2__code10K_en20K_ja30K.ver2.2_hf_fast.b4/{n}"
        for n in ("tokenizer.json", "special_tokens_map.json", "tokenizer_config.json")
    },
    "tokenizer_llm_jp_v2.2/LICENSE": "data/tokenizer_llm_jp/LICENSE",
    "licenses/postlight-parser.LICENSE-MIT": "data/html_pages_postlight/LICENSE-MIT",
    "licenses/postlight-parser.LICENSE-APACHE-2.0": "data/html_pages_postlight/LICENSE-APACHE",
    "licenses/chardet.LICENSE-LGPL-2.1": "data/charset_feeds/LICENSE",
    "licenses/jsquad-wikipedia.LICENSE-CC-BY-SA-4.0": "data/wikipedia_paragraphs_jsquad/LICENSE",
}


def records_table(pages, shared):
    """Markdown: counts per true encoding and declaration style, then one row per record."""
    where = {}
    for p in pages:
        meta = meta_charset(p["body"])
        where[p["url"]] = "both" if p["label"] and meta else "header" if p["label"] else "meta"
    counts = collections.Counter((p["enc"], where[p["url"]]) for p in pages)
    rows = ["| true encoding | " + " | ".join(STYLES) + " | total |", "|---|---|---|---|---|"]
    for enc in ("UTF-8", *CODECS):
        n = [counts[enc, s] for s in STYLES]
        rows.append(f"| {enc} | " + " | ".join(map(str, n)) + f" | {sum(n)} |")
    rows += [
        "",
        "| # | URL | true encoding | charset declared in | HTTP label / meta label | payload bytes | from |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, p in enumerate(pages, 1):
        rows.append(
            f"| {i} | {p['url']} | {p['enc']} | {where[p['url']]} | {p['label'] or '-'} / "
            f"{meta_charset(p['body']) or '-'} | {len(p['body'])} | "
            f"{p['src'].relative_to(shared / 'data').as_posix()} |"
        )
    return "\n".join(rows) + "\n"


def write_kokkai(shared, out):
    """Two /meeting answers: the real (author-abridged) one as it is, and one rebuilt from full real
    speeches: the three meetings with the most speeches in the shared sample, in the API's shape."""
    (out / "kokkai").mkdir(exist_ok=True)
    shutil.copyfile(shared / "fixtures/sources/kokkai_meeting_hbd.json", out / "kokkai/meeting_hbd.json")
    by_meeting = collections.defaultdict(list)
    with open(shared / "data/kokkai_speeches/speeches_sample2000.jsonl", encoding="utf-8") as f:
        for line in f:
            speech = json.loads(line)
            by_meeting[speech["speech_id"].split("_")[0]].append(speech)
    chosen = sorted(by_meeting, key=lambda i: (-len(by_meeting[i]), i))[:3]
    records = []
    for issue_id in sorted(chosen):
        speeches = sorted(by_meeting[issue_id], key=lambda s: s["speech_id"])
        first = speeches[0]
        records.append(
            {
                "issueID": issue_id,
                "nameOfHouse": first["house_name"],
                "nameOfMeeting": first["meeting_name"],
                "date": first["date"],
                "meetingURL": f"https://kokkai.ndl.go.jp/txt/{issue_id}",
                "speechRecord": [
                    {
                        "speechID": s["speech_id"],
                        "speechOrder": int(s["speech_id"].split("_")[1]),
                        "speakerGroup": s["speaker_group"],
                        "speech": s["speech"],
                        "speechURL": s["speech_url"],
                    }
                    for s in speeches
                ],
            }
        )
    answer = {"numberOfRecords": len(records), "numberOfReturn": len(records), "startRecord": 1,
              "nextRecordPosition": None, "meetingRecord": records}  # fmt: skip
    body = json.dumps(answer, ensure_ascii=False, separators=(",", ":"))
    (out / "kokkai/meetings_rebuilt.json").write_text(body, "utf-8")


def write_egov_zip(shared, path):
    """A bulk-download-shaped ZIP (<law_revision_id>/<law_revision_id>.xml) of two real laws.
    Stored, not deflated, with fixed timestamps: the bytes must not depend on the zlib build."""
    from lxml import etree

    gyosei = shared / "data/egov_law_xml/405AC0000000088_20240401_504AC0100000052.xml"
    example = etree.parse(str(shared / "fixtures/sources/egov_v2_law_data_xml.xml"))
    revision = example.findtext("revision_info/law_revision_id").strip()
    law = etree.tostring(example.find("law_full_text/Law"), encoding="utf-8", xml_declaration=True)
    members = {gyosei.stem: gyosei.read_bytes(), revision: law}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for rev in sorted(members):
            info = zipfile.ZipInfo(f"{rev}/{rev}.xml", date_time=(2024, 11, 23, 0, 0, 0))
            z.writestr(info, members[rev])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    ap.add_argument("--out", type=Path, default=HERE, help="where to write (default: this folder)")
    args = ap.parse_args()
    shared, out = args.shared.resolve(), args.out.resolve()
    (out / "licenses").mkdir(parents=True, exist_ok=True)
    (out / "tokenizer_llm_jp_v2.2").mkdir(exist_ok=True)
    legacy, skipped = legacy_pages(shared)
    pages = sorted(utf8_pages(shared) + legacy, key=lambda p: p["url"])
    assert len({p["url"] for p in pages}) == len(pages), "record ids are uuid5(URL): URLs must be unique"
    write_warc(out / "ja_pages.warc.gz", pages)
    write_wikipedia(shared, out / "wikipedia_ja.jsonl")
    write_kokkai(shared, out)
    write_egov_zip(shared, out / "egov_laws.zip")
    for dest, src in COPIES.items():
        shutil.copyfile(shared / src, out / dest)
    # SOURCES.md is hand-written except the record table, which is regenerated between the markers.
    begin, end = "<!-- records:begin (generated by build_sample.py) -->\n", "<!-- records:end -->"
    doc = (HERE / "SOURCES.md").read_text("utf-8")
    head, rest = doc.split(begin)
    (out / "SOURCES.md").write_text(
        head + begin + records_table(pages, shared) + end + rest.split(end)[1], "utf-8"
    )
    for path, why in skipped:
        print(f"skipped {path}: {why}")
    print(f"{len(pages)} response records, {(out / 'ja_pages.warc.gz').stat().st_size} bytes -> {out}")


if __name__ == "__main__":
    main()
