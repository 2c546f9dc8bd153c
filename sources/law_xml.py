"""法令標準XML (the e-Gov law XML schema) to plain text that keeps the article structure.

One structural unit per line, in the order e-Gov shows them:

- the title, then the law number (``行政手続法`` / ``平成五年法律第八十八号``);
- part/chapter/section/subsection/division titles, article and paragraph captions, supplementary
  provision labels and appendix titles on their own lines;
- each paragraph on one line, led by the article title for the first paragraph
  (``第一条　この法律は、…``) and by its paragraph number otherwise (``２　…``);
- each item / sub-item on one line (``一　法令　法律、…``); table columns in one item are joined
  with a full-width space.

Left out: the table of contents (``TOC``: it repeats the chapter titles), ruby readings (``Rt``;
the base text is kept) and figures. Whitespace that only comes from pretty-printing (a run that
contains a newline, as in the API's own XML example) is dropped; a full-width space is text and
is kept.

The same renderer serves the API's JSON form of the law (a ``{tag, attr, children}`` tree), via
:func:`law_json_to_element`, so both give identical text.

>>> law = law_xml_to_text('<Law><LawNum>令和元年法律第一号</LawNum><LawBody><LawTitle>例法</LawTitle>'
...     '<MainProvision><Article Num="1"><ArticleCaption>（目的）</ArticleCaption>'
...     '<ArticleTitle>第一条</ArticleTitle><Paragraph Num="1"><ParagraphNum/><ParagraphSentence>'
...     '<Sentence>この法律は、例である。</Sentence></ParagraphSentence></Paragraph></Article>'
...     '</MainProvision></LawBody></Law>')
>>> print(law.text)
例法
令和元年法律第一号
（目的）
第一条　この法律は、例である。
>>> law.article_count
1
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree

from sources.errors import SourceError

_SPACE = "\u3000"  # full-width space, the separator e-Gov uses after 第一条, ２, 一 …
# Whitespace that exists only because the XML was indented: any run that contains a newline.
_LAYOUT_WS = re.compile(r"[ \t\r]*\n[ \t\r\n]*")

# Containers whose *Title child is a heading line.
_HEADING_TITLES = {
    "Part": "PartTitle",
    "Chapter": "ChapterTitle",
    "Section": "SectionTitle",
    "Subsection": "SubsectionTitle",
    "Division": "DivisionTitle",
}
# Elements whose text is a line of its own (titles, captions, labels outside paragraphs).
_LINE_ELEMENTS = {
    "ArticleCaption",
    "ParagraphCaption",
    "SupplProvisionLabel",
    "RemarksLabel",
    "TableStructTitle",
    "FigStructTitle",
    "StyleStructTitle",
    "FormatStructTitle",
    "NoteStructTitle",
    "RelatedArticleNum",
    "EnactStatement",
}
_SKIPPED = {"TOC", "Rt", "Fig", "LawNum", "LawTitle"}
_ITEM_LIKE = re.compile(r"^(Item|Subitem\d+)$")
_LIST_LIKE = re.compile(r"^(List|Sublist\d+)$")


@dataclass(frozen=True)
class LawText:
    """A law as text. ``article_count`` counts the ``Article`` elements of the main provision
    (supplementary provisions' articles are not counted)."""

    law_num: str
    title: str
    text: str
    article_count: int


def law_xml_to_text(xml: bytes | str) -> LawText:
    """Parse one 法令標準XML document (root ``Law``, or any element containing one) to text."""
    if isinstance(xml, str):
        xml = xml.encode("utf-8")
    try:
        root = etree.fromstring(xml, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as err:
        raise SourceError("law XML", f"not well-formed XML: {err}") from None
    return law_element_to_text(root)


def law_element_to_text(root: etree._Element) -> LawText:
    """Render an already parsed ``Law`` element (or an element that contains one)."""
    law = root if root.tag == "Law" else root.find(".//Law")
    if law is None:
        raise SourceError("law XML", f"no <Law> element (root is <{root.tag}>)")
    law_num = _inline(law.find("LawNum"))
    body = law.find("LawBody")
    title = _inline(body.find("LawTitle")) if body is not None else ""
    lines = [line for line in (title, law_num) if line]
    if body is not None:
        lines.extend(_block(body))
    main = body.find("MainProvision") if body is not None else None
    article_count = len(main.findall(".//Article")) if main is not None else 0
    return LawText(law_num=law_num, title=title, text="\n".join(lines), article_count=article_count)


def law_json_to_element(node: Mapping[str, Any] | str) -> etree._Element:
    """Turn the API's JSON law tree (``{tag, attr, children: [node | str]}``) into lxml.

    Tolerates the official example's quirks: ``attr`` is ``""`` (not ``{}``) when empty, and
    ``children`` may be missing (the example's last ``Paragraph`` has none).
    """
    if not isinstance(node, Mapping) or not isinstance(node.get("tag"), str):
        raise SourceError("law JSON", f"expected a {{tag, attr, children}} object, got {_kind(node)}")
    attr = node.get("attr") or {}
    if not isinstance(attr, Mapping):
        raise SourceError("law JSON", f"<{node['tag']}> attr is {_kind(attr)}, expected an object")
    element = etree.Element(node["tag"], {str(k): str(v) for k, v in attr.items()})
    last: etree._Element | None = None
    for child in node.get("children") or []:
        if isinstance(child, str):
            if last is None:
                element.text = (element.text or "") + child
            else:
                last.tail = (last.tail or "") + child
        else:
            last = law_json_to_element(child)
            element.append(last)
    return element


def law_json_to_text(tree: Mapping[str, Any]) -> LawText:
    """Render the API's JSON law tree exactly as :func:`law_xml_to_text` renders the XML."""
    return law_element_to_text(law_json_to_element(tree))


# -- rendering -------------------------------------------------------------------------------


def _block(element: etree._Element) -> Iterator[str]:
    """Lines for a structural element and everything under it."""
    tag = element.tag
    if not isinstance(tag, str) or tag in _SKIPPED:
        return
    if tag in _HEADING_TITLES:
        for child in element:
            if child.tag == _HEADING_TITLES[tag]:
                yield from _line(_inline(child))
            else:
                yield from _block(child)
    elif tag == "Article":
        article_title = _inline(element.find("ArticleTitle"))
        first = True
        for child in element:
            if child.tag == "Paragraph":
                yield from _paragraph(child, article_title if first else None)
                first = False
            elif child.tag != "ArticleTitle":
                yield from _block(child)
        if first and article_title:  # an article without paragraphs (e.g. 削除)
            yield article_title
    elif tag == "Paragraph":
        yield from _paragraph(element, None)
    elif tag == "SupplProvision":
        label = _inline(element.find("SupplProvisionLabel"))
        amend = element.get("AmendLawNum")
        heading = label + (f"{_SPACE}（{amend}）" if amend else "")
        yield from _line(heading)
        for child in element:
            if child.tag != "SupplProvisionLabel":
                yield from _block(child)
    elif _ITEM_LIKE.match(tag):
        yield from _titled_line(element, f"{tag}Title", f"{tag}Sentence")
    elif _LIST_LIKE.match(tag):
        yield from _titled_line(element, None, f"{tag}Sentence")
    elif tag in _LINE_ELEMENTS or tag.endswith("Title"):
        yield from _line(_inline(element))
    elif tag == "TableRow":
        cells = [_SPACE.join(_block(col)) if len(col) else _inline(col) for col in element]
        yield from _line(_SPACE.join(c for c in cells if c))
    elif len(element) == 0 or _is_inline_only(element):
        yield from _line(_inline(element))
    else:
        for child in element:
            yield from _block(child)


def _paragraph(element: etree._Element, article_title: str | None) -> Iterator[str]:
    """``第一条　…`` for an article's first paragraph, ``２　…`` after; sub-blocks follow."""
    lead = article_title or _inline(element.find("ParagraphNum"))
    sentence = _sentence_group(element.find("ParagraphSentence"))
    for child in element:
        if child.tag == "ParagraphCaption":
            yield from _line(_inline(child))
    yield from _line(_SPACE.join(part for part in (lead, sentence) if part))
    for child in element:
        if child.tag not in ("ParagraphCaption", "ParagraphNum", "ParagraphSentence"):
            yield from _block(child)


def _titled_line(element: etree._Element, title_tag: str | None, sentence_tag: str) -> Iterator[str]:
    title = _inline(element.find(title_tag)) if title_tag else ""
    sentence = _sentence_group(element.find(sentence_tag))
    yield from _line(_SPACE.join(part for part in (title, sentence) if part))
    for child in element:
        if child.tag not in (title_tag, sentence_tag):
            yield from _block(child)


def _sentence_group(element: etree._Element | None) -> str:
    """Sentences run together (Japanese has no space between them); columns take a 　 between."""
    if element is None:
        return ""
    columns = element.findall("Column")
    if columns:
        return _SPACE.join(text for text in (_inline(c) for c in columns) if text)
    return _inline(element)


def _inline(element: etree._Element | None) -> str:
    """All text under ``element``, ruby readings and layout whitespace left out."""
    if element is None:
        return ""
    parts: list[str] = []
    _collect(element, parts)
    return "".join(parts)


def _collect(element: etree._Element, parts: list[str]) -> None:
    if element.text:
        parts.append(_LAYOUT_WS.sub("", element.text))
    for child in element:
        if isinstance(child.tag, str) and child.tag not in ("Rt", "Fig"):
            _collect(child, parts)
        if child.tail:
            parts.append(_LAYOUT_WS.sub("", child.tail))


_INLINE_TAGS = {"Ruby", "Rt", "Sup", "Sub", "Line", "QuoteStruct", "ArithFormula"}


def _is_inline_only(element: etree._Element) -> bool:
    return all(child.tag in _INLINE_TAGS for child in element if isinstance(child.tag, str))


def _line(text: str) -> Iterator[str]:
    if text:
        yield text


def _kind(value: object) -> str:
    return type(value).__name__
