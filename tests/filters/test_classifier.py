"""fastText document classifiers on real Japanese text: features, metrics, the validation split,
training on a small real labelled set, and the model file checks (filters/classifiers/)."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest

from filters.classifiers.features import CHAR_FEATURES, char_line, feature_line, sudachi_line
from filters.classifiers.metrics import binary_metrics, roc_auc
from filters.classifiers.model import Classifier, ModelMismatch, verify
from filters.classifiers.train import LabelledDocument, TrainParams, train, validation_split

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / "filters" / "classifiers" / "data" / "wikilike_v1"
# Japanese Wikipedia (CC BY-SA 4.0, sample/wikipedia_ja.jsonl) and a 2006 affiliate blog entry
# (chardet test data, LGPL-2.1: charset_feeds/SHIFT_JIS/celeb.lalalu.com.xml).
TSUYU = (
    "梅雨（つゆ、ばいう）は、北海道と小笠原諸島を除く日本、朝鮮半島南部、中国の南部から長江流域にかけての"
    "沿海部、および台湾など、東アジアの広範囲においてみられる特有の気象現象で、5月から7月にかけて来る曇りや"
    "雨の多い期間のこと。雨季の一種である。"
)
AFFILIATE = (
    "たのしメール\n最近リニューアルして、従来の懸賞サイトから、ポイントが換金出来るサイトに生まれ変わった"
    "「たのしメール」です。\nポイント換金サイトとしては、ポイントに有効期限がないこと、貯めたポイントを換金"
    "するときに送金手数料が無料など、ポイン"
)


# features -------------------------------------------------------------------------------------------


def test_char_features_split_japanese_into_characters_and_fold_width_and_digits():
    assert char_line("ＪＲ仙台駅、１９５０年") == "jr 仙 台 駅 、 0000 年"
    # Half-width katakana and full-width forms give the same features as the plain ones.
    assert char_line("ｶﾞｯｺｳ") == char_line("ガッコウ")
    assert "\n" not in char_line("一行目\n二行目") and char_line(" \n\t") == ""


def test_sudachi_features_are_normalised_words():
    assert sudachi_line("附属病院に行った") == "付属 病院 に 行く た"


def test_sudachi_features_handle_a_text_over_sudachis_input_limit():
    law = (REPO / "tests" / "data" / "egov" / "405AC0000000088_20240401_504AC0100000052.xml").read_bytes()
    from sources.law_xml import law_xml_to_text

    text = law_xml_to_text(law).text * 3  # about 190 KB of UTF-8: Sudachi alone refuses over 49 KB
    words = sudachi_line(text).split(" ")
    assert len(words) > 20_000 and words.count("行政") > 100


def test_unknown_features_are_refused():
    with pytest.raises(ValueError, match="unknown classifier features 'bytes'"):
        feature_line(TSUYU, "bytes")


# metrics --------------------------------------------------------------------------------------------


def test_roc_auc_rank_formula_equals_counting_every_pair_with_ties():
    rng = np.random.default_rng(7)
    labels = rng.random(300) < 0.4
    scores = np.round(rng.random(300) + labels * 0.3, 1)  # rounded: many ties
    pairs = [(p, n) for p, n in itertools.product(scores[labels], scores[~labels])]
    by_counting = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert roc_auc(labels, scores) == pytest.approx(by_counting, abs=1e-12)
    assert roc_auc(labels, scores) > 0.6


def test_binary_metrics_on_known_answers():
    labels = np.array([1, 1, 1, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1, 0.05])
    m = binary_metrics(labels, scores)
    assert (m["precision"], m["recall"], m["f1"]) == (0.6667, 0.6667, 0.6667)
    assert m["roc_auc"] == pytest.approx(11 / 12, abs=1e-4)
    with pytest.raises(ValueError, match="at least one positive and one negative"):
        roc_auc(np.array([1, 1]), np.array([0.2, 0.3]))


# the validation split ---------------------------------------------------------------------------------


def test_validation_split_keeps_groups_together_and_holds_out_both_classes():
    docs = [
        LabelledDocument(f"{blog}#{i}", "本文", blog.startswith("wiki"), group=blog)
        for blog in ["wiki:a", "wiki:b", "wiki:c", "blog:x", "blog:y", "blog:z", "blog:w"]
        for i in range(5)
    ]
    train_docs, valid = validation_split(docs, 0.2, seed=1)
    assert {d.group for d in train_docs}.isdisjoint({d.group for d in valid})
    assert any(d.positive for d in valid) and not all(d.positive for d in valid)
    assert validation_split(docs, 0.2, seed=1) == (train_docs, valid)  # deterministic


# training on real text ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_set(shared_data) -> list[LabelledDocument]:
    """Wikipedia paragraphs, Diet speeches and a law against real 2005-08 blog entries."""
    from pipeline.stages.quality_default import training_sets

    positives, negatives = training_sets(shared_data)
    return [LabelledDocument(r["id"], r["text"], True, r["group"]) for r in positives] + [
        LabelledDocument(r["id"], r["text"], False, r["group"]) for r in negatives
    ]


def test_a_model_trained_on_real_text_ranks_held_out_positives_above_negatives(real_set):
    result = train(real_set, TrainParams(dim=8, bucket=8192))
    # Held out by group: unseen Wikipedia articles, Diet meetings, law chapters and blogs. Measured
    # 0.995; a model that learned nothing would be near 0.5.
    assert result.figures["roc_auc"] >= 0.95
    assert result.figures["precision"] >= 0.9 and result.figures["recall"] >= 0.85
    assert {d.group for d in result.train}.isdisjoint({d.group for d in result.validation})
    # Retraining in the same process gives the same model (fastText trains in a fresh child).
    assert train(real_set, TrainParams(dim=8, bucket=8192)).model_bytes == result.model_bytes


def test_sudachi_word_features_also_learn_the_distinction(real_set):
    subset = real_set[::4]  # Sudachi is the slow part: a quarter of the set is enough here
    result = train(subset, TrainParams(features="sudachi", word_ngrams=2, dim=8, bucket=8192))
    assert result.figures["roc_auc"] >= 0.9


# the model directory --------------------------------------------------------------------------------------


def test_the_default_model_scores_wikipedia_above_an_affiliate_blog():
    classifier = Classifier(DEFAULT_MODEL)
    assert classifier.column == "quality_wikilike_v1" and classifier.features == CHAR_FEATURES
    wiki, blog, empty = classifier.score([TSUYU, AFFILIATE, ""])
    assert wiki > 0.9 > 0.1 > blog
    assert empty == 0.5  # no features, no evidence
    assert classifier.score([]).shape == (0,)


def test_a_model_file_that_is_not_the_expected_one_is_refused(tmp_path):
    expected = verify(DEFAULT_MODEL)["model_sha256"]
    with pytest.raises(ModelMismatch, match=f"SHA-256 is {expected}, but the config expects 0{{64}}"):
        Classifier(DEFAULT_MODEL, "0" * 64)
    copy = tmp_path / "wikilike_v1"
    shutil.copytree(DEFAULT_MODEL, copy)
    with open(copy / "model.bin", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelMismatch, match="but its metadata.json says " + expected):
        Classifier(copy)
    (copy / "model.bin").unlink()
    with pytest.raises(ModelMismatch, match="model.bin: model file missing"):
        Classifier(copy)
    with pytest.raises(ModelMismatch, match="no such file"):
        Classifier(tmp_path / "nowhere")
