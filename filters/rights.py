"""Rights notices on a page, found before boilerplate removal drops the footer that holds them.

Measures only: a notice is evidence for the reviewer (and for ``rights.license`` in the manifest,
docs/research/sources_and_law.md §3, §6.1), not a decision. Kinds:

- ``no_reproduction_ja``: 無断転載を禁じます, 無断転載禁止, 無断複製・転載を禁止します, 禁無断転載, ...
- ``all_rights_reserved``: "All Rights Reserved", any case.
- ``copyright_line``: a © sign, "Copyright ©/(c)", or "Copyright"/"(c)" followed by a year.
  A bare "(c)" needs the year: jvndb's CVSS table has "機密性への影響（C）: 高".
- ``cc_license``: creativecommons.org/licenses/<type>/<version>[/<jurisdiction>] and
  publicdomain/zero|mark links, each with its SPDX id (``LicenseRef-`` when SPDX has none, e.g.
  CC BY 2.1 JP, which old Japanese sites use); one entry per distinct licence.
- ``gov_standard_terms``: 政府標準利用規約 (第1.0版/第2.0版), 公共データ利用規約 / PDL 1.0, or an
  「出典を記載」 condition; ``terms`` is the most specific found: ``gov-standard-2.0`` /
  ``gov-standard-1.0`` / ``gov-standard`` (no version) / ``pdl-1.0`` / ``attribution-notice``.

Each kind is reported once per document (its first match), except distinct CC licences.

>>> [n["kind"] for n in detect_rights_notices("<footer>記事・写真の無断転載を禁じます。Copyright © 2024 読売新聞社</footer>")]
['no_reproduction_ja', 'copyright_line']
"""

from __future__ import annotations

import html as htmllib
import re

MAX_MATCH_CHARS = 60

