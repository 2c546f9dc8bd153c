"""Output shards of a target size: consecutive input shards grouped by their estimated tokens.

A training team wants files of a chosen size, not one per upstream shard of 1,000 web pages. The
driver cannot count tokens without tokenizing everything, so it estimates each input shard's
tokens from its characters (its stats file) and tokens per character measured on a sample of the
input; the stats of the finished stage give the exact counts. An input shard larger than the
target stays one output shard: a shard is never split, so each output shard still commits alone.
"""

from __future__ import annotations

import json

from manifests.io import atomic_write_json, filesystem, read_parquet
from manifests.layout import docs_path, manifest_path, shard_stats_path
from pipeline.shards import input_shards
from pipeline.stage import ShardSpec
from pipeline.tokenizer_models import TokenizerModel

SAMPLE_SHARDS, SAMPLE_CHARACTERS_PER_SHARD = 16, 32_000


def tokens_per_character(tokenizer: TokenizerModel, specs: list[ShardSpec]) -> float:
    """Measured on the first documents of up to SAMPLE_SHARDS input shards spread over the input."""
    step = max(1, len(specs) // SAMPLE_SHARDS)
    texts: list[str] = []
    for spec in specs[::step][:SAMPLE_SHARDS]:
        taken = 0
        for text in read_parquet(spec.inputs["docs"], ["text"]).column("text").to_pylist():
            if taken >= SAMPLE_CHARACTERS_PER_SHARD:
                break
            texts.append(text[: SAMPLE_CHARACTERS_PER_SHARD - taken])
            taken += len(texts[-1])
    characters = sum(len(t) for t in texts)
    if not characters:
        return 1.0
    return sum(len(ids) for ids in tokenizer.encode_batch(texts)) / characters


def grouped_shards(
    run_dir: str, input_stage: str, target_tokens: int, tokenizer: TokenizerModel
) -> tuple[list[list[str]], float]:
    """Names of the input shards of each output shard, consecutive runs; and the tokens per
    character the estimate used."""
    specs = input_shards(run_dir, input_stage)
    ratio = tokens_per_character(tokenizer, specs)
    groups: list[list[str]] = []
    estimate = 0.0
    for spec in specs:
        tokens = _characters(run_dir, input_stage, spec.name) * ratio
        if not groups or (estimate + tokens > target_tokens and estimate > 0):
            groups.append([])
            estimate = 0.0
        groups[-1].append(spec.name)
        estimate += tokens
    return groups, ratio


def shard_specs(run_dir: str, input_stage: str, groups: list[list[str]]) -> list[ShardSpec]:
    """Output shard i reads the input shards of group i, in order."""
    return [
        ShardSpec(
            index=i,
            inputs={
                "parts": [
                    {
                        "docs": docs_path(run_dir, input_stage, n),
                        "manifest": manifest_path(run_dir, input_stage, n),
                    }
                    for n in names
                ]
            },
        )
        for i, names in enumerate(groups)
    ]


def _characters(run_dir: str, stage: str, shard: str) -> int:
    fs, path = filesystem(shard_stats_path(run_dir, stage, shard))
    with fs.open(path, "rb") as f:
        return int(json.load(f)["characters_out"])


def write_plan(path: str, groups: list[list[str]], target_tokens: int, ratio: float) -> None:
    atomic_write_json(
        path,
        {
            "target_tokens": target_tokens,
            "estimated_tokens_per_character": round(ratio, 6),
            "input_shards": {f"part-{i:05d}": names for i, names in enumerate(groups)},
        },
    )


def read_plan(path: str) -> list[list[str]] | None:
    """The groups of an earlier run of the stage, or None."""
    fs, fs_path = filesystem(path)
    if not fs.exists(fs_path):
        return None
    with fs.open(fs_path, "rb") as f:
        return list(json.load(f)["input_shards"].values())
