"""Cheap Japanese pre-selection of an HTML page before extraction, after Swallow (§4.6).

Swallow (``swallow-llm/swallow-corpus`` ``warc2raw.py``) keeps a page for trafilatura if
``<html[^>]*\\slang\\s*=\\s*["']?ja`` matches, or if its ``nanigo`` linear classifier scores the
``<title>`` as Japanese. We keep the regex as it is (so ``lang="ja-JP"`` passes, and so would a
rare ``lang="jam"``) and replace nanigo with a character-class test, because:

- there is no nanigo model we could ship or pin (it is loaded from a local file in Swallow);
- hiragana and katakana are written only in Japanese, so one kana proves the script, while a
  title of kanji alone is as likely Chinese (the 12 Chinese titles in warc_non_japanese_control
  are 65-100% Han characters; all would pass a 0.5 share), so the title test needs one kana.

Callers decode the page first (``filters.html.decode_html``); Swallow instead tries UTF-8,
Shift_JIS and EUC-JP on the title bytes. Entities are decoded and the title NFKC-normalised, so
half-width ｶﾀｶﾅ counts as katakana. The later language-ID stage re-checks the extracted text.

>>> japanese_preselect("<html><head><title>WinRAR に脆弱性、アップデートを | TECH+</title></head></html>")
(True, 'title_chars', '0.52 Japanese of 21 letters: WinRAR に脆弱性、アップデートを | TECH+')
"""

from __future__ import annotations

import html as htmllib
import re
import unicodedata

from filters.quality import japanese_char_count

PRESELECT_ID = "japanese_preselect_v1"
LANG_SCAN_CHARS = 8192  # the <html> tag; Swallow scans the whole page
TITLE_SCAN_CHARS = 65536  # the head; takagi-hiromitsu.jp's <title> starts at 1.2 KB, gizmodo's at 3.8 KB

# Swallow's regex, verbatim (warc2raw.py re_lang_ja), on str instead of bytes.
_LANG_JA = re.compile(r"""<html[^>]*\slang\s*=\s*["']?ja""", re.IGNORECASE)
_TITLE = re.compile(r"<title[^<>]*>([^<]*)</title", re.IGNORECASE)  # [^<>]: linear on broken markup
# filters/quality.py's kana ranges, plus ー (U+30FC), which quality.py leaves out after Swallow
# but which only Japanese writes ("アークランプ" would otherwise be 5/6 Japanese).
_KANA = re.compile("[\u3041-\u3096\u30a1-\u30fa\u30fc]")
_PROLONGED_SOUND = "\u30fc"


def title_japanese_fraction(title: str) -> tuple[float, int, int]:
    """(share of letters that are hiragana/katakana/kanji, number of letters, number of kana).

    >>> title_japanese_fraction("ブログで大金持ち")
    (1.0, 8, 5)
    """
    letters = sum(ch.isalpha() for ch in title)
    if not letters:
        return 0.0, 0, 0
    japanese = japanese_char_count(title) + title.count(_PROLONGED_SOUND)
    return japanese / letters, letters, len(_KANA.findall(title))


def japanese_preselect(html: str, *, min_title_japanese_fraction: float = 0.5) -> tuple[bool, str, str]:
    """(passed, signal, detail): signal is ``html_lang``, ``title_chars`` or ``none``.

    >>> japanese_preselect('<html lang="ja-JP"><title>x</title>')
    (True, 'html_lang', '<html lang="ja')
    >>> japanese_preselect("<html><title>亚洲精品视频</title></html>")[:2]  # Chinese: kanji, no kana
    (False, 'none')
    """
    lang = _LANG_JA.search(html[:LANG_SCAN_CHARS])
    if lang:
        return True, "html_lang", lang.group(0)[:80]
    found = _TITLE.search(html[:TITLE_SCAN_CHARS])
    if not found:
        return False, "none", "no lang=ja, no <title>"
    title = unicodedata.normalize("NFKC", htmllib.unescape(found.group(1))).strip()
    fraction, letters, kana = title_japanese_fraction(title)
    detail = f"{fraction:.2f} Japanese of {letters} letters: {title[:60]}"
    if kana and fraction >= min_title_japanese_fraction:
        return True, "title_chars", detail
    return False, "none", ("no kana; " if not kana else "") + detail
