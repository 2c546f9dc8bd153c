"""e-Gov 法令 bulk download: one ZIP holding the XML of every law, read one law at a time.

Wire facts (the 法令API v2 spec v2.1.138 description; ``shared/docs/research/sources_and_law.md`` §2):

- Every law: ``https://laws.e-gov.go.jp/bulkdownload?file_section=1&only_xml_flag=true``; one
  category: ``file_section=2&category_cd=N`` (N without zero padding); updates:
  ``file_section=3&update_date=YYYYMMDD`` (the last three months).
- The ZIP holds ``<law_revision_id>/<law_revision_id>.xml``, each a 法令標準XML document whose
  root is ``<Law>``, the same XML that ``/law_data`` returns in ``law_full_text``. It is rendered
  by :mod:`sources.law_xml`, so bulk and API laws give identical text.
- ``law_revision_id`` is ``<law_id>_<YYYYMMDD enforcement date>_<amendment_law_id>``; a law never
  amended has the amendment id ``000000000000000``. IDs are ASCII letters and digits
  (``405AC0000000088``, ``321CONSTITUTION``, ``508M60000200043``).

Reported by third parties, not checked here: the all-laws ZIP is about 320 MB (3.6 GB unpacked,
the largest law about 17 MB), is served without ``Content-Length``, and also holds a law list
``all_law_list.csv`` at the top. That CSV and any image or directory entry are not law XML, so
:func:`list_bulk_members` skips them. Without ``Content-Length`` the HTTP client cannot tell a
body cut short; the ZIP check in :func:`download_bulk` does (the central directory is at the end).

Why the standard :mod:`zipfile` and no extra library: it reads the central directory of any
seekable file object (so an fsspec file, local or remote, serves as is), opens one member as a
stream without unpacking the rest, and checks each member's CRC-32 when its end is read. A member
with a compression method it lacks (e.g. Deflate64) becomes an error for that member only.

Zip bombs: a member whose header declares more than ``max_member_bytes`` is refused before it is
opened, and the bytes are counted again while they are decompressed, so a header that lies cannot
make a member larger than the limit. (zipfile itself stops at the declared size and the CRC then
fails; the count is the guard that does not depend on that.)

Errors are :class:`SourceError` whose ``uri`` is the ZIP's path; a member's error says
``member <name>: <what is wrong>`` so that one bad law is rejected and the rest go on.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import lzma
import re
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from manifests.io import atomic_write_bytes, filesystem
from sources.errors import SourceError
from sources.http_client import HttpClient
from sources.law_xml import law_xml_to_text

DEFAULT_MAX_MEMBER_BYTES = 64 * 1024 * 1024  # the largest law is reported at ~17 MB unpacked
# The all-laws ZIP is ~320 MB; the HTTP client holds the body in memory, so bound it.
DEFAULT_MAX_DOWNLOAD_BYTES = 1024 * 1024 * 1024

_NO_AMENDMENT = "000000000000000"
# [0-9] and [0-9A-Za-z] rather than \d and \w, which would also accept full-width digits.
_REVISION_ID = re.compile(r"([0-9A-Za-z]+)_([0-9]{8})_([0-9A-Za-z]+)")


def _law_member_revision(name: str) -> str | None:
    """<rev> of a member named <rev>/<rev>.xml, possibly under a folder (a ZIP unpacked and zipped
    again often gains one); else None. Split, not a regex: a backreference pattern for this
    backtracks quadratically on crafted member names."""
    parts = name.split("/")
    if len(parts) >= 2 and parts[-2] and parts[-1] == f"{parts[-2]}.xml":
        return parts[-2]
    return None


_READ_CHUNK = 1024 * 1024
# What zipfile raises for one member's damaged data: bad header magic or CRC, a broken deflate or
# LZMA stream, data that ends early, an unsupported method, encryption. An OSError is the file's
# own I/O failing, not that law's fault, so it is not caught and ends the iteration.
_MEMBER_DATA_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    NotImplementedError,
    RuntimeError,
)


@dataclass(frozen=True)
class BulkLaw:
    """One law of a bulk ZIP, rendered. ``raw_sha256`` is the hex SHA-256 of the member's XML
    bytes as stored (unpacked, not the compressed bytes), so it can be compared with the same
    revision's XML obtained any other way."""

    member: str  # the path inside the ZIP
    law_revision_id: str
    law_id: str
    enforcement_date: str | None  # YYYY-MM-DD from the revision id; None if 00000000 or not a date
    amendment_law_id: str | None  # None when all zeros (the law as first enacted)
    law_num: str
    law_title: str
    text: str
    article_count: int
    raw_sha256: str


def parse_revision_id(revision_id: str) -> tuple[str, str | None, str | None]:
    """``<law_id>_<YYYYMMDD>_<amendment_law_id>`` -> (law_id, ``YYYY-MM-DD`` or None, amendment id
    or None). Eight digits that are not a calendar date give None; a wrong shape is a ValueError.

    >>> parse_revision_id("405AC0000000088_20240401_504AC0100000052")
    ('405AC0000000088', '2024-04-01', '504AC0100000052')
    >>> parse_revision_id("411AC0000000127_19990813_000000000000000")
    ('411AC0000000127', '1999-08-13', None)
    """
    match = _REVISION_ID.fullmatch(revision_id)
    if match is None:
        raise ValueError(f"not a law revision id (<law_id>_<YYYYMMDD>_<amendment_law_id>): {revision_id!r}")
    law_id, day, amendment = match.groups()
    return law_id, _iso_date(day), None if amendment == _NO_AMENDMENT else amendment


def list_bulk_members(path: str) -> list[str]:
    """Sorted names of the law XML members (``<rev>/<rev>.xml``) of the ZIP at ``path``."""
    with _open_zip(path) as archive:
        return _law_members(archive)


