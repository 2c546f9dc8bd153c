"""extract: HTML responses to main text with trafilatura, decoded by the charset the page declares."""

from __future__ import annotations

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


def mime_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


class ExtractStage(Stage):
    name = "extract"
    input_stage = "fetch"

    def process(self, shard: ShardSpec) -> ShardResult:
        from filters.html import EXTRACTOR_ID, TRAFILATURA_PARAMS, decode_html, extract_main_text

        cfg = self.config.extract
        table, rows = read_input(shard)
        payloads = table.column("payload").to_pylist()
        texts = table.column("text").to_pylist()
        statuses = table.column("http_status").to_pylist()
        content_types = table.column("content_type").to_pylist()
        urls = table.column("url").to_pylist()

        out_texts: list[str | None] = []
        updates: list[RowUpdate] = []
        for payload, text, status, ctype, url in zip(payloads, texts, statuses, content_types, urls):
            update = RowUpdate()
            updates.append(update)
            if text is not None:  # arrived as text (local documents): nothing to extract
                out_texts.append(text)
                continue
            out_texts.append(None)
            if cfg.require_http_200:
                update.decisions.append(decision(self.name, "http_status_200", status, status == 200))
                if status != 200:
                    update.reason, update.detail = "http_status_not_200", f"HTTP {status}"
                    continue
            mime = mime_type(ctype)
            is_html = mime in cfg.html_mime_types
            update.decisions.append(decision(self.name, "html_mime_type", None, is_html))
            if not is_html:
                update.reason, update.detail = "not_html", mime or "no Content-Type"
                continue
            decoded = decode_html(payload, ctype)
            update.transforms.append(
                transform(
                    self.name,
                    "filters.html.decode_html",
                    decoded.charset,
                    {"declared": decoded.declared, "declared_in": decoded.source},
                )
            )
            update.decisions.append(decision(self.name, "decode_replacement_chars", decoded.errors, True))
            extracted = extract_main_text(decoded.text, url)
            update.transforms.append(transform(self.name, "trafilatura", EXTRACTOR_ID, TRAFILATURA_PARAMS))
            update.decisions.append(
                decision(self.name, "extracted_chars", len(extracted or ""), bool(extracted))
            )
            if not extracted:
                update.reason, update.detail = "no_text_extracted", None
                continue
            out_texts[-1] = extracted

        import pyarrow as pa

        table = table.set_column(
            table.schema.get_field_index("text"), "text", pa.array(out_texts, pa.string())
        )
        table = table.select(OUTPUT_COLUMNS)
        result = split_documents(
            self.name, table, rows, updates, [sha256_hex(t) if t else None for t in out_texts]
        )
        result.bytes_in = sum(len(p or b"") for p in payloads)
        return result
