"""The takedown log (RUN_DIR/takedowns.jsonl) as the audit reads it.

`python -m pipeline takedown` appends one JSON object a line: request_id, requested_at, kind
(url | domain | doc_id), value, doc_ids (the documents it took out), mode (rewrite | mask) and
shards. The audit lists the requests in its report and flags any document still included that
one of them names, by document id, URL or domain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from filters.optout import url_key
from filters.urls import host_of
from manifests.audit_policy import in_domain
from manifests.io import filesystem

TAKEDOWN_LOG = "takedowns.jsonl"
KINDS = ("url", "domain", "doc_id")
MODES = ("rewrite", "mask")


class TakedownLogError(ValueError):
    """A takedown log the audit cannot read; the message names the file and line."""


@dataclass
class Takedowns:
    requests: list[dict] = field(default_factory=list)
    by_doc: dict[str, str] = field(default_factory=dict)  # doc id -> request id
    by_url: dict[str, str] = field(default_factory=dict)
    by_domain: list[tuple[str, str]] = field(default_factory=list)  # (domain, request id)

    def match(self, doc_id: str, url: str | None, locator: str | None = None) -> str | None:
        """The id of a request that names this document (by id, or by any URL it is known by:
        its source_uri or a URL its locator records, as the takedown command matches), or None."""
        if doc_id in self.by_doc:
            return self.by_doc[doc_id]
        if not self.by_url and not self.by_domain:
            return None
        # Imported here: manifests.takedowns (the takedown command's helpers) imports this module.
        from manifests.takedowns import document_urls

        urls = document_urls(url, locator)
        for key in map(url_key, urls):
            if key in self.by_url:
                return self.by_url[key]
        hosts = [h for h in (host_of(u) for u in urls) if h]
        return next((rid for domain, rid in self.by_domain for h in hosts if in_domain(h, domain)), None)

    def mode_of(self, request_id: str) -> str | None:
        return next((r["mode"] for r in self.requests if r["request_id"] == request_id), None)

    def summary(self) -> list[dict]:
        """What the report lists: one entry per request."""
        return [
            {
                "request_id": r["request_id"],
                "requested_at": r.get("requested_at"),
                "kind": r["kind"],
                "value": r["value"],
                "mode": r["mode"],
                "documents": len(r.get("doc_ids") or []),
                "shards": list(r.get("shards") or []),
            }
            for r in self.requests
        ]


def read_takedowns(run_dir: str) -> Takedowns:
    path = f"{run_dir.rstrip('/')}/{TAKEDOWN_LOG}"
    fs, fs_path = filesystem(path)
    log = Takedowns()
    if not fs.exists(fs_path):
        return log
    with fs.open(fs_path, "rb") as f:
        lines = f.read().decode("utf-8", "replace").splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TakedownLogError(f"{path}: line {n}: not JSON ({exc.msg})") from None
        problem = _problem(request)
        if problem:
            raise TakedownLogError(f"{path}: line {n}: {problem}")
        log.requests.append(request)
        rid = request["request_id"]
        for doc in request.get("doc_ids") or []:
            log.by_doc.setdefault(doc, rid)
        if request["kind"] == "doc_id":
            log.by_doc.setdefault(request["value"], rid)
        elif request["kind"] == "url":
            log.by_url.setdefault(url_key(request["value"]), rid)
        else:
            log.by_domain.append((request["value"].lower().lstrip("."), rid))
    return log


def _problem(request) -> str | None:
    if not isinstance(request, dict):
        return "not a JSON object"
    for key in ("request_id", "value"):
        if not isinstance(request.get(key), str) or not request[key]:
            return f"'{key}' must be a non-empty string"
    if request.get("kind") not in KINDS:
        return f"'kind' must be one of {', '.join(KINDS)}, got {request.get('kind')!r}"
    if request.get("mode", "rewrite") not in MODES:
        return f"'mode' must be one of {', '.join(MODES)}, got {request.get('mode')!r}"
    request.setdefault("mode", "rewrite")
    if not isinstance(request.get("doc_ids", []), list):
        return "'doc_ids' must be a list"
    return None