def iter_bulk_laws(
    path: str,
    members: Sequence[str] | None = None,
    *,
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
) -> Iterator[tuple[str, BulkLaw | SourceError]]:
    """``(member, law)`` for each member in the given order (every law member when None).

    A member that cannot become a law (not in the ZIP, a name that is not a revision id, damaged
    data, a failed CRC, more than ``max_member_bytes`` unpacked, malformed XML) comes as
    ``(member, SourceError)`` and the iteration goes on. A file that is not a readable ZIP raises
    SourceError at the first ``next``.
    """
    if max_member_bytes < 1:
        raise ValueError(f"max_member_bytes must be at least 1, got {max_member_bytes}")
    with _open_zip(path) as archive:
        names = _law_members(archive) if members is None else list(members)
        for member in names:
            law: BulkLaw | SourceError
            try:
                law = _read_law(path, archive, member, max_member_bytes)
            except SourceError as err:
                law = err
            yield member, law


def download_bulk(
    client: HttpClient,
    url: str,
    dest: str,
    *,
    max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
) -> str:
    """Download the ZIP at ``url`` to ``dest`` (local or fsspec) and return ``dest``.

    ``client`` retries 429/5xx and broken connections. The body is checked to be a readable ZIP
    before anything is written, and then written to a temporary sibling and renamed, so ``dest``
    is either the old file, nothing, or the whole new ZIP. A 200 answer that is not a ZIP (e.g. an
    HTML error page) is a SourceError naming ``url``.
    """
    response = client.get(url, max_body_bytes=max_bytes)
    problem = _zip_problem(response.content)
    if problem is not None:
        content_type = response.headers.get("Content-Type") or "none"
        raise SourceError(url, f"{problem} (Content-Type {content_type}, {len(response.content)} bytes)")
    atomic_write_bytes(dest, response.content)
    return dest


# -- helpers ---------------------------------------------------------------------------------


@contextmanager
def _open_zip(path: str) -> Iterator[zipfile.ZipFile]:
    fs, fs_path = filesystem(path)
    try:
        handle = fs.open(fs_path, "rb")
    except OSError as err:
        raise SourceError(path, f"cannot open: {err}") from None
    with handle:
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
            raise SourceError(path, _not_zip_problem(handle, err)) from None
        with archive:
            yield archive


def _zip_problem(data: bytes) -> str | None:
    """None if ``data`` is a ZIP whose central directory reads, else what is wrong."""
    buffer = io.BytesIO(data)
    try:
        with zipfile.ZipFile(buffer):
            return None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        return _not_zip_problem(buffer, err)


def _not_zip_problem(handle: IO[bytes], err: Exception) -> str:
    """Tell a file that is no ZIP at all from a ZIP that is cut short or damaged."""
    try:
        handle.seek(0)
        head = handle.read(32)
    except (OSError, ValueError):
        head = b""
    # Every ZIP starts with a local file header, or with the end record when it is empty.
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return f"truncated or damaged ZIP: {err}"
    if not head:
        return "not a ZIP file (it is empty)"
    return f"not a ZIP file (starts with {head!r})"


def _law_members(archive: zipfile.ZipFile) -> list[str]:
    # A set: a ZIP may repeat a name, and zipfile then reads the last entry of that name.
    names = {info.filename for info in archive.infolist() if not info.is_dir()}
    return sorted(name for name in names if _law_member_revision(name) is not None)


def _read_law(path: str, archive: zipfile.ZipFile, member: str, max_member_bytes: int) -> BulkLaw:
    def fail(problem: str) -> SourceError:
        return SourceError(path, f"member {member}: {problem}")

    revision_id = _law_member_revision(member)
    if revision_id is None:
        raise fail("not a law member (expected <law_revision_id>/<law_revision_id>.xml)")
    try:
        law_id, enforcement_date, amendment_law_id = parse_revision_id(revision_id)
    except ValueError as err:
        raise fail(str(err)) from None
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise fail("no such member in the ZIP") from None
    if info.file_size > max_member_bytes:
        raise fail(
            f"{info.file_size} bytes unpacked (per its header), over max_member_bytes={max_member_bytes}"
        )
    try:
        with archive.open(info) as stream:
            xml = _read_capped(stream, max_member_bytes)
    except _TooLarge:
        raise fail(
            f"more than max_member_bytes={max_member_bytes} bytes unpacked"
            f" although its header says {info.file_size}"
        ) from None
    except _MEMBER_DATA_ERRORS as err:
        raise fail(f"unreadable data: {err}") from None
    try:
        law = law_xml_to_text(xml)
    except SourceError as err:  # its uri is a placeholder ("law XML"); the member is the place
        raise fail(err.problem) from None
    return BulkLaw(
        member=member,
        law_revision_id=revision_id,
        law_id=law_id,
        enforcement_date=enforcement_date,
        amendment_law_id=amendment_law_id,
        law_num=law.law_num,
        law_title=law.title,
        text=law.text,
        article_count=law.article_count,
        raw_sha256=hashlib.sha256(xml).hexdigest(),
    )


class _TooLarge(Exception):
    pass


def _read_capped(stream: IO[bytes], limit: int) -> bytes:
    """Read ``stream`` to its end (where zipfile checks the CRC), or raise _TooLarge once more
    than ``limit`` bytes have come out, whatever the header said."""
    parts: list[bytes] = []
    size = 0
    while chunk := stream.read(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        parts.append(chunk)
    return b"".join(parts)


def _iso_date(yyyymmdd: str) -> str | None:
    try:
        return datetime.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:])).isoformat()
    except ValueError:
        return None  # 00000000, or a month/day that does not exist
