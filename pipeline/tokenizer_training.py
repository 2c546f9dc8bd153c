"""`python -m pipeline train-tokenizer`: a SentencePiece unigram or BPE tokenizer, trained as LLM-jp
trains its own, on a sample of an earlier stage's documents.

    python -m pipeline train-tokenizer --run-dir runs/web --output tokenizers/web_v1 \\
        [--config FILE] [--set tokenize.training.vocab_size=64000 ...]

Settings are `tokenize.training.*` of the config. DIR gets `tokenizer.model` (give DIR or that
file to `tokenize.tokenizer_path`), `metadata.json` (parameters, the sample's size and SHA-256,
library version, the model's SHA-256) and `sample_doc_ids.txt` (the sampled documents, in the
order trained on). The same run, config and thread count give the same model bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import io
import json
import os
import sys
from dataclasses import asdict
from typing import Iterator

from manifests.io import atomic_write_bytes, atomic_write_json, filesystem, read_parquet
from manifests.layout import docs_path, done_shards, is_stage_complete, stage_dir
from pipeline.config import ConfigError, TokenizerTrainingConfig, load_config

EXIT_OK, EXIT_USAGE = 0, 2
MODEL_FILE, METADATA_FILE, SAMPLE_IDS_FILE = "tokenizer.model", "metadata.json", "sample_doc_ids.txt"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-tokenizer", help="train a SentencePiece tokenizer on a sample of a run")
    p.add_argument("--run-dir", required=True, help="the run whose documents are sampled")
    p.add_argument("--output", required=True, metavar="DIR", help="new directory for the tokenizer")
    p.add_argument("--stage", help="stage to sample (default: tokenize.training.input_stage)")
    p.add_argument("--config", help="YAML config file (default: configs/default.yaml)")
    p.add_argument("--set", action="append", dest="overrides", default=[], metavar="KEY=VALUE")


def sample_documents(run_dir: str, stage: str, k: int, seed: int) -> list[tuple[str, str]]:
    """(doc_id, text) of the k documents whose keyed hash of doc_id is smallest, in that order.

    A keyed hash, not the first k: the sample spreads over every shard and source, does not
    depend on shard order, and a larger k holds the smaller one's sample."""
    if not is_stage_complete(run_dir, stage):
        raise ConfigError(
            f"stage '{stage}' has not finished in {stage_dir(run_dir, stage)}; nothing to sample"
        )
    key = str(seed).encode()
    chosen = heapq.nsmallest(
        k,
        (
            (hashlib.blake2b(doc.encode(), key=key, digest_size=16).digest(), doc, shard)
            for shard in done_shards(run_dir, stage)
            for doc in read_parquet(docs_path(run_dir, stage, shard), ["doc_id"]).column("doc_id").to_pylist()
        ),
    )
    by_shard: dict[str, set[str]] = {}
    for _, doc, shard in chosen:
        by_shard.setdefault(shard, set()).add(doc)
    texts: dict[str, str] = {}
    for shard, docs in sorted(by_shard.items()):
        table = read_parquet(docs_path(run_dir, stage, shard), ["doc_id", "text"])
        for doc, text in zip(table.column("doc_id").to_pylist(), table.column("text").to_pylist()):
            if doc in docs:
                texts[doc] = text
    return [(doc, texts[doc]) for _, doc, _ in chosen]


def training_lines(docs: list[tuple[str, str]]) -> list[str]:
    """SentencePiece reads one sentence a line: every non-blank line of every document."""
    return [line for _, text in docs for line in text.split("\n") if line.strip()]


