"""Output shards of a target size: consecutive input shards grouped, or cut, by their estimated tokens.

A training team wants files of a chosen size, not one per upstream shard of 1,000 web pages. The
driver cannot count tokens without tokenizing everything, so it estimates each input shard's
tokens from its characters (its stats file) and tokens per character measured on a sample of the
input; the stats of the finished stage give the exact counts. An input shard whose estimate is
larger than the target is cut between documents, by each document's characters, into runs of rows
that fill output shards in order: each output shard still reads its own inputs and commits alone.

Each output shard's parts, in order, are an input shard's name for the whole shard, or
{"shard": name, "rows": [start, stop]} for a run of its rows (plan.json keeps names and rows apart).
"""

from __future__ import annotations

import json
from typing import Union

import numpy as np
import pyarrow.compute as pc

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


Part = Union[str, dict]  # an input shard's name, or {"shard": name, "rows": [start, stop]}


def grouped_shards(
    run_dir: str, input_stage: str, target_tokens: int, tokenizer: TokenizerModel
) -> tuple[list[list[Part]], float]:
    """The parts of each output shard, in input order; and the tokens per character the estimate
    used. Whole shards are grouped while their estimates fit the target; a shard larger than the
    target is cut between documents, its first rows filling the open output shard."""
    specs = input_shards(run_dir, input_stage)
    ratio = tokens_per_character(tokenizer, specs)
    groups: list[list[Part]] = []
    estimate = 0.0
    for spec in specs:
        tokens = _characters(run_dir, input_stage, spec.name) * ratio
        if tokens <= target_tokens:
            if not groups or (estimate + tokens > target_tokens and estimate > 0):
                groups.append([])
                estimate = 0.0
            groups[-1].append(spec.name)
            estimate += tokens
            continue
        lengths = pc.utf8_length(read_parquet(spec.inputs["docs"], ["text"]).column("text"))
        per_row = lengths.to_numpy(zero_copy_only=False) * ratio
        runs, joins, estimate = cut_rows(per_row, target_tokens, estimate)
        for k, (start, stop) in enumerate(runs):
            if k or not joins:
                groups.append([])
            groups[-1].append({"shard": spec.name, "rows": [start, stop]})
    return groups, ratio


def cut_rows(tokens: np.ndarray, target: float, filled: float) -> tuple[list[tuple[int, int]], bool, float]:
    """Runs of rows [start, stop) that fill output shards of `target` tokens in order, given each
    row's estimated `tokens`: whether the first run goes to the open shard (which holds `filled`
    already, and takes it if its first row fits), and the estimate of the last run's shard. A run
    ends before the row that would take it past the target; a row larger than the target is a run
    of its own.

    >>> cut_rows(np.array([4.0, 4.0, 4.0, 9.0, 1.0]), 10, 7.0)
    ([(0, 2), (2, 3), (3, 5)], False, 10.0)
    >>> cut_rows(np.array([2.0, 5.0, 30.0]), 10, 7.0)
    ([(0, 1), (1, 2), (2, 3)], True, 30.0)
    """
    ends = np.concatenate([[0.0], np.cumsum(tokens)])
    joins = bool(filled > 0 and len(tokens) and filled + tokens[0] <= target)
    room = target - filled if joins else target  # what the first run may take
    runs, start = [], 0
    while start < len(tokens):
        stop = int(np.searchsorted(ends, ends[start] + room, "right")) - 1
        runs.append((start, max(stop, start + 1)))
        room, start = target, runs[-1][1]
    if not runs:
        return runs, False, filled
    last = float(ends[runs[-1][1]] - ends[runs[-1][0]])
    return runs, joins, last + (filled if joins and len(runs) == 1 else 0.0)


def shard_specs(run_dir: str, input_stage: str, groups: list[list[Part]]) -> list[ShardSpec]:
    """Output shard i reads the parts of group i, in order."""
    return [
        ShardSpec(index=i, inputs={"parts": [_part(run_dir, input_stage, p) for p in parts]})
        for i, parts in enumerate(groups)
    ]


def _part(run_dir: str, input_stage: str, part: Part) -> dict:
    name = _name(part)
    spec = {
        "docs": docs_path(run_dir, input_stage, name),
        "manifest": manifest_path(run_dir, input_stage, name),
    }
    if not isinstance(part, str):
        spec["rows"] = list(part["rows"])
    return spec


def _characters(run_dir: str, stage: str, shard: str) -> int:
    fs, path = filesystem(shard_stats_path(run_dir, stage, shard))
    with fs.open(path, "rb") as f:
        return int(json.load(f)["characters_out"])


def write_plan(path: str, groups: list[list[Part]], target_tokens: int, ratio: float) -> None:
    """`input_shards` names each output shard's input shards, as before cutting existed, so a reader
    that only needs names (the audit looks documents up by doc_id in them) reads every plan alike;
    `input_rows`, only when a shard was cut, gives each of those parts' rows [start, stop] or null."""
    plan = {
        "target_tokens": target_tokens,
        "estimated_tokens_per_character": round(ratio, 6),
        "input_shards": {f"part-{i:05d}": [_name(p) for p in parts] for i, parts in enumerate(groups)},
    }
    if any(not isinstance(p, str) for parts in groups for p in parts):
        plan["input_rows"] = {
            f"part-{i:05d}": [None if isinstance(p, str) else p["rows"] for p in parts]
            for i, parts in enumerate(groups)
        }
    atomic_write_json(path, plan)


def read_plan(path: str) -> list[list[Part]] | None:
    """The groups of an earlier run of the stage, or None."""
    fs, fs_path = filesystem(path)
    if not fs.exists(fs_path):
        return None
    with fs.open(fs_path, "rb") as f:
        plan = json.load(f)
    rows = plan.get("input_rows", {})
    return [
        [
            n if r is None else {"shard": n, "rows": r}
            for n, r in zip(names, rows.get(out, [None] * len(names)))
        ]
        for out, names in plan["input_shards"].items()
    ]


def _name(part: Part) -> str:
    return part if isinstance(part, str) else part["shard"]
