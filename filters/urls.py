"""URL rules: LLM-jp v1's TLD allow-list and UT1-style domain category lists (Swallow v1).

Host normalisation (:func:`host_of`), used by every function here:

- the host comes from ``urllib.parse.urlsplit(url).hostname``: scheme, userinfo, port, path, query
  and fragment are ignored, and it is lower-cased. Text without "://" (and not starting with "//")
  is read as a bare host or host/path, e.g. ``example.co.jp`` or ``example.co.jp:8080/a``;
- trailing dots (the fully-qualified form ``example.jp.``) are dropped;
- the ideographic full stops 。．｡ separate labels (as in IDNA);
- internationalised labels are converted to their ASCII (punycode, ``xn--``) form with the IDNA
  2008 ``idna`` package (UTS #46 mapping), falling back to Python's IDNA 2003 codec, and kept as
  lower-cased Unicode if neither accepts them. So ``http://日本語.jp/`` and
  ``http://xn--wgv71a119e.jp/`` are the same host, and a list entry in either form matches both;
- IPv6 literals keep their colons (no brackets); IP addresses have no TLD.

``LLM_JP_VALID_TLDS`` is LLM-jp corpus v1's allow-list (``data/urls/ja_valid_domains.txt``, see
SOURCES.md there); :func:`valid_tld` is its ``has_valid_domain``.
"""

from __future__ import annotations

import ipaddress
import pathlib
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

try:  # IDNA 2008 + UTS #46, as browsers; Python's own codec is IDNA 2003.
    import idna as _idna
except ImportError:  # pragma: no cover - idna ships with requests
    _idna = None

DATA_DIR = pathlib.Path(__file__).resolve().parent / "data" / "urls"
LLM_JP_VALID_DOMAINS_PATH = DATA_DIR / "ja_valid_domains.txt"

# llm-jp/llm-jp-corpus scripts/filters.py has_valid_domain: rejected before the TLD check, as a
# plain (case-sensitive) prefix test, so http://ja.wikipedia.org/ and ja.m.wikipedia.org pass it.
LLM_JP_REJECTED_URL_PREFIX = "https://ja.wikipedia.org/"

_SPACE = re.compile(r"\s")
_LABEL_DOTS = str.maketrans({"。": ".", "．": ".", "｡": "."})


def _load_lines(path: str | pathlib.Path) -> list[str]:
    with open(path, encoding="utf-8") as fp:
        return [line.strip() for line in fp if line.strip() and not line.lstrip().startswith("#")]


LLM_JP_VALID_TLDS: frozenset[str] = frozenset(w.lower() for w in _load_lines(LLM_JP_VALID_DOMAINS_PATH))


def _ascii_label(label: str) -> str:
    if label.isascii():
        return label.lower()
    if _idna is not None:
        try:
            return _idna.encode(label, uts46=True).decode("ascii").lower()
        except (_idna.IDNAError, UnicodeError, ValueError):
            pass
    try:
        return label.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return label.lower()


def normalize_host(host: str) -> str | None:
    """Lower-cased host, trailing dots dropped, IDN labels in punycode; None if empty.

    >>> normalize_host("WWW.Example.CO.JP.")
    'www.example.co.jp'
    >>> normalize_host("日本語.jp")
    'xn--wgv71a119e.jp'
    """
    if host.isascii():  # the common case, without the per-label work
        host = host.strip().rstrip(".").lower()
        return host or None
    host = host.strip().translate(_LABEL_DOTS).rstrip(".")
    if not host:
        return None
    if ":" in host:  # IPv6 literal
        return host.lower()
    return ".".join(_ascii_label(label) for label in host.split("."))


def host_of(url: str) -> str | None:
    """The normalised host of a URL (or of a bare ``host[:port][/path]``); None if there is none.

    >>> host_of("https://User@News.Example.jp:8443/a?b#c")
    'news.example.jp'
    >>> host_of("example.co.jp/path")
    'example.co.jp'
    >>> host_of("not a url") is None
    True
    """
    url = url.strip()
    if "://" not in url and not url.startswith("//"):
        url = "//" + url
    try:
        host = urlsplit(url).hostname
    except ValueError:  # e.g. an unbalanced "[" in the netloc
        return None
    if not host or _SPACE.search(host):
        return None
    return normalize_host(host)


