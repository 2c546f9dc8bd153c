"""e-Gov 法令API Version 2 (https://laws.e-gov.go.jp/api/2): the law list and law full texts.

Law text is not copyrightable (著作権法第13条), so it can be redistributed as is. For a whole
corpus, the bulk download (``/bulkdownload?file_section=1&only_xml_flag=true``, a ZIP of
``<law_revision_id>/<law_revision_id>.xml``) is kinder to the server; this client is for the law
list, for ``asof`` (a law as it stood on a date), and for updates.

- :meth:`EgovClient.iter_laws` pages ``GET /laws`` with ``limit``/``offset`` until the response's
  ``next_offset`` is null or absent (the official example has no ``next_offset`` at all).
- :meth:`EgovClient.fetch_law` gets ``GET /law_data/{id}`` and renders the law with
  :mod:`sources.law_xml`.

Why ``fetch_law`` asks for ``response_format=xml&law_full_text_format=xml`` (spec v2.1.138):
the spec marks the JSON form of the law body as 試行版 (trial; "仕様変更が発生する場合があります"),
while the XML form is the 法令標準XML that the bulk download also uses, and the spec's official
example of that exact response exists, so it is tested as served. Mixing the two formats is
allowed but then ``law_full_text`` comes back Base64-encoded. The parser still accepts every form
a server may answer with: an XML ``law_data_response``, or a JSON one whose ``law_full_text`` is
the ``{tag, attr, children}`` tree or a Base64 string of the XML.

Errors: the API answers 400/404/500 with ``{"code", "message"}`` (JSON) or
``<error_info><code/><message/></error_info>`` (XML). They become :class:`EgovError` whose
``message`` is the API's message verbatim. 500 (and 429/502/503/504) are first retried by
:class:`HttpClient`; the message of a final 500 is taken from its error excerpt, in which runs
of whitespace are collapsed.

Quirks of the official examples this parser tolerates: numbers as strings (``law_num_year`` is
``22`` in the ``/laws`` example but ``"11"`` in ``/law_data``; ``law_num_num`` is ``"016"``);
``current_revision_info.repeal_status`` is ``false`` where the enum says ``"None"``;
``amendment_law_title_kana`` is ``""`` in one example and ``null`` in another (in XML, a
whitespace-only element); ``next_offset`` is missing from the ``/laws`` example; in the JSON law
tree an empty ``attr`` is ``""`` rather than ``{}`` and the example's last ``Paragraph`` has no
``children``; the XML example is pretty-printed, so texts carry layout newlines (even inside a
``Sentence`` around ``<Ruby>``), which the renderer drops.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from lxml import etree

from sources.errors import SourceError
from sources.http_client import HttpClient, HttpError, RequestSpacing
from sources.law_xml import LawText, law_element_to_text, law_json_to_text, law_xml_to_text

DEFAULT_BASE_URL = "https://laws.e-gov.go.jp/api/2"
_ERROR_STATUSES = (400, 404)  # answered at once with an error_info body; 5xx go through retries
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


class EgovError(SourceError):
    """An error answer of the 法令API. ``message`` is the API's message verbatim, ``code`` its code
    (e.g. ``"400004"``), ``status`` the HTTP status. ``str(err)`` is ``"<url>: <message> (code …)"``."""

    def __init__(
        self,
        uri: str,
        problem: str,
        code: str | None = None,
        status: int | None = None,
        message: str | None = None,
    ) -> None:
        super().__init__(uri, problem)
        self.code = code
        self.status = status
        self.message = message if message is not None else problem

    def __reduce__(self):
        return (type(self), (self.uri, self.problem, self.code, self.status, self.message))


@dataclass(frozen=True)
class LawListEntry:
    """One row of ``/laws``: ``law_info`` plus the matched ``revision_info`` (falling back to
    ``current_revision_info`` when ``revision_info`` is absent). Missing fields are None."""

    law_id: str
    law_num: str | None
    law_title: str | None
    law_revision_id: str | None
    law_type: str | None
    promulgation_date: str | None  # YYYY-MM-DD
    law_num_year: int | None  # an int or a string in the examples; always int here
    law_title_kana: str | None
    amendment_enforcement_date: str | None
    current_revision_status: str | None
    repeal_status: str | None  # "None", "Repeal", … ; the example's `false` becomes "None"
    updated: str | None  # ISO timestamp; changes on errata, so part of a cache key


@dataclass(frozen=True)
class LawDocument:
    """A law's full text as fetched. ``asof`` is the date asked for (None: the current text);
    ``raw_sha256`` is the hex SHA-256 of the response body exactly as received."""

    law_id: str
    law_revision_id: str | None
    law_num: str
    law_title: str
    asof: str | None
    text: str
    request_url: str
    raw_sha256: str
    raw: bytes = field(default=b"", repr=False)  # the response body as received


class EgovClient:
    """A client for 法令API v2. Without ``client``, one polite :class:`HttpClient` (one request in
    flight to the host: the API publishes no rate limit, so stay at concurrency 1) is made.
    ``pause_seconds`` is waited between the end of one answer and the next request (the first
    too with ``pause_first``, when another client may just have asked); ``sleep`` and ``clock``
    are injectable for tests."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        client: HttpClient | None = None,
        *,
        pause_seconds: float = 0.0,
        pause_first: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client if client is not None else HttpClient(max_connections_per_host=1)
        self._spacing = RequestSpacing(pause_seconds, pause_first=pause_first, sleep=sleep, clock=clock)

    # -- /laws ---------------------------------------------------------------------------------

    def iter_laws(
        self,
        *,
        law_type: str | Sequence[str] | None = None,
        asof: str | None = None,
        limit: int = 100,
    ) -> Iterator[LawListEntry]:
        """Every law the list matches, page by page (``limit`` per request, ``offset`` from 0).

        ``law_type`` is one of Constitution, Act, CabinetOrder, ImperialOrder,
        MinisterialOrdinance, Rule, Misc, or a sequence of them; ``asof`` is ``YYYY-MM-DD``.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        types = [law_type] if isinstance(law_type, str) else list(law_type or [])
        offset = 0
        while True:
            params: list[tuple[str, Any]] = [("law_type", t) for t in types]
            if asof is not None:
                params.append(("asof", asof))
            params += [("limit", limit), ("offset", offset), ("response_format", "json")]
            url = f"{self.base_url}/laws?{urlencode(params)}"
            page = _json_object(url, self._get(url).content)
            laws = page.get("laws") or []
            if not isinstance(laws, list):
                raise EgovError(url, f"'laws' is {type(laws).__name__}, expected a list")
            for row in laws:
                yield _list_entry(url, row)
            next_offset = _as_int(page.get("next_offset"))
            if next_offset is None or not laws:
                return
            if next_offset <= offset:
                raise EgovError(url, f"next_offset {next_offset} does not move past offset {offset}")
            offset = next_offset

    # -- /law_data -----------------------------------------------------------------------------

    def law_data(self, law_id_or_revision_id: str, *, asof: str | None = None) -> tuple[str, bytes]:
        """``(request URL, body)`` of ``/law_data`` as received, for a caller that keeps the
        answer; :func:`parse_law_data` reads it."""
        params: list[tuple[str, str]] = []
        if asof is not None:
            params.append(("asof", asof))
        params += [("law_full_text_format", "xml"), ("response_format", "xml")]
        url = f"{self.base_url}/law_data/{quote(law_id_or_revision_id, safe='')}?{urlencode(params)}"
        return url, self._get(url).content

    def fetch_law(self, law_id_or_revision_id: str, *, asof: str | None = None) -> LawDocument:
        """The full text of a law (by law ID, law number or law revision ID), as of ``asof``."""
        url, content = self.law_data(law_id_or_revision_id, asof=asof)
        meta, law = parse_law_data(url, content)
        law_id = meta.get("law_id") or law_id_or_revision_id.split("_")[0]
        return LawDocument(
            law_id=law_id,
            law_revision_id=meta.get("law_revision_id"),
            law_num=meta.get("law_num") or law.law_num,
            law_title=meta.get("law_title") or law.title,
            asof=asof,
            text=law.text,
            request_url=url,
            raw_sha256=hashlib.sha256(content).hexdigest(),
            raw=content,
        )

    # -- plumbing ------------------------------------------------------------------------------

    def _get(self, url: str):
        with self._spacing:
            return self._get_now(url)

    def _get_now(self, url: str):
        try:
            response = self.client.get(url, expect=(200, *_ERROR_STATUSES))
        except HttpError as err:
            parsed = _error_info(_excerpt_after_status(err.problem)) if err.status else None
            if parsed is None:
                raise
            code, message = parsed
            raise _egov_error(url, code, message, err.status) from err
        if response.status != 200:
            parsed = _error_info(response.content.decode("utf-8", "replace"))
            if parsed is None:
                raise EgovError(
                    url, f"HTTP {response.status} without an error_info body", status=response.status
                )
            raise _egov_error(url, *parsed, response.status)
        return response


def parse_law_data(url: str, content: bytes) -> tuple[dict[str, str | None], LawText]:
    """A ``/law_data`` body (XML or JSON, see the module doc) -> (metadata, rendered law).

    The metadata keys are ``law_id, law_num, law_revision_id, law_title`` (None when absent).
    """
    if content.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        data = _json_object(url, content)
        info = _mapping(data.get("law_info"))
        revision = _mapping(data.get("revision_info"))
        full = data.get("law_full_text")
        try:
            if isinstance(full, Mapping):
                law = law_json_to_text(full)
            elif isinstance(full, str):
                law = law_xml_to_text(base64.b64decode(full, validate=True))
            else:
                raise EgovError(url, f"law_full_text is {type(full).__name__}, expected an object or Base64")
        except binascii.Error as err:
            raise EgovError(url, f"law_full_text is not Base64: {err}") from None
        except SourceError as err:
            if isinstance(err, EgovError):
                raise
            raise EgovError(url, err.problem) from None
        meta = {
            "law_id": _text(info.get("law_id")),
            "law_num": _text(info.get("law_num")),
            "law_revision_id": _text(revision.get("law_revision_id")),
            "law_title": _text(revision.get("law_title")),
        }
        return meta, law
    try:
        root = etree.fromstring(content, parser=_XML_PARSER)
    except etree.XMLSyntaxError as err:
        raise EgovError(url, f"body is neither JSON nor well-formed XML: {err}") from None
    law_element = root if root.tag == "Law" else root.find("law_full_text/Law")
    if law_element is None:
        raise EgovError(url, f"no law_full_text/Law in <{root.tag}>")
    try:
        law = law_element_to_text(law_element)
    except SourceError as err:
        raise EgovError(url, err.problem) from None
    meta = {
        "law_id": _xml_field(root, "law_info/law_id"),
        "law_num": _xml_field(root, "law_info/law_num"),
        "law_revision_id": _xml_field(root, "revision_info/law_revision_id"),
        "law_title": _xml_field(root, "revision_info/law_title"),
    }
    return meta, law


# -- helpers ---------------------------------------------------------------------------------


def _list_entry(url: str, row: Any) -> LawListEntry:
    row = _mapping(row)
    info = _mapping(row.get("law_info"))
    revision = _mapping(row.get("revision_info")) or _mapping(row.get("current_revision_info"))
    law_id = _text(info.get("law_id"))
    if not law_id:
        raise EgovError(url, f"a law without law_info.law_id: {json.dumps(row, ensure_ascii=False)[:200]}")
    repeal = revision.get("repeal_status")
    return LawListEntry(
        law_id=law_id,
        law_num=_text(info.get("law_num")),
        law_title=_text(revision.get("law_title")),
        law_revision_id=_text(revision.get("law_revision_id")),
        law_type=_text(info.get("law_type")) or _text(revision.get("law_type")),
        promulgation_date=_text(info.get("promulgation_date")),
        law_num_year=_as_int(info.get("law_num_year")),
        law_title_kana=_text(revision.get("law_title_kana")),
        amendment_enforcement_date=_text(revision.get("amendment_enforcement_date")),
        current_revision_status=_text(revision.get("current_revision_status")),
        repeal_status="None" if repeal is False else _text(repeal),
        updated=_text(revision.get("updated")),
    )


def _json_object(url: str, content: bytes) -> dict[str, Any]:
    try:
        data = json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EgovError(url, f"body is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise EgovError(url, f"body is a JSON {type(data).__name__}, expected an object")
    return data


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    """A string field; None, "" and whitespace-only become None, numbers become strings."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def _as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if re.fullmatch(r"[0-9]+", text) else None


