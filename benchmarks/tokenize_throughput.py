"""The tokenize stage against the tokenizer alone: tokens per second per core, and bytes per token.

    python benchmarks/tokenize_throughput.py [--shared ../shared/data] [--repeat 5] [--tokenizer v3.1]
                                             [--join N] [--profile N]

Texts: 2,000 Diet speeches and the JSQuAD Wikipedia paragraphs of ../shared/data (real Japanese,
1.84 M characters), in input shards of 1,000 documents whose manifest rows are as large and as
varied as a real run's after the quality stage (11 transforms, 46 decisions, locator and opt-out
JSON: 4.4 KB a row in memory, 360 bytes on disk against 380 for real rows). For each tokenizer and
output:

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
  the runs (their range in brackets). Raw, flat and the floor are measured shard by shard beside
  the stage's run of that shard, in turns, so that both sides of a ratio see the same load;
- overhead: what the stage spends beyond the flat encode, in CPU microseconds per document;
- floor: the per-shard I/O that any stage does around its own work and that the tokenize stage
  cannot leave out: read the documents (doc_id, text) and their manifest rows, and write the
  manifest back (the framework's writer), in CPU microseconds per document; "ids out": writing the
  ids in the output asked for (the Parquet rows' ids with the stage's writer, the .bin/.idx), also
  unavoidable, per document; "ceiling" is the ratio the stage would reach if everything else it
  does (rows' other columns, pieces, stats) cost nothing: raw / (flat + floor + ids out), median
  over the same runs;
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
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import pstats  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core for both sides

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from manifests.io import (  # noqa: E402
    atomic_write_json,
    atomic_write_parquet,
    manifest_table,
    read_parquet,
    write_manifest,
)
from manifests.layout import docs_path, manifest_path, stage_stats_path  # noqa: E402
from manifests.schema import doc_id, new_row  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.shards import run_shard, sum_stage_stats  # noqa: E402
from pipeline.stage import RunContext  # noqa: E402
from pipeline.stages import tokenize_output as out  # noqa: E402
from pipeline.stages.tokenize import TokenizeStage  # noqa: E402
from pipeline.stages.tokenize_manifest import read_aligned  # noqa: E402

DOCS_PER_SHARD = 1000
NG_LISTS = ("adult", "discrimination", "violence")
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


# What a web document's manifest row holds after the quality stage (one of a real 8,000-document run):
# 11 transforms, and 46 decisions of which most carry a measured value of their own.
TRANSFORM_TOOLS = [
    ("fetch", "warcio", "1.8.1"),
    ("extract", "filters.html.decode_html", "utf-8"),
    ("extract", "trafilatura[jcorpus]", "trafilatura-2.3.1"),
    ("clean", "filters.normalize.normalize_japanese", "ja_nfkc_v2"),
    ("clean", "filters.boilerplate.swallow_footer", "boilerplate_v1"),
    *(("clean", f"filters.ngwords:llm_jp_v1/{n}", hashlib.sha256(n.encode()).hexdigest()) for n in NG_LISTS),
    ("clean", "fasttext", "fasttext-lid.176.ftz-sha256:8f3472cfe8738a7b"),
    ("dedup", "pipeline.stages.dedup", "exact-sha256+minhash2_char5_b20r10_h32_s1+ja_nfkc_v2"),
    ("quality", "filters.classifiers:wikilike:v1", hashlib.sha256(b"wikilike").hexdigest()),
]
# The same for every row, as in a run (one config): a tool's params hash stands in for its own.
TRANSFORMS = [
    {"stage": st, "tool": tool, "version": v, "params_sha256": hashlib.sha256(tool.encode()).hexdigest()[:16]}
    for st, tool, v in TRANSFORM_TOOLS
]
CHECKS_BY_STAGE = {
    "extract": "http_status_200 html_mime_type max_html_chars max_line_chars:html decoded_cleanly optout "
    "rights_notices japanese_preselect:html_lang extracted_chars max_line_chars:text",
    "clean": "profile:web repetition_definition:swallow no_kana_at_start too_few_letters "
    "too_few_japanese_letters hiragana_fraction_below_min katakana_fraction_above_max "
    "japanese_fraction_below_min avg_sentence_too_short avg_sentence_too_long sentence_too_long "
    "too_many_ellipses rare_kuten compression_ratio_below_min compression_ratio_above_max duplicate_lines "
    "duplicate_line_chars duplicate_sentences duplicate_sentence_chars ng_expressions ng_expression_hits "
    "ad_lines top_2gram top_3gram top_4gram duplicate_5gram duplicate_6gram duplicate_7gram duplicate_8gram "
    "duplicate_9gram duplicate_10gram language_score_below_min",
    "dedup": "duplicate_cluster_size",
    "quality": "hiragana_fraction_v1 quality_wikilike_v1",
}
DECISION_CHECKS = [(stage, check) for stage, checks in CHECKS_BY_STAGE.items() for check in checks.split()]


def realistic_row(source: str, i: int) -> dict:
    """A manifest row as large as a real one after the quality stage, and as varied: its hashes,
    locator, opt-out record and most decision values differ from row to row, as a real run's do
    (rows of one repeated value wrote 1.6x and read 1.2x faster than real ones)."""
    rng = random.Random(i)
    decisions = [{"stage": "fetch", "check": "payload_digest_verified", "value": None, "passed": True}]
    decisions += [
        {
            "stage": st,
            "check": c,
            "value": None if k % 7 == 0 else round(rng.random(), rng.choice((0, 2, 17))),
            "passed": True,
        }
        for k, (st, c) in enumerate(DECISION_CHECKS)
    ]
    uri = f"https://site{rng.randrange(500):03d}.example.jp/archives/{i:07d}.html"
    locator = {
        "crawl": "CC-MAIN-2024-22",
        "digest_verified": True,
        "http_status": 200,
        "length": rng.randrange(2_000, 40_000),
        "offset": rng.randrange(10**9),
        "payload_digest": "sha1:" + "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", k=32)),
        "record_id": f"<urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}>",
        "target_uri": uri,
        "warc_date": f"2024-05-{rng.randrange(1, 29):02d}T00:00:00Z",
        "warc_filename": f"crawl-data/CC-MAIN-2024-22/segments/{rng.randrange(10**12)}/warc/{i:05d}.warc.gz",
    }
    notices = [
        {
            "kind": "copyright_line",
            "match": f"Copyright © {rng.randrange(2000, 2025)} サイト{i} All Rights Reserved.",
        }
    ]
    optout = {
        "reserved_by": None,
        "rights_notices": notices,
        "signals": {
            "blocklist": None,
            "robots": {
                "noai": False,
                "noimageai": False,
                "noml": False,
                "robots_meta": [],
                "x_robots_tag": [],
            },
            "takedowns": None,
            "tdmrep": {"decided_by": None, "effective": "unset", "notes": [], "well_known": "not_checked"},
        },
        "trimmed_rights_notices": notices,
        "verdict": "allowed",
    }
    return new_row(
        doc_id=doc_id(source, str(i)),
        source=source,
        source_uri=uri,
        locator=json.dumps(locator, ensure_ascii=False),
        retrieved_at=locator["warc_date"].replace("Z", "+00:00"),
        raw_sha256=hashlib.sha256(f"raw{i}".encode()).hexdigest(),
        text_sha256=hashlib.sha256(f"text{i}".encode()).hexdigest(),
        license="CC-BY-SA-4.0" if source == "local" else "LicenseRef-Kokkai-SpeakerCopyright",
        legal_basis=["JP-Copyright-Art30-4"],
        osaid_class="public",
        redistribution="text",
        optout=json.dumps(optout, ensure_ascii=False),
        transforms=TRANSFORMS,
        decisions=decisions,
        dedup_cluster_id=doc_id(source, str(i)),
        dedup_cluster_size=1,
        pipeline_version="bench",
        config_sha256=hashlib.sha256(b"config").hexdigest(),
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


def floor_seconds(stage: TokenizeStage, shard, floor_dir: str) -> tuple[float, float]:
    """What no tokenize stage can leave out, in seconds, for one shard: reading its documents and
    manifest rows as the stage does and writing the manifest back as the framework does; and
    writing the ids in the output asked for (Parquet rows of ids with the stage's writer, .bin/.idx),
    their encoding done beforehand and not counted."""
    cfg = stage.config.tokenize
    started = time.process_time()
    docs, manifest = read_aligned([shard.inputs])
    write_manifest(f"{floor_dir}/{shard.name}.manifest.parquet", manifest)
    io_seconds = time.process_time() - started
    content, lengths, *_ = stage._encode(docs.column("text").combine_chunks())
    stream, offsets = out.with_special_tokens(content, lengths, stage.bos_id, stage.eos_id, stage.dtype)
    started = time.process_time()
    if "parquet" in cfg.formats:
        ids = pa.table({"input_ids": out._list_column(stream, offsets), "num_tokens": np.diff(offsets)})
        out.parquet_bytes(ids, cfg.row_group_tokens)
    if "megatron" in cfg.formats:
        out.write_megatron(f"{floor_dir}/{shard.name}", stream, offsets)
    return io_seconds, time.process_time() - started


def measure(
    tmp: str, overrides: list[str], probe: TokenizeStage, k: int, profile: cProfile.Profile | None = None
) -> dict:
    """One run of the stage over every input shard, and beside each shard, in turns whose order
    alternates from shard to shard and run to run, raw and flat encodes of its texts and the floor:
    a pair measured a fraction of a second apart sees the same load. CPU seconds summed over shards,
    the stage's counts and the bytes of each output kind."""
    run_dir = f"{tmp}/run"
    os.makedirs(run_dir)
    os.symlink(f"{tmp}/input/quality", f"{run_dir}/quality")
    config = load_config(None, overrides)
    stage = TokenizeStage(RunContext(run_dir, config, config.sha256(), pipeline_version="bench"))
    shards = stage.plan()  # loads the tokenizer, as the driver does; not timed
    seconds = {"raw": 0.0, "flat": 0.0, "floor": 0.0, "ids": 0.0, "stage": 0.0}
    tokens = 0
    for i, shard in enumerate(shards):
        texts = read_parquet(shard.inputs["docs"], ["text"]).column("text").combine_chunks()

        def run_stage():
            started = time.process_time()
            if profile is not None:
                profile.enable()
            run_shard(stage, shard)
            if profile is not None:
                profile.disable()
            seconds["stage"] += time.process_time() - started

        def run_others():
            nonlocal tokens
            raw, raw_tokens = raw_seconds(probe, texts.to_pylist())
            seconds["raw"] += raw
            tokens += raw_tokens
            seconds["flat"] += flat_seconds(probe, texts)[0]
            io_seconds, ids_seconds = floor_seconds(stage, shard, f"{run_dir}/floor")
            seconds["floor"] += io_seconds
            seconds["ids"] += ids_seconds

        for step in (run_stage, run_others) if (i + k) % 2 == 0 else (run_others, run_stage):
            step()
    tokenized = Path(run_dir) / "tokenize"
    sizes = {
        "parquet": sum(p.stat().st_size for p in tokenized.glob("part-?????.parquet")),
        "megatron": sum(
            p.stat().st_size for p in [*tokenized.glob("part-?????.bin"), *tokenized.glob("part-?????.idx")]
        ),
    }
    counts = sum_stage_stats(run_dir, "tokenize").counts
    shutil.rmtree(run_dir)
    return {"seconds": seconds, "tokens": tokens, "counts": counts, "sizes": sizes}


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
        "| tokenizer | output | raw tokens/s | flat tokens/s | stage tokens/s | ratio (range) "
        "| ratio to flat | overhead µs/doc | floor µs/doc | ids out µs/doc | ceiling | Parquet bytes/token "
        "| .bin+.idx bytes/token |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    profiles: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        write_quality(f"{tmp}/input", texts)
        for name, tok_overrides in TOKENIZERS.items():
            if args.tokenizer not in name:
                continue
            tok_overrides = [o.format(shared=args.shared) for o in tok_overrides]
            probe = TokenizeStage(RunContext(tmp, load_config(None, tok_overrides), "", "bench"))
            probe.setup()
            for output, out_overrides in OUTPUTS.items():
                overrides = tok_overrides + out_overrides
                runs = [measure(tmp, overrides, probe, k) for k in range(args.repeat)]
                seconds = [r["seconds"] for r in runs]
                tokens, counts, sizes = runs[0]["tokens"], runs[0]["counts"], runs[0]["sizes"]
                assert counts["tokens_in"] == tokens, "the encoders saw different texts"
                ratios = [s["raw"] / s["stage"] for s in seconds]
                ratio = statistics.median(ratios)
                ratio_flat = statistics.median(s["flat"] / s["stage"] for s in seconds)
                per_doc = len(texts) / 1e6
                overhead = statistics.median(s["stage"] - s["flat"] for s in seconds) / per_doc
                floor_us = statistics.median(s["floor"] for s in seconds) / per_doc
                ids_us = statistics.median(s["ids"] for s in seconds) / per_doc
                # The stage encodes flat: against raw, it can at best save what flat saves on raw.
                ceiling = statistics.median(s["raw"] / (s["flat"] + s["floor"] + s["ids"]) for s in seconds)
                raw_s, flat_s, stage_s = (min(s[key] for s in seconds) for key in ("raw", "flat", "stage"))
                per_token = {k: f"{v / counts['tokens_out']:.2f}" if v else "" for k, v in sizes.items()}
                if "parquet" not in output and "both" not in output:
                    per_token["parquet"] = "(index only)"
                cells = [
                    name,
                    output,
                    f"{tokens / raw_s:,.0f}",
                    f"{tokens / flat_s:,.0f}",
                    f"{tokens / stage_s:,.0f}",
                    f"{ratio:.2f} ({min(ratios):.2f}-{max(ratios):.2f})",
                    f"{ratio_flat:.2f}",
                    f"{overhead:.0f}",
                    f"{floor_us:.0f}",
                    f"{ids_us:.0f}",
                    f"{ceiling:.2f}",
                    per_token["parquet"],
                    per_token["megatron"],
                ]
                print(f"| {' | '.join(cells)} |", flush=True)
                if args.profile:
                    profile = cProfile.Profile()
                    measure(tmp, overrides, probe, 0, profile)
                    text = io.StringIO()
                    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(args.profile)
                    profiles.append((f"{name}, {output}", text.getvalue()))
    for title, text in profiles:
        print(f"\n## {title}: one stage run, by own CPU time\n{text.strip()}")


if __name__ == "__main__":
    main()
