"""Train a binary fastText document classifier and write its model directory (see ``model.py``).

Training is deterministic on one machine: one thread, a fixed seed, an input order that depends on
the documents' ids only, and a fresh process (see ``_train_in_child``). Whether two machines give
the same bytes depends on their floating point; the model's SHA-256 in the metadata is what a run pins.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from filters.classifiers.features import FEATURES, SUDACHI_FEATURES, feature_line, sudachi_versions
from filters.classifiers.metrics import binary_metrics
from filters.classifiers.model import (
    FORMAT,
    IDS_FILE,
    LABEL_PREFIX,
    METADATA_FILE,
    MODEL_FILE,
    NAME_PATTERN,
    NEGATIVE,
    POSITIVE,
    column_name,
    fasttext_module,
    predict_lines,
    sha256_file,
)


@dataclass(frozen=True)
class LabelledDocument:
    id: str
    text: str
    positive: bool
    # Documents of one group (one blog's entries, one law's chapters) stay on one side of the
    # validation split, so that the figures measure unseen sources, not unseen paragraphs.
    group: str | None = None


@dataclass(frozen=True)
class TrainParams:
    features: str = "char"  # char or sudachi (filters/classifiers/features.py)
    dim: int = 16
    epoch: int = 20
    lr: float = 0.2
    word_ngrams: int = 3  # over characters: character bi- and trigrams
    min_count: int = 1
    bucket: int = 65_536  # hashed n-gram rows: dim x bucket x 4 bytes of the model file
    seed: int = 1
    validation_fraction: float = 0.2

    def fasttext_args(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "epoch": self.epoch,
            "lr": self.lr,
            "wordNgrams": self.word_ngrams,
            "minCount": self.min_count,
            "bucket": self.bucket,
            "seed": self.seed,
            "loss": "softmax",
            "minn": 0,  # no subwords: the tokens are already characters or words
            "maxn": 0,
            "thread": 1,  # more threads make training order, hence the model, nondeterministic
            "verbose": 0,
        }


def _hash_unit(seed: int, key: str) -> float:
    """A number in [0, 1) fixed by (seed, key): the same split and order on every machine and numpy."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def validation_split(
    docs: Sequence[LabelledDocument], fraction: float, seed: int
) -> tuple[list[LabelledDocument], list[LabelledDocument]]:
    """(train, validation): a group goes to validation when its hash falls under `fraction`.

    Each class gets at least one validation group (the one with the smallest hash) so that
    precision, recall and AUC are defined even for a class with few groups.
    """
    key = {d.id: d.group or d.id for d in docs}
    held = {k for k in key.values() if _hash_unit(seed, k) < fraction}
    for positive in (True, False):
        groups = {key[d.id] for d in docs if d.positive == positive}
        if groups and not groups & held:
            held.add(min(groups, key=lambda g: _hash_unit(seed, g)))
    # A group that holds both classes would now be held out for both: fine, it is one source.
    train = [d for d in docs if key[d.id] not in held]
    valid = [d for d in docs if key[d.id] in held]
    if not any(d.positive for d in train) or all(d.positive for d in train):
        raise ValueError("the validation split leaves no positive or no negative to train on; add documents")
    return train, valid


@dataclass
class TrainResult:
    model: Any
    model_bytes: bytes
    params: TrainParams
    train: list[LabelledDocument]
    validation: list[LabelledDocument]
    validation_scores: np.ndarray
    figures: dict[str, float]
    empty: list[str] = field(default_factory=list)  # ids with no features, left out


def train(docs: Sequence[LabelledDocument], params: TrainParams) -> TrainResult:
    """Hold out a validation split, train on the rest, and measure on the held-out documents."""
    if params.features not in FEATURES:
        raise ValueError(f"features must be one of {', '.join(FEATURES)}, got {params.features!r}")
    if not 0.0 < params.validation_fraction < 1.0:
        raise ValueError("validation_fraction must be between 0 and 1 (exclusive)")
    repeated = [i for i, n in Counter(d.id for d in docs).items() if n > 1]
    if repeated:
        raise ValueError(f"document id {repeated[0]!r} appears more than once")
    features = FEATURES[params.features]
    lines = {d.id: feature_line(d.text, features) for d in docs}
    empty = sorted(i for i, line in lines.items() if not line)
    usable = [d for d in docs if lines[d.id]]
    train_docs, valid_docs = validation_split(usable, params.validation_fraction, params.seed)
    # fastText learns in file order: a fixed order that mixes the classes, from the ids only.
    ordered = sorted(train_docs, key=lambda d: _hash_unit(params.seed, d.id))
    with tempfile.TemporaryDirectory(prefix="classifier-") as tmp:
        path = os.path.join(tmp, "train.txt")
        with open(path, "w", encoding="utf-8") as f:
            for d in ordered:
                f.write(f"{LABEL_PREFIX}{POSITIVE if d.positive else NEGATIVE} {lines[d.id]}\n")
        model_bytes = _train_in_child(path, os.path.join(tmp, MODEL_FILE), params.fasttext_args())
        model = fasttext_module().load_model(os.path.join(tmp, MODEL_FILE))
    scores = predict_lines(model, [lines[d.id] for d in valid_docs])
    figures = binary_metrics(np.array([d.positive for d in valid_docs]), scores)
    return TrainResult(model, model_bytes, params, train_docs, valid_docs, scores, figures, empty)