def _xml_field(root: etree._Element, path: str) -> str | None:
    element = root.find(path)
    return _text(element.text) if element is not None else None


def _error_info(text: str | None) -> tuple[str | None, str] | None:
    """(code, message) from a JSON ``{code, message}`` or an XML ``<error_info>``, else None."""
    if not text:
        return None
    text = text.strip().lstrip("\ufeff")
    if text.startswith("{"):
        end = text.rfind("}")
        try:
            data = json.loads(text[: end + 1])
        except json.JSONDecodeError:
            return None
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return _text(data.get("code")), data["message"]
        return None
    start = text.find("<error_info")
    end = text.rfind("</error_info>")
    if start < 0 or end < 0:
        return None
    try:
        root = etree.fromstring(text[start : end + len("</error_info>")].encode(), parser=_XML_PARSER)
    except etree.XMLSyntaxError:
        return None
    message = root.findtext("message")
    if message is None:
        return None
    return _text(root.findtext("code")), message.strip()


def _excerpt_after_status(problem: str) -> str | None:
    """The body excerpt in an HttpError problem (``"HTTP 500 Reason: <body> (after 5 attempts)"``)."""
    match = re.match(r"HTTP \d{3}[^:]*: (.*?)(?: \(after \d+ attempts\))?$", problem, re.DOTALL)
    return match.group(1) if match else None


def _egov_error(url: str, code: str | None, message: str, status: int | None) -> EgovError:
    detail = ", ".join(
        part for part in (f"code {code}" if code else "", f"HTTP {status}" if status else "") if part
    )
    problem = f"{message} ({detail})" if detail else message
    return EgovError(url, problem, code=code, status=status, message=message)
