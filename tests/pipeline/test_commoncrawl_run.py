"""A whole run on Common Crawl records chosen through a CDX server and a columnar index, fetched by
byte range from a local replay server (tests/conftest.py) with faults, then audited.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from sources.warc import iter_warc_responses

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample"
CRAWL = "CC-MAIN-2024-22"
SEGMENT = f"crawl-data/{CRAWL}/segments/1715971057216.39/warc"
# Paths of the shape Common Crawl uses; the files behind them are the sample's and test-made WARCs.
WHIRLWIND = f"{SEGMENT}/CC-MAIN-20240517233122-20240518023122-00000.warc.gz"
JA_PAGES = f"{SEGMENT}/CC-MAIN-20240517233122-20240518023122-00001.warc.gz"
OPTOUT = f"{SEGMENT}/CC-MAIN-20240517233122-20240518023122-00002.warc.gz"
GONE = f"{SEGMENT}/CC-MAIN-20240517233122-20240518023122-00003.warc.gz"

# Japanese Wikipedia (CC BY-SA 4.0), from sample/wikipedia_ja.jsonl, as the body of opt-out pages.
TSUYU = (
    "梅雨（つゆ、ばいう）は、北海道と小笠原諸島を除く日本、朝鮮半島南部、中国の南部から長江流域にかけての"
    "沿海部、および台湾など、東アジアの広範囲においてみられる特有の気象現象で、5月から7月にかけて来る曇りや"
    "雨の多い期間のこと。雨季の一種である。"
)


def optout_warc() -> bytes:
    """Two Japanese pages that reserve text and data mining: one by TDMRep meta, one by X-Robots-Tag."""
    pages = [
        ("https://tdm.example.jp/tsuyu", [], '<meta name="tdm-reservation" content="1">'),
        ("https://noai.example.jp/tsuyu", [("X-Robots-Tag", "noai, noimageai")], ""),
    ]
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    for url, extra, meta in pages:
        body = (
            f'<html lang="ja"><head><meta charset="utf-8">{meta}<title>梅雨とは</title></head>'
            f"<body><article><h1>梅雨</h1><p>{TSUYU}</p><p>{TSUYU}</p></article></body></html>"
        ).encode()
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))] + extra
        http = StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1")
        record = writer.create_warc_record(
            url,
            "response",
            payload=io.BytesIO(body),
            http_headers=http,
            warc_headers_dict={"WARC-Date": "2024-05-18T01:58:10Z"},
        )
        writer.write_record(record)
    return out.getvalue()


def index_rows(path: str, data: bytes, scratch: Path) -> list[dict]:
    """Columnar-index rows for every response record of a WARC served at `path`."""
    scratch.write_bytes(data)
    records = list(iter_warc_responses(str(scratch)))
    fetched_at = datetime(2024, 5, 18, 1, 58, 10, tzinfo=timezone.utc)
    return [
        {
            "url": r.target_uri,
            "warc_filename": path,
            "warc_record_offset": r.offset,
            "warc_record_length": r.length,
            "content_digest": (r.payload_digest or "").removeprefix("sha1:"),
            "content_mime_detected": "text/html",
            "content_mime_type": "text/html",
            "fetch_status": 200,
            "content_languages": "jpn",
            "fetch_time": fetched_at,
            "crawl": CRAWL,
            "subset": "warc",
        }
        for r in records
    ]


@pytest.fixture
def commoncrawl(cc_server, write_columnar_index, tmp_path):
    whirlwind = (SAMPLE / "cc_whirlwind.warc.gz").read_bytes()
    ja_pages = (SAMPLE / "ja_pages.warc.gz").read_bytes()
    optout = optout_warc()
    for path, data in ((WHIRLWIND, whirlwind), (JA_PAGES, ja_pages), (OPTOUT, optout)):
        cc_server.add_file(path, data)
    cc_server.add_cdx(
        CRAWL, (REPO / "tests/data/commoncrawl/whirlwind_cdx_api_line.jsonl").read_text().splitlines()
    )

    rows = index_rows(JA_PAGES, ja_pages, tmp_path / "ja.warc.gz")[:12]
    rows += index_rows(OPTOUT, optout, tmp_path / "optout.warc.gz")
    # A record whose WARC the data host refuses for good: it must be rejected, not stop the run.
    rows.append(dict(rows[0], url="https://gone.example.jp/", warc_filename=GONE))
    # Rows the filter must leave out: another language, a 404 capture.
    rows.append(dict(rows[1], content_languages="eng"))
    rows.append(dict(rows[2], fetch_status=404))
    index = write_columnar_index(tmp_path / "index.parquet", rows)[0]
    cc_server.fail_next("/" + GONE, 503, times=1000)
    cc_server.fail_next("/" + JA_PAGES, 429, times=1, retry_after=1)

    config = {
        "sources": {
            "local": {"enabled": False},
            "commoncrawl": {
                "enabled": True,
                "data_url": cc_server.url,
                "records_per_shard": 5,
                "cdx": {
                    "index_url": cc_server.url,
                    "crawls": [CRAWL],
                    "url_patterns": ["an.wikipedia.org/wiki/*"],
                    "pause_seconds": 0.0,
                },
                "columnar_index": {"paths": [str(index)]},
                "http": {
                    "max_attempts": 2,
                    "backoff_base_seconds": 0.05,
                    "backoff_max_seconds": 2.0,
                    "timeout_seconds": 10.0,
                },
            },
        },
        "tokenize": {"tokenizer_path": str(SAMPLE / "tokenizer_llm_jp_v2.2" / "tokenizer.json")},
    }
    path = tmp_path / "cc.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return cc_server, path, len(rows) - 2 + 1  # selected: all but the two filtered rows, plus the CDX hit


def pipeline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )


def test_index_selected_records_run_end_to_end(commoncrawl, tmp_path):
    server, config, selected = commoncrawl
    run_dir = tmp_path / "run"
    proc = pipeline("run", "--config", str(config), "--run-dir", str(run_dir))
    assert proc.returncode == 0, proc.stderr

    audit = json.loads(pipeline("audit", str(run_dir), "--format", "json").stdout)
    assert audit["ok"], audit["violations"]
    assert audit["documents_fetched"] == selected

    summary = json.loads((run_dir / "fetch" / "selection" / "selection.json").read_text())
    assert summary["records"] == selected
    fetch_rejects = pl.read_parquet(run_dir / "fetch" / "rejected" / "part-?????.parquet")
    assert fetch_rejects["reason"].to_list() == ["fetch_http_503"]
    manifest = pl.read_parquet(run_dir / "fetch" / "part-?????.manifest.parquet")
    gone = manifest.filter(pl.col("exclusion_reason") == "fetch:fetch_http_503").row(0, named=True)
    assert json.loads(gone["locator"])["warc_filename"] == GONE and gone["raw_sha256"] is None

    # The 429 was answered after its Retry-After, and the range requests asked for exact bytes.
    ja = [r for r in server.requests if r.path == "/" + JA_PAGES]
    (throttled,) = [r for r in ja if r.status == 429]
    retry = [r for r in ja if r.headers["Range"] == throttled.headers["Range"] and r.status == 206]
    assert len(retry) == 1 and retry[0].time - throttled.time >= 0.9
    assert all(r.headers.get("Range", "").startswith("bytes=") for r in ja)

    extract_rejects = pl.read_parquet(run_dir / "extract" / "rejected" / "part-?????.parquet")
    reasons = dict(zip(extract_rejects["doc_id"], extract_rejects["reason"], strict=True))
    by_url = dict(zip(manifest["source_uri"], manifest["doc_id"], strict=True))
    assert reasons[by_url["https://tdm.example.jp/tsuyu"]] == "optout_tdm_reservation"
    assert reasons[by_url["https://noai.example.jp/tsuyu"]] == "optout_noai"
    assert reasons[by_url["https://an.wikipedia.org/wiki/Escopete"]] == "not_japanese_preselect"

    extract_manifest = pl.read_parquet(run_dir / "extract" / "part-?????.manifest.parquet")
    tdm = extract_manifest.filter(pl.col("doc_id") == by_url["https://tdm.example.jp/tsuyu"]).row(
        0, named=True
    )
    signals = json.loads(tdm["optout"])["signals"]
    assert signals["tdmrep"]["effective"] == "reserved" and signals["tdmrep"]["decided_by"] == "html-meta"

    tokens = pl.read_parquet(run_dir / "tokenize" / "part-?????.parquet")
    # Real pages reach the training shards (Swallow v1 web rules keep 6 of this sample's pages).
    assert tokens.height == audit["documents_included"] >= 5
    assert set(tokens["source"]) == {"commoncrawl"}

    # A rerun is a no-op: the stored selection is reused, the index is not asked again.
    before = len(server.requests)
    again = pipeline("run", "--config", str(config), "--run-dir", str(run_dir))
    assert again.returncode == 0, again.stderr
    assert len(server.requests) == before
