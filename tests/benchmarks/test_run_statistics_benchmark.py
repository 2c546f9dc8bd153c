"""The synthesized run of benchmarks/run_statistics.py is a valid run: its manifests read as schema 1.x
and its figures account for every document, so the benchmark times the summary of a real shape."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import polars as pl

from manifests.io import read_manifest
from pipeline.run_statistics import open_run

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "run_statistics.py"


def load_benchmark():
    # Loaded by path: its module name would otherwise be `run_statistics`, like the API's.
    spec = importlib.util.spec_from_file_location("benchmark_run_statistics", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_synthesized_run_is_consistent(tmp_path):
    bench = load_benchmark()
    root = tmp_path / "run"
    rows = bench.synthesize(root, documents=3000, shards=3)
    read_manifest(str(root / "clean" / "part-00001.manifest.parquet"))  # schema and version check
    stats = open_run(str(root))
    funnel = stats.funnel()
    assert dict(zip(funnel["stage"], funnel["documents_in"])) == rows
    fetched, tokenized = funnel["documents_in"][0], funnel["kept"][-1]
    assert fetched == 3000 and fetched == tokenized + stats.rejects()["documents"].sum()
    assert stats.totals("source")["documents"].sum() == tokenized
    clusters = stats.cluster_sizes()
    assert clusters["documents"].sum() == rows["dedup"]
    # Each cluster of n keeps one document: the dedup rejects are the other n - 1.
    removed = clusters.select((pl.col("clusters") * (pl.col("cluster_size") - 1)).sum()).item()
    assert stats.rejects().filter(stage="dedup")["documents"].item() == removed
    assert stats.shard_sizes("tokenize")["tokens"].sum() == stats.totals("source")["tokens"].sum()
