"""`python -m pipeline train-classifier` and `score-classifier`: a classifier without a run.

    python -m pipeline train-classifier --name wikilike --positive wiki.jsonl run/quality \\
        --negative web.jsonl [--labels checked.jsonl] [--features char|sudachi] --output models/wikilike_v1
    python -m pipeline score-classifier models/wikilike_v1 pages.jsonl > scores.jsonl

The quality stage loads and applies models with the same `filters.classifiers.model.Classifier`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from filters.classifiers.model import MODEL_FILE, NAME_PATTERN, Classifier, ModelMismatch
from filters.classifiers.train import LabelledDocument, TrainParams, save, train
from manifests.schema import sha256_hex
from pipeline.stages.quality_inputs import (
    file_record,
    input_files,
    iter_documents,
    read_labels,
)

EXIT_OK, EXIT_USAGE = 0, 2
# Word n-grams per feature kind: over characters, bi- and trigrams; over Sudachi words, bigrams.
DEFAULT_WORD_NGRAMS = {"char": 3, "sudachi": 2}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    train_p = sub.add_parser("train-classifier", help="train a fastText document classifier")
    train_p.add_argument(
        "--name", required=True, help="lower-case name; the score column is quality_<name>_v<k>"
    )
    train_p.add_argument("--version", type=int, default=1, help="k of the column name (default 1)")
    train_p.add_argument("--positive", nargs="+", default=[], metavar="PATH", help="JSONL files or shards")
    train_p.add_argument("--negative", nargs="+", default=[], metavar="PATH", help="JSONL files or shards")
    train_p.add_argument(
        "--labels", metavar="FILE", help="JSONL {id, label: positive|negative} overriding the inputs' labels"
    )
    train_p.add_argument("--output", required=True, metavar="DIR", help="new directory for the model")
    defaults = TrainParams()
    train_p.add_argument("--features", choices=["char", "sudachi"], default=defaults.features)
    train_p.add_argument("--dim", type=int, default=defaults.dim)
    train_p.add_argument("--epoch", type=int, default=defaults.epoch)
    train_p.add_argument("--lr", type=float, default=defaults.lr)
    train_p.add_argument("--word-ngrams", type=int, help="default 3 for char, 2 for sudachi")
    train_p.add_argument("--bucket", type=int, default=defaults.bucket)
    train_p.add_argument("--seed", type=int, default=defaults.seed)
    train_p.add_argument("--validation-fraction", type=float, default=defaults.validation_fraction)

    score_p = sub.add_parser("score-classifier", help="print {id, score} for each document of the inputs")
    score_p.add_argument("model_dir", metavar="MODEL_DIR")
    score_p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="JSONL files, shards or stage directories"
    )
    score_p.add_argument("--sha256", help="refuse the model unless its file has this SHA-256")


def _labelled(args: argparse.Namespace) -> tuple[list[LabelledDocument], list[dict], dict[str, str]]:
    """Every input document with its label, the metadata record of each file, and text hashes."""
    overrides = read_labels(args.labels) if args.labels else {}
    docs: list[LabelledDocument] = []
    records: list[dict] = []
    seen: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for label, paths in (("positive", args.positive), ("negative", args.negative)):
        for path in paths:
            for f in input_files(path):
                n = 0
                for d in iter_documents(str(f)):
                    if d.id in seen:
                        raise ValueError(f"{f}: document id {d.id!r} is also in {seen[d.id]}")
                    seen[d.id] = str(f)
                    positive = overrides.get(d.id, label == "positive")
                    docs.append(LabelledDocument(d.id, d.text, positive, d.group))
                    hashes[d.id] = sha256_hex(d.text)
                    n += 1
                records.append(file_record(f, label, n))
    unknown = sorted(set(overrides) - set(seen))
    if unknown:
        raise ValueError(f"{args.labels}: {len(unknown)} ids are in no input (first: {unknown[0]!r})")
    if args.labels:
        changed = sum(1 for d in docs if d.id in overrides)
        records.append(
            {
                "path": args.labels,
                "label": "from file",
                "sha256": sha256_hex(Path(args.labels).read_bytes()),
                "documents": changed,
            }
        )
    return docs, records, hashes


def cmd_train(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if (out / MODEL_FILE).exists():
        print(
            f"error: {out / MODEL_FILE} exists; choose a new --output (a model is never overwritten)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not args.positive and not args.negative:
        print("error: give --positive and --negative inputs", file=sys.stderr)
        return EXIT_USAGE
    if not NAME_PATTERN.match(args.name) or args.version < 1:
        print(
            f"error: --name {args.name!r} --version {args.version}: a name of a-z, 0-9 and _ "
            "(it names the column quality_<name>_v<k>) and a version of at least 1",
            file=sys.stderr,
        )
        return EXIT_USAGE
    params = TrainParams(
        features=args.features,
        dim=args.dim,
        epoch=args.epoch,
        lr=args.lr,
        word_ngrams=args.word_ngrams or DEFAULT_WORD_NGRAMS[args.features],
        bucket=args.bucket,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
    )
    try:
        docs, records, hashes = _labelled(args)
        if not any(d.positive for d in docs) or all(d.positive for d in docs):
            raise ValueError(
                "training needs positive and negative documents (check --positive/--negative/--labels)"
            )
        result = train(docs, params)
        metadata = save(result, out, args.name, args.version, records, hashes)
    except (ValueError, RuntimeError) as exc:  # bad inputs or settings; RuntimeError: fastText gave up
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    data, figures = metadata["training_data"], metadata["validation"]
    print(
        f"trained {metadata['column']} ({metadata['features']}): "
        f"train {data['train']['positive']} positive + {data['train']['negative']} negative, "
        f"validation {data['validation']['positive']} positive + {data['validation']['negative']} negative"
    )
    print(
        f"validation (held out by group, threshold {figures['threshold']}): "
        f"precision {figures['precision']:.4f} recall {figures['recall']:.4f} "
        f"F1 {figures['f1']:.4f} ROC AUC {figures['roc_auc']:.4f}"
    )
    print(f"model: {out / MODEL_FILE} sha256 {metadata['model_sha256']} ({metadata['model_bytes']} bytes)")
    return EXIT_OK


def cmd_score(args: argparse.Namespace) -> int:
    try:
        classifier = Classifier(args.model_dir, args.sha256, "--sha256")
        files = [f for path in args.inputs for f in input_files(path)]
    except (ModelMismatch, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out = sys.stdout
    try:
        for f in files:
            batch: list = []
            for doc in iter_documents(str(f)):
                batch.append(doc)
                if len(batch) == 1024:
                    _print_scores(classifier, batch, out)
                    batch = []
            _print_scores(classifier, batch, out)
    except ValueError as exc:  # a bad line half-way: what was printed stands, the rest is refused
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `| head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


def _print_scores(classifier: Classifier, batch: list, out) -> None:
    if not batch:
        return
    scores = classifier.score([d.text for d in batch])
    for doc, score in zip(batch, scores):
        # Six decimals: the stage stores float32 (about seven significant digits).
        out.write(json.dumps({"id": doc.id, "score": round(float(score), 6)}, ensure_ascii=False) + "\n")
