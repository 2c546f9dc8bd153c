"""Load and apply a binary fastText document classifier written by ``train.py``.

A model directory holds ``model.bin`` (the fastText model), ``metadata.json`` (name, version,
features, hyper-parameters, library versions, training sources, validation figures and the
model's SHA-256) and ``training_ids.jsonl.gz`` (every training and validation document's id,
label, split and text SHA-256). The score of a document is the model's probability of the positive
class (for a quality classifier "good", for a toxicity classifier "toxic").
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from filters.classifiers.features import FEATURES, feature_line

FORMAT = "jcorpus-fasttext-classifier/1"
MODEL_FILE = "model.bin"
METADATA_FILE = "metadata.json"
IDS_FILE = "training_ids.jsonl.gz"
POSITIVE, NEGATIVE = "positive", "negative"
LABEL_PREFIX = "__label__"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


class ModelMismatch(ValueError):
    """A model file is missing, unreadable, or not the one the config or its metadata names."""


def fasttext_module():
    # Either fastText module will do for scoring: fasttext-numpy2-wheel's or fasttext-predict's.
    try:
        import fasttext
    except ImportError as exc:
        raise ImportError("classifiers need fastText: pip install 'fasttext-numpy2-wheel>=0.9.2'") from exc
    return fasttext


def predict_lines(model: Any, lines: list[str]) -> np.ndarray:
    """P(positive) of each feature line (float32); a line without features scores 0.5 (no evidence)."""
    scores = np.full(len(lines), 0.5, dtype=np.float32)
    todo = [i for i, line in enumerate(lines) if line]
    if not todo:
        return scores
    labels, probabilities = model.predict([lines[i] for i in todo], k=2)
    for i, names, probs in zip(todo, labels, probabilities):
        by_label = dict(zip(names, probs))
        # fastText returns exp(log(p + 1e-5)), so a certain answer can exceed 1: clamp.
        scores[i] = min(1.0, max(0.0, float(by_label.get(LABEL_PREFIX + POSITIVE, 0.0))))
    return scores


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def column_name(name: str, version: int) -> str:
    """The score column and manifest check of a classifier.

    >>> column_name("wikilike", 1)
    'quality_wikilike_v1'
    """
    return f"quality_{name}_v{version}"


def read_metadata(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / METADATA_FILE
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelMismatch(f"{path}: no such file (is {model_dir} a train-classifier output?)") from None
    except (OSError, ValueError) as exc:
        raise ModelMismatch(f"{path}: cannot read classifier metadata ({exc})") from None
    if metadata.get("format") != FORMAT:
        raise ModelMismatch(f"{path}: format {metadata.get('format')!r}, expected {FORMAT!r}")
    return metadata


def verify(
    model_dir: str | Path, expected_sha256: str | None = None, expected_by: str = "the config"
) -> dict[str, Any]:
    """The metadata of `model_dir` once its model file is present and has the expected SHA-256
    (`expected_by`'s, when given, and always the metadata's own). Reads the model file once."""
    metadata = read_metadata(model_dir)
    path = Path(model_dir) / metadata["model_file"]
    if not path.is_file():
        raise ModelMismatch(f"{path}: model file missing")
    actual = sha256_file(path)
    if expected_sha256 is not None and actual != expected_sha256:
        raise ModelMismatch(f"{path}: SHA-256 is {actual}, but {expected_by} expects {expected_sha256}")
    if actual != metadata["model_sha256"]:
        raise ModelMismatch(
            f"{path}: SHA-256 is {actual}, but its metadata.json says {metadata['model_sha256']}"
        )
    return metadata


class Classifier:
    """A trained classifier loaded once; ``score`` gives P(positive) per document.

    The same object serves ``python -m pipeline score-classifier`` and the quality stage.
    """

    def __init__(
        self, model_dir: str | Path, expected_sha256: str | None = None, expected_by: str = "the config"
    ):
        self.model_dir = str(model_dir)
        self.metadata = verify(model_dir, expected_sha256, expected_by)
        self.name: str = self.metadata["name"]
        self.version: int = self.metadata["version"]
        self.column: str = self.metadata["column"]
        self.features: str = self.metadata["features"]
        if self.features not in FEATURES.values():
            raise ModelMismatch(f"{model_dir}: features {self.features!r} are not known to this version")
        self.sha256: str = self.metadata["model_sha256"]
        self._model = fasttext_module().load_model(str(Path(model_dir) / self.metadata["model_file"]))

    def score(self, texts: Iterable[str]) -> np.ndarray:
        return self.score_lines([feature_line(t or "", self.features) for t in texts])

    def score_lines(self, lines: list[str]) -> np.ndarray:
        """Scores of texts already made into this model's feature lines (``feature_line``): several
        classifiers with the same features share that work."""
        return predict_lines(self._model, lines)
