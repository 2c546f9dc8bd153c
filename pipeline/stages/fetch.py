"""fetch: read every configured input (one shard per WARC or document file) and open a manifest row
for each document, with the coordinates a third party needs to obtain the same bytes again."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from manifests.schema import OSAID_CLASSES, REDISTRIBUTION, doc_id, sha256_hex
from pipeline.config import ConfigError, RightsConfig
from pipeline.stage import ShardResult, ShardSpec, Stage, transform

FETCH_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("source", pa.string()),
        ("url", pa.string()),
        ("http_status", pa.int32()),
        ("content_type", pa.string()),
        # Raw HTTP body for extract to decode; null for documents that arrive as text.
        ("payload", pa.binary()),
        ("text", pa.string()),
    ]
)
# Opt-out signals (robots, TDMRep, noai, blocklists) are checked by a later version of fetch;
# until then every row says so rather than implying a check happened.
OPTOUT_NOT_CHECKED = json.dumps({"signals": {}, "verdict": "not_checked"})


def _check_vocabulary(path: str, row: int, osaid_class: str | None, redistribution: str | None) -> None:
    """A user's file may set its own OSAID class and redistribution; only the schema's words count."""
    if osaid_class is not None and osaid_class not in OSAID_CLASSES:
        raise ValueError(
            f"{path}: row {row}: osaid_class {osaid_class!r} is not one of {', '.join(OSAID_CLASSES)}"
        )
    if redistribution is not None and redistribution not in REDISTRIBUTION:
        raise ValueError(
            f"{path}: row {row}: redistribution {redistribution!r} is not one of {', '.join(REDISTRIBUTION)}"
        )


def warc_retrieved_at(warc_date: str) -> str:
    """WARC-Date is when the crawler retrieved the bytes; normalised to ISO 8601 UTC."""
    return datetime.fromisoformat(warc_date.replace("Z", "+00:00")).astimezone(timezone.utc).isoformat()


class FetchStage(Stage):
    name = "fetch"
    input_stage = None

    def plan(self) -> list[ShardSpec]:
        inputs: list[dict[str, Any]] = []
        cc = self.config.sources.commoncrawl
        if cc.enabled:
            inputs += [{"source": "commoncrawl", "uri": u, "kind": "warc"} for u in cc.warc_urls]
        local = self.config.sources.local
        if local.enabled:
            from sources.local import is_warc_path

            inputs += [
                {"source": "local", "uri": p, "kind": "warc" if is_warc_path(p) else "documents"}
                for p in local.paths
            ]
        seen: set[str] = set()
        for item in inputs:
            item["path"] = self.config.resolve_path(item["uri"])
            if item["path"] in seen:
                raise ConfigError(f"sources: {item['uri']} is listed twice; each input must be fetched once")
            seen.add(item["path"])
        if not inputs:
            raise ConfigError("sources: no enabled source has any input")
        return [ShardSpec(index=i, inputs=item) for i, item in enumerate(inputs)]

    def _rights(self, source: str) -> RightsConfig:
        return getattr(self.config.sources, source)

    def _row(self, source: str, upstream_id: str, **fields: Any) -> dict[str, Any]:
        rights = self._rights(source)
        row = {
            "doc_id": doc_id(source, upstream_id),
            "source": source,
            "license": rights.license,
            "legal_basis": list(rights.legal_basis),
            "osaid_class": rights.osaid_class,
            "redistribution": rights.redistribution,
            "optout": OPTOUT_NOT_CHECKED,
            "decisions": [],
            "dedup_cluster_id": None,
            "dedup_cluster_size": None,
            "included": True,
            "exclusion_reason": None,
            "shard": None,
            "row": None,
            "num_tokens": None,
            "pipeline_version": self.ctx.pipeline_version,
            "config_sha256": self.ctx.config_sha256,
            "text_sha256": None,
        }
        row.update({k: v for k, v in fields.items() if v is not None})
        return row

    def process(self, shard: ShardSpec) -> ShardResult:
        item = shard.inputs
        if item["kind"] == "warc":
            docs, rows = self._fetch_warc(item)
        else:
            docs, rows = self._fetch_documents(item)
        table = pa.Table.from_pylist(docs, schema=FETCH_SCHEMA)
        bytes_in = sum(len(d["payload"] or b"") + len((d["text"] or "").encode()) for d in docs)
        return ShardResult(kept=table, rejected=[], manifest=rows, bytes_in=bytes_in)

    def _fetch_warc(self, item: dict[str, Any]) -> tuple[list[dict], list[dict]]:
        from importlib.metadata import version

        from sources.warc import iter_warc_responses

        timeout = self.config.sources.commoncrawl.timeout_seconds
        tool = transform("fetch", "warcio", version("warcio"), {"reader": "iter_warc_responses"})
        docs, rows = [], []
        for rec in iter_warc_responses(item["path"], timeout=timeout):
            locator = {
                "warc_uri": item["uri"],
                "warc_filename": os.path.basename(item["uri"].rstrip("/")),
                "crawl": rec.crawl,
                "offset": rec.offset,
                "length": rec.length,
                "record_id": rec.record_id,
                "payload_digest": rec.payload_digest,
                "digest_verified": rec.digest_verified,
                "warc_date": rec.warc_date,
            }
            row = self._row(
                item["source"],
                rec.record_id,
                source_uri=rec.target_uri,
                locator=json.dumps(locator, ensure_ascii=False, sort_keys=True),
                retrieved_at=warc_retrieved_at(rec.warc_date),
                raw_sha256=sha256_hex(rec.payload),
                transforms=[tool],
            )
            rows.append(row)
            docs.append(
                {
                    "doc_id": row["doc_id"],
                    "source": item["source"],
                    "url": rec.target_uri,
                    "http_status": rec.http_status,
                    "content_type": rec.content_type,
                    "payload": rec.payload,
                    "text": None,
                }
            )
        return docs, rows

    def _fetch_documents(self, item: dict[str, Any]) -> tuple[list[dict], list[dict]]:
        from manifests.io import filesystem
        from sources.local import iter_local_documents

        fs, path = filesystem(item["path"])
        # The user's own files carry no retrieval time; their modification time is the best record.
        mtime = fs.modified(path).astimezone(timezone.utc).isoformat()
        tool = transform("fetch", "sources.local", "1", {"reader": "iter_local_documents"})
        docs, rows = [], []
        for doc in iter_local_documents(item["path"]):
            _check_vocabulary(item["uri"], doc.line_or_row, doc.osaid_class, doc.redistribution)
            locator = {"path": item["uri"], "row": doc.line_or_row, "id": doc.upstream_id}
            row = self._row(
                item["source"],
                doc.upstream_id,
                source_uri=doc.url or f"{item['uri']}#{doc.line_or_row}",
                locator=json.dumps(locator, ensure_ascii=False, sort_keys=True),
                retrieved_at=mtime,
                raw_sha256=doc.raw_sha256,
                text_sha256=sha256_hex(doc.text),
                license=doc.license,
                osaid_class=doc.osaid_class,
                redistribution=doc.redistribution,
                transforms=[tool],
            )
            rows.append(row)
            docs.append(
                {
                    "doc_id": row["doc_id"],
                    "source": item["source"],
                    "url": doc.url,
                    "http_status": None,
                    "content_type": "text/plain; charset=utf-8",
                    "payload": None,
                    "text": doc.text,
                }
            )
        return docs, rows
