"""The clean stage's per-document decision: normalise, trim, measure every rule, decide by the
source's rule profile, mask personal information.

Measure, then decide: every measurement is kept (manifest decisions and score columns) whatever
the verdict, and the first failed rule in RULE_ORDER names the reason. The measurements are pure
functions in filters/; thresholds are `clean.<profile>.*` in the config (pipeline/config.py
CleanRules), so a threshold can change without re-measuring.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

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


def _dictionary_names(config: CleanConfig, resolve) -> tuple[str, ...]:
    """Bundled names as they are; file paths resolved against the config file's directory."""
    return tuple(resolve(n) if n.endswith(".txt") else n for n in config.ng_dictionaries)


def profile_for(config: CleanConfig, source: str) -> tuple[str, CleanRules]:
    name = config.profiles.get(source, "web")
    return name, getattr(config, name)


def measure(text: str, url: str | None, rules: CleanRules, config: CleanConfig, resolve) -> dict[str, float]:
    """Every measurement the rules use, by stable name (the score columns)."""
    from filters.boilerplate import ad_line_count, bbs_comment_score
    from filters.composition import composition, starts_japanese
    from filters.repetition import repetition_scores
    from filters.sentences import compression_ratio, kuten_rarity, sentence_stats
    from filters.urls import LLM_JP_VALID_TLDS, valid_tld

    chars = composition(text)
    sentences = sentence_stats(text)
    scores: dict[str, float] = {
        "language_score": _langid().score(text, config.language),
        "kana_start": float(starts_japanese(text)),
        "chars": float(len(text)),
        "letters": float(chars.letters),
        "japanese_letters": float(chars.japanese_letters),
        "hiragana_fraction": chars.hiragana_fraction,
        "katakana_fraction": chars.katakana_fraction,
        "japanese_fraction": chars.japanese_fraction,
        "avg_sentence_length": sentences.average_length,
        "max_sentence_length": float(sentences.max_length),
        "ellipsis_fraction": sentences.ellipsis_fraction,
        "chars_per_kuten": kuten_rarity(text),
        "compression_ratio": compression_ratio(text),
        "ad_hits": float(ad_line_count(text)),
        "bbs_score": float(bbs_comment_score(text)),
    }
    scores |= repetition_scores(text, definition=rules.repetition_definition)
    dictionaries = _ng_dictionaries(_dictionary_names(config, resolve))
    scores["ng_fraction"] = max((d.matched_fraction(text) for d in dictionaries), default=0.0)
    scores["ng_hits"] = float(max((d.hits(text) for d in dictionaries), default=0))
    scores["valid_tld"] = float(url is None or valid_tld(url, LLM_JP_VALID_TLDS))
    return scores


@functools.cache
def score_names() -> tuple[str, ...]:
    """The names measure() returns, whatever the text: the clean stage's score columns."""
    return tuple(sorted(measure("", None, CleanRules(), CleanConfig(), lambda path: path)))


