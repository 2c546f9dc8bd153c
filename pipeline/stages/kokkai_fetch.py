"""Diet minutes in the fetch stage (sources/kokkai.py does the protocol).

Which meetings is decided once, on the driver, with ``/meeting_list``, and stored; shards are
runs of ``meetings_per_shard`` meetings in date order that share one serial key, so only one
worker at a time talks to the API (its rule: no parallel requests, a few seconds between them).
Each meeting's ``/meeting`` answers are stored as received before its documents are built; a
shard that dies part way is redone from the stored answers and asks only for the rest.

    RUN_DIR/fetch/kokkai/meetings.json          the listing: query and (issueID, date) in order
    RUN_DIR/fetch/raw/kokkai/<issueID>.json     the meeting's answers as received

``saved_responses`` are ``/meeting`` answers saved earlier (JSON as the API served them): each file
is one shard, read without the network, with the URL that fetches the meeting again recorded.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from datetime import UTC, datetime
from typing import Any

from manifests.io import atomic_write_json, filesystem
from manifests.layout import raw_path, source_dir
from manifests.schema import sha256_hex
from pipeline.config import Config, KokkaiConfig
from pipeline.stage import ShardSpec, transform
from pipeline.stages.fetch_rows import RowBuilder, fetch_reason, rejected_row, text_document
from pipeline.stages.raw_store import combined_sha256, load_answers, store_answers

SERIAL_KEY = "kokkai"


def _client(cfg: KokkaiConfig, *, pause_first: bool):
    from sources.http_client import RetryPolicy
    from sources.kokkai import KokkaiClient

    retry = RetryPolicy(
        max_attempts=cfg.http.max_attempts,
        backoff_base_seconds=max(cfg.http.backoff_base_seconds, cfg.pause_seconds),
        backoff_max_seconds=cfg.http.backoff_max_seconds,
    )
    return KokkaiClient(
        cfg.base_url,
        pause_seconds=cfg.pause_seconds,
        pause_first=pause_first,
        timeout_seconds=cfg.http.timeout_seconds,
        retry=retry,
    )


def _listing_query(cfg: KokkaiConfig) -> dict[str, Any]:
    return {
        "from": cfg.from_,
        "until": cfg.until,
        "sessionFrom": cfg.session_from,
        "sessionTo": cfg.session_to,
        "nameOfHouse": cfg.name_of_house,
        "nameOfMeeting": cfg.name_of_meeting,
    }


def list_meetings(config: Config, run_dir: str) -> list[str]:
    """issueIDs to fetch, oldest first; asks ``/meeting_list`` only if no listing is stored."""
    cfg = config.sources.kokkai
    path = f"{source_dir(run_dir, 'kokkai')}/meetings.json"
    fs, fs_path = filesystem(path)
    if not fs.exists(fs_path):
        client = _client(cfg, pause_first=False)
        found = dict(
            client.iter_meeting_ids(
                cfg.from_,
                cfg.until,
                name_of_house=cfg.name_of_house,
                name_of_meeting=cfg.name_of_meeting,
                session_from=cfg.session_from,
                session_to=cfg.session_to,
            )
        )
        meetings = sorted(found.items(), key=lambda m: (m[1] or "", m[0]))
        atomic_write_json(
            path,
            {
                "listed_at": datetime.now(UTC).isoformat(),
                "base_url": cfg.base_url,
                "query": {k: v for k, v in _listing_query(cfg).items() if v is not None},
                "meetings": [{"issueID": i, "date": d} for i, d in meetings],
            },
        )
    with fs.open(fs_path, "rb") as f:
        return [m["issueID"] for m in json.load(f)["meetings"]]


def plan_shards(config: Config, run_dir: str) -> list[dict[str, Any]]:
    """Shard inputs: one per saved-response file, then runs of listed meetings."""
    cfg = config.sources.kokkai
    inputs: list[dict[str, Any]] = [
        {"source": "kokkai", "kind": "kokkai_saved", "uri": u, "path": config.resolve_path(u)}
        for u in cfg.saved_responses
    ]
    if any(v is not None for v in (cfg.from_, cfg.until, cfg.session_from, cfg.session_to)):
        ids = list_meetings(config, run_dir)
        step = cfg.meetings_per_shard
        inputs += [
            {"source": "kokkai", "kind": "kokkai", "issue_ids": ids[i : i + step], "serial": SERIAL_KEY}
            for i in range(0, len(ids), step)
        ]
    return inputs


@functools.cache
def _transform(documents: str, speaker_prefix: str) -> dict[str, Any]:
    from sources.kokkai import SPEAKER_PREFIX

    params = {"documents": documents, "speaker_prefix": speaker_prefix, "pattern": SPEAKER_PREFIX.pattern}
    return transform("fetch", "sources.kokkai", "1", params)


def _documents(cfg: KokkaiConfig, meeting) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(upstream id, canonical URL, text, locator) per document of a meeting."""
    from sources.kokkai import meeting_document, speech_documents

    strip = cfg.speaker_prefix == "strip"
    if cfg.documents == "meeting":
        text, locator = meeting_document(meeting, strip_speaker_prefix=strip)
        return [(meeting.issue_id, meeting.meeting_url, text, locator)]
    return [
        (loc["speechID"], loc["speechURL"] or f"{meeting.meeting_url}/{loc['speechOrder']}", text, loc)
        for text, loc in speech_documents(meeting, strip_speaker_prefix=strip)
    ]


