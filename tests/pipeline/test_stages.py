"""Each stage's work on one small shard of real Japanese text, called directly (no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.stages.clean import LANGUAGE_SCORE_COLUMN, CleanStage
from pipeline.stages.extract import ExtractStage
from pipeline.stages.fetch import FETCH_SCHEMA, FetchStage
from pipeline.stages.quality import QualityStage
from pipeline.stages.tokenize import TokenizeStage
from sources.warc import iter_warc_responses, read_warc_record_at

SAMPLE = Path(__file__).resolve().parents[2] / "sample"
# Japanese Wikipedia (CC BY-SA 4.0), from sample/wikipedia_ja.jsonl.
TSUYU = (
    "梅雨（つゆ、ばいう）は、北海道と小笠原諸島を除く日本、朝鮮半島南部、中国の南部から長江流域にかけての"
    "沿海部、および台湾など、東アジアの広範囲においてみられる特有の気象現象で、5月から7月にかけて来る曇りや"
    "雨の多い期間のこと。雨季の一種である。"
)
# The same sentence with full-width digits and half-width katakana, as pages often have it.
TSUYU_WIDTH_VARIANT = TSUYU.replace("5月", "５月").replace("7月", "７月")
# A Chinese page's opening (resiliparse test data, Apache-2.0): must fail the Japanese language check.
CHINESE = (
    "中华人民共和国是工人阶级领导的、以工农联盟为基础的人民民主专政的社会主义国家。社会主义制度是中华人民共和国的根本制度。"
    * 3
)


def sample_pages() -> dict[str, object]:
    return {r.target_uri: r for r in iter_warc_responses(str(SAMPLE / "ja_pages.warc.gz"))}


# fetch ---------------------------------------------------------------------------------------------


def test_fetch_plans_one_shard_per_input_in_config_order(shards):
    stage = FetchStage(shards.context())
    plan = stage.plan()
    assert [(s.index, s.inputs["source"], s.inputs["kind"]) for s in plan] == [
        (0, "commoncrawl", "warc"),
        (1, "local", "warc"),
        (2, "local", "documents"),
        (3, "kokkai", "kokkai_saved"),
        (4, "kokkai", "kokkai_saved"),
        (5, "egov", "egov_bulk"),
    ]


def test_fetch_refuses_an_input_listed_twice(shards):
    from pipeline.config import ConfigError

    ctx = shards.context("sources.local.paths=[sample/wikipedia_ja.jsonl, sample/wikipedia_ja.jsonl]")
    with pytest.raises(ConfigError, match="listed twice"):
        FetchStage(ctx).plan()


def test_fetched_warc_locators_re_obtain_the_same_bytes(shards):
    stage = FetchStage(shards.context())
    result = stage.process(stage.plan()[1])
    assert result.kept.num_rows == 80 and result.kept.schema.equals(FETCH_SCHEMA)
    payloads = dict(zip(result.kept.column("doc_id").to_pylist(), result.kept.column("payload").to_pylist()))
    for row in result.manifest[::10]:
        loc = json.loads(row["locator"])
        again = read_warc_record_at(str(SAMPLE / loc["warc_filename"]), loc["offset"], loc["length"])
        assert again.record_id == loc["record_id"] and again.payload == payloads[row["doc_id"]]
        assert row["source_uri"] == again.target_uri
        assert row["license"] == "NOASSERTION" and row["redistribution"] == "locator_only"


def test_fetched_local_rows_carry_their_own_licence(shards):
    stage = FetchStage(shards.context())
    result = stage.process(stage.plan()[2])
    row = result.manifest[0]
    assert (
        row["license"] == "CC-BY-SA-4.0" and row["osaid_class"] == "open" and row["redistribution"] == "text"
    )
    assert row["source_uri"].startswith("https://ja.wikipedia.org/wiki/")
    assert result.kept.column("text")[0].as_py().startswith("梅雨")


def test_the_common_crawl_record_keeps_its_crawl_coordinates(shards):
    stage = FetchStage(shards.context())
    (row,) = stage.process(stage.plan()[0]).manifest
    loc = json.loads(row["locator"])
    assert (loc["crawl"], loc["offset"], loc["length"]) == ("CC-MAIN-2024-22", 1023, 17351)
    assert loc["payload_digest"] == "sha1:RY7PLBUFQNI2FFV5FTUQK72W6SNPXLQU"
    assert row["retrieved_at"] == "2024-05-18T01:58:10+00:00"


def test_fetch_reads_a_warc_over_http(shards, tmp_path):
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SAMPLE))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/cc_whirlwind.warc.gz"
        stage = FetchStage(shards.context(f"sources.commoncrawl.warc_urls=[{url}]"))
        (row,) = stage.process(stage.plan()[0]).manifest
    finally:
        server.shutdown()
    loc = json.loads(row["locator"])
    assert loc["warc_filename"] == url and (loc["offset"], loc["length"]) == (1023, 17351)
    assert row["source_uri"] == "https://an.wikipedia.org/wiki/Escopete"


def test_fetch_refuses_a_local_row_with_an_unknown_osaid_class(shards, tmp_path):
    data = tmp_path / "mine.jsonl"
    data.write_text(
        json.dumps({"text": TSUYU, "osaid_class": "free"}, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    stage = FetchStage(shards.context(f"sources.local.paths=[{data}]"))
    with pytest.raises(ValueError, match="mine.jsonl: row 0: osaid_class 'free' is not one of"):
        stage.process(stage.plan()[1])


# extract -------------------------------------------------------------------------------------------


def fetched(record, upstream_id: str, **overrides) -> dict:
    doc = {
        "upstream_id": upstream_id,
        "url": record.target_uri,
        "http_status": record.http_status,
        "content_type": record.content_type,
        "http_headers": json.dumps(record.http_headers),
        "payload": record.payload,
        "text": None,
    }
    doc.update(overrides)
    return doc


@pytest.fixture
def extract_stage(shards):
    """An extract stage set up as a worker would be (guarded extractor child process), torn down after."""
    made = []

    def make(*overrides: str) -> ExtractStage:
        stage = ExtractStage(shards.context(*overrides))
        stage.setup()
        made.append(stage)
        return stage

    yield make
    for stage in made:
        stage.teardown()


def test_extract_decodes_legacy_charsets_wherever_they_are_declared(shards, extract_stage):
    pages = sample_pages()
    docs = [
        fetched(pages["http://www.amefoot.net/"], "sjis-header"),  # Shift_JIS in the HTTP header
        fetched(pages["http://www.bphrs.net/mesi/"], "meta-only"),  # charset only in <meta>
        fetched(pages["http://blog.kabu-navi.com/"], "eucjp-header"),  # EUC-JP
    ]
    assert "charset" not in docs[1]["content_type"]
    spec = shards.write("fetch", 0, docs, FETCH_SCHEMA)
    result = extract_stage().process(spec)
    texts = result.kept.column("text").to_pylist()
    assert result.rejected == [] and len(texts) == 3
    assert "アメリカンフットボール" in texts[0] or "アメフト" in texts[0]
    for text in texts:
        assert "\ufffd" not in text and sum("\u3041" <= c <= "\u3096" for c in text) > 20
    charsets = [
        t["version"]
        for row in result.manifest
        for t in row["transforms"]
        if t["tool"].endswith("decode_html")
    ]
    assert charsets[0] == "cp932" and charsets[2].startswith("euc")


def test_extract_rejects_errors_and_non_html_with_a_reason(shards, extract_stage):
    page = sample_pages()["https://www.ipa.go.jp/security/topics/alert20190402.html"]
    docs = [
        fetched(page, "ok"),
        fetched(page, "gone", http_status=404),
        fetched(page, "image", content_type="image/png"),
        fetched(page, "empty", payload=b'<html lang="ja"><body><script>var x;</script></body></html>'),
        {
            "upstream_id": "local",
            "url": None,
            "http_status": None,
            "content_type": "text/plain",
            "http_headers": None,
            "payload": None,
            "text": TSUYU,
        },
    ]
    result = extract_stage().process(shards.write("fetch", 0, docs, FETCH_SCHEMA))
    assert [r["reason"] for r in result.rejected] == ["http_status_not_200", "not_html", "no_text_extracted"]
    assert result.kept.column("text").to_pylist()[1] == TSUYU  # local text passes through untouched
    assert [r["exclusion_reason"] for r in result.manifest] == [
        None,
        "extract:http_status_not_200",
        "extract:not_html",
        "extract:no_text_extracted",
        None,
    ]
    assert "ゴールデンウィーク" in result.kept.column("text")[0].as_py()


# clean ---------------------------------------------------------------------------------------------


def test_clean_normalises_scores_language_and_rejects_with_reasons(shards):
    # TSUYU is one Wikipedia paragraph, shorter than Swallow's 400 letters and too short for
    # LLM-jp's compression bound: this test is about the stage, so those rules are set to fit it.
    settings = ("min_letters=50", "min_japanese_letters=50", "max_compression_ratio=null")
    stage = CleanStage(shards.context(*(f"clean.web.{s}" for s in settings)))
    stage.setup()
    docs = [
        {"upstream_id": "tsuyu", "url": None, "text": "ｶﾞｯｺｳの" + TSUYU + "\r\n\r\n\r\n\r\n以上。"},
        {"upstream_id": "zh", "url": None, "text": CHINESE},
        {"upstream_id": "short", "url": None, "text": "梅雨は雨季の一種である。"},
    ]
    result = stage.process(shards.write("extract", 0, docs))
    (kept,) = result.kept.to_pylist()
    assert kept["text"].startswith("ガッコウの梅雨(つゆ、ばいう)は") and "\r" not in kept["text"]
    assert "\n\n\n" not in kept["text"]
    assert kept[LANGUAGE_SCORE_COLUMN] > 0.9 and kept["clean_language_score"] > 0.9
    assert 0.2 < kept["clean_hiragana_fraction"] < 0.6
    # The Chinese page has no kana among its first 50 characters, LLM-jp's first rule.
    assert [(r["reason"]) for r in result.rejected] == ["no_kana_at_start", "too_few_letters"]
    assert result.manifest[0]["text_sha256"] is not None
    checks = {d["check"]: d["passed"] for d in result.manifest[1]["decisions"]}
    assert checks["profile:web"] and not checks["no_kana_at_start"]
    # By default a document stops at its first failed rule: later rules are not recorded and
    # their columns are null.
    assert "rules_skipped_after_first_failure" in checks and "language_score_below_min" not in checks
    # What no rule reads is not measured either (the BBS rule is off by default): a null column.
    assert kept["clean_bbs_score"] is None
    assert any(
        t["tool"] == "fasttext" and "lid.176" in t["version"] for t in result.manifest[0]["transforms"]
    )
    # clean.measure_all: every rule measured and recorded, whatever the verdict.
    stage = CleanStage(shards.context("clean.measure_all=true", *(f"clean.web.{s}" for s in settings)))
    stage.setup()
    result = stage.process(shards.write("extract", 0, docs))
    assert [(r["reason"]) for r in result.rejected] == ["no_kana_at_start", "too_few_letters"]
    checks = {d["check"]: d["passed"] for d in result.manifest[1]["decisions"]}
    assert not checks["no_kana_at_start"] and not checks["language_score_below_min"]
    assert {"too_few_letters", "duplicate_lines", "ng_expressions", "rare_kuten"} <= set(checks)
    assert result.kept.to_pylist()[0]["clean_bbs_score"] is not None


# quality -------------------------------------------------------------------------------------------


def test_quality_scores_hiragana_fraction_and_applies_the_threshold(shards):
    katakana_spam = "アフィリエイト・ランキング・ダイエット・サプリメント・キャンペーン・" * 10
    spec = shards.write(
        "dedup",
        0,
        [
            {"upstream_id": "tsuyu", "url": None, "text": TSUYU},
            {"upstream_id": "spam", "url": None, "text": katakana_spam},
        ],
    )
    result = QualityStage(shards.context("quality.min_hiragana_fraction=0.2")).process(spec)
    (kept,) = result.kept.to_pylist()
    assert kept["hiragana_fraction_v1"] > 0.2
    assert [r["reason"] for r in result.rejected] == ["hiragana_fraction_below_min"]
    looser = QualityStage(shards.context("quality.min_hiragana_fraction=0.0")).process(spec)
    assert looser.rejected == []


# tokenize ------------------------------------------------------------------------------------------


def test_tokenize_round_trips_text_and_records_where_tokens_are(shards):
    stage = TokenizeStage(shards.context())
    stage.setup()
    spec = shards.write(
        "quality",
        3,
        [
            {"upstream_id": "tsuyu", "url": None, "text": TSUYU},
            {"upstream_id": "ni", "url": None, "text": "吾輩は猫である。名前はまだ無い。"},
        ],
    )
    result = stage.process(spec)
    table = result.kept
    assert table.schema.field("input_ids").type == pa.list_(pa.int32())
    ids = table.column("input_ids").to_pylist()
    assert all(seq[-1] == stage.eos_id for seq in ids)
    assert stage.tokenizer.decode(ids[1][:-1]).replace(" ", "") == "吾輩は猫である。名前はまだ無い。"
    assert [(r["shard"], r["row"], r["num_tokens"]) for r in result.manifest] == [
        ("tokenize/part-00003.parquet", 0, len(ids[0])),
        ("tokenize/part-00003.parquet", 1, len(ids[1])),
    ]
    assert table.column("license").to_pylist() == ["NOASSERTION", "NOASSERTION"]


def test_tokenize_refuses_an_eos_token_outside_the_vocabulary(shards):
    stage = TokenizeStage(shards.context("tokenize.eos_token=</s>"))
    with pytest.raises(ValueError, match="tokenize.eos_token"):
        stage.setup()
