"""The quality stage's classifiers: the SHA-256 guard, one load per process, scores, keep rules,
the manifest records, and the per-source cut of `top_fraction_per_source`.

Scores are measured whatever the verdict (a column `quality_<name>_v<k>` and a manifest decision
each); the keep rules from config decide. When a classifier keeps the top fraction of each source,
the stage first scores every shard into `RUN/quality/scores/` (Ray tasks), counts per source
(quality_topfraction.py), writes the cuts to `RUN/quality/top_fraction.json`, and the shards then
read their scores back instead of scoring twice.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from filters.classifiers.features import feature_line
from filters.classifiers.model import Classifier, ModelMismatch, column_name, verify
from manifests.io import atomic_write_json, atomic_write_parquet, filesystem, read_parquet
from manifests.layout import exists, stage_dir
from pipeline.config import Config, ConfigError, QualityClassifier
from pipeline.stage import ParallelMap, ShardSpec, decision, transform
from pipeline.stages import quality_topfraction as topf

STAGE = "quality"
TOOL = "filters.classifiers"


@dataclass(frozen=True)
class Configured:
    """One configured classifier with its model directory resolved (picklable, for Ray tasks)."""

    key: str  # quality.classifiers[i], for messages
    spec: QualityClassifier
    model_dir: str

    @property
    def column(self) -> str:
        return column_name(self.spec.name, self.spec.version)


def configured(config: Config) -> list[Configured]:
    return [
        Configured(f"quality.classifiers[{i}]", c, config.resolve_path(c.model))
        for i, c in enumerate(config.quality.classifiers)
    ]


def check_models(classifiers: list[Configured]) -> None:
    """Every model present, with the config's SHA-256 and the config's name and version; run on the
    driver before any document is scored, so a wrong model never scores a shard."""
    for c in classifiers:
        try:
            metadata = verify(c.model_dir, c.spec.sha256)
        except ModelMismatch as exc:
            raise ConfigError(f"{c.key} ({c.spec.name} v{c.spec.version}): {exc}") from None
        if (metadata["name"], metadata["version"]) != (c.spec.name, c.spec.version):
            raise ConfigError(
                f"{c.key}: {c.model_dir} holds {metadata['name']} v{metadata['version']}, "
                f"but the config names {c.spec.name} v{c.spec.version}"
            )


@functools.cache
def load(model_dir: str, sha256: str) -> Classifier:
    """Once per worker process (a Ray actor, or a Ray task's worker reused for later tasks)."""
    return Classifier(model_dir, sha256)


def score_texts(classifiers: list[Configured], texts: list[str]) -> dict[str, np.ndarray]:
    """Each classifier's scores; the feature lines are made once per feature kind, not per model
    (on real text, about three quarters of a character model's scoring time is making its lines)."""
    lines: dict[str, list[str]] = {}
    scores = {}
    for c in classifiers:
        model = load(c.model_dir, c.spec.sha256)
        if model.features not in lines:
            lines[model.features] = [feature_line(t or "", model.features) for t in texts]
        scores[c.column] = model.score_lines(lines[model.features])
    return scores


def model_transform(c: Configured) -> dict[str, Any]:
    """The manifest's record of which model scored a document: tool names the classifier and its
    version, `version` is the model file's SHA-256, the params hash covers the features and rules."""
    spec = c.spec
    metadata = load(c.model_dir, spec.sha256).metadata
    params = {
        "features": metadata["features"],
        "min_score": spec.min_score,
        "max_score": spec.max_score,
        "top_fraction_per_source": spec.top_fraction_per_source,
    }
    return transform(STAGE, f"{TOOL}:{spec.name}:v{spec.version}", spec.sha256, params)


def classifier_records(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Name, version, model SHA-256, score and verdict of every classifier in a manifest row.

    >>> row = {"transforms": [transform(STAGE, TOOL + ":wikilike:v1", "ab" * 32, {})],
    ...        "decisions": [decision(STAGE, "quality_wikilike_v1", 0.5, True)]}
    >>> [(r["name"], r["version"], r["score"]) for r in classifier_records(row)]
    [('wikilike', 1, 0.5)]
    """
    decisions = {d["check"]: d for d in row["decisions"] if d["stage"] == STAGE}
    records = []
    for t in row["transforms"]:
        if t["stage"] != STAGE or not t["tool"].startswith(TOOL + ":"):
            continue
        _, name, version = t["tool"].split(":")
        found = decisions.get(column_name(name, int(version[1:])), {})
        records.append(
            {
                "name": name,
                "version": int(version[1:]),
                "model_sha256": t["version"],
                "score": found.get("value"),
                "passed": found.get("passed"),
            }
        )
    return records


# -- keep rules ------------------------------------------------------------------------------------


def judge(
    c: Configured, score: float, source: str, cuts: dict[str, dict[str, Any]]
) -> tuple[list[dict[str, Any]], str | None, str | None]:
    """(decisions, reason, detail) of one document under one classifier's rules; reason is None
    when every rule keeps it."""
    spec, column = c.spec, c.column
    failures: list[tuple[str, str]] = []
    extra = []
    if spec.min_score is not None and score < spec.min_score:
        failures.append((f"{column}_below_min", f"{score:.4f} < {spec.min_score}"))
    if spec.max_score is not None and score >= spec.max_score:
        failures.append((f"{column}_above_max", f"{score:.4f} >= {spec.max_score} (kept only below)"))
    if spec.top_fraction_per_source is not None:
        cut = cuts[column][source]
        kept = score >= cut["cut"]
        extra.append(decision(STAGE, f"{column}_top_fraction_cut", cut["cut"], kept))
        if not kept:
            failures.append(
                (
                    f"{column}_below_top_fraction",
                    f"{score:.4f} < {cut['cut']:.4f}, the cut keeping the top {spec.top_fraction_per_source} "
                    f"of source {source} ({cut['keep']} of {cut['documents']})",
                )
            )
    decisions = [decision(STAGE, column, score, not failures)] + extra
    reason, detail = failures[0] if failures else (None, None)
    return decisions, reason, detail


# -- scores before the shards: the per-source cut ---------------------------------------------------


def scores_path(run_dir: str, shard: str) -> str:
    return f"{stage_dir(run_dir, STAGE)}/scores/{shard}.parquet"


def cuts_path(run_dir: str) -> str:
    return f"{stage_dir(run_dir, STAGE)}/top_fraction.json"


def _ranked_scores(
    table: pa.Table, classifiers: list[Configured]
) -> Iterator[tuple[tuple[str, str], np.ndarray]]:
    """((column, source), scores) of each classifier that keeps a top fraction, per source."""
    sources = np.asarray(table.column("source").to_pylist(), dtype=object)
    for c in classifiers:
        if c.spec.top_fraction_per_source is None:
            continue
        values = table.column(c.column).to_numpy()
        for source in sorted(set(sources.tolist())):
            yield (c.column, source), values[sources == source]


def _score_shard(args: tuple[str, ShardSpec, list[Configured]]) -> dict[tuple[str, str], Counter]:
    """Score one input shard into its score file (kept when it exists: a rerun resumes) and count
    the high bits of the ranked classifiers' scores per source."""
    run_dir, shard, classifiers = args
    path = scores_path(run_dir, shard.name)
    if exists(path):
        table = read_parquet(path)
    else:
        docs = read_parquet(shard.inputs["docs"], columns=["doc_id", "source", "text"])
        scores = score_texts(classifiers, docs.column("text").to_pylist())
        table = pa.table(
            {"doc_id": docs.column("doc_id"), "source": docs.column("source")}
            | {column: pa.array(values, pa.float32()) for column, values in scores.items()}
        )
        atomic_write_parquet(path, table)
    return {key: topf.high_counts(values) for key, values in _ranked_scores(table, classifiers)}


def _low_bits(
    args: tuple[str, str, list[Configured], dict[tuple[str, str], int]],
) -> dict[tuple[str, str], Counter]:
    """Counts of the low bits inside the block that holds each cut, per source."""
    run_dir, shard, classifiers, blocks = args
    table = read_parquet(scores_path(run_dir, shard))
    return {
        key: topf.low_counts(values, blocks[key])
        for key, values in _ranked_scores(table, classifiers)
        if key in blocks
    }


def _add(results: list[dict[tuple[str, str], Counter]]) -> dict[tuple[str, str], Counter]:
    total: dict[tuple[str, str], Counter] = {}
    for result in results:
        for key, counts in result.items():
            total.setdefault(key, Counter()).update(counts)
    return total


def prepare_cuts(
    run_dir: str, shards: list[ShardSpec], classifiers: list[Configured], pmap: ParallelMap
) -> None:
    """Score every shard once and write each ranked classifier's cut per source (resumable: the
    score files and the cut file are each written once, atomically)."""
    if not any(c.spec.top_fraction_per_source for c in classifiers) or exists(cuts_path(run_dir)):
        return
    high = _add(pmap(_score_shard, [(run_dir, s, classifiers) for s in shards]))
    fraction = {c.column: c.spec.top_fraction_per_source for c in classifiers}
    keep = {key: topf.keep_count(sum(counts.values()), fraction[key[0]]) for key, counts in high.items()}
    located = {key: topf.locate(counts, keep[key]) for key, counts in high.items() if keep[key]}
    blocks = {key: block for key, (block, _) in located.items()}
    low = _add(pmap(_low_bits, [(run_dir, s.name, classifiers, blocks) for s in shards]))
    cuts: dict[str, dict[str, Any]] = {}
    for key, (block, rank) in sorted(located.items()):
        column, source = key
        value = topf.cut_value(block, topf.locate(low[key], rank)[0])
        cuts.setdefault(column, {})[source] = {
            "cut": float(value),
            "keep": keep[key],
            "documents": sum(high[key].values()),
            "fraction": fraction[column],
        }
    atomic_write_json(cuts_path(run_dir), cuts)


def read_cuts(run_dir: str) -> dict[str, dict[str, Any]]:
    fs, path = filesystem(cuts_path(run_dir))
    with fs.open(path, "rb") as f:
        return json.load(f)
