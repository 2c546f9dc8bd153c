"""API answers kept in the run directory as received, one file per upstream item.

Written before the documents are built from them, so a re-run of a shard that died part way asks
the API only for what is not stored yet (the Diet minutes API asks for a pause of seconds per
request), and an auditor can check every raw_sha256 against the bytes. A file is written
atomically, so one that exists is complete. Bodies are UTF-8 text (JSON or XML), kept as strings
so the file stays readable; the recorded SHA-256 is of the bytes as received.
"""

from __future__ import annotations

import json

from manifests.io import atomic_write_bytes, filesystem
from manifests.schema import sha256_hex
from sources.http_client import ResponsePage


def store_answers(path: str, pages: list[ResponsePage]) -> None:
    answers = [
        {"url": p.url, "retrieved_at": p.retrieved_at, "sha256": p.sha256, "body": p.body.decode("utf-8")}
        for p in pages
    ]
    atomic_write_bytes(path, json.dumps({"answers": answers}, ensure_ascii=False).encode("utf-8"))


def load_answers(path: str) -> list[ResponsePage] | None:
    """The stored answers, or None if nothing is stored. A body that no longer matches its
    recorded SHA-256 is an error naming the file: the store was altered."""
    fs, fs_path = filesystem(path)
    if not fs.exists(fs_path):
        return None
    with fs.open(fs_path, "rb") as f:
        answers = json.loads(f.read().decode("utf-8"))["answers"]
    pages = [ResponsePage(a["url"], a["body"].encode("utf-8"), a["retrieved_at"]) for a in answers]
    for answer, page in zip(answers, pages, strict=True):
        if page.sha256 != answer["sha256"]:
            raise ValueError(f"{path}: the stored answer for {answer['url']} does not match its sha256")
    return pages


def combined_sha256(pages: list[ResponsePage]) -> str:
    """One answer: its SHA-256. Several (an item paged over answers): that of the bodies in order."""
    if len(pages) == 1:
        return pages[0].sha256
    return sha256_hex(b"".join(p.body for p in pages))
