"""`python -m pipeline train-classifier` and `score-classifier` as a user runs them (subprocess):
the default classifier rebuilt from the shared data, scores of JSONL and of a run's shards, labels,
and one-line errors with exit code 2."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from filters.classifiers.model import Classifier
from manifests.io import atomic_write_parquet

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "filters" / "classifiers" / "data" / "wikilike_v1"
METADATA = json.loads((MODEL / "metadata.json").read_text())
SHARED = Path(os.environ.get("JCORPUS_SHARED_DATA", REPO.parent / "shared" / "data"))
WIKI = REPO / "sample" / "wikipedia_ja.jsonl"


def pipeline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def training_set(tmp_path_factory) -> Path:
    if not (SHARED / "charset_feeds").is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    out = tmp_path_factory.mktemp("wikilike")
    subprocess.run(
        [sys.executable, "-m", "pipeline.stages.quality_default", "--shared", str(SHARED), "--out", str(out)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return out


def test_the_documented_command_rebuilds_the_default_classifier_byte_for_byte(training_set, tmp_path):
    proc = pipeline(
        "train-classifier",
        "--name",
        "wikilike",
        "--positive",
        str(training_set / "positives.jsonl"),
        "--negative",
        str(training_set / "negatives.jsonl"),
        "--dim",
        "8",
        "--bucket",
        "8192",
        "--output",
        str(tmp_path / "model"),
    )
    assert proc.returncode == 0, proc.stderr
    figures = re.search(r"precision ([\d.]+) recall ([\d.]+) F1 ([\d.]+) ROC AUC ([\d.]+)", proc.stdout)
    precision, recall, f1, auc = map(float, figures.groups())
    assert auc >= 0.95 and f1 >= 0.9  # held-out blogs, articles, meetings and law chapters
    built = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert built["model_sha256"] == METADATA["model_sha256"], "the committed default model is not reproduced"
    assert built["validation"] == METADATA["validation"]
    assert built["hyperparameters"] == METADATA["hyperparameters"]
    assert (tmp_path / "model" / "training_ids.jsonl.gz").read_bytes() == (
        MODEL / "training_ids.jsonl.gz"
    ).read_bytes()


def test_a_labels_file_overrides_the_label_of_the_documents_it_lists(training_set, tmp_path):
    positives = [json.loads(line) for line in (training_set / "positives.jsonl").read_text().splitlines()]
    negatives = [json.loads(line) for line in (training_set / "negatives.jsonl").read_text().splitlines()]
    small = tmp_path / "small"
    small.mkdir()
    (small / "pos.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in positives[::3])
    )
    (small / "neg.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in negatives[::2])
    )
    flipped = [negatives[0]["id"], negatives[2]["id"]]
    (small / "labels.jsonl").write_text(
        "".join(json.dumps({"id": i, "label": "positive"}) + "\n" for i in flipped)
    )
    args = ["train-classifier", "--name", "checked", "--positive", str(small / "pos.jsonl")]
    args += ["--negative", str(small / "neg.jsonl"), "--labels", str(small / "labels.jsonl")]
    proc = pipeline(*args, "--output", str(tmp_path / "model"), "--bucket", "8192")
    assert proc.returncode == 0, proc.stderr
    with gzip.open(tmp_path / "model" / "training_ids.jsonl.gz", "rt") as f:
        labels = {row["id"]: row["label"] for row in map(json.loads, f)}
    assert [labels[i] for i in flipped] == ["positive", "positive"]
    sources = json.loads((tmp_path / "model" / "metadata.json").read_text())["training_data"]["sources"]
    assert sources[-1]["label"] == "from file" and sources[-1]["documents"] == 2

    (small / "labels.jsonl").write_text(json.dumps({"id": "no-such-doc", "label": "positive"}) + "\n")
    proc = pipeline(*args, "--output", str(tmp_path / "model2"))
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"error: {small / 'labels.jsonl'}: 1 ids are in no input (first: 'no-such-doc')"
    )


def test_score_classifier_prints_the_stages_scores_for_jsonl_and_for_shards(tmp_path):
    proc = pipeline("score-classifier", str(MODEL), str(WIKI))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    rows = [json.loads(line) for line in WIKI.read_text().splitlines()]
    assert [line["id"] for line in lines] == [r["id"] for r in rows]
    expected = Classifier(MODEL).score([r["text"] for r in rows])
    assert [line["score"] for line in lines] == pytest.approx(expected.tolist(), abs=1e-6)

    # A run's stage directory: its part-NNNNN.parquet shards, manifests left out.
    stage = tmp_path / "quality"
    table = pa.table({"doc_id": [r["id"] for r in rows[:3]], "text": [r["text"] for r in rows[:3]]})
    atomic_write_parquet(str(stage / "part-00000.parquet"), table)
    atomic_write_parquet(str(stage / "part-00000.manifest.parquet"), pa.table({"x": [1]}))
    proc = pipeline("score-classifier", str(MODEL), str(stage), "--sha256", METADATA["model_sha256"])
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["score"] for line in proc.stdout.splitlines()] == pytest.approx(
        expected[:3].tolist(), abs=1e-6
    )


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d: ["score-classifier", str(MODEL), str(d / "missing.jsonl")], "missing.jsonl: no such file"),
        (lambda d: ["score-classifier", str(MODEL), str(d / "bad.jsonl")], "bad.jsonl:2: needs an `id`"),
        (
            lambda d: ["score-classifier", str(MODEL), str(WIKI), "--sha256", "0" * 64],
            f"SHA-256 is {METADATA['model_sha256']}, but --sha256 expects " + "0" * 64,
        ),
        (
            lambda d: ["train-classifier", "--name", "x", "--positive", str(WIKI), "--output", str(MODEL)],
            "model.bin exists; choose a new --output",
        ),
        (
            lambda d: ["train-classifier", "--name", "x", "--positive", str(WIKI), "--output", str(d / "m")],
            "training needs positive and negative documents",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_it(tmp_path, make_args, message):
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "text": "梅雨"}\n{"text": "idのない行"}\n')
    proc = pipeline(*make_args(tmp_path))
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line
