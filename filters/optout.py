"""Opt-out signals read offline from a stored HTTP response (headers + HTML), as kept in CC WARCs.

This module measures and names; it never drops a document. The caller applies policy and
writes ``OptOutResult.signals`` into the manifest's ``optout`` field (docs/research/
sources_and_law.md §5, §6.1).

- TDMRep (W3C CG final report 2024, ``w3c/tdm-reservation-protocol`` spec/index.html):
  ``tdm-reservation`` is ``1`` or ``0``, anything else is a protocol error treated as unset.
  Priority: ``/.well-known/tdmrep.json`` (needs its own fetch: recorded as ``not_checked``),
  then the HTTP header overrides it, then the HTML ``<meta>`` overrides that; an absent value
  never resets an earlier one.
- ``noai`` / ``noimageai`` / ``noml``: DeviantArt's community convention (2022), as tokens of
  ``<meta name="robots">`` or ``X-Robots-Tag``.
- ``UrlList``: internal blocklists and takedown lists, with a content hash for the manifest.

>>> page = '<html lang="ja"><head><meta name="tdm-reservation" content="1"></head><p>無断転載禁止</p>'
>>> check_optout("https://example.jp/news/1", [("Content-Type", "text/html")], page).reserved_by
'tdm_reservation'
"""

from __future__ import annotations

import dataclasses
import hashlib
import html as htmllib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote, urlsplit

Headers = Sequence[tuple[str, str]]

# Metas belong in <head>; pages can be megabytes, so look no further than this or </head>.
HEAD_SCAN_CHARS = 65536
# Whose agent-specific robots directives count towards `noai` (CC's crawler fetched the page).
DEFAULT_AGENTS = ("ccbot",)
# Agent-named robots metas recorded (never silently dropped) even when they do not count.
RECORDED_AGENT_METAS = frozenset(
    {"ccbot", "gptbot", "chatgpt-user", "google-extended", "anthropic-ai", "claudebot", "bytespider",
     "perplexitybot", "applebot-extended", "cohere-ai", "amazonbot", "meta-externalagent"}
)  # fmt: skip
# Order of `OptOutResult.reserved_by`: the page's own machine-readable statements first (the
# record itself proves them), then our lists. Every signal is recorded whatever comes first.
RESERVATION_ORDER = ("tdm_reservation", "noai", "blocklist", "takedown")

