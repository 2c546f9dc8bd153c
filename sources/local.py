"""A user's own documents: JSON Lines or Parquet files with a ``text`` field.

Optional fields ``id``, ``url``, ``license``, ``osaid_class`` and ``redistribution`` are carried
through as given; the caller fills in config defaults for the ones a file leaves out (the
vocabularies are checked where the manifest is written, not here). Paths are local or any
fsspec URL. WARC files given as local data go through :mod:`sources.warc` instead; see
:func:`is_warc_path`.

>>> import fsspec
>>> with fsspec.open("memory://doctest/tsuyu.jsonl", "w", encoding="utf-8") as f:
...     _ = f.write('{"id": "w-1", "text": "梅雨は雨季の一種である。", "license": "CC-BY-SA-4.0"}\\n')
>>> doc = next(iter_local_documents("memory://doctest/tsuyu.jsonl"))
>>> doc.upstream_id, doc.text, doc.license, doc.line_or_row
('w-1', '梅雨は雨季の一種である。', 'CC-BY-SA-4.0', 0)
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec

from sources.errors import SourceError

_JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json")
_PARQUET_SUFFIXES = (".parquet",)
_WARC_SUFFIXES = (".warc", ".warc.gz")
_OPTIONAL_STRING_FIELDS = ("url", "license", "osaid_class", "redistribution")
_PARQUET_COLUMNS = ("text", "id", *_OPTIONAL_STRING_FIELDS)
# A JSON Lines line (one document) longer than this is refused, so memory stays bounded.
MAX_LINE_BYTES = 64 << 20
# Rows per Parquet batch: bounds memory when documents are long (web pages reach 100s of KB).
_PARQUET_BATCH_ROWS = 512


@dataclass(frozen=True)
class LocalDocument:
    """One document of a user's file, with what is needed to find it there again."""

    path: str  # the path or URL as given
    line_or_row: int  # 0-based: the physical line of a JSONL file, the row of a Parquet file
    upstream_id: str  # the `id` field, else f"{basename}:{line_or_row}"
    text: str
    url: str | None
    license: str | None
    osaid_class: str | None
    redistribution: str | None
    # sha256 of the JSONL line's bytes (without its line ending), or of the text's UTF-8
    # for Parquet, where a row has no byte form of its own.
    raw_sha256: str


def is_warc_path(path: str) -> bool:
    """True for ``.warc`` and ``.warc.gz``: send those to :func:`sources.warc.iter_warc_responses`.

    >>> is_warc_path("crawl/CC-MAIN-20240517233122-20240518023122-00000.warc.gz"), is_warc_path("a.jsonl")
    (True, False)
    """
    return path.lower().endswith(_WARC_SUFFIXES)


def iter_local_documents(path: str) -> Iterator[LocalDocument]:
    """Yield the documents of a ``.jsonl``, ``.jsonl.gz``, ``.json`` (JSON Lines) or ``.parquet`` file.

    Empty lines are skipped. Anything else that is not a document (bad JSON, no string ``text``,
    an unknown extension) raises :class:`SourceError` naming the file and the line or row.
    """
    lowered = path.lower()
    if lowered.endswith(_JSONL_SUFFIXES):
        return _iter_jsonl(path)
    if lowered.endswith(_PARQUET_SUFFIXES):
        return _iter_parquet(path)
    hint = " (WARC files go through sources.warc)" if is_warc_path(path) else ""
    accepted = ", ".join(_JSONL_SUFFIXES + _PARQUET_SUFFIXES)
    raise SourceError(path, f"unknown file type, expected one of {accepted}{hint}")


def _iter_jsonl(path: str) -> Iterator[LocalDocument]:
    compression = "gzip" if path.lower().endswith(".gz") else None
    with _open(path, compression) as lines:
        index = -1
        while True:
            try:
                # Bounded: one line of a hostile file (a .jsonl.gz of zeros) could be gigabytes.
                line = lines.readline(MAX_LINE_BYTES + 1)
            except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
                raise SourceError(path, f"line {index + 2}: unreadable: {err}") from None
            if not line:
                return
            if len(line) > MAX_LINE_BYTES:
                problem = f"line {index + 2}: longer than {MAX_LINE_BYTES} bytes (not JSON Lines, or a bomb)"
                raise SourceError(path, problem)
            index += 1
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                continue
            where = f"line {index + 1}"  # messages count lines from 1, as editors do
            yield _document(path, index, _parse_json_line(path, raw, where, index == 0), raw, where)


