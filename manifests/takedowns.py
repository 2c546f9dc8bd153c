"""Takedown requests: which included documents a request names, its id, and its line in the log.

A request names a document by id, by URL (the manifest's `source_uri`, or the URL its locator
records, e.g. a WARC record's target URI) or by domain (the host or any subdomain of it). The
request id is a hash of kind and value, so asking again for the same thing is the same request:
`python -m pipeline takedown` then finds nothing left to do (idempotent).

>>> request_id("domain", "example.jp") == request_id("domain", "example.jp")
True
>>> matches("domain", "example.jp", "d1", "https://blog.example.jp/2019/梅雨.html", "{}")
True
>>> matches("domain", "example.jp", "d1", "https://notexample.jp/", "{}")
False
"""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Any

# Reading the log is the audit's job (one parser); the takedown command only appends to it.
from filters.optout import normalise_url, url_key
from filters.urls import host_of
from manifests.audit_policy import in_domain
from manifests.audit_takedowns import TAKEDOWN_LOG

KINDS = ("url", "domain", "doc_id")
MODES = ("rewrite", "mask")
REASON_PREFIX = "takedown:"
# Locator keys that hold the URL a document was read from (commoncrawl/local WARC records,
# Diet meetings); the source_uri is checked first.
LOCATOR_URL_KEYS = ("target_uri", "url", "meetingURL")


class TakedownRequestError(ValueError):
    """A request that cannot be carried out as given; the message says what is wrong."""


def request_id(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}\x00{value}".encode()).hexdigest()[:16]


def exclusion_reason(rid: str) -> str:
    return f"{REASON_PREFIX}{rid}"


def normalise_value(kind: str, value: str) -> str:
    """The value as matched: a domain in lower case without dots at its ends; a URL in
    `filters.optout.url_key`'s form (host case, default port, trailing slash, fragment and the
    percent-encoding of a Japanese path do not matter: the extract stage's takedown list matches
    the same way); a document id as given."""
    if kind not in KINDS:
        raise TakedownRequestError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    value = value.strip()
    if not value:
        raise TakedownRequestError(f"--{kind.replace('_', '-')}: empty value")
    if kind == "domain":
        domain = value.lower().strip(".")
        if "/" in domain or ":" in domain or " " in domain or not domain:
            raise TakedownRequestError(
                f"--domain {value!r}: give a host name such as example.jp (not a URL); "
                "its subdomains are included"
            )
        return domain
    if kind == "url":
        canonical = normalise_url(value) if "://" in value else None  # url_key's form of a URL
        if canonical is None:
            raise TakedownRequestError(f"--url {value!r}: not an absolute URL (scheme://host/path)")
        return canonical
    return value


def document_urls(source_uri: str | None, locator: str | None) -> list[str]:
    """The URLs a document is known by: its source_uri, then any URL its locator records."""
    urls = [source_uri] if source_uri else []
    try:
        loc = json.loads(locator or "{}")
    except json.JSONDecodeError:
        return urls
    if isinstance(loc, dict):
        urls += [loc[k] for k in LOCATOR_URL_KEYS if isinstance(loc.get(k), str) and loc[k] not in urls]
    return urls


def matches(kind: str, value: str, doc_id: str, source_uri: str | None, locator: str | None) -> bool:
    """Whether a document is named by the request (`value` already normalised)."""
    if kind == "doc_id":
        return doc_id == value
    if kind == "url":
        return any(url_key(u) == value for u in document_urls(source_uri, locator))
    hosts = (host_of(u) for u in document_urls(source_uri, locator))
    return any(h and in_domain(h, value) for h in hosts)


def log_entry(
    rid: str,
    kind: str,
    value: str,
    reason: str | None,
    doc_ids: list[str],
    mode: str,
    shards: list[str],
    **extra: Any,
) -> dict[str, Any]:
    """One line of RUN_DIR/takedowns.jsonl."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    entry = {
        "request_id": rid,
        "requested_at": now,
        "kind": kind,
        "value": value,
        "reason": reason,
        "doc_ids": sorted(doc_ids),
        "mode": mode,
        "shards": sorted(shards),
    }
    return entry | extra


def append_line(existing: bytes, entry: dict[str, Any]) -> bytes:
    """The log's bytes with `entry` as a new last line (a missing final newline is added first)."""
    if existing and not existing.endswith(b"\n"):
        existing += b"\n"
    return existing + json.dumps(entry, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"


def log_path(run_dir: str) -> str:
    return f"{run_dir.rstrip('/')}/{TAKEDOWN_LOG}"
