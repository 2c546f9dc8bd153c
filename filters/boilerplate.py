"""Boilerplate in extracted page text: footer trimming, table leftovers, BBS and ad measures.

The two trims return a :class:`Trim` (new text, the removed lines, the rule), so the clean stage can
record a transform and keep what was cut. Rights notices (©, 無断転載を禁じます) often sit in the
footer that :func:`trim_footer` removes: run ``filters.rights.detect_rights_notices`` on the text
(or the HTML) *before* trimming, or on ``Trim.removed_lines``.

- :func:`trim_footer`: Swallow Corpus v1's footer rule (swallow-llm/swallow-corpus, footer code used
  by ``modify.py``; MIT, Copyright (c) 2023-2024 Naoaki Okazaki). Among the last ``last_lines``
  lines, find the first whose footer-keyword characters make up more than ``min_keyword_ratio`` of
  the line, and cut from that line to the end (lines after it go too, footer or not). Keywords:
  ``data/urls/swallow_footer_keywords.txt``, removed longest first by ``str.replace``.
- :func:`drop_table_artifacts`: lines that trafilatura leaves from tables and rules and that
  carry no text: ``|  |  |``, ``|---|---|``, ``+----+``, ``------``, ``━━━━``.
- :func:`bbs_comment_score`: HojiChar ``DiscardBBSComments``' measure, the number of matches of
  its "BBS pattern" (dates, 曜日 in brackets, コメント, 投稿, レビュー, ページ, 質問, N話, 楽天市場,
  SOLD OUT and every "-"). HojiChar rejects a document above 14.
- :func:`ad_line_count`: HojiChar ``DiscardAds``' measure, the number of matches of its ad
  keywords (``data/urls/advertisement_keywords_ja.txt``, which includes ①–⑥ and ■). HojiChar
  rejects above 14; LLM-jp corpus v1 used ``DiscardAds(max_allowed_num=10)``.

Both HojiChar measures are ported from HojiChar/HojiChar
``hojichar/filters/document_filters.py`` @ 000d3f538dc4d1ab514fd6507fa2fc3f014d32c7 (Apache-2.0):
same regular expressions, same ``re.findall`` count (non-overlapping, leftmost, alternatives in
dictionary order), on the whole text.
"""

from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass
from functools import lru_cache

BOILERPLATE_ID = "boilerplate_v1"

DATA_DIR = pathlib.Path(__file__).resolve().parent / "data" / "urls"
SWALLOW_FOOTER_KEYWORDS_PATH = DATA_DIR / "swallow_footer_keywords.txt"
HOJICHAR_AD_KEYWORDS_PATH = DATA_DIR / "advertisement_keywords_ja.txt"

# Thresholds of the anchors, for the stage that decides (these functions only measure).
HOJICHAR_BBS_MAX_ALLOWED = 14  # DiscardBBSComments default: reject if score > 14
HOJICHAR_ADS_MAX_ALLOWED = 14  # DiscardAds default
LLM_JP_V1_ADS_MAX_ALLOWED = 10  # llm-jp-corpus v1 is_not_ad_content: DiscardAds(max_allowed_num=10)

FOOTER_RULE = "swallow_footer"
TABLE_RULE = "table_artifacts"


@dataclass(frozen=True)
class Trim:
    """Result of a trim: ``text`` after it, the ``removed_lines`` in order, and the ``rule``."""

    text: str
    removed_lines: tuple[str, ...]
    rule: str

    @property
    def changed(self) -> bool:
        return bool(self.removed_lines)


@lru_cache(maxsize=1)
def swallow_footer_keywords() -> tuple[str, ...]:
    """Swallow's footer keywords, deduplicated, longest first.

    Swallow sorts ``set(words)`` by length only, so equal-length words come in hash order; we break
    ties alphabetically to be deterministic (no two equal-length keywords overlap in a way that
    changes the count).
    """
    words = SWALLOW_FOOTER_KEYWORDS_PATH.read_text(encoding="utf-8").split("\n")
    return tuple(sorted({w for w in words if w}, key=lambda w: (-len(w), w)))


@lru_cache(maxsize=1)
def _any_footer_keyword() -> re.Pattern[str]:
    # Only asks whether a keyword occurs: 96% of the lines in the benchmark corpus's tails hold
    # none, and their ratio is 0 without the 72 replacements below.
    return re.compile("|".join(map(re.escape, swallow_footer_keywords())))


def footer_keyword_ratio(line: str) -> float:
    """Share of the line's characters taken by footer keywords (Swallow's ``is_footer`` measure).

    Copyright 9 + © 1 + Inc. 4 + Rights 6 + Reserved 8 = 28 of 46 characters ("All Rights
    Reserved" is not the keyword "All rights reserved"; matching is case-sensitive):

    >>> footer_keyword_ratio("Copyright © ITmedia, Inc. All Rights Reserved.") == 28 / 46
    True
    >>> footer_keyword_ratio("")
    0.0
    """
    total = len(line)
    if total == 0 or _any_footer_keyword().search(line) is None:
        return 0.0
    matched = 0
    for word in swallow_footer_keywords():
        before = len(line)
        line = line.replace(word, "")
        matched += before - len(line)
    return matched / total