def _checks(rules: CleanRules, s: dict[str, float], url: str | None, config: CleanConfig, resolve):
    """(reason, passed, value) for every rule the profile turns on, in decision order."""

    def low(name, key, minimum):
        return (name, s[key] >= minimum, s[key]) if minimum is not None else None

    def high(name, key, maximum):
        return (name, s[key] <= maximum, s[key]) if maximum is not None else None

    checks = [
        low("language_score_below_min", "language_score", rules.min_language_score),
        ("no_kana_at_start", s["kana_start"] == 1.0, s["kana_start"]) if rules.require_kana_start else None,
        low("too_short", "chars", rules.min_chars),
        low("too_few_letters", "letters", rules.min_letters),
        low("too_few_japanese_letters", "japanese_letters", rules.min_japanese_letters),
        low("hiragana_fraction_below_min", "hiragana_fraction", rules.min_hiragana_fraction),
        high("katakana_fraction_above_max", "katakana_fraction", rules.max_katakana_fraction),
        low("japanese_fraction_below_min", "japanese_fraction", rules.min_japanese_fraction),
        low("avg_sentence_too_short", "avg_sentence_length", rules.min_avg_sentence_length),
        high("avg_sentence_too_long", "avg_sentence_length", rules.max_avg_sentence_length),
        high("sentence_too_long", "max_sentence_length", rules.max_sentence_length),
        high("too_many_ellipses", "ellipsis_fraction", rules.max_ellipsis_fraction),
        high("rare_kuten", "chars_per_kuten", rules.max_chars_per_kuten),
        low("compression_ratio_below_min", "compression_ratio", rules.min_compression_ratio),
        high("compression_ratio_above_max", "compression_ratio", rules.max_compression_ratio),
        high("duplicate_lines", "dup_line_frac", rules.max_duplicate_line_fraction),
        high("duplicate_line_chars", "dup_line_char_frac", rules.max_duplicate_line_char_fraction),
        high("duplicate_sentences", "dup_sentence_frac", rules.max_duplicate_sentence_fraction),
        high(
            "duplicate_sentence_chars", "dup_sentence_char_frac", rules.max_duplicate_sentence_char_fraction
        ),
    ]
    for n, maximum in zip((2, 3, 4), rules.max_top_ngram_char_fractions or ()):
        checks.append(high(f"top_{n}gram", f"top_{n}gram_char_frac", maximum))
    for n, maximum in zip(range(5, 11), rules.max_duplicate_ngram_char_fractions or ()):
        checks.append(high(f"duplicate_{n}gram", f"dup_{n}gram_char_frac", maximum))
    checks += [
        high("ng_expressions", "ng_fraction", rules.max_ng_fraction),
        high("ng_expression_hits", "ng_hits", rules.max_ng_hits),
        high("ad_lines", "ad_hits", rules.max_ad_hits),
        high("bbs_comments", "bbs_score", rules.max_bbs_score),
        ("invalid_tld", s["valid_tld"] == 1.0, s["valid_tld"]) if rules.require_valid_tld else None,
    ]
    lists = _domain_lists(tuple(sorted((k, resolve(v)) for k, v in config.domain_blocklists.items())))
    if lists is not None and url:
        category = lists.category_of(url)
        checks.append((f"domain_{category}" if category else "domain_blocklist", category is None, None))
    return [c for c in checks if c is not None]


def clean_document(
    text: str, *, url: str | None, source: str, config: CleanConfig, resolve=lambda path: path
) -> CleanOutcome:
    """The clean stage's decision on one document (its text as extract left it)."""
    from filters.boilerplate import BOILERPLATE_ID, drop_table_artifacts, trim_footer
    from filters.normalize import NORMALIZER_ID, normalize_japanese
    from filters.rights import detect_rights_notices

    profile, rules = profile_for(config, source)
    text = normalize_japanese(text)
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
    scores = measure(text, url, rules, config, resolve)
    # The NG dictionaries are identified by the SHA-256 of their files, the repetition measure
    # by the definition used (Swallow's code or Gopher's).
    transforms += _dictionary_transforms(_dictionary_names(config, resolve))
    outcome = CleanOutcome(text, None, None, profile, scores, transforms=transforms, trimmed_notices=notices)
    outcome.decisions.append(decision(STAGE, f"profile:{profile}", None, True))
    outcome.decisions.append(
        decision(STAGE, f"repetition_definition:{rules.repetition_definition}", None, True)
    )
    for reason, passed, value in _checks(rules, scores, url, config, resolve):
        outcome.decisions.append(decision(STAGE, reason, value, passed))
        if not passed and outcome.reason is None:
            outcome.reason = reason
            outcome.detail = f"{reason}: {value}" if value is not None else reason
    if outcome.reason is None and config.mask_pii:
        from filters.pii import PII_VERSION, mask_pii

        masked = mask_pii(outcome.text)
        if masked.counts:
            outcome.text = masked.text
            outcome.pii_counts = dict(masked.counts)
            outcome.transforms.append(transform(STAGE, "filters.pii.mask_pii", PII_VERSION, masked.counts))
            outcome.decisions += [
                decision(STAGE, f"pii:{kind}", n, True) for kind, n in sorted(masked.counts.items())
            ]
    return outcome
