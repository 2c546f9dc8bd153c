"""Which Common Crawl records to fetch: query the CDX server or read the columnar index.

Both indexes answer with the same thing, an :class:`IndexRecord`: where a capture sits
(``warc_filename``, ``offset``, ``length``) and what the crawler noted about it (status, MIME
types, CLD2 languages, digest). ``sources.commoncrawl_fetch`` turns records into documents.

- The CDX server (pywb, ``https://index.commoncrawl.org/CC-MAIN-YYYY-WW-index``) suits a few URL
  patterns. It is a shared service with a per-IP cap: :func:`query_cdx` pages through it one
  request at a time with a pause between requests.
- The columnar index (Parquet, ``s3://commoncrawl/cc-index/table/cc-main/warc/``) suits bulk
  selection such as "every Japanese HTML page of a crawl": :func:`select_from_columnar_index`
  pushes the filter down and reads only the columns a record needs, batch by batch.

Digests are kept in the columnar index's form, base32 SHA-1 without ``sha1:``, whichever index
they came from, so the same capture gives the same record.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sources.errors import SourceError

if TYPE_CHECKING:
    import pyarrow
    import pyarrow.dataset

    from sources.http_client import HttpClient

DEFAULT_INDEX_URL = "https://index.commoncrawl.org"
# Common Crawl's own example query selects these, on the detected MIME type.
HTML_MIME_TYPES = ["text/html", "application/xhtml+xml"]

_CRAWL_IN_FILENAME = re.compile(r"crawl-data/(CC-MAIN-\d{4}-\d{2})/")


@dataclass(frozen=True)
class IndexRecord:
    """One capture as an index describes it: enough to fetch it by byte range and check it."""

    crawl: str | None  # e.g. CC-MAIN-2024-22
    url: str
    warc_filename: str  # relative to the bucket root, e.g. crawl-data/CC-MAIN-.../x.warc.gz
    offset: int  # of the record's gzip member in the WARC file
    length: int  # of that member
    digest: str | None  # payload SHA-1, base32, without "sha1:"
    mime: str | None  # Content-Type the server sent
    mime_detected: str | None  # what the crawler detected (WARC-Identified-Payload-Type)
    status: int | None  # HTTP status of the capture
    languages: str | None  # CLD2, ISO-639-3, comma-separated, primary first: "jpn,eng"
    charset: str | None
    timestamp: str | None  # capture time, 14 digits as in CDX: 20240518015810
    redirect: str | None = None  # Location of a redirect capture

    def to_dict(self) -> dict[str, Any]:
        """Plain values, one key per field: a row of a selection table."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> IndexRecord:
        """The inverse of :meth:`to_dict`; keys that are not fields are ignored."""
        values = {f.name: row.get(f.name) for f in dataclasses.fields(cls)}
        missing = [name for name in ("url", "warc_filename", "offset", "length") if values[name] is None]
        if missing:
            raise ValueError(f"index record without {', '.join(missing)}: {dict(row)!r:.300}")
        values["offset"] = int(values["offset"])
        values["length"] = int(values["length"])
        values["status"] = None if values["status"] is None else int(values["status"])
        return cls(**values)

    @staticmethod
    def arrow_schema() -> pyarrow.Schema:
        """The Parquet schema of stored selections; explicit, so a chunk whose records all lack
        (say) a charset still gets a string column instead of a null-typed one."""
        import pyarrow as pa

        types = {"offset": pa.int64(), "length": pa.int64(), "status": pa.int16()}
        return pa.schema([(f.name, types.get(f.name, pa.string())) for f in dataclasses.fields(IndexRecord)])


# -- CDX server ------------------------------------------------------------------------------


