"""Charset-correct HTML decoding and main-text extraction.

Japanese pages in Common Crawl are still often Shift_JIS or EUC-JP, and a wrong guess turns a page
into mojibake that later filters cannot tell from spam. Decoding follows browsers (WHATWG): a BOM
wins, then the HTTP ``Content-Type`` charset, then a ``<meta>`` declaration; labels map to codecs
the way the WHATWG Encoding Standard maps them (Shift_JIS is really Windows-31J, latin1 is
really windows-1252). Without a declaration we sniff only among UTF-8, cp932 and EUC-JP.

``is_undecodable`` (and ``undecodable_reason``) say when the decoded text is not worth extracting
(replacement and control characters, or mojibake). Extraction is trafilatura with one of ``TRAFILATURA_PRESETS`` (the default,
``TRAFILATURA_PARAMS``, is ``"jcorpus"``); a manifest records the parameters with ``EXTRACTOR_ID``.
"""

from __future__ import annotations

import codecs
import dataclasses
import re

from filters.quality import japanese_char_count

# --- label -> Python codec, after the WHATWG Encoding Standard's label table -----------------
_LABEL_GROUPS: dict[str, tuple[str, ...]] = {
    "utf-8": ("utf-8", "utf8", "unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "x-unicode20utf8"),
    # WHATWG decodes every Shift_JIS label with the Windows-31J table (NEC/IBM extensions:
    # ①, №, ⅰ, 髙); Python's shift_jis lacks them and fails on 940 bytes of a real CP932 feed.
    "cp932": (
        "shift_jis",
        "shift-jis",
        "sjis",
        "x-sjis",
        "windows-31j",
        "ms_kanji",
        "ms932",
        "csshiftjis",
        "cp932",
    ),
    # euc_jis_2004 rather than euc_jp: on all 26 real EUC-JP feeds in charset_feeds both give
    # identical text and both re-encode to the original bytes; over the whole 2- and 3-byte
    # space euc_jis_2004 decodes a strict superset (1,918 + 2,436 more sequences, none
    # decoded differently), e.g. NEC row 13 (0xADA1 = ①) that Windows-made EUC-JP pages use
    # and browsers decode but Python's euc_jp rejects. JIS X 0212 (0x8F..) decodes alike.
    "euc_jis_2004": ("euc-jp", "x-euc-jp", "cseucpkdfmtjapanese"),
    # iso2022_jp_ext adds half-width katakana (ESC ( I), which WHATWG's decoder accepts.
    "iso2022_jp_ext": ("iso-2022-jp", "csiso2022jp"),
    # The non-Japanese ones matter for the language-ID control set: GBK read as cp932 or EUC-JP
    # often decodes "cleanly" into fake Japanese.
    "gb18030": (
        "gbk",
        "gb2312",
        "gb_2312",
        "gb_2312-80",
        "chinese",
        "csgb2312",
        "csiso58gb231280",
        "iso-ir-58",
        "x-gbk",
        "gb18030",
    ),
    "big5hkscs": ("big5", "big5-hkscs", "cn-big5", "csbig5", "x-x-big5"),
    "cp949": (
        "euc-kr",
        "cseuckr",
        "csksc56011987",
        "iso-ir-149",
        "korean",
        "ks_c_5601-1987",
        "ks_c_5601-1989",
        "ksc5601",
        "ksc_5601",
        "windows-949",
    ),
    "cp1252": (
        "windows-1252",
        "cp1252",
        "x-cp1252",
        "iso-8859-1",
        "iso8859-1",
        "iso88591",
        "iso_8859-1",
        "iso_8859-1:1987",
        "latin1",
        "l1",
        "ascii",
        "us-ascii",
        "ansi_x3.4-1968",
        "cp819",
        "ibm819",
        "csisolatin1",
        "iso-ir-100",
    ),
    "utf-16-le": ("utf-16", "utf-16le", "unicode", "ucs-2", "csunicode", "unicodefeff", "iso-10646-ucs-2"),
    "utf-16-be": ("utf-16be", "unicodefffe"),
    "koi8-r": ("koi8-r", "koi8_r", "koi8", "cskoi8r"),
    "koi8-u": ("koi8-u", "koi8-ru"),
}
_LABEL_TO_CODEC = {label: codec for codec, labels in _LABEL_GROUPS.items() for label in labels}
for _n in range(1250, 1259):
    _LABEL_TO_CODEC.update({f"windows-{_n}": f"cp{_n}", f"cp{_n}": f"cp{_n}", f"x-cp{_n}": f"cp{_n}"})
for _n in (2, 3, 4, 5, 6, 7, 8, 10, 13, 14, 15, 16):
    _LABEL_TO_CODEC.update({f"iso-8859-{_n}": f"iso8859_{_n}", f"iso8859-{_n}": f"iso8859_{_n}"})
_LABEL_TO_CODEC.update({"iso-8859-9": "cp1254", "latin5": "cp1254"})  # WHATWG, like -1 -> 1252

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([^\s;"']+)""", re.IGNORECASE)
# Covers <meta charset="x"> and <meta http-equiv="Content-Type" content="text/html; charset=x">.
_META_CHARSET = re.compile(rb"""<meta\b[^>]*?charset\s*=\s*["']?\s*([a-zA-Z0-9_.:\-]+)""", re.IGNORECASE)
_META_SCAN_BYTES = 4096
_ISO2022JP_ESCAPES = re.compile(rb"\x1b\$[@B]|\x1b\(I")  # JIS X 0208 or half-width kana
_HALF_WIDTH_KATAKANA = re.compile("[\uff61-\uff9f]")
_REPLACEMENT = "\ufffd"


@dataclasses.dataclass(frozen=True)
class DecodedHtml:
    text: str
    charset: str  # the Python codec that produced `text`
    declared: str | None  # the label as declared (lower case), if any
    source: str | None  # where `declared` was found: "bom" | "http-header" | "meta" | None
    errors: int  # U+FFFD characters in `text` (a page that really contains U+FFFD counts too)


def declared_charset(content_type_header: str | None, body: bytes) -> tuple[str | None, str | None]:
    """The charset label a browser would honour, and where it was declared.

    >>> declared_charset("text/html; charset=Shift_JIS", b"<html>")
    ('shift_jis', 'http-header')
    >>> declared_charset(None, b'<meta http-equiv=Content-Type content="text/html; charset=EUC-JP">')
    ('euc-jp', 'meta')
    >>> declared_charset("text/html; charset=EUC-JP", codecs.BOM_UTF8 + "日本".encode())
    ('utf-8', 'bom')
    """
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return codec, "bom"
    if content_type_header:
        match = _HEADER_CHARSET.search(content_type_header)
        if match:
            return match.group(1).lower(), "http-header"
    match = _META_CHARSET.search(body[:_META_SCAN_BYTES])
    if match:
        return match.group(1).decode("ascii").lower(), "meta"
    return None, None


def _codec_for(label: str, source: str | None) -> str | None:
    if source == "bom":
        # Codecs that consume the BOM, so it does not start the text as U+FEFF.
        return {"utf-8": "utf-8-sig", "utf-16-le": "utf-16", "utf-16-be": "utf-16"}[label]
    codec = _LABEL_TO_CODEC.get(label)
    # WHATWG: a <meta> cannot switch to UTF-16 (the meta was just read as ASCII bytes).
    if source == "meta" and codec in ("utf-16-le", "utf-16-be"):
        return "utf-8"
    return codec


def _japanese_plausibility(text: str) -> int:
    # EUC-JP bytes read as cp932 come out as runs of half-width katakana (0xA1-0xDF are single
    # half-width kana there); real text has kana and kanji. Measured on charset_feeds: 946 of
    # 3,285 non-ASCII EUC-JP lines decode cleanly as cp932; this score picks EUC-JP for 943 of
    # them, and cp932 for 22 of the 23 real CP932 lines that also decode as EUC-JP.
    return japanese_char_count(text) - len(_HALF_WIDTH_KATAKANA.findall(text))


def _sniff(body: bytes) -> tuple[str, str] | None:
    # No chardet/charset-normalizer: a Japanese crawl needs only these candidates, and a strict
    # decode is a strong test (real Shift_JIS and EUC-JP pages are never valid UTF-8).
    if _ISO2022JP_ESCAPES.search(body):
        # ISO-2022-JP is 7-bit, so it is also "valid UTF-8" with the escapes left in as text;
        # its designator sequences are unmistakable, so look for them first.
        try:
            return "iso2022_jp_ext", body.decode("iso2022_jp_ext")
        except UnicodeDecodeError:
            pass
    try:
        return "utf-8", body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    clean = []
    for codec in ("cp932", "euc_jis_2004"):
        try:
            clean.append((codec, body.decode(codec)))
        except UnicodeDecodeError:
            pass
    if not clean:
        return None
    # max() keeps the first on a tie, so cp932 (the commoner encoding) wins ties.
    return max(clean, key=lambda candidate: _japanese_plausibility(candidate[1]))


def decode_html(body: bytes, content_type_header: str | None) -> DecodedHtml:
    """Decode an HTTP body to text: declaration first (BOM, header, meta), then sniffing.

    >>> page = "<title>吾輩は猫である</title>".encode("cp932")
    >>> decode_html(page, "text/html; charset=Shift_JIS").text
    '<title>吾輩は猫である</title>'
    >>> decoded = decode_html("<p>吾輩は猫である。名前はまだ無い。</p>".encode("euc_jp"), None)
    >>> decoded.charset, decoded.source, decoded.errors
    ('euc_jis_2004', None, 0)
    """
    label, source = declared_charset(content_type_header, body)
    codec = _codec_for(label, source) if label else None
    if codec is not None:
        text = body.decode(codec, errors="replace")
        errors = text.count(_REPLACEMENT)
        if errors and codec not in ("utf-8", "utf-8-sig"):
            # A declared legacy charset that fails while the bytes are valid UTF-8 is a page
            # re-saved as UTF-8 under its old <meta>; browsers would show mojibake, we need text.
            try:
                return DecodedHtml(body.decode("utf-8"), "utf-8", label, source, 0)
            except UnicodeDecodeError:
                pass
        return DecodedHtml(text, codec, label, source, errors)
    sniffed = _sniff(body)
    if sniffed is not None:
        sniffed_codec, text = sniffed
        return DecodedHtml(text, sniffed_codec, label, source, 0)
    text = body.decode("utf-8", errors="replace")
    return DecodedHtml(text, "utf-8", label, source, text.count(_REPLACEMENT))


# --- text not worth extracting --------------------------------------------------------------
# C0 controls other than tab, LF, FF and CR. Binary bytes decode "cleanly" into them under any
# single-byte label: the real WARC.gz in warc_non_japanese_control read as windows-1251 has 0.4 %
# U+FFFD but 11 % controls. ISO-2022-JP read by another codec keeps its ESC bytes (4 % of _ude_1).
# No correctly decoded page of charset_feeds, postlight, Aozora or that WARC has a single one.
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f]")
_KANA = re.compile("[\u3041-\u3096\u30a1-\u30fa]")
# What windows-1252 (every latin1/ascii label) makes of the bytes 0x80-0xFF.
_LATIN_HIGH = re.escape(bytes(range(0x80, 0x100)).decode("cp1252", errors="ignore"))
_LATIN_HIGH_CHAR = re.compile(f"[{_LATIN_HIGH}]")
_LATIN_HIGH_RUN = re.compile(f"[{_LATIN_HIGH}]{{3,}}")
_SINGLE_BYTE_CODECS = frozenset(
    c for c in _LABEL_TO_CODEC.values() if c.startswith(("cp125", "iso8859", "koi8"))
)
_MIN_MOJIBAKE_CHARS = 20
# Share of Latin-1 characters in runs of three or more: at most 0.7 % (Icelandic) in justext's
# stop-word lists of the 44 languages windows-1252 can encode (Finnish "ää" is a pair, not a run);
# at least 29.9 % in every Shift_JIS, CP932 and EUC-JP feed of charset_feeds read as windows-1252.
_MIN_LATIN_RUN_SHARE = 0.2


def is_undecodable(decoded: DecodedHtml, max_replacement_fraction: float = 0.01) -> bool:
    """True if the decoded page is binary or mojibake rather than text: reject it as ``charset``.

    >>> euc_jp = "<p>吾輩は猫である。名前はまだ無い。</p>".encode("euc_jp")
    >>> is_undecodable(decode_html(euc_jp, None))
    False
    >>> is_undecodable(decode_html(euc_jp, "text/html; charset=latin1"))
    True
    """
    return undecodable_reason(decoded, max_replacement_fraction) is not None


def undecodable_reason(decoded: DecodedHtml, max_replacement_fraction: float = 0.01) -> str | None:
    """Which rule finds the page undecodable, for the manifest; None if it is text.

    Three rules, each from the wrong decodings of the real feeds in charset_feeds:
    1. U+FFFD plus C0 control characters exceed ``max_replacement_fraction`` of the text
       (markup included): ``"replacement_chars"`` or ``"control_chars"``, whichever are more.
    2. ``"half_width_katakana"``: at least 20, and more than hiragana and katakana together.
       EUC-JP read as Shift_JIS turns each kana and kanji into pairs of them (manana.moo.jp:
       1,093, no kana, but only 0.8 % U+FFFD); real pages use them as an accent (chuo-u: 60
       beside 240 kana).
    3. ``"latin1_runs"``: a single-byte codec (a Latin-1 label) made at least 20 Latin-1
       characters in runs of three or more, over a fifth of all of them. Japanese bytes turn
       into such runs (EUC-JP as latin1: 0 % U+FFFD); accented letters in European text stand
       alone.
    Japanese bytes under a Cyrillic or Chinese label decode into plausible Cyrillic or hanzi;
    language ID rejects those, not this function.

    >>> undecodable_reason(decode_html("<p>吾輩は猫である。</p>".encode("euc_jp"), "text/html; charset=utf-8"))
    'replacement_chars'
    """
    text = decoded.text
    if not text:
        return None
    controls = len(_CONTROL.findall(text))
    if decoded.errors + controls > max_replacement_fraction * len(text):
        return "replacement_chars" if decoded.errors >= controls else "control_chars"
    half_width = len(_HALF_WIDTH_KATAKANA.findall(text))
    if half_width >= _MIN_MOJIBAKE_CHARS and half_width > len(_KANA.findall(text)):
        return "half_width_katakana"
    if decoded.charset in _SINGLE_BYTE_CODECS:
        # A run of one repeated character (a row of em dashes) is decoration, not mojibake.
        in_runs = sum(len(run) for run in _LATIN_HIGH_RUN.findall(text) if len(set(run)) > 1)
        latin_high = len(_LATIN_HIGH_CHAR.findall(text))
        if in_runs >= _MIN_MOJIBAKE_CHARS and in_runs > _MIN_LATIN_RUN_SHARE * latin_high:
            return "latin1_runs"
    return None


def longest_line(text: str) -> int:
    r"""Characters in the longest line (split on LF), for the hostile-page limits.

    >>> longest_line("梅雨\n梅雨前線が停滞する。\n")
    10
    """
    # split() copies the text once; callers bound its size first (extract.max_html_chars).
    return max(map(len, text.split("\n")), default=0)


# --- main text -------------------------------------------------------------------------------
# "jcorpus", chosen on the 29 pages of html_pages_postlight (test_html_extract.py measures):
# include_tables=True keeps jvndb's CVSS table (24 pages hit vs 23 without tables);
# favor_recall (23) lost rbbtoday's article to a link list; favor_precision (23) cut rbbtoday
# to 100 characters. fast=True gave the same hits in half the time here, but we keep
# trafilatura's fallback extractors (fast=False) until a benchmark on a real WARC says otherwise.
# deduplicate=False: dedup is its own stage, where a reviewer can see what was removed.
TRAFILATURA_PARAMS: dict[str, object] = {
    "output_format": "txt",
    "include_comments": False,
    "include_tables": True,
    "include_images": False,
    "include_links": False,
    "include_formatting": False,
    "favor_precision": False,
    "favor_recall": False,
    "deduplicate": False,
    "with_metadata": False,
    "fast": False,
}

# Every preset spells out all the keys above, so a manifest shows the whole setting; keys a
# source left unset carry trafilatura 2.3.1's defaults. Gold hits on the 29 postlight pages
# (test_html_extract.py): jcorpus 25, swallow 24, fineweb2 23.
TRAFILATURA_PRESETS: dict[str, dict[str, object]] = {
    "jcorpus": TRAFILATURA_PARAMS,
    # Swallow corpus v1, swallow-llm/swallow-corpus @ 2d035073 warc2raw.py:
    # trafilatura.extract(html, include_comments=False, include_tables=False)
    # (docs/research/mission_anchors.md §3.2; sources_and_law.md §4.6).
    "swallow": {**TRAFILATURA_PARAMS, "include_tables": False},
    # FineWeb-2, huggingface/fineweb-2 fineweb-2-pipeline.py: datatrove's
    # Trafilatura(favour_precision=True), which calls extract(text, favor_precision=True,
    # include_comments=False, deduplicate=True) (datatrove 0.10.1 pipeline/extractors/
    # trafilatura.py; mission_anchors.md §1a). It passes no timeout, so datatrove's default
    # applies, and that is not a trafilatura option: 1 s in 0.10.1, 0.1 s in earlier releases
    # (huggingface/datatrove @ f4233219 extractors/base.py). deduplicate=True keeps an LRU cache
    # of text segments across calls: a page's text depends on what the process extracted before.
    "fineweb2": {**TRAFILATURA_PARAMS, "favor_precision": True, "deduplicate": True},
}


def _trafilatura_version() -> str:
    # The distribution's metadata, not trafilatura.__version__: importing trafilatura costs
    # about a second and this module must stay cheap to import.
    from importlib import metadata

    try:
        return metadata.version("trafilatura")
    except metadata.PackageNotFoundError:
        return "not-installed"


EXTRACTOR_ID = f"trafilatura-{_trafilatura_version()}"


def extract_main_text(
    html: str, url: str | None = None, params: dict[str, object] | None = None
) -> str | None:
    """Main text of a page with trafilatura; None if nothing was found.

    ``params`` are trafilatura.extract keywords, normally one of ``TRAFILATURA_PRESETS``; the
    default is ``TRAFILATURA_PARAMS``.

    >>> page = ("<html><body><nav>ホーム</nav><article><h1>梅雨</h1><p>梅雨（つゆ、ばいう）は、"
    ...         "北海道と小笠原諸島を除く日本、朝鮮半島南部、中国の南部から長江流域にかけての"
    ...         "沿海部、および台湾など、東アジアの広範囲においてみられる特有の気象現象で、"
    ...         "5月から7月にかけて来る曇りや雨の多い期間のこと。</p></article></body></html>")
    >>> extract_main_text(page).splitlines()[-1][:10]
    '梅雨（つゆ、ばいう）'
    >>> extract_main_text("<html><body></body></html>") is None
    True
    """
    try:
        import trafilatura
    except ImportError as exc:
        raise ImportError("extraction needs trafilatura: pip install 'trafilatura>=2.3'") from exc
    text = trafilatura.extract(html, url=url, **(TRAFILATURA_PARAMS if params is None else params))
    return text or None
