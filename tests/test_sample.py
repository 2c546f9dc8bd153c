"""The bundled sample in sample/: the builder is its only origin, and ja_pages.warc.gz is sound."""

import gzip
import io
import json
import re
import subprocess
import sys
import uuid
import zlib
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample"
SHARED = REPO.parent / "shared"
WARC = SAMPLE / "ja_pages.warc.gz"
BUILT_BY_HAND = {"build_sample.py"}  # in sample/ but not an output of the builder
# How browsers (WHATWG Encoding) decode the labels used: every Shift_JIS label means CP932.
CODECS = {
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "euc-jp": "euc_jp",
    "utf-8": "utf-8",
}
PRESCAN = [
    rb"<meta\s+charset\s*=\s*[\"']?([\w.:-]+)",
    rb"<meta\s[^>]*\bcontent\s*=\s*[\"'][^\"'>]*charset\s*=\s*([\w.:-]+)",
]
HIRAGANA = re.compile("[\u3041-\u309f]")


def responses():
    """(record headers, HTTP headers, payload) of every response record, in file order."""
    with open(WARC, "rb") as f:
        for rec in ArchiveIterator(f, check_digests="raise"):
            if rec.rec_type == "response":
                yield rec.rec_headers, rec.http_headers, rec.content_stream().read()


def declared_charsets(http_headers, body):
    header = re.search(r"charset=([\w.:-]+)", http_headers.get_header("Content-Type"))
    hits = [m for p in PRESCAN for m in [re.search(p, body[:1024], re.I)] if m]
    meta = min(hits, key=lambda m: m.start()) if hits else None
    return header and header.group(1), meta and meta.group(1).decode()


def files(root):
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    } - BUILT_BY_HAND


def test_builder_reproduces_committed_sample_byte_for_byte(tmp_path):
    if not (SHARED / "data" / "charset_feeds").is_dir():
        pytest.skip(f"the shared data folder is not at {SHARED} (../shared beside the repo)")
    built = subprocess.run(
        [sys.executable, str(SAMPLE / "build_sample.py"), "--shared", str(SHARED), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    assert files(tmp_path) == files(SAMPLE)
    differ = [
        name
        for name in sorted(files(SAMPLE))
        if (tmp_path / name).read_bytes() != (SAMPLE / name).read_bytes()
    ]
    assert not differ, f"committed sample files differ from a fresh build: {differ}"


def test_warc_starts_with_warcinfo_and_ids_are_uuid5_of_the_url():
    with open(WARC, "rb") as f:
        first = next(iter(ArchiveIterator(f)))
        assert first.rec_type == "warcinfo"
        assert b"software: " in first.content_stream().read()
    urls = []
    for rec_headers, _, _ in responses():
        url = rec_headers.get_header("WARC-Target-URI")
        assert rec_headers.get_header("WARC-Record-ID") == f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, url)}>"
        assert rec_headers.get_header("WARC-Identified-Payload-Type") == "text/html"
        urls.append(url)
    assert urls == sorted(urls) and len(set(urls)) == len(urls) == 80


def test_http_content_length_matches_payload():
    for _, http_headers, body in responses():
        assert http_headers.get_statuscode() == "200"
        assert int(http_headers.get_header("Content-Length")) == len(body)


def test_legacy_pages_decode_in_their_declared_charset_and_styles_vary():
    styles, labels = set(), set()
    for rec_headers, http_headers, body in responses():
        header, meta = declared_charsets(http_headers, body)
        assert header or meta, rec_headers.get_header("WARC-Target-URI")
        label = (header or meta).lower()  # the HTTP header wins over <meta>
        if label == "utf-8":
            continue
        text = body.decode(CODECS[label])  # strict: raises on any byte the label cannot explain
        assert len(HIRAGANA.findall(text)) >= 50, rec_headers.get_header("WARC-Target-URI")
        styles.add("both" if header and meta else "header" if header else "meta")
        labels.add(label)
    assert styles == {"header", "meta", "both"}
    assert {"shift_jis", "euc-jp", "windows-31j"} <= labels


def test_three_utf8_pages_rely_on_meta_only():
    meta_only = []
    for _, http_headers, body in responses():
        header, meta = declared_charsets(http_headers, body)
        if not header and meta.lower() == "utf-8":
            meta_only.append(body)
    assert len(meta_only) == 3
    assert all(HIRAGANA.search(body.decode("utf-8")) for body in meta_only)


def test_every_record_can_be_read_back_from_its_offset():
    index = []
    with open(WARC, "rb") as f:
        records = ArchiveIterator(f)
        for rec in records:
            rid, payload = rec.rec_headers.get_header("WARC-Record-ID"), rec.content_stream().read()
            index.append((records.get_record_offset(), records.get_record_length(), rid, payload))
    size = WARC.stat().st_size
    assert index[0][0] == 0 and index[-1][0] + index[-1][1] == size
    with open(WARC, "rb") as f:
        for (offset, length, rid, payload), following in zip(index, index[1:] + [(size,)]):
            assert offset + length == following[0]  # members are contiguous
            f.seek(offset)
            member = f.read(length)
            inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
            raw = inflater.decompress(member)
            assert inflater.eof and not inflater.unused_data  # exactly one gzip member
            assert member[4:8] == b"\0\0\0\0"  # gzip mtime 0: reproducible
            rec = next(iter(ArchiveIterator(io.BytesIO(raw))))
            assert rec.rec_headers.get_header("WARC-Record-ID") == rid
            assert rec.content_stream().read() == payload
    assert gzip.decompress(WARC.read_bytes()).startswith(b"WARC/1.0\r\n")


def test_wikipedia_jsonl_has_two_exact_duplicates():
    docs = [json.loads(line) for line in (SAMPLE / "wikipedia_ja.jsonl").read_text("utf-8").splitlines()]
    assert len(docs) == 42 and len({d["id"] for d in docs}) == 42
    assert len(docs) - len({d["text"] for d in docs}) == 2
    for d in docs:
        assert list(d) == ["id", "url", "text", "license", "osaid_class", "redistribution"]
        assert d["url"].startswith("https://ja.wikipedia.org/wiki/") and d["url"].isascii()
        assert (d["license"], d["osaid_class"], d["redistribution"]) == ("CC-BY-SA-4.0", "open", "text")
        assert "[SEP]" not in d["text"] and HIRAGANA.search(d["text"])