def _parse_json_line(path: str, raw: bytes, where: str, first: bool) -> dict:
    try:
        # utf-8-sig on the first line: files saved by Windows tools often start with a BOM.
        text = raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as err:
        raise SourceError(path, f"{where}: not UTF-8 (byte {err.start}: {err.reason})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        hint = (
            " (one JSON object per line is expected, not an array)" if text.lstrip().startswith("[") else ""
        )
        raise SourceError(path, f"{where}: invalid JSON: {err.msg} at column {err.colno}{hint}") from None
    if not isinstance(obj, dict):
        raise SourceError(path, f"{where}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _iter_parquet(path: str) -> Iterator[LocalDocument]:
    import pyarrow as pa  # heavy; only Parquet input needs it
    import pyarrow.parquet as pq

    with _open(path, None) as f:
        try:
            parquet = pq.ParquetFile(f)
        except (pa.ArrowException, OSError, ValueError) as err:
            raise SourceError(path, f"not a readable Parquet file: {err}") from None
        schema = parquet.schema_arrow
        if "text" not in schema.names:
            raise SourceError(path, f"no `text` column (columns: {', '.join(schema.names)})")
        text_type = schema.field("text").type
        if not (
            pa.types.is_string(text_type)
            or pa.types.is_large_string(text_type)
            or pa.types.is_string_view(text_type)
        ):
            raise SourceError(path, f"column `text` has type {text_type}, expected a string type")
        columns = [name for name in _PARQUET_COLUMNS if name in schema.names]
        row = 0
        batches = parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=columns)
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError, ValueError) as err:
                raise SourceError(path, f"row {row}: unreadable: {err}") from None
            if batch is None:
                return
            values = {name: batch.column(name).to_pylist() for name in columns}
            for i in range(batch.num_rows):
                fields = {name: values[name][i] for name in columns}
                yield _document(path, row, fields, None, f"row {row}")  # rows count from 0
                row += 1


def _document(path: str, index: int, fields: dict, raw: bytes | None, where: str) -> LocalDocument:
    text = fields.get("text")
    if not isinstance(text, str):
        if "text" not in fields:
            found = "no `text` field"
        else:
            found = "`text` is null" if text is None else f"`text` is {type(text).__name__}"
        raise SourceError(path, f"{where}: {found}, expected a string")
    for name in _OPTIONAL_STRING_FIELDS:
        value = fields.get(name)
        if value is not None and not isinstance(value, str):
            raise SourceError(path, f"{where}: `{name}` is {type(value).__name__}, expected a string")
    upstream_id = fields.get("id")
    if upstream_id is None:
        upstream_id = f"{_basename(path)}:{index}"
    elif isinstance(upstream_id, int) and not isinstance(upstream_id, bool):
        upstream_id = str(upstream_id)  # numeric ids are common in exported tables
    elif not isinstance(upstream_id, str) or not upstream_id:
        raise SourceError(
            path, f"{where}: `id` is {upstream_id!r}, expected a non-empty string or an integer"
        )
    return LocalDocument(
        path=path,
        line_or_row=index,
        upstream_id=upstream_id,
        text=text,
        url=fields.get("url"),
        license=fields.get("license"),
        osaid_class=fields.get("osaid_class"),
        redistribution=fields.get("redistribution"),
        raw_sha256=hashlib.sha256(raw if raw is not None else text.encode("utf-8")).hexdigest(),
    )


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _open(path: str, compression: str | None):
    try:
        return fsspec.open(path, "rb", compression=compression).open()
    except FileNotFoundError:
        raise SourceError(path, "no such file") from None
    except (OSError, ValueError) as err:
        raise SourceError(path, f"cannot open: {err}") from None
