"""Which Common Crawl records to fetch: run the configured index queries once, on the driver, and
store the selection in the run directory.

Stored, the selection is part of the run's provenance (which queries chose which records) and
makes a resumed run fetch exactly the same records without asking the index again.

    RUN_DIR/fetch/selection/records-NNNNN.parquet   IndexRecord rows, `records_per_shard` each
    RUN_DIR/fetch/selection/selection.json          the queries and counts; written last
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Iterator

import pyarrow as pa

from manifests.io import atomic_write_json, atomic_write_parquet, filesystem, read_parquet
from manifests.layout import stage_dir
from pipeline.config import CommonCrawlConfig, Config


def http_client(cc: CommonCrawlConfig):
    from sources.http_client import HttpClient, RetryPolicy

    retry = RetryPolicy(
        max_attempts=cc.http.max_attempts,
        backoff_base_seconds=cc.http.backoff_base_seconds,
        backoff_max_seconds=cc.http.backoff_max_seconds,
    )
    return HttpClient(
        timeout_seconds=cc.http.timeout_seconds,
        retry=retry,
        max_connections_per_host=cc.http.max_connections_per_host,
    )


def selection_dir(run_dir: str) -> str:
    return f"{stage_dir(run_dir, 'fetch')}/selection"


def _records(config: Config) -> Iterator[tuple[str, Any]]:
    """(query description, IndexRecord) from every configured index, in a deterministic order."""
    from sources.commoncrawl_index import query_cdx, select_from_columnar_index

    cc = config.sources.commoncrawl
    if cc.cdx.url_patterns:
        client = http_client(cc)
        for crawl in cc.cdx.crawls:
            for pattern in cc.cdx.url_patterns:
                query = f"cdx {cc.cdx.index_url} {crawl} {pattern}"
                for record in query_cdx(
                    client,
                    cc.cdx.index_url,
                    crawl,
                    pattern,
                    match_type=cc.cdx.match_type,
                    filters=tuple(cc.cdx.filters),
                    limit=cc.cdx.limit,
                    pause_seconds=cc.cdx.pause_seconds,
                ):
                    yield query, record
    if cc.columnar_index.paths:
        ci = cc.columnar_index
        paths = [config.resolve_path(p) for p in ci.paths]
        query = f"columnar {ci.paths} languages~{ci.languages_contain} status={ci.fetch_status}"
        for record in select_from_columnar_index(
            paths,
            crawls=ci.crawls or None,
            languages_contain=ci.languages_contain,
            primary_language_only=ci.primary_language_only,
            fetch_status=ci.fetch_status,
            mime_types=ci.mime_types or None,
            url_host_tlds=ci.url_host_tlds or None,
            limit=ci.limit,
        ):
            yield query, record


def select_records(config: Config, run_dir: str) -> list[str]:
    """Paths of the stored selection chunks; queries the indexes only if no selection is stored."""
    cc = config.sources.commoncrawl
    if not (cc.cdx.url_patterns or cc.columnar_index.paths):
        return []
    root = selection_dir(run_dir)
    fs, summary_path = filesystem(f"{root}/selection.json")
    if not fs.exists(summary_path):
        _write_selection(config, root)
    with fs.open(summary_path, "rb") as f:
        summary = json.load(f)
    return [f"{root}/{name}" for name in summary["chunks"]]


def _write_selection(config: Config, root: str) -> None:
    cc = config.sources.commoncrawl
    seen: set[tuple[str, int]] = set()
    chunk: list[dict[str, Any]] = []
    chunks: list[str] = []
    counts: dict[str, int] = {}
    duplicates = 0

    def flush() -> None:
        name = f"records-{len(chunks):05d}.parquet"
        atomic_write_parquet(f"{root}/{name}", pa.Table.from_pylist(chunk))
        chunks.append(name)
        chunk.clear()

    for query, record in _records(config):
        key = (record.warc_filename, record.offset)
        if key in seen:  # the same capture matched by two patterns or indexes is fetched once
            duplicates += 1
            continue
        seen.add(key)
        counts[query] = counts.get(query, 0) + 1
        chunk.append(record.to_dict())
        if len(chunk) == cc.records_per_shard:
            flush()
    if chunk:
        flush()
    atomic_write_json(
        f"{root}/selection.json",
        {
            "selected_at": datetime.now(timezone.utc).isoformat(),
            "records": sum(counts.values()),
            "duplicates_skipped": duplicates,
            "records_by_query": counts,
            "chunks": chunks,
        },
    )


def read_selection(path: str) -> list[Any]:
    from sources.commoncrawl_index import IndexRecord

    return [IndexRecord.from_dict(row) for row in read_parquet(path).to_pylist()]
