"""Each clean rule fires on the real text it is meant for, through the stage's own decision
function (pipeline/stages/clean_rules.py), and hostile shapes of text do not break it.

Texts: Japanese Wikipedia (JSQuAD, CC BY-SA 4.0), Diet speeches, 行政手続法, real blog feeds
(chardet test data, LGPL-2.1) and a Chinese page (resiliparse test data, Apache-2.0), all from
../shared/data. A rule may not be the first to fail, so the tests look at every failed check.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.stages.clean_rules import STEPS, _plan, clean_document, clean_documents, score_names
from sources.law_xml import law_xml_to_text
from sources.warc import iter_warc_responses

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
CONFIG = load_config().clean
# Every rule measured on every document, so a test can look at rules after the first failed one.
ALL = dataclasses.replace(CONFIG, measure_all=True)


def wikipedia(title: str) -> str:
    path = SHARED / "wikipedia_paragraphs_jsquad" / "jsquad_valid_wikipedia_paragraphs.jsonl"
    for line in path.read_text("utf-8").splitlines():
        row = json.loads(line)
        if row["title"] == title:
            return row["context"].split(" [SEP] ", 1)[1]
    raise LookupError(title)


def feed(name: str) -> str:
    raw = (SHARED / "charset_feeds" / "SHIFT_JIS" / name).read_bytes().decode("cp932")
    return html.unescape(re.sub(r"<[^>]+>", "\n", raw))


def chinese_page() -> str:
    from filters.html import decode_html, extract_main_text

    for record in iter_warc_responses(str(SHARED / "warc_non_japanese_control" / "warcfile.warc.gz")):
        text = extract_main_text(decode_html(record.payload, record.content_type).text, record.target_uri)
        if text and len(text) > 300:
            return text
    raise LookupError("no page with text")


def law() -> str:
    xml = (SHARED / "egov_law_xml" / "405AC0000000088_20240401_504AC0100000052.xml").read_bytes()
    return law_xml_to_text(xml).text


def longest_speech() -> str:
    path = SHARED / "kokkai_speeches" / "speeches_sample2000.jsonl"
    return max((json.loads(line)["speech"] for line in path.read_text("utf-8").splitlines()), key=len)


def failed(text: str, source: str = "commoncrawl") -> set[str]:
    outcome = clean_document(text, url=None, source=source, config=ALL)
    return {d["check"] for d in outcome.decisions if not d["passed"]}


@pytest.mark.parametrize(
    ("make_text", "rules"),
    [
        (chinese_page, {"language_score_below_min"}),
        (lambda: wikipedia("梅雨"), {"too_few_letters", "too_few_japanese_letters"}),  # one paragraph
        (lambda: feed("10e.org.xml"), {"ng_expression_hits"}),  # adult affiliate blog
        (lambda: feed("accessories-brand.com.xml"), {"ad_lines"}),  # ■-bulleted shop listings
        (lambda: feed("1affliate.com.xml"), {"duplicate_5gram"}),  # repeated banners and frames
        (law, {"sentence_too_long", "duplicate_5gram"}),  # a statute under the web profile
        (longest_speech, {"sentence_too_long"}),  # spoken sentences
    ],
)
def test_each_rule_fires_on_the_text_it_is_for(make_text, rules):
    assert rules <= failed(make_text())


def test_the_same_statute_and_speech_pass_their_own_profiles():
    assert failed(law(), "egov") == set()
    assert failed(longest_speech(), "kokkai") == set()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "　\n\n\t ",
        "あ" * 1_000_000,  # a single 1 MB line
        "今日は🍣を食べた👨‍👩‍👧。𠮷野家の牛丼も𩸽も好きだ。" * 50,  # emoji, ZWJ, surrogate-pair kanji
        "\ud83d孤立したサロゲート",  # a lone surrogate half, as a broken JSON line can carry
        "ﾃｽﾄ" * 300,  # half-width katakana only
    ],
)
def test_hostile_shapes_get_a_verdict_and_every_score(text):
    for config in (CONFIG, ALL):
        outcome = clean_document(text, url=None, source="commoncrawl", config=config)
        assert set(outcome.scores) == set(score_names())
        assert outcome.reason is not None  # none of these is a document worth training on
    assert None not in outcome.scores.values()  # measure_all: every score measured


def test_empty_text_is_rejected_not_an_error():
    # The first rule (LLM-jp's kana among the first 50 characters) rejects it; the language id,
    # last because it is the costliest, would too.
    outcome = clean_document("", url=None, source="commoncrawl", config=ALL)
    assert outcome.reason == "no_kana_at_start" and outcome.text == ""
    assert {d["check"] for d in outcome.decisions if not d["passed"]} >= {
        "no_kana_at_start",
        "too_few_letters",
        "language_score_below_min",
    }


def hojichar_cases() -> list[tuple[str, str, bool]]:
    """HojiChar's own keep/reject test cases (Apache-2.0), for the filters we have an equivalent of.
    DiscardTooManySpecialToken has none here: its spaced-out kanji case (「こ の 章 に 規 定」) is the
    one HojiChar case no rule of ours rejects."""
    equivalents = {
        "CharRepetitionRatioFilter": "repetition",
        "WordRepetitionRatioFilter": "repetition",
        "DiscardTooManyEndingEllipsis": "too_many_ellipses",
    }
    path = SHARED / "cases_hojichar" / "parametrized_cases.jsonl"
    cases = []
    for line in path.read_text("utf-8").splitlines():
        case = json.loads(line)
        rule = equivalents.get(case["classes_used"][0])
        if rule:
            cases.append((rule, case["params"]["input_str"], case["params"]["is_rejected"]))
    return cases


@pytest.mark.parametrize(("rule", "text", "rejected"), hojichar_cases())
def test_hojichar_cases_agree(rule, text, rejected):
    fails = failed(text)
    if rule == "repetition":
        fired = any("gram" in check or check.startswith("duplicate") for check in fails)
    else:
        fired = rule in fails
    assert fired is rejected


def test_url_rules_reject_listed_domains_and_tlds_outside_the_allow_list(tmp_path):
    (tmp_path / "gambling").write_text("casino.example.com\n", "utf-8")
    web = dataclasses.replace(ALL.web, require_valid_tld=True)
    config = dataclasses.replace(ALL, web=web, domain_blocklists={"gambling": str(tmp_path / "gambling")})
    text = longest_speech()  # prose that passes the other web rules only in part; look at the URL checks
    checks = {
        url: {
            d["check"]: d["passed"]
            for d in clean_document(text, url=url, source="commoncrawl", config=config).decisions
        }
        for url in ("https://www.casino.example.com/ja/", "https://news.example.jp/a", "https://example.ru/a")
    }
    assert checks["https://www.casino.example.com/ja/"]["domain_gambling"] is False
    assert checks["https://news.example.jp/a"]["domain_blocklist"] is True
    assert checks["https://news.example.jp/a"]["invalid_tld"] is True
    assert checks["https://example.ru/a"]["invalid_tld"] is False


# --- stopping at the first failed rule (clean.measure_all: false, the default) ----------------

DEV_TEXTS = Path(__file__).resolve().parents[2] / "benchmarks" / "clean_dev" / "texts.jsonl"
OWN_SOURCE = {"kokkai": "kokkai", "egov_law": "egov"}  # the dev set's sources with their own profile


def real_documents() -> list[tuple[str, str]]:
    """(text, source) for the labelled set, under the web profile and its own, and Diet speeches."""
    docs = []
    for line in DEV_TEXTS.read_text("utf-8").splitlines():
        row = json.loads(line)
        docs.append((row["text"], "commoncrawl"))
        if row["source"] in OWN_SOURCE:
            docs.append((row["text"], OWN_SOURCE[row["source"]]))
    path = SHARED / "kokkai_speeches" / "speeches_sample2000.jsonl"
    docs += [(json.loads(line)["speech"], "kokkai") for line in path.read_text("utf-8").splitlines()[:300]]
    return docs


def test_the_default_stops_at_the_first_failed_rule():
    assert CONFIG.measure_all is False
    outcome = clean_document(chinese_page(), url=None, source="commoncrawl", config=CONFIG)
    checks = [d["check"] for d in outcome.decisions]
    # The rules of the measurement that failed are all recorded (they cost nothing more), the
    # rest not; a decision counts them.
    assert outcome.reason == "no_kana_at_start"
    assert checks == [
        "profile:web",
        "repetition_definition:swallow",
        "no_kana_at_start",
        "too_few_letters",
        "rules_skipped_after_first_failure",
    ]
    full = clean_document(chinese_page(), url=None, source="commoncrawl", config=ALL)
    assert outcome.decisions[-1]["value"] == len(full.decisions) - 4
    assert outcome.scores["kana_start"] == 0.0 and outcome.scores["language_score"] is None


def test_stopping_early_changes_no_verdict_and_no_recorded_decision():
    kept = rejected = 0
    for text, source in real_documents():
        full = clean_document(text, url=None, source=source, config=ALL)
        fast = clean_document(text, url=None, source=source, config=CONFIG)
        assert (fast.reason, fast.detail, fast.text, fast.pii_counts) == (
            full.reason,
            full.detail,
            full.text,
            full.pii_counts,
        )
        assert fast.transforms == full.transforms
        recorded = [d for d in fast.decisions if d["check"] != "rules_skipped_after_first_failure"]
        # What was run is recorded exactly as with every rule measured, in the same order: no
        # decision says a rule passed that did not run.
        assert recorded == full.decisions[: len(recorded)]
        measured = {k: v for k, v in fast.scores.items() if v is not None}
        assert measured == {k: full.scores[k] for k in measured}
        if full.reason is None:
            kept += 1
            assert fast.decisions == full.decisions
        else:
            rejected += 1
            (skipped,) = [d["value"] for d in fast.decisions if d not in recorded] or [0.0]
            assert skipped == len(full.decisions) - len(recorded)
            assert fast.reason in {d["check"] for d in recorded if not d["passed"]}
    assert kept > 100 and rejected > 100


@pytest.mark.parametrize("measure_all", [False, True])
def test_a_shard_at_once_gets_each_documents_own_outcome(measure_all):
    """clean_documents (the stage's path: n-grams and language id once for all the documents
    that reach them) gives every document exactly what clean_document gives it alone, in a
    mix of profiles, URLs and both repetition definitions."""
    config = dataclasses.replace(
        CONFIG, measure_all=measure_all, diet=dataclasses.replace(CONFIG.diet, repetition_definition="gopher")
    )
    assert config.web.repetition_definition != config.diet.repetition_definition
    items = [
        (text, None if i % 3 else f"https://example{i}.jp/a", source)
        for i, (text, source) in enumerate(real_documents())
    ]
    items += [("", None, "commoncrawl"), ("\ud83d" + items[0][0], None, "commoncrawl")]
    together = clean_documents(items, config=config)
    alone = [clean_document(text, url=url, source=source, config=config) for text, url, source in items]
    assert together == alone
    assert sum(o.reason is None for o in together) > 100  # the batched steps ran on many
    assert sum(o.scores["language_score"] is not None for o in together) > 100
    assert {o.profile for o in together} >= {"web", "diet", "law"}


@pytest.mark.parametrize("profile", ["web", "law", "diet", "synthetic"])
@pytest.mark.parametrize("url", [None, "https://example.jp/a"])
def test_each_step_counts_the_rules_it_runs(profile, url, tmp_path):
    (tmp_path / "adult").write_text("adult.example.com\n", "utf-8")
    variants = [
        ALL,
        dataclasses.replace(ALL, domain_blocklists={"adult": str(tmp_path / "adult")}),
        dataclasses.replace(
            ALL,
            web=dataclasses.replace(
                ALL.web, require_valid_tld=True, max_ng_hits=0, max_bbs_score=0, min_chars=0
            ),
        ),
    ]
    for config in variants:
        rules = getattr(config, profile)
        scores = clean_document(longest_speech(), url=url, source="commoncrawl", config=config).scores
        for step in STEPS:
            checks = step.checks(rules, scores, url, config, lambda path: path)
            assert step.rules_on(rules, url, config) == sum(c is not None for c in checks), step.name
        steps, counts = _plan(rules, url, config)
        # Steps with a rule on come first, in STEPS order; the ones only measured after them.
        ruled = [s.name for s in STEPS if s.rules_on(rules, url, config)]
        assert [s.name for s in steps[: len(ruled)]] == ruled and all(counts[: len(ruled)])
        assert not any(counts[len(ruled) :])
        assert {s.name for s in steps} == {s.name for s in STEPS}


def test_language_id_reads_a_bounded_prefix():
    from filters.langid import FastTextLanguageId
    from filters.normalize import normalize_japanese

    lid = FastTextLanguageId()
    # A Japanese speech followed by a Chinese page: the score of what fastText read.
    text = normalize_japanese(longest_speech()[:600] + "\n" + chinese_page())
    for chars in (500, None):
        config = dataclasses.replace(ALL, language_id_chars=chars)
        score = clean_document(text, url=None, source="kokkai", config=config).scores["language_score"]
        assert score == lid.score(text if chars is None else text[:chars])
    assert CONFIG.language_id_chars == 500
