"""quality: a cheap real quality score (Swallow v1's hiragana fraction) and its threshold.

Scores are versioned columns (measure), thresholds come from config (decide).
"""

from __future__ import annotations

import pyarrow as pa

from pipeline.stage import RowUpdate, ShardResult, ShardSpec, Stage, decision, read_input, split_documents


class QualityStage(Stage):
    name = "quality"
    input_stage = "dedup"

    def process(self, shard: ShardSpec) -> ShardResult:
        from filters.quality import HIRAGANA_FRACTION_ID, hiragana_fraction

        minimum = self.config.quality.min_hiragana_fraction
        table, rows = read_input(shard)
        scores, updates = [], []
        for text in table.column("text").to_pylist():
            score = hiragana_fraction(text)
            scores.append(score)
            update = RowUpdate(decisions=[decision(self.name, HIRAGANA_FRACTION_ID, score, score >= minimum)])
            if score < minimum:
                update.reason, update.detail = "hiragana_fraction_below_min", f"{score:.3f} < {minimum}"
            updates.append(update)
        table = table.append_column(HIRAGANA_FRACTION_ID, pa.array(scores, pa.float32()))
        return split_documents(self.name, table, rows, updates)
