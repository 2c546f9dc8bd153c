"""Documents and manifest rows that the fetch stage's sources share: text that arrives as text
(Diet minutes, laws, the user's files), and items that could not be obtained."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pipeline.stage import decision

# FetchStage._row: (source, upstream_id, rights_of=None, **manifest columns) -> a new manifest row.
RowBuilder = Callable[..., dict[str, Any]]


def text_document(row: dict[str, Any], url: str | None, text: str) -> dict[str, Any]:
    """A fetch-shard document whose text needs no extraction."""
    return {
        "doc_id": row["doc_id"],
        "source": row["source"],
        "url": url,
        "http_status": None,
        "content_type": "text/plain; charset=utf-8",
        "http_headers": None,
        "payload": None,
        "text": text,
    }


def rejected_row(
    row_for: RowBuilder, source: str, upstream_id: str, uri: str, locator: dict, reason: str, detail: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest row and rejected entry of an item that could not be obtained: the row says
    what was asked for, so the rejection can be checked and retried."""
    row = row_for(
        source,
        upstream_id,
        source_uri=uri,
        locator=json.dumps(locator, ensure_ascii=False, sort_keys=True),
        transforms=[],
        decisions=[decision("fetch", "fetched", None, False)],
        included=False,
        exclusion_reason=f"fetch:{reason}",
    )
    entry = {"doc_id": row["doc_id"], "source": source, "reason": reason, "detail": detail, "text": None}
    return row, entry


def fetch_reason(err: Exception) -> str:
    """fetch_api_error (the API refused; its words are in the detail), fetch_<http reason>
    (fetch_http_503, fetch_timeout, ...), or fetch_bad_response (an answer that cannot be read)."""
    from sources.chat_client import ChatError
    from sources.egov import EgovError
    from sources.http_client import HttpError
    from sources.kokkai import KokkaiError

    if isinstance(err, KokkaiError | EgovError | ChatError):
        return "fetch_api_error"
    if isinstance(err, HttpError):
        return f"fetch_{err.reason}"
    return "fetch_bad_response"
