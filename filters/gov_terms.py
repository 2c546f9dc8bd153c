"""Government web pages: which hosts are government ones, and what the terms a page states allow.

公共データ利用規約（第1.0版） (PDL 1.0, Digital Agency, 2024) and its predecessor 政府標準利用規約
（第2.0版） (2015) both declare themselves compatible with CC BY 4.0: reuse, redistribution and
modification are allowed on two conditions the manifest carries in ``attribution``: cite the
source (出典), and say that the content was processed rather than present it as the government's
own (docs/research/sources_and_law.md §3). Content in which a third party holds rights is not
covered; pages are whole documents here, so that caveat stays with the reviewer.

Neither term set is on the SPDX licence list (SPDX declines government website terms of use), so
version 2.0 is a ``LicenseRef-``; PDL 1.0 keeps the id ``PDL-1.0`` that DESIGN.md names.
Version 1.0 of 政府標準利用規約 is not mapped: pages citing it keep their source's rights.

>>> is_government_host("https://www.digital.go.jp/policies/", ("go.jp", "lg.jp"))
True
>>> is_government_host("https://example.jp/go.jp/", ("go.jp",))
False
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class GovTerms:
    license: str
    name: str


# Keyed by the `terms` that filters/rights.py reports for a `gov_standard_terms` notice.
GOV_TERMS = {
    "pdl-1.0": GovTerms("PDL-1.0", "公共データ利用規約（第1.0版）"),
    "gov-standard-2.0": GovTerms("LicenseRef-GJSTU-2.0", "政府標準利用規約（第2.0版）"),
}


def host_of(url: str) -> str:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:  # a malformed URL (bad port, bad brackets) names no host
        return ""
    return host.rstrip(".").lower()


def is_government_host(url: str, domains: tuple[str, ...] | list[str]) -> bool:
    """The URL's host is one of ``domains`` or under one (``www.mhlw.go.jp`` under ``go.jp``)."""
    host = host_of(url)
    return bool(host) and any(host == d or host.endswith("." + d) for d in domains)


def stated_terms(notices: list[dict]) -> GovTerms | None:
    """The reuse terms a page states, from its rights notices (filters/rights.py), if mapped."""
    for notice in notices:
        if notice["kind"] == "gov_standard_terms" and notice.get("terms") in GOV_TERMS:
            return GOV_TERMS[notice["terms"]]
    return None


def attribution(url: str, terms: GovTerms) -> str:
    """The 出典 line both term sets require, with the note that the text was processed.

    >>> attribution("https://www.digital.go.jp/policies/", GOV_TERMS["pdl-1.0"])
    '出典：www.digital.go.jp（https://www.digital.go.jp/policies/）、公共データ利用規約（第1.0版）。本文を抽出・正規化して利用'
    """
    return f"出典：{host_of(url)}（{url}）、{terms.name}。本文を抽出・正規化して利用"