def parse_cdxj_line(line: str, *, crawl: str | None = None) -> IndexRecord:
    """One capture from a CDX line: API output (a JSON object) or a raw index line
    (``<surt> <timestamp> {json}``, which says ``charset`` where the API says ``encoding``).

    All values in the JSON are strings. ``crawl`` defaults to the one named in the filename.

    >>> r = parse_cdxj_line('org,wikipedia,an)/wiki/escopete 20240518015810 {"url": '
    ...     '"https://an.wikipedia.org/wiki/Escopete", "status": "200", "digest": "sha1:RY7P", '
    ...     '"length": "17423", "offset": "80610731", "filename": "crawl-data/CC-MAIN-2024-22/x.warc.gz"}')
    >>> (r.crawl, r.offset, r.length, r.status, r.digest, r.timestamp)
    ('CC-MAIN-2024-22', 80610731, 17423, 200, 'RY7P', '20240518015810')
    """
    text = line.strip()
    timestamp = None
    if not text.startswith("{"):
        # Raw index line: the SURT key and the timestamp come before the JSON.
        parts = text.split(" ", 2)
        if len(parts) != 3:
            raise ValueError(f"not a CDX line: {text[:200]!r}")
        timestamp, text = parts[1], parts[2]
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not a CDX line ({err.msg}): {line.strip()[:200]!r}") from None
    if not isinstance(fields, dict):
        raise ValueError(f"not a CDX line (JSON but not an object): {line.strip()[:200]!r}")  # noqa: TRY004
    try:
        filename = fields["filename"]
        return IndexRecord(
            crawl=crawl or crawl_of_filename(filename),
            url=fields["url"],
            warc_filename=filename,
            offset=int(fields["offset"]),
            length=int(fields["length"]),
            digest=normalize_digest(fields.get("digest")),
            mime=fields.get("mime"),
            mime_detected=fields.get("mime-detected"),
            status=_int_or_none(fields.get("status")),
            languages=fields.get("languages"),
            charset=fields.get("encoding", fields.get("charset")),
            timestamp=fields.get("timestamp", timestamp),
            redirect=fields.get("redirect"),
        )
    except KeyError as err:
        raise ValueError(f"CDX line without {err.args[0]!r}: {line.strip()[:200]!r}") from None
    except (TypeError, ValueError):
        raise ValueError(f"CDX line with a non-integer offset or length: {line.strip()[:200]!r}") from None