# No bare '<' inside a tag and bounded quoted values: broken markup cannot make the scan quadratic.
_META_TAG = re.compile(r"""<meta\b((?:[^<>"']|"[^"]{0,2000}"|'[^']{0,2000}')*)>""", re.IGNORECASE)
_ATTRIBUTE = re.compile(r"""([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
_HEAD_END = re.compile(r"</head\s*>", re.IGNORECASE)
# robots directives that take a value ("max-snippet: 20"), so a "name:" prefix is not an agent.
_VALUED_DIRECTIVES = frozenset({"max-snippet", "max-image-preview", "max-video-preview", "unavailable_after"})
_AGENT_PREFIX = re.compile(r"^\s*([a-z0-9_.\-]+)\s*:\s*(.*)$", re.IGNORECASE | re.DOTALL)


def _head(html: str | None) -> str:
    if not html:
        return ""
    head = html[:HEAD_SCAN_CHARS]
    end = _HEAD_END.search(head)
    return head[: end.start()] if end else head


def _metas(html: str | None) -> list[tuple[str, str]]:
    """(lower-cased name, content) of every ``<meta name=... content=...>`` in the head."""
    found = []
    for tag in _META_TAG.finditer(_head(html)):
        attrs: dict[str, str] = {}
        for m in _ATTRIBUTE.finditer(tag.group(1)):
            unquoted = m.group(4)
            if unquoted is not None and unquoted.endswith("/"):
                unquoted = unquoted[:-1]  # <meta name=x content=1/>: the slash closes the tag
            value = (
                m.group(2) if m.group(2) is not None else m.group(3) if m.group(3) is not None else unquoted
            )
            attrs.setdefault(m.group(1).lower(), htmllib.unescape(value or ""))
        if "name" in attrs and "content" in attrs:
            found.append((attrs["name"].strip().lower(), attrs["content"]))
    return found


def _header_values(http_headers: Headers, name: str, *, split_commas: bool = True) -> list[str]:
    # A proxy may have folded repeated headers into one with commas (RFC 9110 §5.3); a policy
    # URL may contain commas itself, so it is not split.
    values = [value for key, value in http_headers if key.strip().lower() == name]
    return [part.strip() for value in values for part in (value.split(",") if split_commas else [value])]


def _first_valid(values: list[str], where: str, notes: list[str]) -> str | None:
    """TDMRep value from several candidates: the first valid one, else ``invalid:<first>``."""
    valid = [v for v in values if v in ("0", "1")]
    if len(values) > 1:
        chosen = valid[0] if valid else None
        notes.append(f"{len(values)} tdm-reservation values in {where} {values!r}; used {chosen!r}")
    if valid:
        return valid[0]
    return f"invalid:{values[0]}" if values else None


def tdmrep(http_headers: Headers, html: str | None) -> dict:
    """TDMRep reservation from the HTTP header and HTML meta, with the spec's precedence.

    >>> page = '<head><meta content="0" name="tdm-reservation"><title>利用規約</title></head>'
    >>> r = tdmrep([("TDM-Reservation", "1")], page)
    >>> r["http_header"], r["html_meta"], r["effective"], r["decided_by"]
    ('1', '0', 'not_reserved', 'html-meta')
    """
    notes: list[str] = []
    header = _first_valid(_header_values(http_headers, "tdm-reservation"), "http-header", notes)
    metas = _metas(html)
    meta = _first_valid([c.strip() for n, c in metas if n == "tdm-reservation"], "html-meta", notes)
    header_policy = next(
        (v for v in _header_values(http_headers, "tdm-policy", split_commas=False) if v), None
    )
    meta_policy = next((c.strip() for n, c in metas if n == "tdm-policy" and c.strip()), None)

    effective, decided_by = "unset", None
    # Later layers override earlier ones; an absent or invalid value leaves the earlier one.
    for value, layer in ((header, "http-header"), (meta, "html-meta")):
        if value in ("0", "1"):
            effective, decided_by = ("reserved" if value == "1" else "not_reserved"), layer
    return {
        "http_header": header,
        "html_meta": meta,
        "policy": meta_policy or header_policy,
        "well_known": "not_checked",
        "effective": effective,
        "decided_by": decided_by,
        "notes": notes,
    }


def _robots_tokens(content: str) -> list[str]:
    tokens = []
    for part in content.split(","):
        part = part.strip().lower()
        if not part:
            continue
        # "noai noimageai" (space-separated) is common; "unavailable_after: 25 Jun 2010" is not split.
        tokens.extend(part.split() if ":" not in part else [re.sub(r"\s*:\s*", ":", part, count=1)])
    return tokens


def robots_noai(http_headers: Headers, html: str | None, *, agents: Iterable[str] = DEFAULT_AGENTS) -> dict:
    """``noai``-family tokens in robots metas and ``X-Robots-Tag`` headers.

    Tokens addressed to one crawler are kept as ``"agent:token"``; they count towards the
    booleans only for ``agents`` (CCBot by default). ``noimageai`` concerns a page's images.

    >>> page = '<meta name="robots" content="noindex, noai"><meta name="GPTBot" content="noindex">'
    >>> r = robots_noai([("X-Robots-Tag", "otherbot: noimageai")], page)
    >>> r["robots_meta"], r["x_robots_tag"], r["noai"], r["noimageai"]
    (['noindex', 'noai', 'gptbot:noindex'], ['otherbot:noimageai'], True, False)
    """
    agents = {a.lower() for a in agents}
    meta_tokens: list[str] = []
    for name, content in _metas(html):
        if name == "robots":
            meta_tokens.extend(_robots_tokens(content))
        elif name in RECORDED_AGENT_METAS or name in agents:
            meta_tokens.extend(f"{name}:{t}" for t in _robots_tokens(content))

    header_tokens: list[str] = []
    for key, value in http_headers:
        if key.strip().lower() != "x-robots-tag":
            continue
        prefixed = _AGENT_PREFIX.match(value)
        if prefixed and prefixed.group(1).lower() not in _VALUED_DIRECTIVES:
            agent = prefixed.group(1).lower()
            header_tokens.extend(f"{agent}:{t}" for t in _robots_tokens(prefixed.group(2)))
        else:
            header_tokens.extend(_robots_tokens(value))

    applicable = set()
    for token in meta_tokens + header_tokens:
        agent, sep, directive = token.partition(":")
        if not sep or agent in _VALUED_DIRECTIVES:
            applicable.add(token)
        elif agent in agents:
            applicable.add(directive)
    return {
        "robots_meta": meta_tokens,
        "x_robots_tag": header_tokens,
        "noai": "noai" in applicable,
        "noimageai": "noimageai" in applicable,
        "noml": "noml" in applicable,
    }


# --- URL lists ---------------------------------------------------------------------------------
_HASH_ENTRY = re.compile(r"^sha256:([0-9a-f]{64})$")
_PERCENT = re.compile(r"%[0-9a-fA-F]{2}")


def _host(host: str) -> str:
    host = host.strip().rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii")  # 日本語.jp -> xn--wgv71a119e.jp
    except UnicodeError:
        return host


def normalise_url(url: str) -> str | None:
    """Canonical form used for matching and hashing; None if ``url`` has no scheme and host.

    Lower-cases scheme and host (IDN to punycode), drops userinfo, default ports, the fragment
    and a trailing slash, percent-encodes non-ASCII and upper-cases escapes.

    >>> normalise_url("HTTPS://WWW.Yomiuri.co.jp:443/sports/記事/?p=1#top")
    'https://www.yomiuri.co.jp/sports/%E8%A8%98%E4%BA%8B?p=1'
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    netloc = _host(parts.hostname)
    if port and (scheme, port) not in (("http", 80), ("https", 443)):
        netloc += f":{port}"
    path = quote(parts.path, safe="/%:@!$&'()*+,;=-._~").rstrip("/")
    query = quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    canonical = f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")
    return _PERCENT.sub(lambda m: m.group(0).upper(), canonical)


def url_key(url: str) -> str:
    """What two spellings of one URL have in common: `normalise_url`'s form, or the text itself
    when it has no scheme and host. Takedowns and the audit's policy match URLs by it.

    >>> url_key("https://Example.JP/記事/") == url_key("https://example.jp/%e8%a8%98%e4%ba%8b")
    True
    """
    return normalise_url(url) or url


def hash_entry(entry: str) -> str:
    """``sha256:<hex>`` of a normalised entry, for publishing a list without revealing it.

    >>> hash_entry("Example.JP") == hash_entry("example.jp")
    True
    """
    normalised = _normalise_entry(entry)
    return normalised if _HASH_ENTRY.match(normalised) else _sha(normalised)  # already hashed: as is


def _normalise_entry(entry: str) -> str:
    entry = entry.strip()
    hashed = _HASH_ENTRY.match(entry.lower())
    if hashed:
        return hashed.group(0)
    if "://" in entry:
        url = normalise_url(entry)
        if url is None:
            raise ValueError(f"not a URL: {entry!r}")
        return url
    domain = _host(entry.removeprefix("*."))
    if not domain or "/" in domain or "." not in domain or domain.startswith("."):
        raise ValueError(f"not a domain, a full URL or sha256:<hex>: {entry!r}")
    return domain


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class UrlList:
    """A blocklist or takedown list: domains (with subdomains), full URLs, or their hashes.

    URLs match after ``normalise_url``, and http and https count as the same URL (a takedown
    of one scheme must not miss the capture made under the other).

    >>> lines = ["# 削除依頼 2025-04", "yomiuri.co.jp", hash_entry("https://example.jp/記事/1")]
    >>> takedowns = UrlList.from_lines(lines, "takedowns")
    >>> takedowns.match("https://www.yomiuri.co.jp/sports/")
    'yomiuri.co.jp'
    >>> takedowns.match("http://EXAMPLE.jp/%e8%a8%98%e4%ba%8b/1/") == hash_entry("https://example.jp/記事/1")
    True
    """

    name: str
    entries: frozenset[str]
    version: str

    @classmethod
    def from_lines(cls, lines: Iterable[str], name: str) -> UrlList:
        entries = set()
        for number, line in enumerate(lines, 1):
            # A URL's own "#fragment" would be dropped by normalise_url anyway.
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                entries.add(_normalise_entry(line))
            except ValueError as exc:
                raise ValueError(f"{name} line {number}: {exc}") from None
        # Sorted and de-duplicated: comments, order and spelling do not change the version.
        return cls(name, frozenset(entries), _sha("\n".join(sorted(entries)) + "\n"))

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None) -> UrlList:
        path = Path(path)
        with open(path, encoding="utf-8") as lines:
            return cls.from_lines(lines, name or path.stem)

    def match(self, url: str) -> str | None:
        """The entry that ``url`` falls under (a full URL before its domains), else None."""
        canonical = normalise_url(url)
        if canonical is None:
            return None
        scheme, rest = canonical.split("://", 1)
        twin = {"http": "https", "https": "http"}.get(scheme)
        for candidate in [canonical] + ([f"{twin}://{rest}"] if twin else []):
            for key in (candidate, _sha(candidate)):
                if key in self.entries:
                    return key
        labels = urlsplit(canonical).hostname.split(".")
        for i in range(len(labels) - 1):  # www.news.example.jp, news.example.jp, example.jp
            suffix = ".".join(labels[i:])
            for key in (suffix, _sha(suffix)):
                if key in self.entries:
                    return key
        return None

    def signal(self, url: str) -> dict:
        return {"list": self.name, "version": self.version, "match": self.match(url)}


# --- all together ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class OptOutResult:
    signals: dict  # JSON-able; goes into the manifest as it is
    reserved_by: str | None  # first applicable of RESERVATION_ORDER, else None


def check_optout(
    url: str,
    http_headers: Headers,
    html: str | None,
    *,
    blocklist: UrlList | None = None,
    takedowns: UrlList | None = None,
) -> OptOutResult:
    """Every opt-out signal of one stored response, and the first that reserves it."""
    signals = {
        "tdmrep": tdmrep(http_headers, html),
        "robots": robots_noai(http_headers, html),
        "blocklist": blocklist.signal(url) if blocklist is not None else None,
        "takedowns": takedowns.signal(url) if takedowns is not None else None,
    }
    applies = {
        "tdm_reservation": signals["tdmrep"]["effective"] == "reserved",
        # noml ("no machine learning") states the same wish as noai for text.
        "noai": signals["robots"]["noai"] or signals["robots"]["noml"],
        "blocklist": bool(signals["blocklist"] and signals["blocklist"]["match"]),
        "takedown": bool(signals["takedowns"] and signals["takedowns"]["match"]),
    }
    return OptOutResult(signals, next((name for name in RESERVATION_ORDER if applies[name]), None))