def meeting_rows(
    row_for: RowBuilder, cfg: KokkaiConfig, meeting, pages, raw: str
) -> tuple[list[dict], list[dict]]:
    """Manifest rows and documents of one meeting; ``raw`` is where its answers are kept."""
    from sources.kokkai import ATTRIBUTION

    rows, docs = [], []
    for upstream_id, url, text, locator in _documents(cfg, meeting):
        locator = locator | {"raw": raw, "raw_sha256_of": [p.sha256 for p in pages]}
        row = row_for(
            "kokkai",
            upstream_id,
            source_uri=url,
            locator=json.dumps(locator, ensure_ascii=False, sort_keys=True),
            retrieved_at=pages[-1].retrieved_at,
            raw_sha256=combined_sha256(pages),
            text_sha256=sha256_hex(text),
            attribution=f"{ATTRIBUTION} {url}",
            transforms=[_transform(cfg.documents, cfg.speaker_prefix)],
        )
        rows.append(row)
        docs.append(text_document(row, url, text))
    return rows, docs


def fetch_meetings(
    row_for: RowBuilder, config: Config, run_dir: str, shard: ShardSpec
) -> tuple[list[dict], list[dict], list[dict]]:
    """Documents, manifest rows and rejections of a run of listed meetings."""
    from sources.errors import SourceError
    from sources.kokkai import meeting_from_pages

    cfg = config.sources.kokkai
    client = _client(cfg, pause_first=True)
    docs, rows, rejected = [], [], []
    failed_in_a_row = 0
    for issue_id in shard.inputs["issue_ids"]:
        raw = raw_path(run_dir, "kokkai", issue_id)
        pages = load_answers(raw)
        try:
            if pages is None:
                pages = client.fetch_meeting_pages(issue_id)
                store_answers(raw, pages)
            meeting = meeting_from_pages(issue_id, pages)
        except SourceError as err:
            failed_in_a_row += 1
            if failed_in_a_row >= cfg.max_consecutive_failures:
                raise SourceError(
                    cfg.base_url, f"{failed_in_a_row} meetings in a row could not be fetched; last: {err}"
                ) from err
            refetch = client.build_url("meeting", {"issueID": issue_id, "maximumRecords": 1})
            locator = {"issueID": issue_id, "request_url": refetch}
            row, entry = rejected_row(
                row_for, "kokkai", issue_id, refetch, locator, fetch_reason(err), str(err)
            )
            rows.append(row)
            rejected.append(entry)
            continue
        failed_in_a_row = 0
        meeting_rows_, meeting_docs = meeting_rows(row_for, cfg, meeting, pages, _relative(raw, run_dir))
        rows += meeting_rows_
        docs += meeting_docs
    return docs, rows, rejected


def read_saved(row_for: RowBuilder, config: Config, item: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """Documents and manifest rows of a saved ``/meeting`` answer (every meeting in it)."""
    from sources.http_client import ResponsePage
    from sources.kokkai import KokkaiClient, meeting_from_pages, parse_response

    cfg = config.sources.kokkai
    fs, path = filesystem(item["path"])
    with fs.open(path, "rb") as f:
        body = f.read()
    saved_at = fs.modified(path).astimezone(UTC).isoformat()
    page = ResponsePage(item["uri"], body, saved_at)
    refetch_client = KokkaiClient(cfg.base_url)
    docs, rows = [], []
    for record in parse_response(page).get("meetingRecord") or ():
        issue_id = record.get("issueID")
        meeting = meeting_from_pages(issue_id, [page])
        refetch = refetch_client.build_url("meeting", {"issueID": issue_id, "maximumRecords": 1})
        meeting = dataclasses.replace(meeting, request_urls=(refetch,))
        meeting_rows_, meeting_docs = meeting_rows(row_for, cfg, meeting, [page], item["uri"])
        rows += meeting_rows_
        docs += meeting_docs
    return docs, rows


def _relative(path: str, run_dir: str) -> str:
    prefix = run_dir.rstrip("/") + "/"
    return path.removeprefix(prefix)