def trim_footer(text: str, *, last_lines: int = 10, min_keyword_ratio: float = 0.3) -> Trim:
    """Cut the text from the first footer-like line among its last ``last_lines`` lines.

    A line is footer-like if its footer-keyword ratio is strictly greater than
    ``min_keyword_ratio``. Lines are split on "\\n" only, as Swallow does; the kept lines are
    joined with "\\n" (a trailing newline goes with the cut). Untrimmed text is returned unchanged.

    >>> t = trim_footer("本文です。\\n会社概要 | プライバシーポリシー\\nCopyright © 2024 Example")
    >>> t.text, t.removed_lines
    ('本文です。', ('会社概要 | プライバシーポリシー', 'Copyright © 2024 Example'))
    """
    # Without a keyword in the last lines (keywords hold no "\n") every ratio there is 0. The
    # last lines are found from the end (most pages have none of the keywords there, and
    # splitting the whole page was most of the cost).
    if min_keyword_ratio >= 0:
        cut = len(text)
        for _ in range(last_lines):
            cut = text.rfind("\n", 0, cut)
            if cut < 0:
                break
        if _any_footer_keyword().search(text, cut + 1) is None:  # text[cut + 1:], or all of it
            return Trim(text, (), FOOTER_RULE)
    lines = text.split("\n")
    start = max(0, len(lines) - last_lines)
    for i in range(start, len(lines)):
        if footer_keyword_ratio(lines[i]) > min_keyword_ratio:
            return Trim("\n".join(lines[:i]), tuple(lines[i:]), FOOTER_RULE)
    return Trim(text, (), FOOTER_RULE)


# Pipes (ASCII, full-width, box drawing), dashes and rules (ASCII hyphen, full-width hyphen-minus,
# Unicode dashes, box-drawing horizontals), table corners "+" and alignment colons, and blanks.
# The katakana prolonged sound mark ー is a letter, not a rule, so "ーーー" stays.
_ARTIFACT_LINE = re.compile(r"[|｜│┃\-－‐‑‒–—―─━+:：\s]+")
_PIPE_OR_DASH = re.compile(r"[|｜│┃\-－‐‑‒–—―─━]")


def _is_table_artifact(line: str) -> bool:
    # Two linear scans; one regex with a mandatory middle character would backtrack
    # quadratically on a long run of dashes followed by text.
    return _ARTIFACT_LINE.fullmatch(line) is not None and _PIPE_OR_DASH.search(line) is not None


def drop_table_artifacts(text: str) -> Trim:
    """Drop lines made only of pipes, dashes, "+", ":" and blanks (with at least one pipe or dash).

    Table rows with any text, even a lone "-" in a cell next to text, are kept; blank lines are
    kept (paragraph breaks are not table artifacts).

    >>> t = drop_table_artifacts("| 品番 | 価格 |\\n|---|---|\\n|  |  | \\n| MA-IRFP139BK | 9,900円 |")
    >>> t.text
    '| 品番 | 価格 |\\n| MA-IRFP139BK | 9,900円 |'
    >>> t.removed_lines
    ('|---|---|', '|  |  | ')
    """
    kept: list[str] = []
    removed: list[str] = []
    for line in text.split("\n"):
        (removed if _is_table_artifact(line) else kept).append(line)
    if not removed:
        return Trim(text, (), TABLE_RULE)
    return Trim("\n".join(kept), tuple(removed), TABLE_RULE)


# HojiChar DiscardBBSComments.keyword_pat, but for `\d{1,8}話` where HojiChar has `\d+話`: that
# retried from every digit of a run without 話 after it, quadratic in the run (200,000 digits:
# minutes). The count is the same: a run before 話 is still one match, of its last 8 digits.
_BBS_PATTERN = re.compile(
    r"\d{4}[年\.\-\/][\ ]*\d{1,2}[月\.\-\/][\ ]*\d{1,2}[日]*|コメント|SOLD OUT|レビュー|投稿|ページ|\([月火水木金土日]\)|質問|\d{1,8}話|楽天市場|-"  # noqa: E501
)


def bbs_comment_score(text: str) -> int:
    """Number of "BBS pattern" matches (HojiChar DiscardBBSComments rejects if > 14).

    >>> bbs_comment_score("楽天市場 質問 投稿 コメント レビュー " * 3)
    15
    >>> bbs_comment_score("鏡餅")
    0
    """
    return len(_BBS_PATTERN.findall(text))


def load_keyword_pattern(path: str | pathlib.Path) -> re.Pattern[str]:
    """HojiChar's keyword regex from a one-word-per-line file: split on "\\n", strip, drop empty
    lines, escape, join with "|" in file order."""
    with open(path, encoding="utf-8") as fp:
        words = fp.read().split("\n")
    return re.compile("|".join(re.escape(w.strip()) for w in words if len(w) != 0))


@lru_cache(maxsize=1)
def _ad_pattern() -> re.Pattern[str]:
    return load_keyword_pattern(HOJICHAR_AD_KEYWORDS_PATH)


def ad_line_count(text: str) -> int:
    """Number of ad-keyword matches in the text (HojiChar DiscardAds' count; it counts keyword hits
    over the whole text, not lines). HojiChar rejects if > 14, LLM-jp v1 if > 10.

    >>> ad_line_count("お問い合わせください 営業時間 よくある質問" * 5)
    15
    >>> ad_line_count("おはよう")
    0
    """
    return len(_ad_pattern().findall(text))
