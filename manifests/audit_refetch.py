"""Re-obtainability: fetch a seeded random sample of included documents again from their locators
and compare the bytes with the manifest's raw_sha256.

The clients are the sources' own (sources/), pointed at the endpoints of the run's
config.resolved.yaml, so a run made against local replay servers is verified against them:
Common Crawl and other WARC records by byte range (fetch_record, or a seek for a local file),
Diet minutes through /meeting, e-Gov laws through /law_data or the bulk ZIP member, a user's
JSONL or Parquet row. A document whose bytes differ is a `mismatch` (a violation of the data);
one that cannot be obtained is `unreachable` (reported, not a violation: sites go away);
synthetic text is `not_refetchable` (a third party regenerates it from its locator instead).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

STATUSES = ("match", "mismatch", "unreachable", "not_refetchable")
# Failures of getting the bytes, as opposed to getting other bytes.
_UNREACHABLE_REASONS = ("http_", "timeout", "connection", "truncated_body", "bad_request", "too_large")


def choose(total: int, n: int, seed: int) -> list[int]:
    """Positions of `n` of `total` included documents, the same for the same seed.

    >>> choose(10, 3, seed=7) == choose(10, 3, seed=7), len(choose(2, 5, seed=0))
    (True, 2)
    """
    return sorted(random.Random(seed).sample(range(total), min(n, total)))


class Refetcher:
    """Fetches documents again with the endpoints of one run's resolved config."""

    def __init__(self, config: dict[str, Any], base_dir: str | None, timeout_seconds: float = 30.0):
        self.sources = (config or {}).get("sources") or {}
        self.base_dir = base_dir
        self.timeout = timeout_seconds
        self._http = None

    def check(self, row: dict[str, Any]) -> dict[str, Any]:
        """{doc_id, source, source_uri, shard, row, status, detail, expected, found} for one document."""
        result = {k: row.get(k) for k in ("doc_id", "source", "source_uri", "shard", "row")}
        result |= {"expected": row.get("raw_sha256"), "found": None}
        try:
            locator = json.loads(row.get("locator") or "{}")
            found = self._fetch(row["source"], locator)
        except _Unreachable as exc:
            return result | {"status": "unreachable", "detail": str(exc)}
        except _Mismatch as exc:
            return result | {"status": "mismatch", "detail": str(exc)}
        except _NotRefetchable as exc:
            return result | {"status": "not_refetchable", "detail": str(exc)}
        except (ValueError, KeyError, TypeError) as exc:
            return result | {"status": "unreachable", "detail": f"locator not usable: {exc}"}
        result["found"] = found
        if found == row.get("raw_sha256"):
            return result | {"status": "match", "detail": ""}
        return result | {"status": "mismatch", "detail": "the bytes obtained again have another SHA-256"}

    # -- per source --------------------------------------------------------------------------

    def _fetch(self, source: str, locator: dict[str, Any]) -> str:
        if "warc_filename" in locator:
            return self._warc(locator)
        if source == "kokkai":
            return self._kokkai(locator)
        if source == "egov":
            return self._egov(locator)
        if source == "local" and "path" in locator:
            return self._local(locator)
        if source == "synthetic":
            raise _NotRefetchable(
                "generated text: regenerate it from the generator, prompt and seed in its locator"
            )
        raise _NotRefetchable(f"no way to fetch a '{source}' document again from its locator")

    def _warc(self, locator: dict[str, Any]) -> str:
        from sources.commoncrawl_fetch import RecordFetchError, fetch_record
        from sources.commoncrawl_index import IndexRecord
        from sources.errors import SourceError
        from sources.warc import read_warc_record_at

        name, offset, length = locator["warc_filename"], int(locator["offset"]), int(locator["length"])
        data_url = (self.sources.get("commoncrawl") or {}).get("data_url") or "https://data.commoncrawl.org/"
        remote = None  # (host URL, path on it) for a range request
        if name.startswith(("http://", "https://")):
            parts = urlsplit(name)
            host = f"{parts.scheme}://{parts.netloc}"
            remote = (host, name[len(host) :])
        elif name.startswith("crawl-data/"):
            remote = (data_url, name)  # the Common Crawl index's name, relative to the data host
        if remote is not None:
            digest = (locator.get("payload_digest") or "").removeprefix("sha1:")
            record = IndexRecord(
                crawl=locator.get("crawl"), url=locator.get("target_uri") or "", warc_filename=remote[1],
                offset=offset, length=length, digest=digest, mime=None, mime_detected=None, status=None,
                languages=None, charset=None, timestamp=None,
            )  # fmt: skip
            try:
                response = fetch_record(self._client(), remote[0], record)
            except RecordFetchError as err:
                if err.reason.startswith(_UNREACHABLE_REASONS):
                    raise _Unreachable(f"{err.reason}: {err.problem}") from None
                raise _Mismatch(f"{err.reason}: {err.problem}") from None
        else:
            path = self._local_path(name)
            if not Path(path).exists() and "://" not in path:
                raise _Unreachable(f"{path}: no such file")
            try:
                response = read_warc_record_at(path, offset, length)
            except SourceError as err:
                raise _Mismatch(f"bytes {offset}+{length} of {path}: {err.problem}") from None
            if response is None:
                raise _Mismatch(f"bytes {offset}+{length} of {path} are not an HTTP response record")
        return hashlib.sha256(response.payload).hexdigest()

    def _kokkai(self, locator: dict[str, Any]) -> str:
        from sources.errors import SourceError
        from sources.http_client import HttpError, RetryPolicy
        from sources.kokkai import KokkaiClient, KokkaiError

        cfg = self.sources.get("kokkai") or {}
        pause = float(cfg.get("pause_seconds", 3.0))
        client = KokkaiClient(
            cfg.get("base_url") or "https://kokkai.ndl.go.jp/api",
            pause_seconds=pause,
            timeout_seconds=self.timeout,
            retry=RetryPolicy(max_attempts=2, backoff_base_seconds=max(pause, 0.1)),
        )
        try:
            pages = client.fetch_meeting_pages(locator["issueID"])
        except KokkaiError as err:
            raise _Unreachable(f"the API refused: {err.problem}") from None
        except HttpError as err:
            raise _Unreachable(f"{err.reason}: {err.problem}") from None
        except SourceError as err:
            raise _Mismatch(err.problem) from None
        if len(pages) == 1:  # as the fetch stage combines them (pipeline/stages/raw_store.py)
            return pages[0].sha256
        return hashlib.sha256(b"".join(p.body for p in pages)).hexdigest()

    def _egov(self, locator: dict[str, Any]) -> str:
        from sources.egov import EgovClient, EgovError
        from sources.errors import SourceError
        from sources.http_client import HttpClient, HttpError, RetryPolicy

        if locator.get("request_url"):
            cfg = self.sources.get("egov") or {}
            parts = urlsplit(locator["request_url"])
            ident = unquote(parts.path.rsplit("/law_data/", 1)[-1])
            asof = (parse_qs(parts.query).get("asof") or [None])[0]
            client = EgovClient(
                cfg.get("base_url") or "https://laws.e-gov.go.jp/api/2",
                HttpClient(
                    timeout_seconds=self.timeout,
                    retry=RetryPolicy(max_attempts=2),
                    max_connections_per_host=1,
                ),
            )
            try:
                _, body = client.law_data(ident, asof=asof)
            except (EgovError, HttpError) as err:
                raise _Unreachable(f"{getattr(err, 'reason', 'api_error')}: {err.problem}") from None
            return hashlib.sha256(body).hexdigest()
        from sources.egov_bulk import iter_bulk_laws

        path = self._local_path(locator["bulk_zip"])
        try:
            for _, law in iter_bulk_laws(path, [locator["member"]]):
                if isinstance(law, SourceError):
                    raise _Mismatch(f"{path}: {law.problem}")
                return law.raw_sha256
        except SourceError as err:
            raise _Unreachable(f"{path}: {err.problem}") from None
        raise _Unreachable(f"{path}: member {locator['member']} not found")

    def _local(self, locator: dict[str, Any]) -> str:
        from sources.errors import SourceError
        from sources.local import iter_local_documents

        path = self._local_path(locator["path"])
        try:
            for doc in iter_local_documents(path):
                if doc.line_or_row == locator.get("row") or (
                    locator.get("row") is None and doc.upstream_id == locator.get("id")
                ):
                    return doc.raw_sha256
        except SourceError as err:
            raise _Unreachable(f"{path}: {err.problem}") from None
        raise _Mismatch(f"{path}: no row {locator.get('row')} (id {locator.get('id')})")

    # -- plumbing ----------------------------------------------------------------------------

    def _local_path(self, name: str) -> str:
        """A config path as the run saw it: relative paths are relative to the config's directory."""
        if "://" in name or Path(name).is_absolute():
            return name
        if self.base_dir is None:
            raise _Unreachable(f"{name}: a relative path, and the run does not record its config directory")
        return str((Path(self.base_dir) / name).resolve())

    def _client(self):
        from sources.http_client import HttpClient, RetryPolicy

        if self._http is None:
            self._http = HttpClient(
                timeout_seconds=self.timeout, retry=RetryPolicy(max_attempts=2, backoff_base_seconds=0.5)
            )
        return self._http


class _Unreachable(Exception):
    pass


class _Mismatch(Exception):
    pass


class _NotRefetchable(Exception):
    pass
