"""clean: Japanese normalisation, fastText language ID and a minimum length.

The language score is stored as a versioned column and the threshold comes from config, so a
reviewer sees why a document was dropped and a threshold can change without re-scoring.
"""

from __future__ import annotations

import pyarrow as pa

from manifests.schema import sha256_hex
from pipeline.stage import (
    RowUpdate,
    ShardResult,
    ShardSpec,
    Stage,
    decision,
    read_input,
    split_documents,
    text_characters,
    transform,
)

LANGUAGE_SCORE_COLUMN = "language_score_lid176_v1"


class CleanStage(Stage):
    name = "clean"
    input_stage = "extract"

    def setup(self) -> None:
        from filters.langid import FastTextLanguageId

        self.langid = FastTextLanguageId()

    def process(self, shard: ShardSpec) -> ShardResult:
        from filters.normalize import NORMALIZER_ID, normalize_japanese

        cfg = self.config.clean
        table, rows = read_input(shard)
        from filters.langid import MODEL_ID

        normalizer = transform(self.name, "filters.normalize.normalize_japanese", NORMALIZER_ID, {})
        scorer = transform(self.name, "fasttext", MODEL_ID, {"language": cfg.language})
        language_check = f"{LANGUAGE_SCORE_COLUMN}:{cfg.language}"
        texts, scores, updates = [], [], []
        for raw in table.column("text").to_pylist():
            text = normalize_japanese(raw)
            score = self.langid.score(text, cfg.language)
            texts.append(text)
            scores.append(score)
            update = RowUpdate(transforms=[normalizer, scorer])
            lang_ok = score >= cfg.min_language_score
            long_enough = len(text) >= cfg.min_chars
            update.decisions += [
                decision(self.name, language_check, score, lang_ok),
                decision(self.name, "min_chars", len(text), long_enough),
            ]
            if not lang_ok:
                update.reason = "language_score_below_min"
                update.detail = f"{cfg.language} score {score:.3f} < {cfg.min_language_score}"
            elif not long_enough:
                update.reason, update.detail = "too_short", f"{len(text)} chars < {cfg.min_chars}"
            updates.append(update)
        characters_in = text_characters(table)
        table = table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts, pa.string()))
        table = table.append_column(LANGUAGE_SCORE_COLUMN, pa.array(scores, pa.float32()))
        result = split_documents(self.name, table, rows, updates, [sha256_hex(t) for t in texts])
        result.characters_in = characters_in
        return result
