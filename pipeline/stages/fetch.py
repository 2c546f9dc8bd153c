"""fetch: read every configured input and open a manifest row for each document, with the
coordinates a third party needs to obtain the same bytes again.

Shards, in this order: one per WARC file in `sources.commoncrawl.warc_urls` (streamed whole), one
per chunk of index-selected Common Crawl records (fetched by byte range, see cc_selection.py),
one per file in `sources.local.paths`, then the Diet minutes (kokkai_fetch.py), the e-Gov laws
(egov_fetch.py) and synthetic text (synthetic_fetch.py). A record that cannot be fetched is
rejected with its reason and coordinates; the run goes on. A page from a government host
(`sources.gov_web.domains`) becomes source `gov_web`.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime, timezone
from importlib.metadata import version
from typing import Any

import pyarrow as pa

from filters.gov_terms import is_government_host
from manifests.schema import OSAID_CLASSES, REDISTRIBUTION, doc_id, new_row, sha256_hex
from pipeline.config import ConfigError, RightsConfig
from pipeline.stage import ShardResult, ShardSpec, Stage, decision, transform
from pipeline.stages import egov_fetch, kokkai_fetch, synthetic_fetch
from pipeline.stages.fetch_rows import rejected_row, text_document

FETCH_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("source", pa.string()),
        ("url", pa.string()),
        ("http_status", pa.int32()),
        ("content_type", pa.string()),
        # The response's HTTP headers as a JSON list of [name, value], kept for the opt-out check.
        ("http_headers", pa.string()),
        # Raw HTTP body for extract to decode; null for documents that arrive as text.
        ("payload", pa.binary()),
        ("text", pa.string()),
    ]
)
# Opt-out signals are evaluated in extract, where the page is decoded; until then a row says so.
OPTOUT_NOT_CHECKED = json.dumps({"verdict": "not_checked"})


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


@functools.cache
def _warc_reader_transform() -> dict[str, Any]:
    # Once per process: a package-metadata lookup and a hash per record would sit on the hot path.
    return transform("fetch", "warcio", version("warcio"), {"digest_check": True})


def warc_filename(uri: str, data_url: str) -> str:
    """A WARC's name as Common Crawl's index gives it (relative to the data host) when it lives there.

    >>> warc_filename("https://data.commoncrawl.org/crawl-data/CC-MAIN-2024-22/x.warc.gz",
    ...               "https://data.commoncrawl.org/")
    'crawl-data/CC-MAIN-2024-22/x.warc.gz'
    >>> warc_filename("../sample/cc_whirlwind.warc.gz", "https://data.commoncrawl.org/")
    '../sample/cc_whirlwind.warc.gz'
    """
    base = data_url.rstrip("/") + "/"
    return uri[len(base) :] if uri.startswith(base) else uri


class FetchStage(Stage):
    name = "fetch"
    input_stage = None

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        gov_web = self.config.sources.gov_web
        self.gov_domains = tuple(gov_web.domains) if gov_web.enabled else ()

    def plan(self) -> list[ShardSpec]:
        from pipeline.stages.cc_selection import select_records
        from sources.local import is_warc_path

        inputs: list[dict[str, Any]] = []
        cc = self.config.sources.commoncrawl
        if cc.enabled:
            inputs += [{"source": "commoncrawl", "uri": u, "kind": "warc"} for u in cc.warc_urls]
        local = self.config.sources.local
        if local.enabled:
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
        if cc.enabled:
            # Index-selected records go after the explicit WARCs and before the local files.
            selected = [
                {"source": "commoncrawl", "uri": chunk, "path": chunk, "kind": "selection"}
                for chunk in select_records(self.config, self.ctx.run_dir)
            ]
            at = len(cc.warc_urls)
            inputs[at:at] = selected
        if self.config.sources.kokkai.enabled:
            inputs += kokkai_fetch.plan_shards(self.config, self.ctx.run_dir)
        if self.config.sources.egov.enabled:
            inputs += egov_fetch.plan_shards(self.config, self.ctx.run_dir)
        if self.config.sources.synthetic.enabled:
            inputs += synthetic_fetch.plan_shards(self.config, self.ctx.run_dir)
        if not inputs:
            raise ConfigError("sources: no enabled source has any input")
        return [
            ShardSpec(index=i, inputs=item, serial=item.pop("serial", None)) for i, item in enumerate(inputs)
        ]

    def setup(self) -> None:
        from pipeline.stages.cc_selection import http_client

        self.client = http_client(self.config.sources.commoncrawl)
        if self.config.sources.synthetic.enabled:  # rejects generated text that is not Japanese
            from filters.langid import FastTextLanguageId

            self.langid = FastTextLanguageId()

    def _row(
        self, source: str, upstream_id: str, rights_of: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """A new manifest row with the rights of `rights_of` (default: the source's own)."""
        rights: RightsConfig = getattr(self.config.sources, rights_of or source)
        defaults = {
            "license": rights.license,
            "legal_basis": list(rights.legal_basis),
            "osaid_class": rights.osaid_class,
            "redistribution": rights.redistribution,
            "optout": OPTOUT_NOT_CHECKED,
        }
        # A document's own file may leave licence or class unset: then the source's default stands.
        given = {k: v for k, v in fields.items() if v is not None}
        return new_row(
            doc_id=doc_id(source, upstream_id),
            source=source,
            pipeline_version=self.ctx.pipeline_version,
            config_sha256=self.ctx.config_sha256,
            **(defaults | given),
        )

    def process(self, shard: ShardSpec) -> ShardResult:
        item = shard.inputs
        rejected: list[dict[str, Any]] = []
        kind = item["kind"]
        if kind == "warc":
            docs, rows, rejected = self._fetch_warc(item)
        elif kind == "selection":
            docs, rows, rejected = self._fetch_selection(item)
        elif kind == "kokkai":
            run_dir = self.ctx.run_dir
            docs, rows, rejected = kokkai_fetch.fetch_meetings(self._row, self.config, run_dir, shard)
        elif kind == "kokkai_saved":
            docs, rows = kokkai_fetch.read_saved(self._row, self.config, item)
        elif kind == "egov_api":
            docs, rows, rejected = egov_fetch.fetch_laws(self._row, self.config, self.ctx.run_dir, shard)
        elif kind == "synthetic":
            run_dir = self.ctx.run_dir
            docs, rows, rejected = synthetic_fetch.generate(
                self._row, self.config, run_dir, shard, self.langid
            )
        elif kind == "egov_bulk":
            docs, rows, rejected = egov_fetch.read_bulk(self._row, self.config, item)
        else:
            docs, rows = self._fetch_documents(item)
        table = pa.Table.from_pylist(docs, schema=FETCH_SCHEMA)
        bytes_in = sum(len(d["payload"] or b"") + len((d["text"] or "").encode()) for d in docs)
        return ShardResult(kept=table, rejected=rejected, manifest=rows, bytes_in=bytes_in)

    def _record_row(self, source: str, filename: str, rec, index_record=None) -> tuple[dict, dict]:
        """Manifest row and document of one fetched WARC response."""
        locator = {
            "warc_filename": filename,
            "crawl": rec.crawl,
            "offset": rec.offset,
            "length": rec.length,
            "record_id": rec.record_id,
            "target_uri": rec.target_uri,
            "warc_date": rec.warc_date,
            "payload_digest": rec.payload_digest,
            "digest_verified": rec.digest_verified,
            "http_status": rec.http_status,
        }
        if index_record is not None:
            locator["index"] = {"digest": index_record.digest, "languages": index_record.languages}
        rights_of = source
        if self.gov_domains and is_government_host(rec.target_uri, self.gov_domains):
            # A government page: its own source, with the rights of the way it came until extract
            # reads the terms it states (filters/gov_terms.py).
            locator["via"] = source
            source = "gov_web"
        row = self._row(
            source,
            f"{filename}@{rec.offset}",
            rights_of=rights_of,
            source_uri=rec.target_uri,
            locator=json.dumps(locator, ensure_ascii=False, sort_keys=True),
            retrieved_at=warc_retrieved_at(rec.warc_date),
            raw_sha256=sha256_hex(rec.payload),
            transforms=[_warc_reader_transform()],
            decisions=[decision("fetch", "payload_digest_verified", None, rec.digest_verified is not False)],
        )
        doc = {
            "doc_id": row["doc_id"],
            "source": source,
            "url": rec.target_uri,
            "http_status": rec.http_status,
            "content_type": rec.content_type,
            "http_headers": json.dumps(rec.http_headers, ensure_ascii=False),
            "payload": rec.payload,
            "text": None,
        }
        return row, doc

    def _fetch_warc(self, item: dict[str, Any]) -> tuple[list[dict], list[dict], list[dict]]:
        from sources.warc_records import WarcLimits, WarcRecordError, iter_warc_records

        cc = self.config.sources.commoncrawl
        own = getattr(self.config.sources, item["source"])  # commoncrawl or local: its own limits
        limits = WarcLimits(max_record_bytes=own.max_record_bytes, max_inflated_bytes=own.max_inflated_bytes)
        filename = warc_filename(item["uri"], cc.data_url)
        docs, rows, rejected = [], [], []
        for rec in iter_warc_records(item["path"], timeout=cc.http.timeout_seconds, limits=limits):
            if isinstance(rec, WarcRecordError):
                # A damaged or hostile record is rejected with its bytes' coordinates; the rest are read.
                locator = {"warc_filename": filename, "offset": rec.offset, "length": rec.length}
                row, entry = rejected_row(
                    self._row,
                    item["source"],
                    f"{filename}@{rec.offset}",
                    item["uri"],
                    locator,
                    f"fetch_{rec.reason}",
                    rec.problem,
                )
                rows.append(row)
                rejected.append(entry)
                continue
            row, doc = self._record_row(item["source"], filename, rec)
            rows.append(row)
            docs.append(doc)
        return docs, rows, rejected

    def _fetch_selection(self, item: dict[str, Any]) -> tuple[list[dict], list[dict], list[dict]]:
        from pipeline.stages.cc_selection import read_selection
        from sources.commoncrawl_fetch import fetch_records

        cc = self.config.sources.commoncrawl
        docs, rows, rejected = [], [], []
        records = read_selection(item["path"])
        for record, result in fetch_records(
            self.client, cc.data_url, records, concurrency=cc.http.concurrency
        ):
            if not isinstance(result, Exception):
                row, doc = self._record_row("commoncrawl", record.warc_filename, result, record)
                rows.append(row)
                docs.append(doc)
                continue
            # The record could not be obtained: it is rejected here, with what was asked for.
            locator = record.to_dict() | {"fetch_url": cc.data_url.rstrip("/") + "/" + record.warc_filename}
            upstream_id = f"{record.warc_filename}@{record.offset}"
            reason = f"fetch_{result.reason}"
            row, entry = rejected_row(
                self._row, "commoncrawl", upstream_id, record.url, locator, reason, str(result)
            )
            rows.append(row)
            rejected.append(entry)
        return docs, rows, rejected

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
            docs.append(text_document(row, doc.url, doc.text))
        return docs, rows