def train(lines: list[str], params: TokenizerTrainingConfig, threads: int) -> tuple[bytes, dict]:
    """The model's bytes and the exact trainer options used."""
    import sentencepiece as spm

    options = {
        "model_type": params.model_type,
        "vocab_size": params.vocab_size,
        "character_coverage": params.character_coverage,
        "byte_fallback": params.byte_fallback,
        "split_digits": params.split_digits,
        "user_defined_symbols": list(params.user_defined_symbols),
        "max_sentence_length": params.max_sentence_length,
        # The clean stage has normalised the text already (ja_nfkc_v2); a second NFKC here would
        # make decoded ids differ from the corpus text. Spaces are kept as they are, as LLM-jp does.
        "normalization_rule_name": "identity",
        "remove_extra_whitespaces": False,
        "allow_whitespace_only_pieces": True,
        # Every sampled line is used, so no random sentence sampling; the thread count changes the
        # model (SentencePiece's EM splits work per thread), so it is an option like the others.
        "input_sentence_size": 0,
        "num_threads": threads,
    }
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=model, minloglevel=2, **options
        )
    except RuntimeError as exc:
        # e.g. "Vocabulary size too high (8000). Please set it to a value <= 2595."
        message = str(exc).strip().splitlines()[-1].split("] ", 1)[-1]
        raise ConfigError(f"tokenize.training: SentencePiece refused the settings: {message}") from None
    return model.getvalue(), options


def _hash_lines(lines: list[str]) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    for chunk in _encoded(lines):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _encoded(lines: list[str]) -> Iterator[bytes]:
    for line in lines:
        yield (line + "\n").encode("utf-8")


def cmd_train_tokenizer(args: argparse.Namespace) -> int:
    import sentencepiece

    try:
        config = load_config(args.config, args.overrides)
        params = config.tokenize.training
        stage = args.stage or params.input_stage
        fs, out_dir = filesystem(args.output)
        if fs.exists(f"{out_dir}/{MODEL_FILE}"):
            raise ConfigError(f"{args.output} already holds a {MODEL_FILE}; choose a new --output")
        docs = sample_documents(args.run_dir, stage, params.sample_documents, params.seed)
        if not docs:
            raise ConfigError(f"stage '{stage}' of {args.run_dir} has no documents to train on")
        lines = training_lines(docs)
        sample_sha256, sample_bytes = _hash_lines(lines)
        threads = (os.cpu_count() or 1) if params.threads is None else params.threads
        model, options = train(lines, params, threads)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    ids_text = "".join(f"{doc}\n" for doc, _ in docs).encode("utf-8")
    atomic_write_bytes(f"{args.output}/{SAMPLE_IDS_FILE}", ids_text)
    atomic_write_bytes(f"{args.output}/{MODEL_FILE}", model)
    metadata = {
        "kind": "sentencepiece",
        "model_file": MODEL_FILE,
        "sha256": hashlib.sha256(model).hexdigest(),
        "sentencepiece_version": sentencepiece.__version__,
        "parameters": asdict(params),
        "trainer_options": options,
        "special_tokens": {"unk": "<unk>", "bos": "<s>", "eos": "</s>"},
        "sample": {
            "run_dir": args.run_dir,
            "stage": stage,
            "documents": len(docs),
            "lines": len(lines),
            "characters": sum(len(line) + 1 for line in lines),
            "bytes": sample_bytes,
            # SHA-256 of the lines trained on, each followed by "\n", in sample_doc_ids.txt's order.
            "sha256": sample_sha256,
            "doc_ids_file": SAMPLE_IDS_FILE,
            "doc_ids_sha256": hashlib.sha256(ids_text).hexdigest(),
        },
    }
    atomic_write_json(f"{args.output}/{METADATA_FILE}", metadata)
    print(
        f"{args.output}/{MODEL_FILE}: {params.model_type}, {params.vocab_size} pieces, trained on "
        f"{len(docs)} documents ({sample_bytes} bytes) of {stage}; SHA-256 {metadata['sha256']}",
        file=sys.stderr,
    )
    print(json.dumps({"model": f"{args.output}/{MODEL_FILE}", "sha256": metadata["sha256"]}))
    return EXIT_OK