# Runs in a fresh interpreter: see _train_in_child.
_CHILD = """
import json, sys
import fasttext
if not hasattr(fasttext, "train_supervised"):
    sys.exit("the installed fasttext module is fasttext-predict's (prediction only); reinstall the "
             "trainer: pip install --force-reinstall --no-deps fasttext-numpy2-wheel")
fasttext.train_supervised(input=sys.argv[1], **json.loads(sys.argv[3])).save_model(sys.argv[2])
"""


def _train_in_child(train_path: str, model_path: str, args: dict[str, Any]) -> bytes:
    """Train in a new process and return the model file's bytes.

    fastText 0.9.2 (as fasttext-numpy2-wheel builds it) reads memory it never wrote while training:
    in a process that has trained before, the same input and seed gave a different model or
    "Encountered NaN" (3 of 8 runs here), while every run in a fresh process gave the same bytes.
    Memory fresh from the OS is zeros, so the child fixes glibc's mmap threshold (which otherwise
    grows and recycles freed blocks) and every large matrix comes from a new mapping.
    """
    env = os.environ | {"MALLOC_MMAP_THRESHOLD_": "131072"}
    proc = subprocess.run(
        # -P: the working directory is not put on sys.path, so no file there can shadow a module.
        [sys.executable, "-P", "-c", _CHILD, train_path, model_path, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        hint = " (a lower --lr avoids it)" if "NaN" in last else ""
        raise RuntimeError(f"fastText training failed: {last}{hint}")
    return Path(model_path).read_bytes()


def library_versions(features: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for package in ("fasttext-numpy2-wheel", "fasttext-predict"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            pass
    if FEATURES.get(features, features) == SUDACHI_FEATURES:
        versions.update(sudachi_versions())
    return versions


def save(
    result: TrainResult,
    out_dir: str | Path,
    name: str,
    version: int,
    sources: list[dict[str, Any]],
    text_sha256: dict[str, str],
) -> dict[str, Any]:
    """Write model.bin, training_ids.jsonl and metadata.json into `out_dir`; returns the metadata.

    `sources`: one entry per training input (path, label, SHA-256, documents), as the caller read them.
    """
    if not NAME_PATTERN.match(name):
        raise ValueError(f"classifier name {name!r}: use lower-case letters, digits and _ (a column name)")
    if version < 1:
        raise ValueError(f"classifier version must be at least 1, got {version}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_FILE).write_bytes(result.model_bytes)
    rows = [(d, "train") for d in result.train] + [(d, "validation") for d in result.validation]
    lines = [
        json.dumps(
            {
                "id": d.id,
                "label": POSITIVE if d.positive else NEGATIVE,
                "split": split,
                "text_sha256": text_sha256[d.id],
            },
            ensure_ascii=False,
        )
        + "\n"
        for d, split in sorted(rows, key=lambda r: r[0].id)
    ]
    # gzip with mtime 0: the same documents give the same bytes (the hashes do not compress: 4x smaller).
    (out / IDS_FILE).write_bytes(gzip.compress("".join(lines).encode("utf-8"), mtime=0))

    def counts(docs: list[LabelledDocument]) -> dict[str, int]:
        return {POSITIVE: sum(d.positive for d in docs), NEGATIVE: sum(not d.positive for d in docs)}

    params = result.params
    metadata = {
        "format": FORMAT,
        "name": name,
        "version": version,
        "column": column_name(name, version),
        "score": f"probability of the {POSITIVE} class",
        "features": FEATURES[params.features],
        "model_file": MODEL_FILE,
        "model_sha256": sha256_file(out / MODEL_FILE),
        "model_bytes": (out / MODEL_FILE).stat().st_size,
        "hyperparameters": asdict(params) | {"fasttext": params.fasttext_args()},
        "library_versions": library_versions(params.features),
        "training_data": {
            "sources": sources,
            "ids_file": IDS_FILE,
            "ids_sha256": sha256_file(out / IDS_FILE),
            "train": counts(result.train),
            "validation": counts(result.validation),
            "left_out_without_features": result.empty,
        },
        "validation": {
            "split": "groups (else ids) whose sha256(seed, key) falls under the fraction",
            "fraction": params.validation_fraction,
            "seed": params.seed,
            **result.figures,
        },
    }
    (out / METADATA_FILE).write_text(
        json.dumps(metadata, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return metadata
