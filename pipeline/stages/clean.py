"""clean: Japanese normalisation, boilerplate trims, every Swallow / LLM-jp / HojiChar rule by the
source's rule profile, and PII masking (the decision per document is clean_rules.py).

Every measurement is a column (`clean_<name>`, float32) and every rule that ran a manifest
decision; thresholds come from `clean.<profile>.*`, so a reviewer sees why a document was dropped.
By default a document stops at its first failed rule (rules cheapest first): the rules after it
are not recorded, a `rules_skipped_after_first_failure` decision counts them, and their columns
are null. With `clean.measure_all: true` every rule is measured and recorded on every document,
so a threshold can change without re-measuring. The profile used is a decision
(`profile:<name>`) in each row.
"""

from __future__ import annotations

import json

import pyarrow as pa

from manifests.schema import sha256_hex
from pipeline.stage import (
    RowUpdate,
    ShardResult,
    ShardSpec,
    Stage,
    read_input,
    split_documents,
    text_characters,
)
from pipeline.stages.clean_rules import CleanOutcome, clean_document, clean_documents, score_names

LANGUAGE_SCORE_COLUMN = "language_score_lid176_v1"
__all__ = ["CleanOutcome", "CleanStage", "clean_document", "clean_documents"]


class CleanStage(Stage):
    name = "clean"
    input_stage = "extract"

    def setup(self) -> None:
        from filters.langid import MODEL_ID

        self.scorer = {
            "stage": self.name,
            "tool": "fasttext",
            "version": MODEL_ID,
            "params_sha256": sha256_hex(
                json.dumps(
                    {
                        "language": self.config.clean.language,
                        # The score changes with how much text fastText reads.
                        "chars": self.config.clean.language_id_chars,
                    }
                )
            )[:16],
        }

    def process(self, shard: ShardSpec) -> ShardResult:
        table, rows = read_input(shard)
        texts, updates, scores = [], [], []
        urls = table.column("url").to_pylist() if "url" in table.column_names else [None] * table.num_rows
        # The whole shard at once: the costly measurements run once per batch (clean_documents).
        outcomes = clean_documents(
            zip(table.column("text").to_pylist(), urls, [row["source"] for row in rows], strict=True),
            config=self.config.clean,
            resolve=self.config.resolve_path,
        )
        for outcome, row in zip(outcomes, rows, strict=True):
            texts.append(outcome.text)
            scores.append(outcome.scores)
            update = RowUpdate(transforms=outcome.transforms + [self.scorer], decisions=outcome.decisions)
            update.reason, update.detail = outcome.reason, outcome.detail
            if outcome.trimmed_notices:  # rights notices in trimmed lines join the page's own
                optout = json.loads(row["optout"] or "{}")
                optout["trimmed_rights_notices"] = outcome.trimmed_notices
                update.fields["optout"] = json.dumps(optout, ensure_ascii=False, sort_keys=True)
            updates.append(update)
        characters_in = text_characters(table)
        table = table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts, pa.string()))
        table = table.append_column(
            LANGUAGE_SCORE_COLUMN, pa.array([s["language_score"] for s in scores], pa.float32())
        )
        for name in score_names():  # the same columns in every shard, an empty one too
            table = table.append_column(f"clean_{name}", pa.array([s[name] for s in scores], pa.float32()))
        result = split_documents(self.name, table, rows, updates, [sha256_hex(t) for t in texts])
        result.characters_in = characters_in
        return result