def _is_ip(host: str) -> bool:
    # Hosts are letters-first in practice: only try to parse what could be an address.
    if ":" not in host and not host[-1:].isdigit():
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def tld(url: str) -> str | None:
    """Last label of the URL's host (punycode for IDN TLDs); None without a host, for IP addresses
    and for single-label hosts such as ``localhost``.

    >>> tld("https://www.example.co.jp/")
    'jp'
    >>> tld("http://example.jp.:80/")
    'jp'
    >>> tld("http://127.0.0.1/") is None
    True
    """
    host = host_of(url)
    if host is None or _is_ip(host) or "." not in host:
        return None
    return host.rsplit(".", 1)[1]


def valid_tld(url: str, allowed: frozenset[str] = LLM_JP_VALID_TLDS) -> bool:
    """LLM-jp corpus v1 ``has_valid_domain``: not a ``https://ja.wikipedia.org/`` URL, and the host's
    TLD is in ``allowed``.

    Differences from upstream, only on URLs it mishandles: a URL without a host is False (upstream
    asserts), and a trailing dot is dropped first (upstream reads the TLD of ``example.jp.`` as "").

    >>> valid_tld("https://www.asahi.com/articles/ASM3.html")
    True
    >>> valid_tld("https://ja.wikipedia.org/wiki/梅雨")
    False
    >>> valid_tld("https://example.de/")
    False
    """
    if url.startswith(LLM_JP_REJECTED_URL_PREFIX):
        return False
    top = tld(url)
    return top is not None and top in allowed


class DomainLists:
    """Domain → category lists in UT1 blacklist format (``<category>/domains``: one domain a line).

    A URL is in a category if its host or any parent domain is listed: ``www.example.com`` is found
    through ``example.com``. Lookup is one set/dict probe per suffix of the host (a host of k labels
    costs k probes). List entries are normalised like hosts (case, trailing dot, IDN → punycode); a
    leading ``*.`` or ``.`` is dropped; blank lines and ``#`` comments are skipped. Entries that are
    IP addresses match only that address. When a domain is in several categories, the one loaded
    first (``paths_by_category`` order) is reported by :meth:`category_of`; :meth:`categories_of`
    gives them all.
    """

    def __init__(self, domains: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self._by_domain: dict[str, tuple[str, ...]] = dict(domains or {})

    @classmethod
    def load(cls, paths_by_category: Mapping[str, str | pathlib.Path]) -> DomainLists:
        lists = cls()
        for category, path in paths_by_category.items():
            lists.add(category, _load_lines(path))
        return lists

    def add(self, category: str, domains: Iterable[str]) -> None:
        by_domain = self._by_domain
        for entry in domains:
            entry = entry.strip()
            if entry.startswith("*."):
                entry = entry[2:]
            host = normalize_host(entry.lstrip("."))
            if host is None:
                continue
            categories = by_domain.get(host, ())
            if category not in categories:
                by_domain[host] = categories + (category,)

    def __len__(self) -> int:
        return len(self._by_domain)

    def _match(self, url: str) -> tuple[str, ...]:
        host = host_of(url)
        if host is None:
            return ()
        by_domain = self._by_domain
        if ":" in host or _is_ip(host):
            return by_domain.get(host, ())
        labels = host.split(".")
        # Most specific first: the host itself, then each parent domain.
        for i in range(len(labels)):
            found = by_domain.get(".".join(labels[i:]))
            if found:
                return found
        return ()

    def category_of(self, url: str) -> str | None:
        """The category of the most specific listed domain covering the URL's host, or None.

        >>> lists = DomainLists({"example.com": ("adult",)})
        >>> lists.category_of("https://WWW.example.com:8080/x"), lists.category_of("https://example.org/")
        ('adult', None)
        """
        found = self._match(url)
        return found[0] if found else None

    def categories_of(self, url: str) -> tuple[str, ...]:
        """Every category of the most specific listed domain covering the URL's host."""
        return self._match(url)
