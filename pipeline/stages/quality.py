"""quality: Swallow v1's hiragana fraction and any number of fastText classifiers (quality,
toxicity), each a versioned score column, with thresholds from config.

Measure, then decide: every document gets `hiragana_fraction_v1` and one `quality_<name>_v<k>`
column per configured classifier, and a manifest decision for each, whatever the verdict; the
keep rules (`quality.min_hiragana_fraction`, each classifier's `min_score`, `max_score`,
`top_fraction_per_source`) reject with the first rule that fails. The manifest records each model
by name, version and SHA-256 (quality_classifiers.py).
"""

from __future__ import annotations

import pyarrow as pa

from manifests.layout import done_shards
from pipeline.stage import (
    ParallelMap,
    RowUpdate,
    ShardResult,
    ShardSpec,
    Stage,
    decision,
    read_input,
    split_documents,
)
from pipeline.stages import quality_classifiers as qc


class QualityStage(Stage):
    name = "quality"
    input_stage = "dedup"

    def plan(self) -> list[ShardSpec]:
        shards = super().plan()
        done = set(done_shards(self.ctx.run_dir, self.name))
        if any(s.name not in done for s in shards):
            # The guard runs on the driver before any shard or task starts: a missing model or one
            # whose SHA-256 differs from the config's stops the stage before a document is scored.
            qc.check_models(qc.configured(self.config))
        return shards

    def setup(self) -> None:
        self.classifiers = qc.configured(self.config)
        for c in self.classifiers:
            qc.load(c.model_dir, c.spec.sha256)  # verifies the SHA-256 again on this worker

    def prepare(self, shards: list[ShardSpec], pmap: ParallelMap) -> None:
        qc.prepare_cuts(self.ctx.run_dir, shards, qc.configured(self.config), pmap)

    def _scores(self, shard: ShardSpec, table: pa.Table) -> dict[str, list[float]]:
        """Each classifier's scores, read back from prepare's score file when there is one."""
        from manifests.io import read_parquet
        from manifests.layout import exists

        path = qc.scores_path(self.ctx.run_dir, shard.name)
        if exists(path):
            saved = read_parquet(path)
            if saved.column("doc_id").to_pylist() != table.column("doc_id").to_pylist():
                raise RuntimeError(f"{path}: its documents are not those of {shard.inputs['docs']}")
            return {c.column: saved.column(c.column).to_pylist() for c in self.classifiers}
        scores = qc.score_texts(self.classifiers, table.column("text").to_pylist())
        return {column: values.tolist() for column, values in scores.items()}

    def process(self, shard: ShardSpec) -> ShardResult:
        from filters.quality import HIRAGANA_FRACTION_ID, hiragana_fraction

        if not hasattr(self, "classifiers"):  # called without a worker (tests, notebooks)
            self.setup()
        minimum = self.config.quality.min_hiragana_fraction
        table, rows = read_input(shard)
        scores = self._scores(shard, table)
        cuts = (
            qc.read_cuts(self.ctx.run_dir)
            if any(c.spec.top_fraction_per_source for c in self.classifiers)
            else {}
        )
        transforms = [qc.model_transform(c) for c in self.classifiers]
        texts = table.column("text").to_pylist()
        sources = table.column("source").to_pylist()
        fractions, updates = [], []
        for i, (text, source) in enumerate(zip(texts, sources, strict=True)):
            fraction = hiragana_fraction(text)
            fractions.append(fraction)
            update = RowUpdate(
                transforms=list(transforms),
                decisions=[decision(self.name, HIRAGANA_FRACTION_ID, fraction, fraction >= minimum)],
            )
            if fraction < minimum:
                update.reason, update.detail = "hiragana_fraction_below_min", f"{fraction:.3f} < {minimum}"
            for c in self.classifiers:
                made, reason, detail = qc.judge(c, scores[c.column][i], source, cuts)
                update.decisions += made
                if update.reason is None and reason is not None:
                    update.reason, update.detail = reason, detail
            updates.append(update)
        table = table.append_column(HIRAGANA_FRACTION_ID, pa.array(fractions, pa.float32()))
        for c in self.classifiers:  # the same columns in every shard, an empty one too
            table = table.append_column(c.column, pa.array(scores[c.column], pa.float32()))
        return split_documents(self.name, table, rows, updates)
