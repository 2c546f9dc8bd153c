"""extract: HTML responses to main text, after recording every opt-out and rights signal.

For each HTML response: decode by the declared charset (reject `charset` if it does not decode),
measure the signals on the whole page before boilerplate removal (TDMRep, noai, block and
takedown lists, rights notices, Swallow-style Japanese pre-selection; for a government page the
reuse terms it states), apply the configured policy, then run trafilatura in a guarded child
process with a time limit. Documents that arrive as text (local files, Diet minutes, laws) are
checked against the block and takedown lists by URL and pass through.

Hostile sizes are refused before any parser or regex sees them: decoded HTML over
`extract.max_html_chars` (`html_too_large`), and a line over `extract.max_line_chars` in the HTML
or in the text (`line_too_long`); the README's "Hostile input" table lists what else is refused where.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from filters.extract_guard import GuardedExtractor
from filters.gov_terms import attribution, stated_terms
from filters.html import EXTRACTOR_ID, TRAFILATURA_PRESETS, decode_html, longest_line, undecodable_reason
from filters.optout import UrlList, check_optout
from filters.preselect import japanese_preselect
from filters.rights import detect_rights_notices
from manifests.schema import sha256_hex
from pipeline.stage import (
    RowUpdate,
    ShardResult,
    ShardSpec,
    Stage,
    decision,
    read_input,
    split_documents,
    transform,
)

OUTPUT_COLUMNS = ["doc_id", "source", "url", "text"]
EXTRACTION_FAILURES = {
    "timeout": "extraction_timeout",
    "crashed": "extraction_failed",
    "error": "extraction_failed",
}


def mime_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


class ExtractStage(Stage):
    name = "extract"
    input_stage = "fetch"

    def setup(self) -> None:
        cfg = self.config.extract
        self.params = TRAFILATURA_PRESETS[cfg.trafilatura_preset]
        self.extraction = transform(
            self.name, f"trafilatura[{cfg.trafilatura_preset}]", EXTRACTOR_ID, self.params
        )
        self.extractor = GuardedExtractor(timeout_seconds=cfg.timeout_seconds, params=self.params)
        self.extractor.__enter__()
        optout = self.config.optout
        self.blocklist = self.takedowns = None
        if optout.blocklist_path:
            self.blocklist = UrlList.from_file(self.config.resolve_path(optout.blocklist_path))
        if optout.takedown_path:
            self.takedowns = UrlList.from_file(self.config.resolve_path(optout.takedown_path))

    def teardown(self) -> None:
        self.extractor.__exit__(None, None, None)

    def process(self, shard: ShardSpec) -> ShardResult:
        table, rows = read_input(shard)
        columns = {name: table.column(name).to_pylist() for name in table.column_names}
        texts: list[str | None] = []
        updates: list[RowUpdate] = []
        for i in range(table.num_rows):
            update = RowUpdate()
            doc = {name: values[i] for name, values in columns.items()}
            if doc["text"] is not None:
                text = self._document(doc, update)
            else:
                text = self._html(doc, rows[i], update)
            texts.append(text if update.reason is None else None)
            updates.append(update)
        table = table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts, pa.string()))
        table = table.select(OUTPUT_COLUMNS)
        result = split_documents(
            self.name, table, rows, updates, [sha256_hex(t) if t else None for t in texts]
        )
        result.bytes_in = sum(len(p or b"") for p in columns["payload"])
        return result

    def _optout(self, url: str | None, headers: list, html: str | None, update: RowUpdate) -> dict[str, Any]:
        """Record every signal in the manifest; return the verdict for the policy."""
        result = check_optout(url or "", headers, html, blocklist=self.blocklist, takedowns=self.takedowns)
        policy = self.config.optout
        rejecting = {
            "tdm_reservation": policy.reject_tdm_reservation,
            "noai": policy.reject_noai,
            "blocklist": True,
            "takedown": True,
        }
        verdict = {
            "signals": result.signals,
            "reserved_by": result.reserved_by,
            "verdict": "reserved" if result.reserved_by else "allowed",
        }
        update.decisions.append(
            decision(self.name, "optout", None, not rejecting.get(result.reserved_by, False))
        )
        if result.reserved_by and rejecting.get(result.reserved_by, False):
            update.reason, update.detail = f"optout_{result.reserved_by}", json.dumps(result.signals)[:500]
        return verdict

    def _too_long(self, text: str, what: str, update: RowUpdate) -> bool:
        """Hostile sizes, refused before any regex or parser sees them: html_too_large, line_too_long."""
        cfg = self.config.extract
        if what == "html":
            fits = len(text) <= cfg.max_html_chars
            update.decisions.append(decision(self.name, "max_html_chars", len(text), fits))
            if not fits:
                update.reason = "html_too_large"
                update.detail = f"{len(text)} characters of HTML, over {cfg.max_html_chars} (max_html_chars)"
                return True
        longest = longest_line(text)
        fits = longest <= cfg.max_line_chars
        update.decisions.append(decision(self.name, f"max_line_chars:{what}", longest, fits))
        if not fits:
            update.reason = "line_too_long"
            update.detail = f"a line of {longest} characters in the {what}, over {cfg.max_line_chars}"
        return not fits

    def _document(self, doc: dict[str, Any], update: RowUpdate) -> str | None:
        verdict = self._optout(doc["url"], [], None, update)
        update.fields["optout"] = json.dumps(verdict, ensure_ascii=False, sort_keys=True)
        if update.reason is None and self._too_long(doc["text"], "text", update):
            return None
        return doc["text"]

    def _gov_terms(self, url: str, row: dict[str, Any], notices: list[dict], update: RowUpdate) -> None:
        """A government page that states PDL 1.0 or 政府標準利用規約 2.0 is open under those terms."""
        terms = stated_terms(notices)
        update.decisions.append(decision(self.name, "gov_terms", None, terms is not None))
        if terms is not None:
            update.fields.update(
                license=terms.license,
                legal_basis=list(row["legal_basis"]) + [terms.license],
                osaid_class="open",
                redistribution="text",
                attribution=attribution(url, terms),
            )

    def _html(self, doc: dict[str, Any], row: dict[str, Any], update: RowUpdate) -> str | None:
        cfg = self.config.extract
        status = doc["http_status"]
        if cfg.require_http_200:
            update.decisions.append(decision(self.name, "http_status_200", status, status == 200))
            if status != 200:
                update.reason, update.detail = "http_status_not_200", f"HTTP {status}"
                return None
        mime = mime_type(doc["content_type"])
        is_html = mime in cfg.html_mime_types
        update.decisions.append(decision(self.name, "html_mime_type", None, is_html))
        if not is_html:
            update.reason, update.detail = "not_html", mime or "no Content-Type"
            return None

        decoded = decode_html(doc["payload"], doc["content_type"])
        update.transforms.append(
            transform(
                self.name,
                "filters.html.decode_html",
                decoded.charset,
                {"declared": decoded.declared, "declared_in": decoded.source},
            )
        )
        if self._too_long(decoded.text, "html", update):
            return None
        undecodable = undecodable_reason(decoded, cfg.max_replacement_fraction)
        update.decisions.append(decision(self.name, "decoded_cleanly", decoded.errors, not undecodable))
        headers = json.loads(doc["http_headers"] or "[]")
        html = None if undecodable else decoded.text
        verdict = self._optout(doc["url"], headers, html, update)
        notices = detect_rights_notices(html) if html else []
        verdict["rights_notices"] = notices
        update.fields["optout"] = json.dumps(verdict, ensure_ascii=False, sort_keys=True)
        if doc["source"] == "gov_web":
            self._gov_terms(doc["url"], row, notices, update)
        excluded = sorted({n["kind"] for n in notices} & set(self.config.rights.exclude_kinds))
        update.decisions.append(decision(self.name, "rights_notices", len(notices), not excluded))
        passed, signal, detail = japanese_preselect(
            html or "", min_title_japanese_fraction=cfg.min_title_japanese_fraction
        )
        update.decisions.append(decision(self.name, f"japanese_preselect:{signal}", None, passed))

        # Every signal is recorded above; the policy decides in this order.
        if undecodable:
            update.reason = "charset"
            update.detail = f"{undecodable} decoding as {decoded.charset} ({decoded.errors} U+FFFD)"
            return None
        if update.reason is not None:  # an opt-out
            return None
        if excluded:
            update.reason, update.detail = (
                f"rights_{excluded[0]}",
                json.dumps(notices, ensure_ascii=False)[:500],
            )
            return None
        if cfg.preselect_japanese and not passed:
            update.reason, update.detail = "not_japanese_preselect", detail
            return None

        result = self.extractor.extract(decoded.text, doc["url"])
        update.transforms.append(self.extraction)
        update.decisions.append(
            decision(self.name, "extracted_chars", len(result.text or ""), bool(result.text))
        )
        if result.status in EXTRACTION_FAILURES:
            update.reason = EXTRACTION_FAILURES[result.status]
            update.detail = f"{result.status} after {result.seconds:.1f}s"
            return None
        if not result.text:
            update.reason = "no_text_extracted"
            return None
        if self._too_long(result.text, "text", update):
            return None
        return result.text
