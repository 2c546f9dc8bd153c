"""Documents for training and scoring classifiers: JSONL files, Parquet shards, or a run's stage directory.

- JSONL: one object a line with ``id`` (or ``doc_id``) and ``text``; optional ``group`` (documents of
  one group stay on one side of the validation split).
- Parquet: a shard with ``doc_id`` (or ``id``) and ``text``, e.g. ``RUN/quality/part-00000.parquet``.
- A directory: its shards ``part-NNNNN.parquet`` (a stage directory of a run, manifests left out).

Each problem is a ValueError naming the file (and line), which the CLI prints as one line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from manifests.schema import sha256_hex

SHARD = re.compile(r"^part-\d{5}\.parquet$")
BATCH = 1024


@dataclass(frozen=True)
class InputDocument:
    id: str
    text: str
    group: str | None = None


def input_files(path: str) -> list[Path]:
    """The files a command-line INPUT names: itself, or a directory's shards."""
    p = Path(path)
    if p.is_dir():
        shards = sorted(f for f in p.iterdir() if SHARD.match(f.name))
        if not shards:
            raise ValueError(f"{path}: a directory with no part-NNNNN.parquet shards")
        return shards
    if not p.is_file():
        raise ValueError(f"{path}: no such file or directory")
    return [p]


def _jsonl(path: Path) -> Iterator[InputDocument]:
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{n}: not a JSON object ({exc})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{n}: not a JSON object")
            doc = row.get("id", row.get("doc_id"))
            text = row.get("text")
            if doc is None or not isinstance(text, str):
                raise ValueError(f"{path}:{n}: needs an `id` and a string `text`")
            group = row.get("group")
            yield InputDocument(str(doc), text, None if group is None else str(group))


def _parquet(path: Path) -> Iterator[InputDocument]:
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    id_column = "doc_id" if "doc_id" in names else "id" if "id" in names else None
    if id_column is None or "text" not in names:
        raise ValueError(f"{path}: a shard needs `doc_id` (or `id`) and `text` columns; it has {names}")
    for batch in pq.ParquetFile(path).iter_batches(BATCH, columns=[id_column, "text"]):
        for doc, text in zip(*batch.to_pydict().values()):
            yield InputDocument(str(doc), text or "")


def iter_documents(path: str) -> Iterator[InputDocument]:
    """Every document of one command-line INPUT, in file order, read in batches."""
    for f in input_files(path):
        yield from (_parquet(f) if f.suffix == ".parquet" else _jsonl(f))


def read_labels(path: str) -> dict[str, bool]:
    """A labels file: JSONL with `id` and `label` (positive or negative) -> {id: is positive}."""
    labels: dict[str, bool] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read labels ({exc.strerror})") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            doc, label = str(row["id"]), row["label"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f'{path}:{n}: expected {{"id": ..., "label": "positive"|"negative"}}') from None
        if label not in ("positive", "negative"):
            raise ValueError(f"{path}:{n}: label must be positive or negative, got {label!r}")
        labels[doc] = label == "positive"
    return labels


def file_record(path: Path, label: str, documents: int) -> dict[str, object]:
    """What the model's metadata says about one training file."""
    return {
        "path": str(path),
        "label": label,
        "sha256": sha256_hex(path.read_bytes()),
        "documents": documents,
    }
