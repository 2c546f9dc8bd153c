"""`python -m pipeline train-tokenizer` on a run of real Japanese text (Wikipedia paragraphs,
行政手続法, Diet speeches): a SentencePiece unigram or BPE model with its metadata, the same bytes
from the same input, usable by the tokenize stage, and clear refusals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from japanese_texts import LAW, SPEECHES, WIKI

from pipeline.cli import main
from pipeline.stages.tokenize import TokenizeStage
from pipeline.tokenizer_models import load_tokenizer
from pipeline.tokenizer_training import sample_documents

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--set", "tokenize.training.vocab_size=2000", "--set", "tokenize.training.threads=1"]


@pytest.fixture
def run(shards) -> str:
    """A run whose quality stage holds 50 real documents in two shards."""
    docs = [{"upstream_id": f"wiki-{i}", "text": t} for i, t in enumerate(WIKI)]
    docs += [{"upstream_id": "law", "text": LAW, "source": "egov"}]
    docs += [{"upstream_id": f"diet-{i}", "text": t, "source": "kokkai"} for i, t in enumerate(SPEECHES)]
    shards.write("quality", 0, docs[:20])
    shards.write("quality", 1, docs[20:])
    return shards.run_dir


def train(run: str, out: Path, *extra: str) -> int:
    return main(["train-tokenizer", "--run-dir", run, "--output", str(out), *SMALL, *extra])


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_a_trained_tokenizer_comes_with_its_metadata_and_round_trips_japanese(run, tmp_path, model_type):
    out = tmp_path / model_type
    assert train(run, out, "--set", f"tokenize.training.model_type={model_type}") == 0
    model = (out / "tokenizer.model").read_bytes()
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["sha256"] == hashlib.sha256(model).hexdigest()
    assert meta["parameters"]["model_type"] == model_type and meta["trainer_options"]["vocab_size"] == 2000
    assert (
        meta["trainer_options"]["byte_fallback"] is True
        and meta["parameters"]["character_coverage"] == 0.9995
    )
    ids = (out / "sample_doc_ids.txt").read_text().split()
    assert meta["sample"]["documents"] == len(ids) == len(WIKI) + 1 + len(SPEECHES)
    # The sample hash is of the lines trained on, in the order of sample_doc_ids.txt.
    texts = {d: t for d, t in sample_documents(run, "quality", 100, 1)}
    lines = [line for d in ids for line in texts[d].split("\n") if line.strip()]
    assert meta["sample"]["sha256"] == hashlib.sha256("".join(x + "\n" for x in lines).encode()).hexdigest()
    tok = load_tokenizer(str(out))
    assert tok.kind == "sentencepiece" and tok.vocab_size == 2000 and tok.sha256 == meta["sha256"]
    # A character the sample never had comes back through byte fallback; lines survive.
    text = "第一条　この法律は、行政運営における公正の確保を図る。\n𠮷野家で梅雨の話をした。"
    assert tok.decode(tok.encode_batch([text])[0]) == text


def test_the_same_run_and_settings_give_the_same_model_bytes(run, tmp_path):
    assert train(run, tmp_path / "a") == 0 and train(run, tmp_path / "b") == 0
    assert (tmp_path / "a" / "tokenizer.model").read_bytes() == (
        tmp_path / "b" / "tokenizer.model"
    ).read_bytes()
    assert (tmp_path / "a" / "metadata.json").read_text() == (
        tmp_path / "b" / "metadata.json"
    ).read_text().replace(str(tmp_path / "b"), str(tmp_path / "a"))


def test_the_tokenize_stage_uses_the_trained_tokenizer(run, shards, tmp_path):
    assert train(run, tmp_path / "tok") == 0
    stage = TokenizeStage(
        shards.context(f"tokenize.tokenizer_path={tmp_path / 'tok'}", "tokenize.eos_token=</s>")
    )
    spec = shards.write("quality", 0, [{"upstream_id": "law", "text": LAW, "source": "egov"}])
    result = stage.process(spec)
    ids = [t for row in result.kept.column("input_ids").to_pylist() for t in row[:-1]]
    assert stage.eos_id == 2 and stage.tokenizer.decode(ids) == LAW


def test_the_sample_is_the_same_whatever_its_size_says(run):
    small = [d for d, _ in sample_documents(run, "quality", 10, 1)]
    large = [d for d, _ in sample_documents(run, "quality", 30, 1)]
    assert large[:10] == small and len(set(large)) == 30
    assert [d for d, _ in sample_documents(run, "quality", 10, 2)] != small


def test_bad_settings_and_missing_input_exit_2_with_the_reason(run, tmp_path, capsys):
    assert train(run, tmp_path / "big", "--set", "tokenize.training.vocab_size=200000") == 2
    assert "SentencePiece refused the settings: Vocabulary size too high (200000)" in capsys.readouterr().err
    assert train(str(tmp_path / "no-run"), tmp_path / "x") == 2
    assert "stage 'quality' has not finished" in capsys.readouterr().err
    assert train(run, tmp_path / "x", "--set", "tokenize.training.model_type=char") == 2
    assert "tokenize.training.model_type" in capsys.readouterr().err
    assert train(run, tmp_path / "once") == 0 and train(run, tmp_path / "once") == 2
    assert "already holds a tokenizer.model" in capsys.readouterr().err
