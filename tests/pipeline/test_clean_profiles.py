"""Rule profiles per source, on real text from ../shared/data: the web rules would destroy statutes
and speeches (numbered provisions, long spoken sentences), so laws and Diet minutes get their own
profiles, which keep at least 95% of them, while web spam is still rejected by the web profile.
Also: PII is masked and counted, and a footer trim is a transform that keeps its rights notices.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.stages.clean import clean_document
from sources.law_xml import law_xml_to_text

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
CONFIG = load_config().clean


def kept_share(texts: list[str], source: str) -> tuple[float, dict[str, int]]:
    reasons: dict[str, int] = {}
    for text in texts:
        reason = clean_document(text, url=None, source=source, config=CONFIG).reason
        reasons[reason] = reasons.get(reason, 0) + 1
    return reasons.get(None, 0) / len(texts), reasons


@pytest.fixture(scope="module")
def speeches() -> list[str]:
    path = SHARED / "kokkai_speeches" / "speeches_sample2000.jsonl"
    return [json.loads(line)["speech"] for line in path.read_text("utf-8").splitlines()]


@pytest.fixture(scope="module")
def law_parts() -> list[str]:
    """行政手続法 as one document per chapter and per 附則, as a law corpus would cut it."""
    xml = (SHARED / "egov_law_xml" / "405AC0000000088_20240401_504AC0100000052.xml").read_bytes()
    text = law_xml_to_text(xml).text
    parts = re.split(r"\n(?=第[一二三四五六七八九十]+章　|附　則)", text)
    assert len(parts) > 10 and parts[1].startswith("第一章　総則")
    return parts


def test_diet_speeches_are_kept_by_the_diet_profile(speeches):
    share, reasons = kept_share(speeches, "kokkai")
    assert share >= 0.95, reasons
    web_share, _ = kept_share(speeches, "local")  # the same speeches under the web profile
    assert web_share < 0.6


def test_statutes_are_kept_by_the_law_profile(law_parts):
    share, reasons = kept_share(law_parts, "egov")
    assert share >= 0.95, reasons
    web_share, web_reasons = kept_share(law_parts, "local")
    assert web_share < 0.2, web_reasons


def feed_text(name: str, encoding: str) -> str:
    """A real blog feed's entries, tags stripped (chardet test data, LGPL-2.1)."""
    raw = (SHARED / "charset_feeds" / name).read_bytes().decode(encoding)
    return html.unescape(re.sub(r"<[^>]+>", "\n", raw))


@pytest.mark.parametrize(
    ("name", "encoding"),
    [
        ("SHIFT_JIS/10e.org.xml", "cp932"),  # adult affiliate blog (read: おっぱい, 巨乳, エロ ...)
        ("SHIFT_JIS/accessories-brand.com.xml", "cp932"),  # brand-goods shop listings, ■ ad lines
        ("SHIFT_JIS/1affliate.com.xml", "cp932"),  # affiliate mail magazine, repeated banners
    ],
)
def test_web_spam_is_still_rejected_by_the_web_profile(name, encoding):
    outcome = clean_document(feed_text(name, encoding), url=None, source="commoncrawl", config=CONFIG)
    assert outcome.profile == "web" and outcome.reason is not None
    # The same text under the lenient profiles would pass some rules it fails here: the
    # profile, not the text's origin, decides, and it is recorded.
    assert {"check": "profile:web", "value": None, "passed": True, "stage": "clean"} in outcome.decisions


def test_personal_information_is_masked_and_counted(speeches):
    text = speeches[0] + "\n問い合わせは03-3581-5111まで、メールはinfo@example.go.jpへ。"
    outcome = clean_document(text, url=None, source="kokkai", config=CONFIG)
    assert outcome.reason is None
    assert "[PHONE]" in outcome.text and "[EMAIL]" in outcome.text and "03-3581" not in outcome.text
    assert outcome.pii_counts == {"phone": 1, "email": 1}
    assert {d["check"]: d["value"] for d in outcome.decisions}["pii:phone"] == 1.0
    assert any(t["tool"] == "filters.pii.mask_pii" for t in outcome.transforms)


def test_a_footer_trim_is_recorded_with_the_rights_notice_it_removed():
    line = (SHARED / "wikipedia_paragraphs_jsquad" / "jsquad_valid_wikipedia_paragraphs.jsonl").read_text(
        "utf-8"
    )
    article = json.loads(line.splitlines()[0])["context"].split(" [SEP] ", 1)[1]  # 梅雨, CC BY-SA 4.0
    footer = (
        "会社概要 | プライバシーポリシー | お問い合わせ\nCopyright © 2019 Example Inc. All Rights Reserved."
    )
    page = article + "\n" + footer
    outcome = clean_document(page, url=None, source="commoncrawl", config=CONFIG)
    assert "Copyright" not in outcome.text and "会社概要" not in outcome.text
    assert any(t["tool"] == "filters.boilerplate.swallow_footer" for t in outcome.transforms)
    assert {n["kind"] for n in outcome.trimmed_notices} >= {"copyright_line", "all_rights_reserved"}