# Text that never reaches a reader, and whose "(c) 2015 jQuery Foundation" would be noise.
# Unclosed, they run to the end as in a browser; that also keeps the scan linear.
_INVISIBLE = re.compile(
    r"<script\b.*?(?:</script\s*>|\Z)|<style\b.*?(?:</style\s*>|\Z)|<!--.*?(?:-->|\Z)",
    re.IGNORECASE | re.DOTALL,
)
# No bare '<' inside a tag and bounded quoted values, so broken markup cannot make this quadratic.
_TAG = re.compile(r"""<[a-zA-Z/!?](?:[^<>"']|"[^"]{0,2000}"|'[^']{0,2000}')*>""")
# Attributes whose values carry notices: a footer image's alt text (jvndb), meta content, links.
_KEPT_ATTRIBUTE = re.compile(
    r"""\b(?:alt|title|content|href)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE
)

# Tags become spaces and pages pad with (full-width) spaces; _searchable_text collapses every
# whitespace run to one character, so one optional \s suffices. (With \s* here, four adjacent
# optional runs backtracked polynomially: "無断転載" + 400 blanks took 25 s.)
_S = r"\s?"
_ACTS = "転載|複製|複写|転用|引用|使用|利用|配布|再配布|改変|翻訳|公衆送信|送信|販売|頒布|二次利用|加工|放送|出版|掲載"
_NO_REPRODUCTION_JA = re.compile(
    rf"禁{_S}無{_S}断{_S}(?:転{_S}載|複{_S}製|複{_S}写)"
    rf"|(?:無{_S}断|許可なく|許諾なく|無許可で){_S}(?:での|で|の)?{_S}(?:{_ACTS})"
    rf"(?:{_S}(?:[・、，,/／や]|及び|および|と){_S}(?:{_ACTS}))*{_S}(?:等|など)?{_S}(?:を|は|することを|することは)?{_S}"
    rf"(?:固く|かたく)?{_S}"
    rf"(?:禁{_S}(?:じ(?:ます|る|られて(?:います|おります)?)?|ず|止(?:します|する|です|いたします|されて(?:います|おります)?)?)"
    rf"|お断り(?:します|いたします)?|ご遠慮(?:ください|願います)?)"
)
_ALL_RIGHTS = re.compile(r"all\s+rights\s+reserved\.?", re.IGNORECASE)
_YEAR = r"(?:19|20)\d\d"
_COPYRIGHT = re.compile(
    # The tail skips a line break first: ipa.go.jp writes "Copyright ©" and the year on the next line.
    rf"(?:copyright\s*(?:©|\(c\))|©|(?:copyright|\(c\))\s*{_YEAR})\s*[^\n]{{0,{MAX_MATCH_CHARS}}}",
    re.IGNORECASE,
)
_CC = re.compile(
    r"creativecommons\.org/(?:licenses/(by(?:-nc|-nd|-sa)*)/(\d\.\d)(?:/([a-z]{2}|igo)(?![a-z.]))?"
    r"|publicdomain/(zero|mark)/(1\.0))",
    re.IGNORECASE,
)
# The CC identifiers on the SPDX licence list; the tests check them against packaging's copy.
# fmt: off
SPDX_CC_IDS = frozenset({
    "CC-BY-1.0", "CC-BY-2.0", "CC-BY-2.5", "CC-BY-2.5-AU", "CC-BY-3.0", "CC-BY-3.0-AT", "CC-BY-3.0-AU",
    "CC-BY-3.0-DE", "CC-BY-3.0-IGO", "CC-BY-3.0-NL", "CC-BY-3.0-US", "CC-BY-4.0", "CC-BY-NC-1.0",
    "CC-BY-NC-2.0", "CC-BY-NC-2.5", "CC-BY-NC-3.0", "CC-BY-NC-3.0-DE", "CC-BY-NC-4.0",
    "CC-BY-NC-ND-1.0", "CC-BY-NC-ND-2.0", "CC-BY-NC-ND-2.5", "CC-BY-NC-ND-3.0", "CC-BY-NC-ND-3.0-DE",
    "CC-BY-NC-ND-3.0-IGO", "CC-BY-NC-ND-4.0", "CC-BY-NC-SA-1.0", "CC-BY-NC-SA-2.0",
    "CC-BY-NC-SA-2.0-DE", "CC-BY-NC-SA-2.0-FR", "CC-BY-NC-SA-2.0-UK", "CC-BY-NC-SA-2.5",
    "CC-BY-NC-SA-3.0", "CC-BY-NC-SA-3.0-DE", "CC-BY-NC-SA-3.0-IGO", "CC-BY-NC-SA-4.0", "CC-BY-ND-1.0",
    "CC-BY-ND-2.0", "CC-BY-ND-2.5", "CC-BY-ND-3.0", "CC-BY-ND-3.0-DE", "CC-BY-ND-4.0", "CC-BY-SA-1.0",
    "CC-BY-SA-2.0", "CC-BY-SA-2.0-UK", "CC-BY-SA-2.1-JP", "CC-BY-SA-2.5", "CC-BY-SA-3.0",
    "CC-BY-SA-3.0-AT", "CC-BY-SA-3.0-DE", "CC-BY-SA-3.0-IGO", "CC-BY-SA-4.0", "CC-PDM-1.0", "CC0-1.0",
})
# fmt: on
_VERSION = rf"[（(]{_S}第?{_S}(?P<v>[12１２]){_S}[.．]{_S}[0０]{_S}版{_S}[）)]"
# Most specific first: a page citing 政府標準利用規約（第2.0版） also tells readers to 出典を記載.
_GOV_TERMS = (
    ("gov-standard", re.compile(rf"政府標準利用規約{_S}(?:{_VERSION})?")),
    (
        "gov-standard",
        re.compile(r"Government of Japan Standard Terms of Use(?:\s*\(Version\s*(?P<v>[12])\.0\))?"),
    ),
    (
        "pdl-1.0",
        re.compile(
            rf"公共データ利用規約{_S}(?:{_VERSION})?|Public Data License|\bPDL{_S}1\.0", re.IGNORECASE
        ),
    ),
    ("attribution-notice", re.compile(rf"出典{_S}(?:を|の){_S}(?:記載|明記|明示)")),
)


# The tag pattern as one group: re.split hands back text and tags alternately, so only the tags
# that have a kept attribute cost a Python step (a sub() callback ran for every tag).
_TAG_OR_TEXT = re.compile(f"({_TAG.pattern})")
_SPACE_RUN = re.compile(r"[^\S\n]+")
_BREAK_RUN = re.compile(r" ?\n[ \n]*")  # after _SPACE_RUN: single spaces and line breaks only


def _searchable_text(html_or_text: str) -> str:
    r"""Text nodes plus the attribute values that carry notices, entities decoded; a whitespace
    run becomes one line break if it holds one, else one space (copyright tails stop at lines).

    >>> _searchable_text('<p>無断\u3000\n 転載</p><img alt="© 2024" src=x>')
    ' 無断\n転載 © 2024 '
    """
    pieces = _TAG_OR_TEXT.split(_INVISIBLE.sub(" ", html_or_text))
    attributes = _KEPT_ATTRIBUTE.findall
    for i in range(1, len(pieces), 2):
        found = attributes(pieces[i])
        pieces[i] = " " + " ".join([a or b or c for a, b, c in found]) + " " if found else " "
    text = htmllib.unescape("".join(pieces))
    # Two linear passes instead of a callback per run; _BREAK_RUN cannot backtrack on long runs.
    return _BREAK_RUN.sub("\n", _SPACE_RUN.sub(" ", text))


def _trim(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()[:MAX_MATCH_CHARS]


def _cc_spdx(match: re.Match) -> str:
    kind, version, jurisdiction, public_domain, _ = (g and g.lower() for g in match.groups())
    if public_domain:
        return "CC0-1.0" if public_domain == "zero" else "CC-PDM-1.0"
    kind = {"by-nd-nc": "by-nc-nd"}.get(kind, kind)  # CC 1.0 spelt it by-nd-nc
    spdx = f"CC-{kind.upper()}-{version}" + (f"-{jurisdiction.upper()}" if jurisdiction else "")
    return spdx if spdx in SPDX_CC_IDS else f"LicenseRef-{spdx}"


def detect_rights_notices(html_or_text: str) -> list[dict]:
    """Rights notices in raw HTML or plain text, in the order of ``kind`` above.

    >>> page = ('<p>本ウェブサイトのコンテンツは政府標準利用規約（第2.0版）に準拠しています。</p>'
    ...         '<a rel="license" href="https://creativecommons.org/licenses/by/4.0/deed.ja">CC BY</a>')
    >>> [(n["kind"], n.get("spdx") or n.get("terms")) for n in detect_rights_notices(page)]
    [('cc_license', 'CC-BY-4.0'), ('gov_standard_terms', 'gov-standard-2.0')]
    """
    text = _searchable_text(html_or_text)
    notices = []
    for kind, pattern in (
        ("no_reproduction_ja", _NO_REPRODUCTION_JA),
        ("all_rights_reserved", _ALL_RIGHTS),
        ("copyright_line", _COPYRIGHT),
    ):
        found = pattern.search(text)
        if found:
            notices.append({"kind": kind, "match": _trim(found.group(0))})
    seen = set()
    for found in _CC.finditer(text):
        spdx = _cc_spdx(found)
        if spdx not in seen:
            seen.add(spdx)
            notices.append({"kind": "cc_license", "match": _trim(found.group(0)), "spdx": spdx})
    for terms, pattern in _GOV_TERMS:
        found = pattern.search(text)
        if found:
            version = found.groupdict().get("v")
            if terms == "gov-standard" and version:
                terms += "-" + {"１": "1", "２": "2"}.get(version, version) + ".0"
            notices.append({"kind": "gov_standard_terms", "match": _trim(found.group(0)), "terms": terms})
            break
    return notices
