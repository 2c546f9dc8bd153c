"""Per-source completeness of a manifest row's locator: enough for a third party to obtain the
document again (DESIGN.md, "Provenance manifest").

>>> locator_problems("commoncrawl", '{"warc_filename": "crawl-data/x.warc.gz", "offset": 0}')
["locator lacks 'length' (Common Crawl record)", "locator lacks 'payload_digest' (Common Crawl record)"]
"""

from __future__ import annotations

import json

WARC_RECORD = ("warc_filename", "offset", "length", "payload_digest")


def locator_problems(source: str, locator_json: str | None) -> list[str]:
    try:
        locator = json.loads(locator_json or "")
    except json.JSONDecodeError:
        return ["locator is not valid JSON"]
    if not isinstance(locator, dict):
        return ["locator is not a JSON object"]

    def lacking(keys, what: str, where: dict = locator) -> list[str]:
        return [f"locator lacks '{k}' ({what})" for k in keys if where.get(k) in (None, "")]

    if source == "commoncrawl" or (source == "gov_web" and locator.get("via") == "commoncrawl"):
        return lacking(WARC_RECORD, "Common Crawl record")
    if source in ("gov_web", "local") and "warc_filename" in locator:
        return lacking(WARC_RECORD[:3], "WARC record")
    if source == "local":
        return lacking(("path",), "local file")
    if source == "kokkai":
        return lacking(("issueID", "requestURLs"), "Diet minutes")
    if source == "egov":
        problems = lacking(("law_id", "law_revision_id"), "e-Gov law")
        if not locator.get("request_url") and not (locator.get("bulk_zip") and locator.get("member")):
            problems.append("locator lacks 'request_url' or 'bulk_zip' and 'member' (e-Gov law)")
        return problems
    if source == "synthetic":
        generator = locator.get("generator")
        if not isinstance(generator, dict):
            return ["locator lacks 'generator' (synthetic text)"]
        problems = lacking(("model", "license"), "synthetic generator", generator)
        problems = [p.replace("'", "'generator.", 1) for p in problems]
        problems += lacking(("prompt_template_sha256", "seed"), "synthetic text")
        conditioning = locator.get("conditioning_doc_ids")
        if not isinstance(conditioning, list):
            problems.append("locator lacks 'conditioning_doc_ids' (synthetic text)")
        elif not conditioning and not locator.get("topic"):
            problems.append("locator has neither conditioning_doc_ids nor a topic (synthetic text)")
        return problems
    return []