def query_cdx(
    client: HttpClient,
    index_url: str,
    crawl: str,
    url_pattern: str,
    *,
    match_type: str | None = None,
    filters: tuple[str, ...] | list[str] = (),
    from_ts: str | None = None,
    to_ts: str | None = None,
    limit: int | None = None,
    page_size: int | None = None,
    pause_seconds: float = 1.0,
) -> Iterator[IndexRecord]:
    """Every capture of ``url_pattern`` in ``crawl``, page by page, in the server's order.

    ``index_url`` is the server root (``https://index.commoncrawl.org``; a local replay server in
    tests). Parameters follow pywb: ``match_type`` exact|prefix|host|domain, ``filters`` such as
    ``"=status:200"`` (exact), ``"~languages:jpn"`` (contains) or ``"languages:jpn"`` (a regex
    matched at the start, so: primary language), ``from_ts``/``to_ts`` up to 14 digits.
    ``limit`` stops after that many records in all. First ``showNumPages=true`` says how many
    pages; a query with no captures (HTTP 404, ``{"message": "No Captures found for: ..."}``)
    yields nothing, while any other 404 (an unknown crawl) raises ``HttpError``.

    Common Crawl asks for one request at a time and about one per second: ``pause_seconds`` is
    slept (with ``client.sleep``) before every request after the first.
    """
    endpoint = f"{index_url.rstrip('/')}/{crawl}-index"
    params: list[tuple[str, str]] = [("url", url_pattern), ("output", "json")]
    if match_type:
        params.append(("matchType", match_type))
    params += [("filter", f) for f in filters]
    if from_ts:
        params.append(("from", from_ts))
    if to_ts:
        params.append(("to", to_ts))
    if limit is not None:
        params.append(("limit", str(limit)))
    if page_size is not None:
        params.append(("pageSize", str(page_size)))

    pages_body = _cdx_get(client, f"{endpoint}?{urlencode(params + [('showNumPages', 'true')])}")
    pages = 0 if pages_body is None else _number_of_pages(endpoint, pages_body)
    yielded = 0
    for page in range(pages):
        client.sleep(pause_seconds)
        page_url = f"{endpoint}?{urlencode(params + [('page', str(page))])}"
        # A page may hold no capture although the count said it would (pywb counts index
        # blocks, not captures): the server then answers No Captures, an empty page.
        body = _cdx_get(client, page_url)
        for number, line in enumerate((body or b"").decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = parse_cdxj_line(line, crawl=crawl)
            except ValueError as err:
                raise SourceError(page_url, f"line {number}: {err}") from None
            yield record
            yielded += 1
            if limit is not None and yielded >= limit:
                return


def _cdx_get(client: HttpClient, url: str) -> bytes | None:
    """The body of a CDX answer, or None for "No Captures found"."""
    from sources.http_client import HttpError

    response = client.get(url, expect=(200, 404))
    if response.status == 200:
        return response.content
    if _is_no_captures(response.content):
        return None
    excerpt = response.content[:200].decode("utf-8", "replace")
    raise HttpError(
        url, f"HTTP 404 (not a No Captures answer): {excerpt!r}", "http_404", 404, response.attempts
    )


def _is_no_captures(body: bytes) -> bool:
    try:
        answer = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(answer, dict) and str(answer.get("message", "")).startswith("No Captures found")


def _number_of_pages(url: str, body: bytes) -> int:
    try:
        answer = json.loads(body)
        pages = answer["pages"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise SourceError(url, f"showNumPages answer is not {{'pages': N, ...}}: {body[:200]!r}") from None
    if not isinstance(pages, int) or pages < 0:
        raise SourceError(url, f"showNumPages answer has a bad page count: {pages!r}")
    return pages


# -- columnar index --------------------------------------------------------------------------

# IndexRecord field -> columnar index column (cc-index-schema-flat.json)
_COLUMN_OF_FIELD = {
    "crawl": "crawl",
    "url": "url",
    "warc_filename": "warc_filename",
    "offset": "warc_record_offset",
    "length": "warc_record_length",
    "digest": "content_digest",
    "mime": "content_mime_type",
    "mime_detected": "content_mime_detected",
    "status": "fetch_status",
    "languages": "content_languages",
    "charset": "content_charset",
    "timestamp": "fetch_time",
    "redirect": "fetch_redirect",
}
_REQUIRED_COLUMNS = ("url", "warc_filename", "warc_record_offset", "warc_record_length")


def select_from_columnar_index(
    paths: str | list[str],
    *,
    crawls: list[str] | None = None,
    languages_contain: str | None = "jpn",
    primary_language_only: bool = False,
    fetch_status: int | None = 200,
    mime_types: list[str] | None = HTML_MIME_TYPES,
    url_host_tlds: list[str] | None = None,
    limit: int | None = None,
    batch_size: int = 65536,
) -> Iterator[IndexRecord]:
    """Records of the columnar index that pass every given filter, in file order.

    ``paths``: a Parquet file, a list of files, or a hive-partitioned directory
    (``.../crawl=CC-MAIN-2024-22/subset=warc/``), local or any fsspec URL. Only ``subset=warc``
    rows are read when the index has a ``subset`` column or partition. ``languages_contain``
    keeps rows whose ``content_languages`` lists that code (``LIKE '%jpn%'``), or, with
    ``primary_language_only``, lists it first (``LIKE 'jpn%'``). ``mime_types`` is matched on
    ``content_mime_detected``, as Common Crawl's own example query does. None turns a filter off.
    Memory stays at a few batches of the needed columns, whatever the size of the index.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    scanner = columnar_index_scanner(
        paths,
        crawls=crawls,
        languages_contain=languages_contain,
        primary_language_only=primary_language_only,
        fetch_status=fetch_status,
        mime_types=mime_types,
        url_host_tlds=url_host_tlds,
        batch_size=batch_size,
    )
    field_of_column = {column: name for name, column in _COLUMN_OF_FIELD.items()}
    yielded = 0
    for batch in scanner.to_batches():
        if batch.num_rows == 0:
            continue
        columns = {}
        for column, values in zip(batch.schema.names, batch.columns):
            if column == "fetch_time":
                # Whole seconds first: Arrow's %S prints fractions for ms/us/ns timestamps.
                seconds = pa.timestamp("s", tz=getattr(values.type, "tz", None))
                values = pc.strftime(values.cast(seconds, safe=False), format="%Y%m%d%H%M%S")
            columns[field_of_column[column]] = values.to_pylist()
        for i in range(batch.num_rows):
            values = {name: column[i] for name, column in columns.items()}
            values.setdefault("crawl", None)
            values["crawl"] = values["crawl"] or crawl_of_filename(values["warc_filename"])
            yield IndexRecord(**{f.name: values.get(f.name) for f in dataclasses.fields(IndexRecord)})
            yielded += 1
            if limit is not None and yielded >= limit:
                return


def columnar_index_scanner(
    paths: str | list[str],
    *,
    crawls: list[str] | None = None,
    languages_contain: str | None = "jpn",
    primary_language_only: bool = False,
    fetch_status: int | None = 200,
    mime_types: list[str] | None = HTML_MIME_TYPES,
    url_host_tlds: list[str] | None = None,
    batch_size: int = 65536,
) -> pyarrow.dataset.Scanner:
    """The pyarrow scanner behind :func:`select_from_columnar_index`: the filter as an Arrow
    expression (partition and row-group statistics prune what cannot match) and a projection
    onto the columns an :class:`IndexRecord` needs. Useful to get Arrow batches directly."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    if primary_language_only and not languages_contain:
        raise ValueError("primary_language_only needs languages_contain (e.g. 'jpn')")
    dataset = _open_dataset(paths)
    names = set(dataset.schema.names)
    where = str(paths)[:200]

    def column(name: str) -> pc.Expression:
        if name not in names:
            raise SourceError(where, f"the columnar index has no column {name!r} to filter on")
        return pc.field(name)

    for name in _REQUIRED_COLUMNS:
        column(name)
    conditions = []
    if "subset" in names:
        # crawldiagnostics (redirects, 404s) and robotstxt share the table; their records are not pages.
        conditions.append(pc.field("subset") == "warc")
    if crawls is not None:
        conditions.append(column("crawl").isin(crawls))
    if fetch_status is not None:
        conditions.append(column("fetch_status") == fetch_status)
    if mime_types is not None:
        conditions.append(column("content_mime_detected").isin(mime_types))
    if url_host_tlds is not None:
        conditions.append(column("url_host_tld").isin(url_host_tlds))
    if languages_contain:
        languages = column("content_languages")
        if primary_language_only:
            conditions.append(pc.starts_with(languages, languages_contain))
        else:
            conditions.append(pc.match_substring(languages, languages_contain))
    condition = None
    for c in conditions:
        condition = c if condition is None else condition & c
    projection = [c for c in _COLUMN_OF_FIELD.values() if c in names]
    return ds.Scanner.from_dataset(
        dataset,
        columns=projection,
        filter=condition,
        batch_size=batch_size,
        # Fewer batches and files read ahead than pyarrow's defaults (16 and 4): one crawl's
        # index is about 300 GB, and the consumer (a Python loop) is slower than the reads.
        batch_readahead=4,
        fragment_readahead=2,
    )


def _open_dataset(paths: str | list[str]) -> pyarrow.dataset.Dataset:
    import fsspec
    import pyarrow.dataset as ds
    import pyarrow.fs

    given = [paths] if isinstance(paths, str) else list(paths)
    if not given:
        raise ValueError("no columnar index paths given")
    filesystem, _ = fsspec.core.url_to_fs(given[0])
    local = "file" in _protocols(filesystem)
    files = []
    for path in given:
        fs, fs_path = fsspec.core.url_to_fs(path)
        if type(fs) is not type(filesystem):
            raise ValueError(f"columnar index paths on different filesystems: {given[0]!r}, {path!r}")
        if fs_path.endswith(".parquet"):
            # A file is taken as named: asking a remote store (HTTPS above all, where "is it a
            # directory?" means downloading it) about hundreds of files would cost more than the query.
            if local and not fs.exists(fs_path):
                raise SourceError(path, "no such columnar index file")
            files.append(fs_path)
        elif fs.isdir(fs_path):
            # Sorted, so the selection comes out in the same order on every run.
            found = sorted(p for p in fs.find(fs_path) if p.endswith(".parquet"))
            if not found:
                raise SourceError(path, "no .parquet files under this directory")
            files += found
        else:
            raise SourceError(path, "no such columnar index directory (files must end in .parquet)")
    # pyarrow's own local filesystem reads without a Python layer in between.
    arrow_fs = None if local else pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(filesystem))
    # "hive" reads crawl=.../subset=... from the paths, as in the bucket; files holding those
    # columns themselves (an export) work as well.
    return ds.dataset(files, format="parquet", filesystem=arrow_fs, partitioning="hive")


def _protocols(fs) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


# -- shared helpers --------------------------------------------------------------------------


def crawl_of_filename(warc_filename: str) -> str | None:
    """``CC-MAIN-2024-22`` from ``crawl-data/CC-MAIN-2024-22/segments/...``, else None."""
    match = _CRAWL_IN_FILENAME.search(warc_filename or "")
    return match.group(1) if match else None


def normalize_digest(digest: str | None) -> str | None:
    """The columnar index's form of a payload digest: base32 SHA-1 without ``sha1:``.

    >>> normalize_digest("sha1:RY7PLBUFQNI2FFV5FTUQK72W6SNPXLQU")
    'RY7PLBUFQNI2FFV5FTUQK72W6SNPXLQU'
    """
    if not digest:
        return None
    digest = digest.strip()
    return digest[5:] if digest.lower().startswith("sha1:") else digest


def _int_or_none(value: Any) -> int | None:
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isascii() and text.isdigit() else None
