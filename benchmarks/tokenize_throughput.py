"""The tokenize stage against the tokenizer alone: tokens per second per core, and bytes per token.

    python benchmarks/tokenize_throughput.py [--shared ../shared/data] [--repeat 5] [--tokenizer v3.1]
                                             [--join N] [--profile N]

Texts: 2,000 Diet speeches and the JSQuAD Wikipedia paragraphs of ../shared/data (real Japanese,
1.84 M characters), in input shards of 1,000 documents whose manifest rows are as large as a
real run's (10 transforms, 43 decisions, locator and opt-out JSON). For each tokenizer and output:

- raw: `encode_batch` of the same texts (Python str in, a list of ints per text out: the batch API
  as a user calls it), in the stage's batch size, on one thread; and "flat", the fastest form the
  library has, which the stage uses: `encode_arrow` (SentencePiece: UTF-8 bytes straight from Arrow
  in, one int32 buffer per text out; tokenizers: the same as encode_batch plus a copy into an array);
- stage: everything one Ray worker does per shard, in this process on one core (pyarrow held to
  one thread too): read the shard and its manifest, encode, split long documents, build the rows,
  write Parquet and/or .bin/.idx, the manifest and the stats (`pipeline.shards.run_shard`);
- ratio: stage tokens/s over raw tokens/s (encode_batch, and flat), both counting the ids the
  documents encode to (the goal is 0.90 or more): CPU seconds of this process (one core's work,
  whatever else the machine runs); rates are the best of --repeat runs, the ratios the median over
  runs where raw and stage were measured one after the other;
- overhead: what the stage spends beyond the flat encode, in CPU microseconds per document;
- floor: the per-shard I/O that any stage does around its own work and that the tokenize stage
  cannot leave out: read the documents (doc_id, text) and their manifest rows, and write the
  manifest back (the framework's writer), in CPU microseconds per document; "ceiling" is the ratio
  the stage would reach if everything else it does (rows, ids, .bin/.idx, stats) cost nothing:
  raw / (raw + floor), median over the same runs;
- bytes/token: the output files (Parquet zstd; .bin + .idx) over the tokens written.

Ray's start-up and scheduling are not in the stage figure: they are per run and per shard, not per token.
--join N makes each document of N consecutive texts (joined by a newline): the same text and tokens
in fewer, longer documents, to tell per-document costs from per-token ones. --profile N prints, after
the table, the N functions with the most CPU time of one more stage run per output (cProfile).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import os
import sys

# Run as a script, this file's folder comes first on sys.path and this file would be imported as the
# standard library's `tokenize` (which linecache, hence numpy, imports): the repository goes there.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import pstats  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core for both sides

import pyarrow as pa  # noqa: E402

from manifests.io import atomic_write_json, atomic_write_parquet, manifest_table, write_manifest  # noqa: E402
from manifests.layout import docs_path, manifest_path, stage_stats_path  # noqa: E402
from manifests.schema import doc_id, new_row  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.shards import input_shards, run_shard, sum_stage_stats  # noqa: E402
from pipeline.stage import RunContext  # noqa: E402
from pipeline.stages.tokenize import TokenizeStage  # noqa: E402
from pipeline.stages.tokenize_manifest import read_aligned  # noqa: E402

DOCS_PER_SHARD = 1000
TOKENIZERS = {
    "LLM-jp v2.2 (tokenizers JSON)": [
        "tokenize.tokenizer_path={shared}/tokenizer_llm_jp/hf__ver2.2__code10K_en20K_ja30K.ver2.2_hf_fast.b4"
    ],
    "LLM-jp v3.1 (SentencePiece)": [
        "tokenize.tokenizer_path={shared}/tokenizer_llm_jp/models__ver3.1__llm-jp-tokenizer-100k.ver3.1.model",
        "tokenize.eos_token=</s>",
    ],
}
OUTPUTS = {
    "parquet int32": ["tokenize.formats=[parquet]", "tokenize.token_dtype=int32"],
    "parquet auto": ["tokenize.formats=[parquet]", "tokenize.token_dtype=auto"],
    "megatron auto": ["tokenize.formats=[megatron]", "tokenize.token_dtype=auto"],
    "both auto": ["tokenize.formats=[parquet, megatron]", "tokenize.token_dtype=auto"],
}


def load_texts(shared: Path) -> list[tuple[str, str]]:
    texts = []
    with (shared / "kokkai_speeches" / "speeches_sample2000.jsonl").open(encoding="utf-8") as f:
        texts += [("kokkai", json.loads(line)["speech"]) for line in f]
    seen = set()
    with (shared / "wikipedia_paragraphs_jsquad" / "jsquad_valid_wikipedia_paragraphs.jsonl").open(
        encoding="utf-8"
    ) as f:
        for line in f:
            text = json.loads(line)["context"].split(" [SEP] ", 1)[1]
            if text not in seen:
                seen.add(text)
                texts.append(("local", text))
    return texts


def join_texts(texts: list[tuple[str, str]], n: int) -> list[tuple[str, str]]:
    """Documents of `n` consecutive texts joined by a newline (the first one's source)."""
    if n <= 1:
        return texts
    chunks = (texts[i : i + n] for i in range(0, len(texts), n))
    return [(chunk[0][0], "\n".join(t for _, t in chunk)) for chunk in chunks]


def realistic_row(source: str, i: int) -> dict:
    """A manifest row the size of a real one after the quality stage."""
    transforms = [
        {"stage": "clean", "tool": f"tool{k}", "version": "1", "params_sha256": "0" * 16} for k in range(10)
    ]
    decisions = [{"stage": "clean", "check": f"check{k}", "value": 0.5, "passed": True} for k in range(43)]
    return new_row(
        doc_id=doc_id(source, str(i)),
        source=source,
        source_uri=f"https://example.jp/{i}",
        locator=json.dumps({"id": i, "pad": "x" * 330}),
        retrieved_at="2025-01-15T00:00:00+00:00",
        raw_sha256="0" * 64,
        text_sha256="1" * 64,
        license="CC-BY-SA-4.0" if source == "local" else "LicenseRef-Kokkai-SpeakerCopyright",
        legal_basis=["JP-Copyright-Art30-4"],
        osaid_class="public",
        redistribution="text",
        optout=json.dumps({"pad": "y" * 500}),
        transforms=transforms,
        decisions=decisions,
        dedup_cluster_id=doc_id(source, str(i)),
        dedup_cluster_size=1,
        pipeline_version="bench",
        config_sha256="0" * 64,
    )


def write_quality(run_dir: str, texts: list[tuple[str, str]]) -> None:
    for s, start in enumerate(range(0, len(texts), DOCS_PER_SHARD)):
        chunk = texts[start : start + DOCS_PER_SHARD]
        rows = [realistic_row(src, start + i) for i, (src, _) in enumerate(chunk)]
        table = pa.table(
            {
                "doc_id": [r["doc_id"] for r in rows],
                "source": [src for src, _ in chunk],
                "text": [t for _, t in chunk],
            }
        )
        name = f"part-{s:05d}"
        atomic_write_parquet(docs_path(run_dir, "quality", name), table)
        write_manifest(manifest_path(run_dir, "quality", name), manifest_table(rows))
    atomic_write_json(stage_stats_path(run_dir, "quality"), {})


def raw_seconds(stage: TokenizeStage, texts: list[str]) -> tuple[float, int]:
    size = stage.config.tokenize.batch_size
    started = time.process_time()
    tokens = sum(
        len(ids)
        for b in range(0, len(texts), size)
        for ids in stage.tokenizer.encode_batch(texts[b : b + size])
    )
    return time.process_time() - started, tokens


def flat_seconds(stage: TokenizeStage, texts: pa.Array) -> tuple[float, int]:
    size = stage.config.tokenize.batch_size
    started = time.process_time()
    encode = stage.tokenizer.encode_arrow
    tokens = sum(len(encode(texts.slice(b, size))[0]) for b in range(0, len(texts), size))
    return time.process_time() - started, tokens


def floor_seconds(run_dir: str) -> float:
    """Seconds of reading every input shard's documents and manifest rows as the stage does, and
    writing the manifest back as the framework does: what no tokenize stage can leave out."""
    started = time.process_time()
    for shard in input_shards(run_dir, "quality"):
        _, manifest = read_aligned([shard.inputs])
        write_manifest(f"{run_dir}/floor/{shard.name}.manifest.parquet", manifest)
    return time.process_time() - started


def stage_seconds(
    run_dir: str, overrides: list[str], profile: cProfile.Profile | None = None
) -> tuple[float, dict, dict[str, int]]:
    """Seconds of every shard's run_shard, the stage's counts, and bytes of each output kind."""
    config = load_config(None, overrides)
    ctx = RunContext(run_dir=run_dir, config=config, config_sha256=config.sha256(), pipeline_version="bench")
    stage = TokenizeStage(ctx)
    shards = stage.plan()  # loads the tokenizer, as the driver does; not timed
    started = time.process_time()
    if profile is not None:
        profile.enable()
    for shard in shards:
        run_shard(stage, shard)
    if profile is not None:
        profile.disable()
    seconds = time.process_time() - started
    out = Path(run_dir) / "tokenize"
    sizes = {
        "parquet": sum(p.stat().st_size for p in out.glob("part-?????.parquet")),
        "megatron": sum(p.stat().st_size for p in [*out.glob("part-?????.bin"), *out.glob("part-?????.idx")]),
    }
    return seconds, sum_stage_stats(run_dir, "tokenize").counts, sizes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tokenizer", default="", help="only the tokenizers whose name contains this")
    parser.add_argument("--join", type=int, default=1, help="texts joined into one document")
    parser.add_argument("--profile", type=int, default=0, help="print this many functions per output")
    args = parser.parse_args()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    texts = join_texts(load_texts(args.shared), args.join)
    print(
        f"{len(texts)} documents, {sum(len(t) for _, t in texts):,} characters, "
        f"{DOCS_PER_SHARD} a shard, one core"
    )
    print(
        "| tokenizer | output | raw tokens/s | flat tokens/s | stage tokens/s | ratio | ratio to flat "
        "| overhead µs/doc | floor µs/doc | ceiling | Parquet bytes/token | .bin+.idx bytes/token |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    profiles: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        write_quality(f"{tmp}/input", texts)
        plain = [t for _, t in texts]
        arrow = pa.array(plain, pa.string())
        for name, tok_overrides in TOKENIZERS.items():
            if args.tokenizer not in name:
                continue
            tok_overrides = [o.format(shared=args.shared) for o in tok_overrides]
            probe = TokenizeStage(RunContext(tmp, load_config(None, tok_overrides), "", "bench"))
            probe.setup()
            for output, out_overrides in OUTPUTS.items():
                raw, flat, floor, stage = [], [], [], []
                for k in range(args.repeat):
                    run_dir = f"{tmp}/run"
                    os.makedirs(run_dir)
                    os.symlink(f"{tmp}/input/quality", f"{run_dir}/quality")
                    # Alternate which goes first: the machine's load drifts.
                    if k % 2 == 0:
                        raw.append(raw_seconds(probe, plain))
                        flat.append(flat_seconds(probe, arrow))
                        floor.append(floor_seconds(run_dir))
                    stage.append(stage_seconds(run_dir, tok_overrides + out_overrides))
                    if k % 2 == 1:
                        floor.append(floor_seconds(run_dir))
                        flat.append(flat_seconds(probe, arrow))
                        raw.append(raw_seconds(probe, plain))
                    shutil.rmtree(run_dir)
                tokens = raw[0][1]
                counts, sizes = stage[0][1], stage[0][2]
                assert counts["tokens_in"] == tokens == flat[0][1], "the encoders saw different texts"
                ratio = statistics.median(r[0] / s[0] for r, s in zip(raw, stage))
                ratio_flat = statistics.median(f[0] / s[0] for f, s in zip(flat, stage))
                overhead = statistics.median(s[0] - f[0] for f, s in zip(flat, stage)) / len(plain) * 1e6
                floor_us = statistics.median(floor) / len(plain) * 1e6
                ceiling = statistics.median(r[0] / (r[0] + f) for r, f in zip(raw, floor))
                raw_s, flat_s = min(r[0] for r in raw), min(f[0] for f in flat)
                stage_s = min(s[0] for s in stage)
                per_token = {k: f"{v / counts['tokens_out']:.2f}" if v else "" for k, v in sizes.items()}
                if "parquet" not in output and "both" not in output:
                    per_token["parquet"] = "(index only)"
                print(
                    f"| {name} | {output} | {tokens / raw_s:,.0f} | {tokens / flat_s:,.0f} | "
                    f"{tokens / stage_s:,.0f} | {ratio:.2f} | {ratio_flat:.2f} | {overhead:.0f} | "
                    f"{floor_us:.0f} | {ceiling:.2f} | {per_token['parquet']} | {per_token['megatron']} |",
                    flush=True,
                )
                if args.profile:
                    profile = cProfile.Profile()
                    run_dir = f"{tmp}/run"
                    os.makedirs(run_dir)
                    os.symlink(f"{tmp}/input/quality", f"{run_dir}/quality")
                    stage_seconds(run_dir, tok_overrides + out_overrides, profile)
                    shutil.rmtree(run_dir)
                    text = io.StringIO()
                    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(args.profile)
                    profiles.append((f"{name}, {output}", text.getvalue()))
    for title, text in profiles:
        print(f"\n## {title}: one stage run, by own CPU time\n{text.strip()}")


if __name__ == "__main__":
    main()
