"""Real Japanese texts bundled with the repository, shared by tests that need varied real text:
Japanese Wikipedia paragraphs (CC BY-SA 4.0), 行政手続法 from e-Gov, and Diet speeches."""

from __future__ import annotations

import json
from pathlib import Path

from sources.law_xml import law_xml_to_text

REPO = Path(__file__).resolve().parents[1]
WIKI = [
    json.loads(line)["text"] for line in (REPO / "sample" / "wikipedia_ja.jsonl").read_text().splitlines()
]
LAW = law_xml_to_text(
    (REPO / "tests/data/egov/405AC0000000088_20240401_504AC0100000052.xml").read_bytes()
).text
SPEECHES = [
    s["speech"]
    for m in json.loads((REPO / "sample/kokkai/meetings_rebuilt.json").read_text())["meetingRecord"]
    for s in m["speechRecord"]
]
