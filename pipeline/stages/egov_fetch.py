"""e-Gov laws in the fetch stage (sources/egov.py and sources/egov_bulk.py do the protocols).

``mode: api``: the law list (``/laws``, or ``law_ids`` from the config) is made once on the
driver and stored; shards are runs of ``laws_per_shard`` laws sharing one serial key (one request
at a time, ``pause_seconds`` after each), and each ``/law_data`` answer is stored as received
before its document is built, so a re-run asks only for what is missing.

``mode: bulk``: the ZIP of every law (``bulk_paths``, or ``bulk_url`` downloaded once into the run
directory); shards are runs of ``laws_per_shard`` members, read without the network.

    RUN_DIR/fetch/egov/laws.json               the API listing
    RUN_DIR/fetch/egov/bulk.zip, bulk.json     the downloaded ZIP and where/when it came from
    RUN_DIR/fetch/raw/egov/<id>.json           a /law_data answer as received
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import Any

from manifests.io import atomic_write_json, filesystem
from manifests.layout import raw_path, source_dir
from manifests.schema import sha256_hex
from pipeline.config import Config, EgovConfig
from pipeline.stage import ShardSpec, transform
from pipeline.stages.fetch_rows import RowBuilder, fetch_reason, rejected_row, text_document
from pipeline.stages.raw_store import combined_sha256, load_answers, store_answers

SERIAL_KEY = "egov"
LAW_PAGE = "https://laws.e-gov.go.jp/law/"
ATTRIBUTION = "出典: e-Gov法令検索 (デジタル庁)"


def _client(cfg: EgovConfig, *, pause_first: bool = False):
    from sources.egov import EgovClient
    from sources.http_client import HttpClient, RetryPolicy

    retry = RetryPolicy(
        max_attempts=cfg.http.max_attempts,
        backoff_base_seconds=cfg.http.backoff_base_seconds,
        backoff_max_seconds=cfg.http.backoff_max_seconds,
    )
    http = HttpClient(timeout_seconds=cfg.http.timeout_seconds, retry=retry, max_connections_per_host=1)
    return EgovClient(cfg.base_url, client=http, pause_seconds=cfg.pause_seconds, pause_first=pause_first)


def plan_shards(config: Config, run_dir: str) -> list[dict[str, Any]]:
    cfg = config.sources.egov
    step = cfg.laws_per_shard
    if cfg.mode == "api":
        laws = list_laws(config, run_dir)
        return [
            {"source": "egov", "kind": "egov_api", "laws": laws[i : i + step], "serial": SERIAL_KEY}
            for i in range(0, len(laws), step)
        ]
    from sources.egov_bulk import list_bulk_members

    inputs = []
    for uri, path in bulk_zips(config, run_dir):
        members = list_bulk_members(path)[: cfg.limit]
        inputs += [
            {
                "source": "egov",
                "kind": "egov_bulk",
                "uri": uri,
                "path": path,
                "members": members[i : i + step],
            }
            for i in range(0, len(members), step)
        ]
    return inputs


def list_laws(config: Config, run_dir: str) -> list[dict[str, Any]]:
    """Laws to fetch (id to ask for, and what the list said), from the stored listing if any."""
    cfg = config.sources.egov
    path = f"{source_dir(run_dir, 'egov')}/laws.json"
    fs, fs_path = filesystem(path)
    if not fs.exists(fs_path):
        if cfg.law_ids:
            laws = [{"id": law_id} for law_id in cfg.law_ids[: cfg.limit]]
        else:
            laws = []
            for entry in _client(cfg).iter_laws(law_type=cfg.law_types or None, asof=cfg.asof):
                # The revision id names exactly the text the list described.
                laws.append({"id": entry.law_revision_id or entry.law_id, "law_id": entry.law_id})
                if cfg.limit is not None and len(laws) >= cfg.limit:
                    break
        query = {"law_types": cfg.law_types, "asof": cfg.asof, "law_ids": cfg.law_ids, "limit": cfg.limit}
        atomic_write_json(
            path,
            {
                "listed_at": datetime.now(UTC).isoformat(),
                "base_url": cfg.base_url,
                "query": query,
                "laws": laws,
            },
        )
    with fs.open(fs_path, "rb") as f:
        return json.load(f)["laws"]


def bulk_zips(config: Config, run_dir: str) -> list[tuple[str, str]]:
    """(as configured, readable path) of each bulk ZIP; downloads ``bulk_url`` once if none is given."""
    cfg = config.sources.egov
    if cfg.bulk_paths:
        return [(uri, config.resolve_path(uri)) for uri in cfg.bulk_paths]
    from sources.egov_bulk import download_bulk

    root = source_dir(run_dir, "egov")
    fs, summary = filesystem(f"{root}/bulk.json")
    if not fs.exists(summary):
        dest = download_bulk(_client(cfg).client, cfg.bulk_url, f"{root}/bulk.zip")
        with fs.open(filesystem(dest)[1], "rb") as f:
            digest = _sha256_stream(f)
        atomic_write_json(
            f"{root}/bulk.json",
            {"url": cfg.bulk_url, "downloaded_at": datetime.now(UTC).isoformat(), "sha256": digest},
        )
    return [(cfg.bulk_url, f"{root}/bulk.zip")]


def _sha256_stream(f) -> str:
    import hashlib

    digest = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


@functools.cache
def _transform(mode: str) -> dict[str, Any]:
    return transform("fetch", "sources.law_xml", "1", {"mode": mode, "toc": "dropped", "ruby": "base text"})


def _law_row(row_for: RowBuilder, upstream_id: str, law: dict[str, Any], **fields: Any) -> dict[str, Any]:
    locator = {k: v for k, v in law.items() if v is not None}
    return row_for(
        "egov",
        upstream_id,
        locator=json.dumps(locator, ensure_ascii=False, sort_keys=True),
        attribution=f"{ATTRIBUTION} {LAW_PAGE}{law['law_id']}",
        **fields,
    )


def _revision_fields(revision_id: str | None) -> dict[str, Any]:
    from sources.egov_bulk import parse_revision_id

    try:
        _, enforced, amendment = parse_revision_id(revision_id or "")
    except ValueError:
        return {"enforcement_date": None, "amendment_law_id": None}
    return {"enforcement_date": enforced, "amendment_law_id": amendment}


def fetch_laws(
    row_for: RowBuilder, config: Config, run_dir: str, shard: ShardSpec
) -> tuple[list[dict], list[dict], list[dict]]:
    """Documents, manifest rows and rejections of a run of laws through ``/law_data``."""
    from sources.egov import parse_law_data
    from sources.errors import SourceError
    from sources.http_client import ResponsePage

    cfg = config.sources.egov
    # The listing or an earlier shard may have just asked: pause before the first request too.
    client = _client(cfg, pause_first=True)
    docs, rows, rejected = [], [], []
    for ref in shard.inputs["laws"]:
        ident = ref["id"]
        raw = raw_path(run_dir, "egov", ident)
        try:
            pages = load_answers(raw)
            if pages is None:
                # A revision id names one text; a bare law id takes the configured as-of date.
                url, body = client.law_data(ident, asof=None if "_" in ident else cfg.asof)
                pages = [ResponsePage(url, body, datetime.now(UTC).isoformat())]
                store_answers(raw, pages)
            meta, law_text = parse_law_data(pages[0].url, pages[0].body)
        except SourceError as err:
            url = f"{cfg.base_url}/law_data/{ident}"
            locator = {"law_id": ref.get("law_id", ident), "request_url": url}
            row, entry = rejected_row(row_for, "egov", ident, url, locator, fetch_reason(err), str(err))
            rows.append(row)
            rejected.append(entry)
            continue
        revision_id = meta["law_revision_id"]
        locator = {
            "law_id": meta["law_id"] or ref.get("law_id") or ident.split("_")[0],
            "law_revision_id": revision_id,
            "law_num": meta["law_num"] or law_text.law_num,
            "law_title": meta["law_title"] or law_text.title,
            **_revision_fields(revision_id),
            "asof": None if "_" in ident else cfg.asof,
            "request_url": pages[0].url,
            "raw": raw.removeprefix(run_dir.rstrip("/") + "/"),
            "articles": law_text.article_count,
        }
        row = _law_row(
            row_for,
            revision_id or ident,
            locator,
            source_uri=pages[0].url,
            retrieved_at=pages[0].retrieved_at,
            raw_sha256=combined_sha256(pages),
            text_sha256=sha256_hex(law_text.text),
            transforms=[_transform("api")],
        )
        rows.append(row)
        docs.append(text_document(row, pages[0].url, law_text.text))
    return docs, rows, rejected


def read_bulk(
    row_for: RowBuilder, config: Config, item: dict[str, Any]
) -> tuple[list[dict], list[dict], list[dict]]:
    """Documents, manifest rows and rejections of a run of members of a bulk ZIP."""
    from sources.egov_bulk import iter_bulk_laws

    cfg = config.sources.egov
    fs, path = filesystem(item["path"])
    read_at = fs.modified(path).astimezone(UTC).isoformat()
    docs, rows, rejected = [], [], []
    for member, law in iter_bulk_laws(item["path"], item["members"]):
        if isinstance(law, Exception):
            locator = {"bulk_zip": item["uri"], "member": member}
            uri = f"{item['uri']}#{member}"
            row, entry = rejected_row(row_for, "egov", member, uri, locator, fetch_reason(law), str(law))
            rows.append(row)
            rejected.append(entry)
            continue
        source_uri = f"{cfg.base_url}/law_data/{law.law_revision_id}"
        locator = {
            "law_id": law.law_id,
            "law_revision_id": law.law_revision_id,
            "law_num": law.law_num,
            "law_title": law.law_title,
            "enforcement_date": law.enforcement_date,
            "amendment_law_id": law.amendment_law_id,
            "asof": law.enforcement_date,
            "bulk_zip": item["uri"],
            "member": member,
            "articles": law.article_count,
        }
        row = _law_row(
            row_for,
            law.law_revision_id,
            locator,
            source_uri=source_uri,
            retrieved_at=read_at,
            raw_sha256=law.raw_sha256,
            text_sha256=sha256_hex(law.text),
            transforms=[_transform("bulk")],
        )
        rows.append(row)
        docs.append(text_document(row, source_uri, law.text))
    return docs, rows, rejected
