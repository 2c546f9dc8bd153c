"""The clean stage's per-document decision: normalise, trim, measure the rules, decide by the
source's rule profile, mask personal information.

The rules run in STEPS order, cheapest measurement first, and the first failed one names the
reason. Every measurement made is kept (manifest decisions and score columns). By default a
document stops at its first failed rule, as HojiChar's Compose and datatrove's pipelines do;
``clean.measure_all`` measures every rule on every document, so a threshold can change without
re-measuring. The measurements are pure functions in filters/; thresholds are
`clean.<profile>.*` in the config (pipeline/config.py CleanRules). The stage decides a shard at
once (``clean_documents``): the same outcome per document as ``clean_document``, with the
normalisation of every text, and the measurements whose per-call cost dominates (character
composition, character n-grams, language id), made in one call for all the documents that
reach them.
"""

from __future__ import annotations

import functools
import gc
import operator
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from filters.boilerplate import (
    BOILERPLATE_ID,
    ad_line_count,
    bbs_comment_score,
    drop_table_artifacts,
    trim_footer,
)
from filters.composition import composition, composition_many, starts_japanese
from filters.normalize import NORMALIZER_ID, normalize_japanese_many
from filters.pii import PII_VERSION, mask_pii
from filters.repetition import duplicate_lines, duplicate_paragraphs, duplicate_sentences, ngram_scores_many
from filters.rights import detect_rights_notices
from filters.sentences import compression_ratio, kuten_rarity, sentence_stats, split_sentences
from filters.text_budget import TextBudget, TimeBudgetExceeded
from filters.urls import LLM_JP_VALID_TLDS, valid_tld
from pipeline.config import CleanConfig, CleanRules
from pipeline.stage import decision, transform

STAGE = "clean"


@dataclass
class CleanOutcome:
    text: str  # normalised, trimmed and (if kept) PII-masked
    reason: str | None  # None: kept
    detail: str | None
    profile: str
    scores: dict[str, float]
    decisions: list[dict[str, Any]] = field(default_factory=list)
    transforms: list[dict[str, Any]] = field(default_factory=list)
    # Rights notices found in lines a trim removed (recorded before the lines go).
    trimmed_notices: list[dict] = field(default_factory=list)
    pii_counts: dict[str, int] = field(default_factory=dict)


@functools.cache
def _langid():
    from filters.langid import FastTextLanguageId

    return FastTextLanguageId()


@functools.cache
def _ng_dictionaries(names: tuple[str, ...]):
    from filters.ngwords import NgDictionary

    return tuple(NgDictionary.load(name, ignore_confused=True) for name in names)


@functools.cache
def _ng_group(names: tuple[str, ...]):
    from filters.ngwords import NgDictionaries

    return NgDictionaries(list(_ng_dictionaries(names)))


@functools.cache
def _domain_lists(items: tuple[tuple[str, str], ...]):
    from filters.urls import DomainLists

    return DomainLists.load(dict(items)) if items else None


@functools.cache
def _normalizer_transform(normalizer_id: str) -> dict[str, Any]:
    # Once per process: hashing a transform's parameters per document would sit on the hot path.
    return transform(STAGE, "filters.normalize.normalize_japanese", normalizer_id, {})


