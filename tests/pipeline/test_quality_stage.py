"""The quality stage with classifiers, on small shards of real Japanese text, called directly (no
Ray except the one CLI test): versioned columns, manifest records, keep rules, the per-source top
fraction, and the SHA-256 guard."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from filters.classifiers.model import Classifier, ModelMismatch
from pipeline.config import ConfigError, load_config
from pipeline.stages import quality_classifiers as qc
from pipeline.stages import quality_topfraction as topf
from pipeline.stages.quality import QualityStage

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "filters" / "classifiers" / "data" / "wikilike_v1"
SHA256 = json.loads((MODEL / "metadata.json").read_text())["model_sha256"]
COLUMN = "quality_wikilike_v1"
# Japanese Wikipedia (CC BY-SA 4.0) and Diet speeches, both from the bundled sample.
WIKI = [json.loads(line) for line in (REPO / "sample" / "wikipedia_ja.jsonl").read_text().splitlines()]
SPEECHES = [
    s
    for m in json.loads((REPO / "sample" / "kokkai" / "meetings_rebuilt.json").read_text())["meetingRecord"]
    for s in m["speechRecord"]
]
# A 2006 affiliate blog entry (chardet test data, LGPL-2.1: SHIFT_JIS/celeb.lalalu.com.xml).
AFFILIATE = (
    "たのしメール\n最近リニューアルして、従来の懸賞サイトから、ポイントが換金出来るサイトに生まれ変わった"
    "「たのしメール」です。\nポイント換金サイトとしては、ポイントに有効期限がないこと、貯めたポイントを換金"
    "するときに送金手数料が無料など、ポイン"
)
KATAKANA_SPAM = "アフィリエイト・ランキング・ダイエット・サプリメント・キャンペーン・" * 10


def classifiers(*rules: dict, name: str = "wikilike", model: Path = MODEL, sha256: str = SHA256) -> str:
    """A --set override configuring the default model once per rule set, as versions 1, 2, ...
    (absolute path: --set paths inside a list are relative to the config file)."""
    base = {"name": name, "version": 1, "model": str(model), "sha256": sha256}
    entries = [
        base | rule | ({"version": i + 1} if len(rules) > 1 else {}) for i, rule in enumerate(rules or [{}])
    ]
    return "quality.classifiers=" + json.dumps(entries)


def serial_pmap(fn, items):
    return [fn(item) for item in items]


def docs(*texts: str, source: str = "local") -> list[dict]:
    return [
        {"upstream_id": f"{source}-{i}", "url": None, "text": t, "source": source}
        for i, t in enumerate(texts)
    ]


# measuring -------------------------------------------------------------------------------------------


def test_default_config_scores_every_document_and_records_the_model_in_its_manifest_row(shards):
    spec = shards.write("dedup", 0, docs(WIKI[0]["text"], AFFILIATE))
    result = QualityStage(shards.context()).process(spec)
    assert result.rejected == []  # the default classifier measures; it decides nothing
    wiki, blog = result.kept.column(COLUMN).to_pylist()
    assert wiki > 0.9 and blog < 0.1
    assert str(result.kept.schema.field(COLUMN).type) == "float"
    for row, score in zip(result.manifest, (wiki, blog)):
        (record,) = qc.classifier_records(row)
        assert record == {
            "name": "wikilike",
            "version": 1,
            "model_sha256": SHA256,
            "score": pytest.approx(score),
            "passed": True,
        }
    # The same number as `score-classifier` and Classifier.score give for the same text.
    assert Classifier(MODEL).score([WIKI[0]["text"]])[0] == pytest.approx(wiki, abs=1e-7)


def test_an_empty_shard_still_gets_the_columns(shards):
    schema = pa.schema(
        [("url", pa.string()), ("text", pa.string()), ("source", pa.string()), ("doc_id", pa.string())]
    )
    spec = shards.write("dedup", 0, [], schema=schema)
    result = QualityStage(shards.context()).process(spec)
    assert result.kept.num_rows == 0 and COLUMN in result.kept.column_names


# deciding -------------------------------------------------------------------------------------------


def test_min_score_rejects_below_it_and_the_first_failed_rule_names_the_reason(shards):
    spec = shards.write("dedup", 0, docs(WIKI[0]["text"], AFFILIATE, KATAKANA_SPAM))
    result = QualityStage(shards.context(classifiers({"min_score": 0.5}))).process(spec)
    (kept,) = result.kept.to_pylist()
    assert kept["text"] == WIKI[0]["text"]
    reasons = {r["text"][:6]: (r["reason"], r["detail"]) for r in result.rejected}
    assert reasons["たのしメール"][0] == f"{COLUMN}_below_min"
    assert reasons["たのしメール"][1].endswith("< 0.5")
    # Katakana spam fails the hiragana rule first; its classifier score is still measured and recorded.
    assert reasons["アフィリエイ"][0] == "hiragana_fraction_below_min"
    spam_row = result.manifest[2]
    assert spam_row["exclusion_reason"] == "quality:hiragana_fraction_below_min"
    (record,) = qc.classifier_records(spam_row)
    assert record["score"] is not None and record["passed"] is False


def test_max_score_keeps_only_documents_below_it_as_llm_jp_toxicity_does(shards):
    # The wikilike model stands in for a toxicity model: here "toxic" means Wikipedia-like.
    spec = shards.write("dedup", 0, docs(WIKI[2]["text"], AFFILIATE))
    result = QualityStage(shards.context(classifiers({"max_score": 0.9}))).process(spec)
    assert [r["text"] for r in result.kept.to_pylist()] == [AFFILIATE]
    assert result.rejected[0]["reason"] == f"{COLUMN}_above_max"
    c = qc.configured(load_config(None, [classifiers({"max_score": 0.99})]))[0]
    assert qc.judge(c, 0.99, "local", {})[1] == f"{COLUMN}_above_max"  # at the threshold: dropped
    assert qc.judge(c, 0.9899, "local", {})[1] is None


def test_two_classifiers_write_two_columns(shards):
    spec = shards.write("dedup", 0, docs(WIKI[3]["text"]))
    result = QualityStage(shards.context(classifiers({}, {"min_score": 0.1}))).process(spec)
    assert {"quality_wikilike_v1", "quality_wikilike_v2"} <= set(result.kept.column_names)
    assert [r["version"] for r in qc.classifier_records(result.manifest[0])] == [1, 2]


# the top fraction of each source --------------------------------------------------------------------------


def test_top_fraction_per_source_keeps_exactly_the_best_of_each_source_across_shards(shards):
    wiki = [w["text"] for w in WIKI]
    speeches = [s["speech"] for s in SPEECHES]
    specs = [
        shards.write("dedup", 0, docs(*wiki[:21]) + docs(*speeches[:9], source="kokkai")),
        shards.write(
            "dedup",
            1,
            [d | {"upstream_id": d["upstream_id"] + "b"} for d in docs(*wiki[21:])]
            + [d | {"upstream_id": d["upstream_id"] + "b"} for d in docs(*speeches[9:], source="kokkai")],
        ),
    ]
    ctx = shards.context(classifiers({"top_fraction_per_source": 0.3}), "quality.min_hiragana_fraction=0")
    stage = QualityStage(ctx)
    stage.prepare(specs, serial_pmap)
    results = [stage.process(s) for s in specs]

    model = Classifier(MODEL)
    for source, texts in (("local", wiki), ("kokkai", speeches)):
        keep = topf.keep_count(len(texts), 0.3)  # 13 of 42, 6 of 18
        best = set(np.array(texts)[np.argsort(-model.score(texts), kind="stable")[:keep]])
        kept = {r["text"] for res in results for r in res.kept.to_pylist() if r["source"] == source}
        assert kept == best, source
    cuts = json.loads(Path(qc.cuts_path(shards.run_dir)).read_text())[COLUMN]
    assert (cuts["local"]["keep"], cuts["local"]["documents"]) == (13, 42)
    reasons = {r["reason"] for res in results for r in res.rejected}
    assert reasons == {f"{COLUMN}_below_top_fraction"}
    # A second prepare (a resumed run) reuses the scores and the cuts instead of scoring again.
    before = Path(qc.scores_path(shards.run_dir, "part-00000")).stat().st_mtime_ns
    stage.prepare(specs, serial_pmap)
    assert Path(qc.scores_path(shards.run_dir, "part-00000")).stat().st_mtime_ns == before


def test_the_cut_is_the_exact_kth_largest_score_even_with_ties_near_one():
    rng = np.random.default_rng(11)
    scores = np.concatenate(
        [
            rng.random(5000).astype(np.float32),
            (1 - rng.random(3000) * 1e-6).astype(np.float32),  # fastText's pile-up just under 1.0
            np.ones(500, dtype=np.float32),
            np.zeros(200, dtype=np.float32),
        ]
    )
    parts = np.array_split(rng.permutation(scores), 7)  # as if in 7 shards
    for k in (1, 400, 501, 3000, 3500, 8699, 8700):
        high = sum((topf.high_counts(p) for p in parts), start=topf.Counter())
        block, rank = topf.locate(high, k)
        low = sum((topf.low_counts(p, block) for p in parts), start=topf.Counter())
        cut = topf.cut_value(block, topf.locate(low, rank)[0])
        assert cut == np.sort(scores)[::-1][k - 1], k


# the SHA-256 guard ------------------------------------------------------------------------------------------


def test_a_model_whose_sha256_differs_from_the_config_stops_the_stage_before_scoring(shards):
    shards.write("dedup", 0, docs(WIKI[0]["text"]))
    stage = QualityStage(shards.context(classifiers(sha256="0" * 64)))
    with pytest.raises(ConfigError) as err:
        stage.plan()
    assert str(err.value) == (
        f"quality.classifiers[0] (wikilike v1): {MODEL}/model.bin: SHA-256 is {SHA256}, "
        f"but the config expects {'0' * 64}"
    )
    assert not (Path(shards.run_dir) / "quality").exists()
    with pytest.raises(ModelMismatch):  # and a worker that got this far would refuse it too
        stage.setup()


def test_a_missing_model_or_one_of_another_name_stops_the_stage(shards, tmp_path):
    shards.write("dedup", 0, docs(WIKI[0]["text"]))
    missing = r"quality.classifiers\[0\] \(wikilike v1\): .*metadata.json: no such file"
    with pytest.raises(ConfigError, match=missing):
        QualityStage(shards.context(classifiers(model=tmp_path / "gone"))).plan()
    with pytest.raises(ConfigError, match="holds wikilike v1, but the config names toxicity v1"):
        QualityStage(shards.context(classifiers(name="toxicity"))).plan()


def test_the_cli_exits_2_with_one_line_and_writes_no_quality_shard(shards):
    shards.write("dedup", 0, docs(WIKI[0]["text"]))
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--stage", "quality", "--run-dir", shards.run_dir]
        + ["--set", classifiers(sha256="0" * 64), "--set", "runtime.num_cpus=1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: quality.classifiers[0] (wikilike v1): {MODEL}/model.bin: SHA-256 is {SHA256}, "
        f"but the config expects {'0' * 64}"
    ]
    assert not list((Path(shards.run_dir) / "quality").glob("part-*"))


@pytest.mark.parametrize(
    "rule, message",
    [
        ({"name": "Wiki-Like"}, "quality.classifiers[0].name: lower-case letters, digits and _"),
        ({"sha256": "abc"}, "quality.classifiers[0].sha256: the model file's SHA-256"),
        ({"min_score": 1.5}, "quality.classifiers[0].min_score: must be between 0 and 1"),
        ({"top_fraction_per_source": 0}, "quality.classifiers[0].top_fraction_per_source: must be in (0, 1]"),
        ({"version": 0}, "quality.classifiers[0].version: must be at least 1"),
    ],
)
def test_bad_classifier_settings_are_config_errors_naming_the_key(rule, message):
    entry = {"name": "wikilike", "version": 1, "model": str(MODEL), "sha256": SHA256} | rule
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(None, ["quality.classifiers=" + json.dumps([entry])])