@functools.cache
def _dictionary_transforms(names: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    return tuple(
        transform(STAGE, f"filters.ngwords:{d.name}", d.sha256, {"origin": d.origin})
        for d in _ng_dictionaries(names)
    )


def _reuse_last(compute):
    """``compute`` that returns its last value again while it is called with the very same objects
    (an identity test, never an equality one; the kept arguments stay alive, so their ids are not
    reused). The clean stage passes one config and resolver for a whole shard, and each text to
    several steps in a row. ``.forget()`` drops the kept call."""
    last: list = [None]

    @functools.wraps(compute)
    def reused(*args):
        kept = last[0]
        if kept is not None and len(kept[0]) == len(args) and all(map(operator.is_, kept[0], args)):
            return kept[1]
        value = compute(*args)
        last[0] = (args, value)
        return value

    reused.forget = lambda: last.__setitem__(0, None)
    return reused


@_reuse_last
def _dictionary_names(config: CleanConfig, resolve) -> tuple[str, ...]:
    """Bundled names as they are; file paths resolved against the config file's directory."""
    return tuple(resolve(n) if n.endswith(".txt") else n for n in config.ng_dictionaries)


@_reuse_last
def _config_domain_lists(config: CleanConfig, resolve):
    """The config's domain blocklists, loaded (None without any)."""
    return _domain_lists(tuple(sorted((k, resolve(v)) for k, v in config.domain_blocklists.items())))


def profile_for(config: CleanConfig, source: str) -> tuple[str, CleanRules]:
    name = config.profiles.get(source, "web")
    return name, getattr(config, name)


Check = tuple[str, bool, "float | None"]  # (reason, passed, value)


def _low(name: str, s: dict[str, float], key: str, minimum) -> Check | None:
    return (name, s[key] >= minimum, s[key]) if minimum is not None else None


def _high(name: str, s: dict[str, float], key: str, maximum) -> Check | None:
    return (name, s[key] <= maximum, s[key]) if maximum is not None else None


@dataclass(frozen=True)
class _Step:
    """One measurement and the rules that read it.

    ``measure(text, url, rules, config, resolve)`` returns scores by name; ``checks(rules, scores,
    url, config, resolve)`` returns (reason, passed, value) for each rule the profile turns on, in
    decision order (None for one turned off); ``rules_on(rules, url, config)`` says how many rules
    that is, without measuring (tests/pipeline/test_clean_rules.py checks the two agree).
    ``measure_many(texts, urls, rules, config, resolve)``, where set, measures many documents in
    one call (lists in, a list of scores out), for the measurements whose per-call cost a batch
    shares (numpy's, fastText's): clean_documents gathers the documents that reach such a step.
    """

    name: str
    measure: Callable[..., dict[str, float]]
    checks: Callable[..., list[Check | None]]
    rules_on: Callable[[CleanRules, str | None, CleanConfig], int]
    measure_many: Callable[..., list[dict[str, float]]] | None = None


def _on(*fields: str) -> Callable[[CleanRules, str | None, CleanConfig], int]:
    def rules_on(rules: CleanRules, url: str | None, config: CleanConfig) -> int:
        count = 0
        for f in fields:
            value = getattr(rules, f)
            # A threshold of 0 is a rule that is on; only None (or a flag's False) turns one off.
            count += value is not None and value is not False
        return count

    return rules_on


def _measure_text(text, url, rules, config, resolve) -> dict[str, float]:
    # Swallow's num_letters is every character (filters/composition.py), so the letter count,
    # the rule that rejects most pages, needs no pass over the text.
    return {
        "kana_start": float(starts_japanese(text)),
        "chars": float(len(text)),
        "letters": float(len(text)),
    }


def _check_text(rules, s, url, config, resolve) -> list[Check | None]:
    return [
        ("no_kana_at_start", s["kana_start"] == 1.0, s["kana_start"]) if rules.require_kana_start else None,
        _low("too_short", s, "chars", rules.min_chars),
        _low("too_few_letters", s, "letters", rules.min_letters),
    ]


def _measure_composition(text, url, rules, config, resolve) -> dict[str, float]:
    return _composition_scores(composition(text))


def _measure_composition_many(texts, urls, rules, config, resolve) -> list[dict[str, float]]:
    # A batch: the per-call cost of numpy's gather and bincount is most of a page's count.
    return [_composition_scores(chars) for chars in composition_many(texts)]


def _composition_scores(chars) -> dict[str, float]:
    return {
        "japanese_letters": float(chars.japanese_letters),
        "hiragana_fraction": chars.hiragana_fraction,
        "katakana_fraction": chars.katakana_fraction,
        "japanese_fraction": chars.japanese_fraction,
    }


def _check_composition(rules, s, url, config, resolve) -> list[Check | None]:
    return [
        _low("too_few_japanese_letters", s, "japanese_letters", rules.min_japanese_letters),
        _low("hiragana_fraction_below_min", s, "hiragana_fraction", rules.min_hiragana_fraction),
        _high("katakana_fraction_above_max", s, "katakana_fraction", rules.max_katakana_fraction),
        _low("japanese_fraction_below_min", s, "japanese_fraction", rules.min_japanese_fraction),
    ]


def _measure_url(text, url, rules, config, resolve) -> dict[str, float]:
    return {"valid_tld": float(url is None or valid_tld(url, LLM_JP_VALID_TLDS))}


def _check_url(rules, s, url, config, resolve) -> list[Check | None]:
    checks = [("invalid_tld", s["valid_tld"] == 1.0, s["valid_tld"]) if rules.require_valid_tld else None]
    lists = _config_domain_lists(config, resolve)
    if lists is not None and url:
        category = lists.category_of(url)
        checks.append((f"domain_{category}" if category else "domain_blocklist", category is None, None))
    return checks


def _url_rules_on(rules: CleanRules, url: str | None, config: CleanConfig) -> int:
    return bool(rules.require_valid_tld) + bool(url and config.domain_blocklists)


# The "sentences" step and the "elements" step (duplicate sentences) split the same text in a row.
_split_sentences = _reuse_last(split_sentences)


def _measure_sentences(text, url, rules, config, resolve) -> dict[str, float]:
    sentences = sentence_stats(text, _split_sentences(text))
    return {
        "avg_sentence_length": sentences.average_length,
        "max_sentence_length": float(sentences.max_length),
        "ellipsis_fraction": sentences.ellipsis_fraction,
        "chars_per_kuten": kuten_rarity(text),
    }


def _check_sentences(rules, s, url, config, resolve) -> list[Check | None]:
    return [
        _low("avg_sentence_too_short", s, "avg_sentence_length", rules.min_avg_sentence_length),
        _high("avg_sentence_too_long", s, "avg_sentence_length", rules.max_avg_sentence_length),
        _high("sentence_too_long", s, "max_sentence_length", rules.max_sentence_length),
        _high("too_many_ellipses", s, "ellipsis_fraction", rules.max_ellipsis_fraction),
        _high("rare_kuten", s, "chars_per_kuten", rules.max_chars_per_kuten),
    ]


def _measure_ads(text, url, rules, config, resolve) -> dict[str, float]:
    return {"ad_hits": float(ad_line_count(text))}


def _check_ads(rules, s, url, config, resolve) -> list[Check | None]:
    return [_high("ad_lines", s, "ad_hits", rules.max_ad_hits)]


def _measure_elements(text, url, rules, config, resolve) -> dict[str, float]:
    lines, sentences = duplicate_lines(text), duplicate_sentences(text, _split_sentences(text))
    return {
        "dup_line_frac": lines.fraction,
        "dup_line_char_frac": lines.char_fraction,
        "dup_sentence_frac": sentences.fraction,
        "dup_sentence_char_frac": sentences.char_fraction,
    }


def _measure_paragraphs(text, url, rules, config, resolve) -> dict[str, float]:
    paragraphs = duplicate_paragraphs(text)
    return {"dup_para_frac": paragraphs.fraction, "dup_para_char_frac": paragraphs.char_fraction}


def _no_checks(rules, s, url, config, resolve) -> list[Check | None]:
    return []


def _no_rules(rules: CleanRules, url: str | None, config: CleanConfig) -> int:
    return 0


def _check_elements(rules, s, url, config, resolve) -> list[Check | None]:
    return [
        _high("duplicate_lines", s, "dup_line_frac", rules.max_duplicate_line_fraction),
        _high("duplicate_line_chars", s, "dup_line_char_frac", rules.max_duplicate_line_char_fraction),
        _high("duplicate_sentences", s, "dup_sentence_frac", rules.max_duplicate_sentence_fraction),
        _high(
            "duplicate_sentence_chars",
            s,
            "dup_sentence_char_frac",
            rules.max_duplicate_sentence_char_fraction,
        ),
    ]


def _measure_ng(text, url, rules, config, resolve) -> dict[str, float]:
    measured = _ng_group(_dictionary_names(config, resolve)).measure(text)
    return {
        "ng_fraction": max((fraction for _, fraction in measured), default=0.0),
        "ng_hits": float(max((hits for hits, _ in measured), default=0)),
    }


def _check_ng(rules, s, url, config, resolve) -> list[Check | None]:
    return [
        _high("ng_expressions", s, "ng_fraction", rules.max_ng_fraction),
        _high("ng_expression_hits", s, "ng_hits", rules.max_ng_hits),
    ]


def _measure_bbs(text, url, rules, config, resolve) -> dict[str, float]:
    return {"bbs_score": float(bbs_comment_score(text))}


def _check_bbs(rules, s, url, config, resolve) -> list[Check | None]:
    return [_high("bbs_comments", s, "bbs_score", rules.max_bbs_score)]


def _measure_compression(text, url, rules, config, resolve) -> dict[str, float]:
    return {"compression_ratio": compression_ratio(text)}


def _check_compression(rules, s, url, config, resolve) -> list[Check | None]:
    return [
        _low("compression_ratio_below_min", s, "compression_ratio", rules.min_compression_ratio),
        _high("compression_ratio_above_max", s, "compression_ratio", rules.max_compression_ratio),
    ]


def _measure_ngrams(text, url, rules, config, resolve) -> dict[str, float]:
    return _measure_ngrams_many([text], [url], [rules], config, resolve)[0]


def _measure_ngrams_many(texts, urls, rules, config, resolve) -> list[dict[str, float]]:
    out: list[dict[str, float]] = [{}] * len(texts)
    for definition in sorted({r.repetition_definition for r in rules}):  # profiles may differ
        which = [i for i, r in enumerate(rules) if r.repetition_definition == definition]
        for i, scores in zip(which, ngram_scores_many([texts[i] for i in which], definition=definition)):
            out[i] = scores
    return out


def _check_ngrams(rules, s, url, config, resolve) -> list[Check | None]:
    checks = []
    for n, maximum in zip((2, 3, 4), rules.max_top_ngram_char_fractions or ()):
        checks.append(_high(f"top_{n}gram", s, f"top_{n}gram_char_frac", maximum))
    for n, maximum in zip(range(5, 11), rules.max_duplicate_ngram_char_fractions or ()):
        checks.append(_high(f"duplicate_{n}gram", s, f"dup_{n}gram_char_frac", maximum))
    return checks


def _ngram_rules_on(rules: CleanRules, url: str | None, config: CleanConfig) -> int:
    top, dup = rules.max_top_ngram_char_fractions or (), rules.max_duplicate_ngram_char_fractions or ()
    return sum(m is not None for m in top[:3]) + sum(m is not None for m in dup[:6])


def _measure_language(text, url, rules, config, resolve) -> dict[str, float]:
    return _measure_language_many([text], [url], [rules], config, resolve)[0]


def _measure_language_many(texts, urls, rules, config, resolve) -> list[dict[str, float]]:
    # fastText's cost is linear in the text (about 1.5 µs a character on real pages: its
    # character n-grams hit rows all over a 2M-row table); see clean.language_id_chars.
    chars = config.language_id_chars
    samples = texts if chars is None else [text[:chars] for text in texts]
    return [{"language_score": s} for s in _langid().scores(samples, config.language)]


def _check_language(rules, s, url, config, resolve) -> list[Check | None]:
    return [_low("language_score_below_min", s, "language_score", rules.min_language_score)]


# Every measurement and its rules, in decision order: the rules run in this order and the first
# failed one names the reason, whether or not the rest are measured (clean.measure_all), so the
# reason never depends on that setting. The two costly measurements, character n-grams (about
# 0.4 ms on a kept page) and the fastText language id (about 0.6 ms on 500 characters), come
# last, so that a page a cheap rule rejects (0.01 to 0.2 ms each) never pays for them; the others
# keep their former order (the language id used to come first), so that only documents failing
# a cheap rule and one of those two get another reason than before (18 of the 314 labelled
# pages: no_kana_at_start instead of language_score_below_min). A step whose rules the profile
# turns all off goes after the others (see _plan).
STEPS: tuple[_Step, ...] = (
    _Step("text", _measure_text, _check_text, _on("require_kana_start", "min_chars", "min_letters")),
    _Step(
        "composition",
        _measure_composition,
        _check_composition,
        _on(
            "min_japanese_letters",
            "min_hiragana_fraction",
            "max_katakana_fraction",
            "min_japanese_fraction",
        ),
        _measure_composition_many,
    ),
    _Step(
        "sentences",
        _measure_sentences,
        _check_sentences,
        _on(
            "min_avg_sentence_length",
            "max_avg_sentence_length",
            "max_sentence_length",
            "max_ellipsis_fraction",
            "max_chars_per_kuten",
        ),
    ),
    _Step(
        "compression",
        _measure_compression,
        _check_compression,
        _on("min_compression_ratio", "max_compression_ratio"),
    ),
    _Step(
        "elements",
        _measure_elements,
        _check_elements,
        _on(
            "max_duplicate_line_fraction",
            "max_duplicate_line_char_fraction",
            "max_duplicate_sentence_fraction",
            "max_duplicate_sentence_char_fraction",
        ),
    ),
    # Gopher's duplicate paragraphs: a column for comparison, no rule reads it.
    _Step("paragraphs", _measure_paragraphs, _no_checks, _no_rules),
    _Step("ng", _measure_ng, _check_ng, _on("max_ng_fraction", "max_ng_hits")),
    _Step("ads", _measure_ads, _check_ads, _on("max_ad_hits")),
    _Step("bbs", _measure_bbs, _check_bbs, _on("max_bbs_score")),
    _Step("url", _measure_url, _check_url, _url_rules_on),
    _Step("ngrams", _measure_ngrams, _check_ngrams, _ngram_rules_on, _measure_ngrams_many),
    _Step("language", _measure_language, _check_language, _on("min_language_score"), _measure_language_many),
)


def _plan(rules: CleanRules, url: str | None, config: CleanConfig) -> tuple[list[_Step], list[int]]:
    """The steps in the order a document goes through them, and how many rules each holds: those
    with a rule on in STEPS order, then those only measured (their scores are columns that no
    rule reads, so their place changes no reason)."""
    counts = [step.rules_on(rules, url, config) for step in STEPS]
    ruled = [(step, n) for step, n in zip(STEPS, counts) if n]
    measured = [(step, n) for step, n in zip(STEPS, counts) if not n]
    return [step for step, _ in ruled + measured], [n for _, n in ruled + measured]


def measure(text: str, url: str | None, rules: CleanRules, config: CleanConfig, resolve) -> dict[str, float]:
    """Every measurement the rules use, by stable name (the score columns)."""
    scores: dict[str, float] = {}
    for step in STEPS:
        scores |= step.measure(text, url, rules, config, resolve)
    return scores


@functools.cache
def score_names() -> tuple[str, ...]:
    """The names measure() returns, whatever the text: the clean stage's score columns."""
    return tuple(sorted(measure("", None, CleanRules(), CleanConfig(), lambda path: path)))


@dataclass
class _Document:
    """One document on its way through its plan (clean_documents)."""

    outcome: CleanOutcome
    url: str | None
    rules: CleanRules
    steps: list[_Step]
    rules_on: list[int]
    next: int = 0  # index in steps of the next step to run
    budget: Any = None  # filters.text_budget.TextBudget: this document's CPU time (issue 13)


def clean_document(
    text: str, *, url: str | None, source: str, config: CleanConfig, resolve=lambda path: path
) -> CleanOutcome:
    """The clean stage's decision on one document (its text as extract left it).

    With ``config.measure_all`` every measurement is made and every rule recorded whatever the
    verdict. Without it a document stops at its first failed rule: the remaining rules are not
    recorded (no decision claims a rule passed that did not run), their scores are None (null
    columns), and a ``rules_skipped_after_first_failure`` decision counts them; measurements that
    no rule of the profile reads (a rule turned off) are not made either. The verdict, the reason
    and every recorded decision are the same either way, and a kept document differs only in
    those unread scores.
    """
    return clean_documents([(text, url, source)], config=config, resolve=resolve)[0]


def clean_documents(
    documents: Iterable[tuple[str, str | None, str]], *, config: CleanConfig, resolve=lambda path: path
) -> list[CleanOutcome]:
    """:func:`clean_document` of each ``(text, url, source)``, the same outcomes, measured together.

    The texts are normalised together (normalize_japanese_many). Each document then goes through
    its own plan as clean_document's would, but a document that reaches a step with
    ``measure_many`` (composition, character n-grams, the language id) waits there; once every
    document has run or is waiting, each such step measures its waiting documents in one call,
    and they carry on. So a shard pays numpy's and fastText's per-call cost a few times, not
    once a document, and only for the documents that no cheaper rule rejected.
    """
    # A shard allocates some twenty dicts and lists per document (decisions, scores), none in a
    # reference cycle, and keeps them to the end: the cyclic collector's passes over them cost
    # about a twentieth of the stage (measured with gc.callbacks) and free nothing, so it waits.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _clean_documents(documents, config, resolve)
    finally:
        if collecting:
            gc.enable()


def _clean_documents(
    documents: Iterable[tuple[str, str | None, str]], config: CleanConfig, resolve
) -> list[CleanOutcome]:
    # The config may have been changed in place since the last call.
    _dictionary_names.forget()
    _config_domain_lists.forget()
    plans: dict[tuple[str, bool], tuple[list[_Step], list[int]]] = {}
    docs = []
    documents = list(documents)
    # The normalisation of every text at once (normalize_japanese_many), its CPU time shared out
    # by characters as a batched step's is. Then each document is charged the CPU time from the
    # end of the one before to the end of its own preparation: what TextBudget.charge() would
    # measure, plus the few microseconds of bookkeeping between, without a context manager and
    # two clock reads per document and step (on short pages a tenth of the stage's time).
    clock = time.thread_time
    started = clock()
    normalized = normalize_japanese_many([text for text, _, _ in documents])
    now = clock()
    share = (now - started) / max(1, sum(len(text) for text, _, _ in documents))
    started = now
    for (raw, url, source), text in zip(documents, normalized, strict=True):
        profile, rules = profile_for(config, source)
        # A plan depends on the URL only through whether there is one (_url_rules_on).
        key = (profile, bool(url))
        plan = plans.get(key)
        if plan is None:
            plan = plans[key] = _plan(rules, url, config)
        budget = TextBudget(config.time_budget_seconds)
        budget.add(share * len(raw))
        prepared = _prepare(text, profile, rules, config, resolve)
        now = clock()
        budget.add(now - started)
        started = now
        docs.append(_Document(prepared, url, rules, plan[0], plan[1], budget=budget))
    waiting = docs
    while waiting:
        batches: dict[str, list[_Document]] = {}
        for doc in waiting:
            step = _advance(doc, config, resolve)
            if step is not None:
                batches.setdefault(step.name, []).append(doc)
        waiting = []
        for group in batches.values():
            step = group[0].steps[group[0].next]
            texts, urls, rules = zip(*((d.outcome.text, d.url, d.rules) for d in group))
            started = time.thread_time()
            measured = step.measure_many(list(texts), list(urls), list(rules), config, resolve)  # type: ignore[misc]
            share = (time.thread_time() - started) / max(1, sum(map(len, texts)))
            for doc in group:  # the batch's CPU time, charged by characters
                doc.budget.add(share * len(doc.outcome.text))
            for doc, scores in zip(group, measured, strict=True):
                if _record(doc, scores, config, resolve):
                    waiting.append(doc)
    for doc in docs:
        if doc.outcome.reason is None and config.mask_pii:
            _mask(doc.outcome)
    return [doc.outcome for doc in docs]


def _prepare(text: str, profile: str, rules: CleanRules, config: CleanConfig, resolve) -> CleanOutcome:
    """Trim the normalised text; the outcome with the profile's decisions and no rule run yet."""
    transforms = [_normalizer_transform(NORMALIZER_ID)]
    notices: list[dict] = []
    for enabled, trim in (
        (rules.trim_footer, trim_footer),
        (rules.drop_table_artifacts, drop_table_artifacts),
    ):
        if not enabled:
            continue
        result = trim(text)
        if result.removed_lines:
            notices += detect_rights_notices("\n".join(result.removed_lines))
            transforms.append(
                transform(
                    STAGE,
                    f"filters.boilerplate.{result.rule}",
                    BOILERPLATE_ID,
                    {"removed": len(result.removed_lines)},
                )
            )
            text = result.text
    # The NG dictionaries are identified by the SHA-256 of their files, the repetition measure
    # by the definition used (Swallow's code or Gopher's).
    transforms += _dictionary_transforms(_dictionary_names(config, resolve))
    scores: dict[str, float | None] = dict.fromkeys(score_names())
    outcome = CleanOutcome(text, None, None, profile, scores, transforms=transforms, trimmed_notices=notices)
    outcome.decisions.append(decision(STAGE, f"profile:{profile}", None, True))
    outcome.decisions.append(
        decision(STAGE, f"repetition_definition:{rules.repetition_definition}", None, True)
    )
    return outcome


def _advance(doc: _Document, config: CleanConfig, resolve) -> _Step | None:
    """Run the document's steps until it is decided (None) or reaches a batched step (returned)."""
    steps, rules_on, budget = doc.steps, doc.rules_on, doc.budget
    clock = time.thread_time
    started = clock()  # each step charged from the end of the one before (see clean_documents)
    while doc.next < len(steps):
        if not rules_on[doc.next] and not config.measure_all:
            return None  # the rest only measure what no rule reads
        if _over_budget(doc):
            return None
        step = steps[doc.next]
        if step.measure_many is not None:
            return step
        scores = step.measure(doc.outcome.text, doc.url, doc.rules, config, resolve)
        now = clock()
        budget.add(now - started)
        started = now
        if not _record(doc, scores, config, resolve):
            return None
    return None


def _over_budget(doc: _Document) -> bool:
    """Reject the document `time_budget_exceeded` if its CPU time is spent (clean.time_budget_seconds)."""
    try:
        doc.budget.check(doc.steps[doc.next - 1].name if doc.next else "normalize")
    except TimeBudgetExceeded as exc:
        doc.outcome.decisions.append(decision(STAGE, "time_budget_seconds", exc.seconds, False))
        doc.outcome.reason, doc.outcome.detail = "time_budget_exceeded", str(exc)
        return True
    return False


def _record(doc: _Document, measured: dict[str, float], config: CleanConfig, resolve) -> bool:
    """Keep the next step's scores and decisions; whether the document has steps left to run."""
    i, outcome = doc.next, doc.outcome
    step = doc.steps[i]
    doc.next = i + 1
    scores, decisions = outcome.scores, outcome.decisions
    scores.update(measured)
    for check in step.checks(doc.rules, scores, doc.url, config, resolve):
        if check is None:
            continue
        reason, passed, value = check
        decisions.append(decision(STAGE, reason, value, passed))
        if not passed and outcome.reason is None:
            outcome.reason = reason
            outcome.detail = f"{reason}: {value}" if value is not None else reason
    if outcome.reason is not None and not config.measure_all:
        skipped = sum(doc.rules_on[i + 1 :])
        if skipped:
            outcome.decisions.append(decision(STAGE, "rules_skipped_after_first_failure", skipped, True))
        return False
    return doc.next < len(doc.steps)


def _mask(outcome: CleanOutcome) -> None:
    masked = mask_pii(outcome.text)
    if masked.counts:
        outcome.text = masked.text
        outcome.pii_counts = dict(masked.counts)
        outcome.transforms.append(transform(STAGE, "filters.pii.mask_pii", PII_VERSION, masked.counts))
        outcome.decisions += [
            decision(STAGE, f"pii:{kind}", n, True) for kind, n in sorted(masked.counts.items())
        ]
