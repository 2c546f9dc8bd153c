"""Typed run configuration: the dataclasses below are the YAML schema and the `--set` keys.

A config file may omit any key (the dataclass default applies); an unknown key or a value of
the wrong type is a ConfigError naming the dotted key. Relative paths in a config file are
relative to that file's directory, so a run works from any working directory.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"


# Keys that hold paths. In a config file they are relative to the file's directory; on the
# command line (`--set`) relative to the working directory, rewritten relative to the file's.
PATH_KEYS = (
    "sources.commoncrawl.warc_urls",
    "sources.commoncrawl.columnar_index.paths",
    "sources.local.paths",
    "sources.kokkai.saved_responses",
    "sources.egov.bulk_paths",
    "sources.synthetic.seeds.run_dir",
    "sources.synthetic.topics_path",
    "sources.synthetic.cache_dir",
    "optout.blocklist_path",
    "optout.takedown_path",
    "tokenize.tokenizer_path",
    "dedup.previous_runs",
)


class ConfigError(Exception):
    """Bad configuration; the message is one line naming the key."""


@dataclass
class RightsConfig:
    """What a reviewer needs about a source's rights; rows may override per document."""

    license: str = "NOASSERTION"
    legal_basis: list[str] = field(default_factory=lambda: ["JP-Copyright-Art30-4"])
    osaid_class: str = "public"
    redistribution: str = "locator_only"


@dataclass
class RetryConfig:
    """Timeouts and retries of a source's HTTP client."""

    timeout_seconds: float = 60.0
    # Retries on 429, 5xx (Common Crawl answers 503 SlowDown), timeouts and resets, with
    # exponential backoff and full jitter; Retry-After is honoured up to the maximum.
    max_attempts: int = 5
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0


@dataclass
class HttpConfig(RetryConfig):
    """Politeness and retries for every HTTP client of a source."""

    # Requests in flight at once, and at most this many to any one host.
    concurrency: int = 8
    max_connections_per_host: int = 4


@dataclass
class CdxQueryConfig:
    """Records chosen through a CDX index server (pywb API); polite use only, see README."""

    index_url: str = "https://index.commoncrawl.org"
    crawls: list[str] = field(default_factory=list)
    # URL patterns as the CDX API takes them: `example.jp/*`, `*.go.jp`.
    url_patterns: list[str] = field(default_factory=list)
    match_type: str | None = None
    # CDX filters, e.g. `=status:200`, `languages:jpn`, `mime-detected:text/html`.
    filters: list[str] = field(default_factory=list)
    limit: int | None = None
    # Pause between index requests: the public index server asks not to be overloaded.
    pause_seconds: float = 1.0


@dataclass
class ColumnarIndexConfig:
    """Records chosen from the columnar URL index (Parquet), read with filter push-down."""

    # Parquet files or hive-partitioned directories, local or fsspec URLs.
    paths: list[str] = field(default_factory=list)
    crawls: list[str] = field(default_factory=list)
    languages_contain: str | None = "jpn"
    primary_language_only: bool = False
    fetch_status: int | None = 200
    mime_types: list[str] = field(default_factory=lambda: ["text/html", "application/xhtml+xml"])
    url_host_tlds: list[str] = field(default_factory=list)
    limit: int | None = None


@dataclass
class CommonCrawlConfig(RightsConfig):
    enabled: bool = False
    # (a) WARC files as local paths, HTTP(S) URLs or fsspec URLs, streamed whole.
    warc_urls: list[str] = field(default_factory=list)
    # (b) and (c): records chosen through an index and fetched by byte range from data_url.
    cdx: CdxQueryConfig = field(default_factory=CdxQueryConfig)
    columnar_index: ColumnarIndexConfig = field(default_factory=ColumnarIndexConfig)
    data_url: str = "https://data.commoncrawl.org/"
    records_per_shard: int = 1000
    http: HttpConfig = field(default_factory=HttpConfig)
    # Bounds on one WARC record (sources/warc_records.py): a record declaring a larger
    # Content-Length is rejected `fetch_record_too_large` unread; a gzip member (or HTTP body)
    # inflating past max_inflated_bytes is rejected `fetch_gzip_bomb`.
    max_record_bytes: int = 16 << 20
    max_inflated_bytes: int = 32 << 20


@dataclass
class LocalConfig(RightsConfig):
    """A user's own documents: JSONL or Parquet with a `text` column, or WARC files."""

    enabled: bool = False
    paths: list[str] = field(default_factory=list)
    # As sources.commoncrawl's, for WARC files among `paths`.
    max_record_bytes: int = 16 << 20
    max_inflated_bytes: int = 32 << 20


@dataclass
class KokkaiConfig(RightsConfig):
    """国会会議録検索システム API (sources/kokkai.py): one request at a time, a pause after each."""

    enabled: bool = False
    base_url: str = "https://kokkai.ndl.go.jp/api"
    # Which meetings: a date range (YYYY-MM-DD), a session range (回次), or both; the API ANDs
    # every condition given, and the house and meeting names narrow further.
    from_: str | None = field(default=None, metadata={"key": "from"})
    until: str | None = None
    session_from: int | None = None
    session_to: int | None = None
    name_of_house: str | None = None
    name_of_meeting: str | None = None
    # /meeting answers saved as the API served them (JSON), read instead of asking the API.
    saved_responses: list[str] = field(default_factory=list)
    # One document per meeting (speeches joined), or per speech. Never per speaker: see kokkai.py.
    documents: str = "meeting"
    # The 「○肩書（氏名君）　」 that opens every speech: strip (recorded as a transform) or keep.
    speaker_prefix: str = "strip"
    # The API asks for a few seconds after each response before the next request.
    pause_seconds: float = 3.0
    meetings_per_shard: int = 50
    # A run of this many meetings failing in a row stops the shard (the API is down, not one
    # meeting bad); a re-run resumes after the last stored meeting.
    max_consecutive_failures: int = 5
    http: RetryConfig = field(
        default_factory=lambda: RetryConfig(
            timeout_seconds=120.0, backoff_base_seconds=3.0, backoff_max_seconds=120.0
        )
    )
    license: str = "LicenseRef-Kokkai-SpeakerCopyright"
    # Art. 30-4 covers training; Art. 40(1) (public political speech) is a legal-review decision.
    legal_basis: list[str] = field(default_factory=lambda: ["JP-Copyright-Art30-4", "JP-Copyright-Art40-1"])
    osaid_class: str = "public"
    redistribution: str = "locator_only"


@dataclass
class EgovConfig(RightsConfig):
    """e-Gov 法令 (sources/egov.py, sources/egov_bulk.py): law text, not copyrightable (Art. 13)."""

    enabled: bool = False
    base_url: str = "https://laws.e-gov.go.jp/api/2"
    # api: the law list (/laws) then each law's text (/law_data); bulk: the ZIP of every law.
    mode: str = "api"
    law_types: list[str] = field(default_factory=list)
    # Laws to fetch by id or revision id; empty means every law the list returns.
    law_ids: list[str] = field(default_factory=list)
    asof: str | None = None
    limit: int | None = None
    bulk_url: str = "https://laws.e-gov.go.jp/bulkdownload?file_section=1&only_xml_flag=true"
    # Bulk ZIPs already on disk (local or fsspec); when given, bulk_url is not downloaded.
    bulk_paths: list[str] = field(default_factory=list)
    laws_per_shard: int = 200
    # No rate limit is published: one request at a time and a short pause after each.
    pause_seconds: float = 1.0
    http: RetryConfig = field(default_factory=lambda: RetryConfig(timeout_seconds=120.0))
    license: str = "LicenseRef-JP-Copyright-Art13-NonCopyrightable"
    legal_basis: list[str] = field(default_factory=lambda: ["JP-Copyright-Art13"])
    osaid_class: str = "open"
    redistribution: str = "text"


@dataclass
class GovWebConfig:
    """Pages of government domains arriving through Common Crawl or a local WARC become `gov_web`.

    They keep the rights of the source they came through unless the page states 公共データ利用規約
    (PDL 1.0) or 政府標準利用規約 (第2.0版); then those terms apply (filters/gov_terms.py).
    """

    enabled: bool = True
    # Host suffixes: a host equal to one or ending in "." + one matches.
    domains: list[str] = field(default_factory=lambda: ["go.jp", "lg.jp"])


@dataclass
class GeneratorModel:
    """A model allowed to generate training text, with the terms a reviewer checks."""

    name: str = ""
    # The exact weights (a Hugging Face commit, a file hash); recorded in every manifest row.
    revision: str | None = None
    license: str = ""  # SPDX id or LicenseRef-
    osaid_class: str = "open"
    # False for licences that forbid using outputs to train other models (e.g. Llama 2's).
    allows_training_other_models: bool = True


@dataclass
class SyntheticRecipe:
    name: str = ""
    # A prompt template file (relative to the config file): ${document} or ${topic} is replaced.
    template: str = ""
    # What conditions it: a seed document of an earlier run, or a line of the topic list.
    input: str = "document"
    # An optional system message (plain text, no placeholders).
    system: str | None = None


@dataclass
class SyntheticSeedsConfig:
    """Seed documents: an earlier run's documents after `stage`, read with their manifests."""

    run_dir: str | None = None
    stage: str = "quality"
    sources: list[str] = field(default_factory=list)  # only these sources; empty: all
    limit: int | None = None


@dataclass
class SyntheticConfig(RightsConfig):
    """Text generated by an openly licensed model through an OpenAI-compatible server.

    A document's rights are those of everything that made it: the generator model's licence and
    OSAID class, and each conditioning document's (pipeline/stages/synthetic_fetch.py).
    """

    enabled: bool = False
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = ""
    # The name of an environment variable holding the API key; the key itself is never stored.
    api_key_env: str | None = None
    sampling: dict[str, Any] = field(
        default_factory=lambda: {"temperature": 0.7, "top_p": 0.95, "max_tokens": 1024}
    )
    # The sampling seed of a document's first request; the same seed, recipe and input give the same doc_id.
    seed: int = 0
    concurrency: int = 8
    stream: bool = False
    http: RetryConfig = field(default_factory=lambda: RetryConfig(timeout_seconds=300.0))
    models: list[GeneratorModel] = field(default_factory=list)
    recipes: list[SyntheticRecipe] = field(default_factory=list)
    seeds: SyntheticSeedsConfig = field(default_factory=SyntheticSeedsConfig)
    topics_path: str | None = None
    documents_per_shard: int = 200
    # fastText lid.176 probability of Japanese below which an answer is rejected (not Japanese).
    min_japanese_score: float = 0.5
    # Answers are cached by request hash here (default RUN_DIR/fetch/raw/synthetic): a rerun re-sends nothing.
    cache_dir: str | None = None
    license: str = "NOASSERTION"  # replaced by the generator's licence and the inputs'
    osaid_class: str = "open"
    redistribution: str = "text"


@dataclass
class SourcesConfig:
    commoncrawl: CommonCrawlConfig = field(default_factory=CommonCrawlConfig)
    local: LocalConfig = field(default_factory=LocalConfig)
    kokkai: KokkaiConfig = field(default_factory=KokkaiConfig)
    egov: EgovConfig = field(default_factory=EgovConfig)
    gov_web: GovWebConfig = field(default_factory=GovWebConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class ExtractConfig:
    # HTTP responses whose Content-Type is one of these go through trafilatura.
    html_mime_types: list[str] = field(default_factory=lambda: ["text/html", "application/xhtml+xml"])
    # Records whose HTTP status is not 200 carry no document.
    require_http_200: bool = True
    # Swallow-style cheap test before extraction: <html lang="ja"> or a Japanese <title>.
    preselect_japanese: bool = True
    min_title_japanese_fraction: float = 0.5
    # trafilatura settings (filters/html.py TRAFILATURA_PRESETS) and its per-page time limit.
    trafilatura_preset: str = "jcorpus"
    timeout_seconds: float = 5.0
    # A page whose decoded text has more U+FFFD than this fraction is rejected with reason `charset`.
    max_replacement_fraction: float = 0.01
    # Hostile pages: decoded HTML longer than this is rejected `html_too_large` (Common Crawl
    # truncates at 1 MiB), and HTML or extracted text with a line longer than this `line_too_long`
    # (a minified 1 MiB page is one line of at most about a million characters).
    max_html_chars: int = 8_000_000
    max_line_chars: int = 2_000_000


@dataclass
class OptOutConfig:
    """Which opt-out signals exclude a document; every signal is recorded either way."""

    reject_tdm_reservation: bool = True
    reject_noai: bool = True
    # Files of domains, URLs or sha256:<hex> of either, one a line.
    blocklist_path: str | None = None
    takedown_path: str | None = None


@dataclass
class RightsNoticeConfig:
    """Rights notices found in pages (filters/rights.py); listed kinds exclude the document."""

    exclude_kinds: list[str] = field(default_factory=list)


@dataclass
class CleanRules:
    """One rule profile: a threshold per rule, null turns the rule off. Defaults are Swallow
    corpus v1's (quality.py::apply_v1) where Swallow has the rule, LLM-jp v1's otherwise
    (docs/research/mission_anchors.md §3.1, §3.2); each rule is one function in filters/."""

    # fastText lid.176 probability of `clean.language` (LLM-jp and FineWeb-2 use about 0.5).
    min_language_score: float | None = 0.5
    # LLM-jp / HojiChar AcceptJapanese: a hiragana or katakana among the first 50 characters.
    require_kana_start: bool = True
    min_chars: int | None = None
    min_letters: int | None = 400
    min_japanese_letters: int | None = 400
    min_hiragana_fraction: float | None = 0.2
    max_katakana_fraction: float | None = 0.5
    min_japanese_fraction: float | None = 0.5
    min_avg_sentence_length: float | None = 20.0
    max_avg_sentence_length: float | None = 90.0
    max_sentence_length: int | None = 200
    max_ellipsis_fraction: float | None = 0.2
    # LLM-jp DiscardRareKuten: characters per 。 at most this (v1 250; strict 80).
    max_chars_per_kuten: float | None = 250.0
    # LLM-jp: zlib level-9 compressed / UTF-8 bytes.
    min_compression_ratio: float | None = 0.30
    max_compression_ratio: float | None = 0.70
    # Repetition, character based: `swallow` (its code) or `gopher` (character-weighted).
    repetition_definition: str = "swallow"
    max_duplicate_line_fraction: float | None = 0.30
    max_duplicate_line_char_fraction: float | None = 0.20
    max_duplicate_sentence_fraction: float | None = 0.30
    max_duplicate_sentence_char_fraction: float | None = 0.20
    # n = 2, 3, 4 and n = 5 .. 10.
    max_top_ngram_char_fractions: list[float] | None = field(default_factory=lambda: [0.20, 0.18, 0.16])
    max_duplicate_ngram_char_fractions: list[float] | None = field(
        default_factory=lambda: [0.15, 0.14, 0.13, 0.12, 0.11, 0.10]
    )
    # NG expressions: Swallow's fraction of matched characters, LLM-jp's hits per dictionary.
    max_ng_fraction: float | None = 0.05
    max_ng_hits: int | None = 3
    # HojiChar DiscardAds (LLM-jp's limit) / DiscardBBSComments (HojiChar's is 14, but on the
    # labelled set it drops 13 good blogs for 3 bad pages: measured, off by default).
    max_ad_hits: int | None = 10
    max_bbs_score: int | None = None
    # LLM-jp's TLD allow-list, on the document's URL (documents without a URL pass).
    require_valid_tld: bool = False
    # Trims, each recorded as a transform (rights notices in removed lines are recorded first).
    trim_footer: bool = True
    drop_table_artifacts: bool = True


_PROSE_RULES_OFF = dict(
    min_letters=None,
    min_japanese_letters=None,
    min_avg_sentence_length=None,
    max_avg_sentence_length=None,
    max_sentence_length=None,
    max_top_ngram_char_fractions=None,
    max_duplicate_ngram_char_fractions=None,
    max_ng_fraction=None,
    max_ng_hits=None,
    max_ad_hits=None,
    trim_footer=False,
)


def _law_profile() -> CleanRules:
    return CleanRules(
        **_PROSE_RULES_OFF,
        # 附則 can be one sentence (「この法律は、公布の日から施行する。」) and lists of articles
        # are nearly all kanji: no size or hiragana floor.
        min_chars=10,
        min_hiragana_fraction=None,
        min_language_score=0.3,
        require_kana_start=False,
        min_compression_ratio=None,
        max_compression_ratio=None,
        max_duplicate_line_fraction=None,
        max_duplicate_line_char_fraction=None,
        max_duplicate_sentence_fraction=None,
        max_duplicate_sentence_char_fraction=None,
        max_chars_per_kuten=None,
    )


def _diet_profile() -> CleanRules:
    return CleanRules(
        **_PROSE_RULES_OFF,
        min_chars=20,
        min_compression_ratio=None,
        max_compression_ratio=None,
        max_chars_per_kuten=None,
    )


@dataclass
class CleanConfig:
    language: str = "ja"
    # fastText language id reads this many leading characters (null: the whole text): its cost
    # is linear in the text. On the 3,459 benchmark texts (labelled set, Diet speeches,
    # Wikipedia), web profile and each text's own, 300 to 2,000 characters change no decision;
    # at 500 the score moves by more than 0.05 for 4 of 6,918 outcomes (at most 0.13), all
    # pages in Chinese that other rules reject too.
    language_id_chars: int | None = 500
    # Which rule profile each source gets; a source not listed gets `web`.
    profiles: dict[str, str] = field(
        default_factory=lambda: {"kokkai": "diet", "egov": "law", "synthetic": "synthetic"}
    )
    web: CleanRules = field(default_factory=CleanRules)
    # Statutes: short numbered provisions, sentences of several hundred characters and set
    # phrases repeated by design (行政手続法: duplicate 5-grams 0.27 by Swallow's definition);
    # the web's prose, size, compression and repetition rules would drop them all.
    law: CleanRules = field(default_factory=_law_profile)
    # Speeches: spoken sentences (median 75 characters, 95th percentile 156), short procedural
    # turns (5% under 200 letters), policy debate that names crimes and violence (NG lists off).
    diet: CleanRules = field(default_factory=_diet_profile)
    # Generated text: web rules, but answers are shorter than pages.
    synthetic: CleanRules = field(
        default_factory=lambda: CleanRules(min_letters=100, min_japanese_letters=100)
    )
    # NG-expression dictionaries (filters/ngwords.py names or paths).
    ng_dictionaries: list[str] = field(
        default_factory=lambda: ["llm_jp_v1/adult", "llm_jp_v1/discrimination", "llm_jp_v1/violence"]
    )
    # Replace e-mail, phone, My Number, card numbers, IPs and 〒 codes with typed placeholders.
    mask_pii: bool = True
    # Category domain lists (UT1 format), e.g. {adult: lists/adult/domains}; a listed host is rejected.
    domain_blocklists: dict[str, str] = field(default_factory=dict)
    # false: a document stops at its first failed rule (the costly n-gram and language-id
    # measurements come last, so most rejections cost a few cheap ones); the rules after it are
    # not recorded and their score columns are null, and so are scores no rule of the profile
    # reads. Verdicts, reasons and every recorded decision are the same either way.
    # true: every rule measured and recorded on every document, to judge a threshold change on
    # rejected documents too (e.g. benchmarks/clean_quality.py --set clean.measure_all=true).
    measure_all: bool = False
    # CPU seconds one document may take in clean, checked between rules (filters/text_budget.py);
    # past it the document is rejected `time_budget_exceeded`. null: no limit.
    time_budget_seconds: float | None = 10.0


@dataclass
class DedupConfig:
    # Exact copies of the normalised text (SHA-256), found as one more LSH band.
    exact: bool = True
    # Near duplicates: MinHash LSH on character n-grams of the normalised text (dakuten kept).
    # Defaults and their justification against Swallow, LLM-jp v4 and FineWeb-2: README "Dedup".
    near: bool = True
    shingle_size: int = 5
    bands: int = 20
    rows: int = 10
    hash_bits: int = 32
    seed: int = 1
    # Drop candidate pairs whose Jaccard similarity, estimated from the signatures, is below this;
    # null keeps every LSH candidate (as Swallow, LLM-jp and datatrove do).
    jaccard_threshold: float | None = None
    # Survivor ranking, applied in order, then the smallest doc_id: newest (latest retrieved_at),
    # quality (highest `quality_column`), source_priority (earliest in `source_priority`).
    policy: list[str] = field(default_factory=lambda: ["source_priority", "newest"])
    source_priority: list[str] = field(
        default_factory=lambda: ["egov", "kokkai", "gov_web", "synthetic", "local", "commoncrawl"]
    )
    # A float column of the clean stage's documents that the `quality` policy ranks by.
    quality_column: str | None = None
    # Hash partitions of every all-to-all step; null picks enough that a partition holds about
    # `partition_rows` band rows, so memory per task does not grow with the corpus.
    num_partitions: int | None = None
    partition_rows: int = 1_000_000
    # Earlier run directories whose signature index this run deduplicates against; their kept
    # documents always survive (they are already in a released corpus).
    previous_runs: list[str] = field(default_factory=list)


@dataclass
class QualityClassifier:
    """A fastText classifier the quality stage applies (README "Quality classifiers").

    Its score, P(positive class), is the column `quality_<name>_v<version>`; the keep rules below
    decide (all null: measured, nothing dropped). A toxicity model keeps documents below
    `max_score` (LLM-jp drops a document its fastText toxicity model scores 0.99 or more).
    """

    name: str = ""
    version: int = 1
    # A directory written by `python -m pipeline train-classifier` (model.bin, metadata.json).
    model: str = ""
    # SHA-256 of the directory's model.bin; a different file stops the stage before any scoring.
    sha256: str = ""
    min_score: float | None = None  # keep when score >= min_score
    max_score: float | None = None  # keep when score < max_score
    # Keep the top fraction of each source by score (ties at the cut are kept).
    top_fraction_per_source: float | None = None


@dataclass
class QualityConfig:
    # Swallow corpus v1 (quality.py::apply_v1) drops documents with fewer than 20% hiragana.
    min_hiragana_fraction: float = 0.2
    classifiers: list[QualityClassifier] = field(default_factory=list)


@dataclass
class TokenizerTrainingConfig:
    """`python -m pipeline train-tokenizer`: SentencePiece trained as LLM-jp trains its tokenizers."""

    model_type: str = "unigram"  # or bpe
    vocab_size: int = 32000
    # Characters covered by the vocabulary; the rest become bytes (byte_fallback) or <unk>.
    # 0.9995 is SentencePiece's advice for Japanese and Chinese.
    character_coverage: float = 0.9995
    byte_fallback: bool = True
    # The stage whose documents are sampled, and how many (the smallest keyed hashes of doc_id).
    input_stage: str = "quality"
    sample_documents: int = 100000
    seed: int = 1
    # LLM-jp's settings: digits one by one, "\n" one token so that documents keep their lines.
    split_digits: bool = True
    user_defined_symbols: list[str] = field(default_factory=lambda: ["\n"])
    # SentencePiece skips longer lines (bytes); its default is 4192.
    max_sentence_length: int = 16384
    # Training threads (null: every core). The thread count changes the model, so it is recorded.
    threads: int | None = None


@dataclass
class TokenizeConfig:
    # A Hugging Face `tokenizers` JSON file or a SentencePiece model (both LLM-jp tokenizers load),
    # a local path or an fsspec URL; a directory holding tokenizer.json or tokenizer.model also works.
    tokenizer_path: str = "../sample/tokenizer_llm_jp_v2.2/tokenizer.json"
    # The file's SHA-256, checked before any shard runs (null: recorded, not checked).
    tokenizer_sha256: str | None = None
    # Outputs: `parquet` (input_ids in the shard's rows) and/or `megatron` (part-NNNNN.bin/.idx).
    formats: list[str] = field(default_factory=lambda: ["parquet"])
    # Token id type: int32, uint16, uint32 (Parquet only), or auto (uint16 when the vocabulary fits).
    token_dtype: str = "int32"
    # EOS after and BOS before every row (every piece of a split document), so that rows stay
    # separated when a training job concatenates or shuffles them.
    append_eos: bool = True
    eos_token: str | None = "<EOD|LLM-jp>"
    prepend_bos: bool = False
    bos_token: str | None = "<s|LLM-jp>"
    # Documents with more tokens (BOS and EOS included) are split on line boundaries into pieces
    # of at most this many that share the doc_id; null never splits.
    max_tokens_per_piece: int | None = 65536
    # Output shard size. Both null: one output shard per input shard. Otherwise consecutive input
    # shards are grouped into one output shard of about this many tokens, or bytes of token ids,
    # and an input shard larger than that is cut between documents over several output shards.
    shard_target_tokens: int | None = None
    shard_target_bytes: int | None = None
    # Parquet row groups of about this many tokens, the unit a streaming reader loads.
    row_group_tokens: int = 1048576
    batch_size: int = 256
    # Threads each worker encodes with: Ray already runs one worker per CPU.
    threads_per_worker: int = 1
    training: TokenizerTrainingConfig = field(default_factory=TokenizerTrainingConfig)


@dataclass
class TakedownConfig:
    """`python -m pipeline takedown` (pipeline/takedown.py): how a request changes the tokenized shards."""

    # rewrite: the affected shards are written again without the documents' rows (later rows move
    # up); mask: the layout is kept and the documents' token ids are overwritten with mask_id,
    # their rows flagged `masked` (a training job that indexes rows by position keeps its indices).
    mode: str = "rewrite"
    # The id written over masked tokens: the tokenizer's pad token (4 is <pad|LLM-jp> in LLM-jp's).
    mask_id: int = 0


@dataclass
class RuntimeConfig:
    # Ray CPUs to use when starting a local Ray; null means every core of the machine.
    num_cpus: int | None = None
    # Worker processes (Ray actors) per stage; null means one per CPU.
    num_workers: int | None = None


@dataclass
class Config:
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    optout: OptOutConfig = field(default_factory=OptOutConfig)
    rights: RightsNoticeConfig = field(default_factory=RightsNoticeConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    takedown: TakedownConfig = field(default_factory=TakedownConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    # Directory that relative paths are resolved against (the config file's); not part of the hash.
    base_dir: str = field(default=".", metadata={"internal": True})

    def resolve_path(self, path: str) -> str:
        """A path or URL from the config, made absolute against the config file's directory."""
        if "://" in path or Path(path).is_absolute():
            return path
        return str((Path(self.base_dir) / path).resolve())

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=True, allow_unicode=True)

    def sha256(self) -> str:
        return hashlib.sha256(self.to_yaml().encode()).hexdigest()


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:  # free-form mappings (sampling parameters): string keys, YAML values
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{key}: expected a mapping with string keys, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
        return _build(tp, value, key)
    if tp is str and isinstance(value, datetime.date):  # YAML reads 2024-10-01 as a date
        return value.isoformat()
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is bool or tp is int:
        if type(value) is not tp:
            raise ConfigError(f"{key}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
        return value
    if not isinstance(value, tp):
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


def _key(f: dataclasses.Field) -> str:
    """A field's config key: its name, unless that is a Python keyword (`from`, stored as `from_`)."""
    return f.metadata.get("key", f.name)


def _fields(cls: type) -> dict[str, Any]:
    """Config key -> resolved type annotation, without internal fields."""
    hints = typing.get_type_hints(cls)
    return {_key(f): hints[f.name] for f in dataclasses.fields(cls) if not f.metadata.get("internal")}


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    fields = _fields(cls)
    by_key = {_key(f): f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            raise ConfigError(f"{dotted}: unknown config key")
        tp = fields[key]
        default = by_key[key].default_factory
        if dataclasses.is_dataclass(tp) and isinstance(value, dict) and default is not dataclasses.MISSING:
            # A section given in part keeps its own defaults for the rest (clean.law differs from
            # clean.web), not the defaults of the section's class.
            built = _build(tp, value, dotted)
            kwargs[by_key[key].name] = dataclasses.replace(
                default(), **{k: getattr(built, k) for k in _given(tp, value)}
            )
        else:
            kwargs[by_key[key].name] = _coerce(value, tp, dotted)
    return cls(**kwargs)


def _given(cls: type, data: dict[str, Any]) -> list[str]:
    """Field names of `cls` that `data` (a config mapping) sets."""
    return [f.name for f in dataclasses.fields(cls) if _key(f) in data]


def _to_dict(obj: Any) -> Any:
    """Like dataclasses.asdict, with config keys (`from`) rather than field names (`from_`)."""
    if dataclasses.is_dataclass(obj):
        return {
            _key(f): _to_dict(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if not f.metadata.get("internal")
        }
    if isinstance(obj, list):
        return [_to_dict(v) for v in obj]
    return obj


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` in nested dicts, refusing keys the schema does not have."""
    cls: Any = Config
    node = data
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        fields = _fields(cls)
        here = ".".join(parts[: i + 1])
        if part not in fields:
            raise ConfigError(f"{here}: unknown config key")
        if i == len(parts) - 1:
            node[part] = value
            return
        tp = fields[part]
        if not dataclasses.is_dataclass(tp):
            raise ConfigError(f"{here}: is a value, not a section; cannot set {dotted}")
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{here}: expected a mapping in the config file")
        cls = tp


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` with the value parsed as YAML.

    >>> parse_override("clean.min_chars=400")
    ('clean.min_chars', 400)
    >>> parse_override("sources.local.paths=[a.jsonl, b.jsonl]")
    ('sources.local.paths', ['a.jsonl', 'b.jsonl'])
    """
    if "=" not in text:
        raise ConfigError(f"{text}: --set expects key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"{key}: value {raw!r} is not valid YAML ({str(exc).splitlines()[0]})") from None
    return key.strip(), value


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Load a YAML config file (default: configs/default.yaml) and apply `--set` overrides."""
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of sections")
    base_dir = path.resolve().parent
    for text in overrides:
        key, value = parse_override(text)
        if key in PATH_KEYS:
            value = _relative_to(value, base_dir)
        _set_dotted(data, key, value)
    config = _build(Config, data)
    config.base_dir = str(base_dir)
    _validate(config)
    return config


def _relative_to(value: Any, base_dir: Path) -> Any:
    """A command-line path (relative to the working directory) made relative to `base_dir`."""
    if isinstance(value, list):
        return [_relative_to(v, base_dir) for v in value]
    if not isinstance(value, str) or "://" in value or Path(value).is_absolute():
        return value
    return os.path.relpath(Path(value).resolve(), base_dir)


def _validate(config: Config) -> None:
    from manifests.schema import OSAID_CLASSES, REDISTRIBUTION

    for name in ("commoncrawl", "local", "kokkai", "egov", "synthetic"):
        src = getattr(config.sources, name)
        if src.osaid_class not in OSAID_CLASSES:
            raise ConfigError(f"sources.{name}.osaid_class: must be one of {', '.join(OSAID_CLASSES)}")
        if src.redistribution not in REDISTRIBUTION:
            raise ConfigError(f"sources.{name}.redistribution: must be one of {', '.join(REDISTRIBUTION)}")
    cc = config.sources.commoncrawl
    if cc.cdx.url_patterns and not cc.cdx.crawls:
        raise ConfigError("sources.commoncrawl.cdx.crawls: name the crawls to query (e.g. [CC-MAIN-2024-22])")
    for key, value in (
        ("sources.commoncrawl.records_per_shard", cc.records_per_shard),
        ("sources.commoncrawl.max_record_bytes", cc.max_record_bytes),
        ("sources.commoncrawl.max_inflated_bytes", cc.max_inflated_bytes),
        ("sources.local.max_record_bytes", config.sources.local.max_record_bytes),
        ("sources.local.max_inflated_bytes", config.sources.local.max_inflated_bytes),
        ("extract.max_html_chars", config.extract.max_html_chars),
        ("extract.max_line_chars", config.extract.max_line_chars),
        ("sources.commoncrawl.http.concurrency", cc.http.concurrency),
        ("sources.commoncrawl.http.max_connections_per_host", cc.http.max_connections_per_host),
        ("sources.commoncrawl.http.max_attempts", cc.http.max_attempts),
    ):
        if value < 1:
            raise ConfigError(f"{key}: must be at least 1")
    for key, seconds in (
        ("extract.timeout_seconds", config.extract.timeout_seconds),
        ("sources.commoncrawl.http.timeout_seconds", cc.http.timeout_seconds),
    ):
        if seconds <= 0:
            raise ConfigError(f"{key}: must be positive")
    _validate_kokkai(config.sources.kokkai)
    _validate_egov(config.sources.egov)
    _validate_synthetic(config.sources.synthetic)
    for i, domain in enumerate(config.sources.gov_web.domains):
        if not domain or domain != domain.strip().strip(".").lower():
            raise ConfigError(
                f"sources.gov_web.domains[{i}]: write a host suffix such as go.jp, got {domain!r}"
            )
    from filters.html import TRAFILATURA_PRESETS

    if config.extract.trafilatura_preset not in TRAFILATURA_PRESETS:
        raise ConfigError(
            f"extract.trafilatura_preset: must be one of {', '.join(sorted(TRAFILATURA_PRESETS))}"
        )
    _validate_dedup(config.dedup)
    _validate_clean(config.clean)
    if not 0.0 <= config.quality.min_hiragana_fraction <= 1.0:
        raise ConfigError("quality.min_hiragana_fraction: must be between 0 and 1")
    _validate_quality(config.quality)
    _validate_tokenize(config.tokenize)
    if config.takedown.mode not in ("rewrite", "mask"):
        raise ConfigError(f"takedown.mode: rewrite or mask, got {config.takedown.mode!r}")
    if config.takedown.mask_id < 0:
        raise ConfigError("takedown.mask_id: must not be negative")


def _validate_quality(quality: QualityConfig) -> None:
    """Shape only; the model files and their SHA-256 are checked when the quality stage starts."""
    import re

    columns = set()
    for i, c in enumerate(quality.classifiers):
        key = f"quality.classifiers[{i}]"
        if not re.fullmatch(r"[a-z][a-z0-9_]*", c.name):
            raise ConfigError(f"{key}.name: lower-case letters, digits and _ (a column name), got {c.name!r}")
        if c.version < 1:
            raise ConfigError(f"{key}.version: must be at least 1")
        if (c.name, c.version) in columns:
            raise ConfigError(f"{key}: {c.name} v{c.version} is configured twice")
        columns.add((c.name, c.version))
        if not c.model:
            raise ConfigError(f"{key}.model: name the model directory (train-classifier --output)")
        if not re.fullmatch(r"[0-9a-f]{64}", c.sha256):
            raise ConfigError(f"{key}.sha256: the model file's SHA-256, 64 lower-case hex digits")
        for rule in ("min_score", "max_score"):
            value = getattr(c, rule)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"{key}.{rule}: must be between 0 and 1, or null")
        fraction = c.top_fraction_per_source
        if fraction is not None and not 0.0 < fraction <= 1.0:
            raise ConfigError(f"{key}.top_fraction_per_source: must be in (0, 1], or null")


def _check_retry(key: str, http: RetryConfig) -> None:
    if http.max_attempts < 1:
        raise ConfigError(f"{key}.max_attempts: must be at least 1")
    if http.timeout_seconds <= 0:
        raise ConfigError(f"{key}.timeout_seconds: must be positive")


def _check_date(key: str, value: str | None) -> None:
    if value is None:
        return
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{key}: expected a date YYYY-MM-DD, got {value!r}") from None


def _validate_kokkai(kokkai: KokkaiConfig) -> None:
    key = "sources.kokkai"
    if kokkai.documents not in ("meeting", "speech"):
        raise ConfigError(f"{key}.documents: must be meeting or speech (never per speaker: Art. 40(1))")
    if kokkai.speaker_prefix not in ("strip", "keep"):
        raise ConfigError(f"{key}.speaker_prefix: must be strip or keep")
    if "JP-Copyright-Art30-4" not in kokkai.legal_basis:
        raise ConfigError(f"{key}.legal_basis: must include JP-Copyright-Art30-4 (training is analysis)")
    if kokkai.pause_seconds < 0:
        raise ConfigError(f"{key}.pause_seconds: must not be negative")
    for name in ("meetings_per_shard", "max_consecutive_failures"):
        if getattr(kokkai, name) < 1:
            raise ConfigError(f"{key}.{name}: must be at least 1")
    _check_date(f"{key}.from", kokkai.from_)
    _check_date(f"{key}.until", kokkai.until)
    _check_retry(f"{key}.http", kokkai.http)
    has_range = any(
        v is not None for v in (kokkai.from_, kokkai.until, kokkai.session_from, kokkai.session_to)
    )
    if kokkai.enabled and not (has_range or kokkai.saved_responses):
        raise ConfigError(
            f"{key}: name the meetings: from/until (dates), session_from/session_to, or saved_responses"
        )


EGOV_LAW_TYPES = (
    "Constitution",
    "Act",
    "CabinetOrder",
    "ImperialOrder",
    "MinisterialOrdinance",
    "Rule",
    "Misc",
)


def _validate_egov(egov: EgovConfig) -> None:
    key = "sources.egov"
    if egov.mode not in ("api", "bulk"):
        raise ConfigError(f"{key}.mode: must be api or bulk")
    for i, law_type in enumerate(egov.law_types):
        if law_type not in EGOV_LAW_TYPES:
            raise ConfigError(f"{key}.law_types[{i}]: {law_type!r} is not one of {', '.join(EGOV_LAW_TYPES)}")
    if egov.laws_per_shard < 1:
        raise ConfigError(f"{key}.laws_per_shard: must be at least 1")
    if egov.limit is not None and egov.limit < 1:
        raise ConfigError(f"{key}.limit: must be at least 1")
    if egov.pause_seconds < 0:
        raise ConfigError(f"{key}.pause_seconds: must not be negative")
    _check_date(f"{key}.asof", egov.asof)
    _check_retry(f"{key}.http", egov.http)


def _validate_synthetic(synthetic: SyntheticConfig) -> None:
    """Shape only; whether the model may generate training data is checked before any request
    (pipeline/stages/synthetic_fetch.py: check_generator)."""
    key = "sources.synthetic"
    if synthetic.concurrency < 1 or synthetic.documents_per_shard < 1:
        raise ConfigError(f"{key}.concurrency and documents_per_shard: must be at least 1")
    if not 0.0 <= synthetic.min_japanese_score <= 1.0:
        raise ConfigError(f"{key}.min_japanese_score: must be between 0 and 1")
    _check_retry(f"{key}.http", synthetic.http)
    for i, model in enumerate(synthetic.models):
        if not model.name or not model.license:
            raise ConfigError(f"{key}.models[{i}]: name and license (SPDX id or LicenseRef-) are required")
        if model.osaid_class not in OSAID_CLASS_ORDER:
            raise ConfigError(f"{key}.models[{i}].osaid_class: must be one of {', '.join(OSAID_CLASS_ORDER)}")
    names = [r.name for r in synthetic.recipes]
    for i, recipe in enumerate(synthetic.recipes):
        if not recipe.name or not recipe.template:
            raise ConfigError(f"{key}.recipes[{i}]: name and template are required")
        if recipe.input not in ("document", "topic"):
            raise ConfigError(f"{key}.recipes[{i}].input: must be document or topic")
        if names.count(recipe.name) > 1:
            raise ConfigError(f"{key}.recipes[{i}].name: {recipe.name!r} is used twice")
    if synthetic.enabled:
        if not synthetic.model or not synthetic.recipes:
            raise ConfigError(f"{key}: name the model and at least one recipe")
        inputs = {r.input for r in synthetic.recipes}
        if "document" in inputs and not synthetic.seeds.run_dir:
            raise ConfigError(f"{key}.seeds.run_dir: a document recipe needs an earlier run's documents")
        if "topic" in inputs and not synthetic.topics_path:
            raise ConfigError(f"{key}.topics_path: a topic recipe needs a topic list file")


# Least to most restrictive; a synthetic document takes the most restrictive class of its inputs.
OSAID_CLASS_ORDER = ("open", "public", "obtainable", "unshareable")


CLEAN_PROFILES = ("web", "law", "diet", "synthetic")


def _validate_dedup(dedup: DedupConfig) -> None:
    from filters.lsh_clusters import POLICIES
    from filters.minhash import MinHashParams

    if not (dedup.exact or dedup.near):
        raise ConfigError("dedup: turn on exact, near or both (to skip dedup, do not run the stage)")
    try:
        MinHashParams(dedup.shingle_size, dedup.bands, dedup.rows, dedup.hash_bits, dedup.seed)
    except ValueError as exc:
        raise ConfigError(f"dedup: {exc}") from None
    if dedup.jaccard_threshold is not None and not 0.0 < dedup.jaccard_threshold <= 1.0:
        raise ConfigError("dedup.jaccard_threshold: must be in (0, 1], or null")
    if dedup.jaccard_threshold is not None and not dedup.near:
        raise ConfigError("dedup.jaccard_threshold: needs dedup.near (it compares MinHash signatures)")
    for i, name in enumerate(dedup.policy):
        if name not in POLICIES:
            raise ConfigError(f"dedup.policy[{i}]: {name!r} is not one of {', '.join(POLICIES)}")
    if "quality" in dedup.policy and not dedup.quality_column:
        raise ConfigError("dedup.quality_column: the quality policy needs a score column to rank by")
    if dedup.num_partitions is not None and dedup.num_partitions < 1:
        raise ConfigError("dedup.num_partitions: must be at least 1, or null")
    if dedup.partition_rows < 1:
        raise ConfigError("dedup.partition_rows: must be at least 1")


def _validate_clean(clean: CleanConfig) -> None:
    if clean.time_budget_seconds is not None and clean.time_budget_seconds < 0:
        raise ConfigError("clean.time_budget_seconds: must not be negative, or null")
    for source, profile in clean.profiles.items():
        if profile not in CLEAN_PROFILES:
            raise ConfigError(
                f"clean.profiles.{source}: {profile!r} is not one of {', '.join(CLEAN_PROFILES)}"
            )
    for name in CLEAN_PROFILES:
        rules: CleanRules = getattr(clean, name)
        key = f"clean.{name}"
        if rules.repetition_definition not in ("swallow", "gopher"):
            raise ConfigError(f"{key}.repetition_definition: must be swallow or gopher")
        for f in dataclasses.fields(rules):
            value = getattr(rules, f.name)
            if "fraction" in f.name and f.name.startswith(("min_", "max_")) and isinstance(value, float):
                if not 0.0 <= value <= 1.0:
                    raise ConfigError(f"{key}.{f.name}: must be between 0 and 1")
        for attr, size in (("max_top_ngram_char_fractions", 3), ("max_duplicate_ngram_char_fractions", 6)):
            values = getattr(rules, attr)
            if values is not None and len(values) != size:
                raise ConfigError(f"{key}.{attr}: give {size} values (null turns the rule off)")


TOKENIZE_FORMATS = ("parquet", "megatron")
TOKEN_DTYPES = ("auto", "int32", "uint16", "uint32")


def _validate_tokenize(tok: TokenizeConfig) -> None:
    """Shape only; the tokenizer file and its special tokens are checked when the stage starts."""
    import re

    if not tok.formats or any(f not in TOKENIZE_FORMATS for f in tok.formats):
        raise ConfigError(
            f"tokenize.formats: one or both of {', '.join(TOKENIZE_FORMATS)}, got {tok.formats}"
        )
    if len(set(tok.formats)) != len(tok.formats):
        raise ConfigError(f"tokenize.formats: {tok.formats} lists a format twice")
    if tok.token_dtype not in TOKEN_DTYPES:
        raise ConfigError(f"tokenize.token_dtype: must be one of {', '.join(TOKEN_DTYPES)}")
    if tok.token_dtype == "uint32" and "megatron" in tok.formats:
        raise ConfigError("tokenize.token_dtype: Megatron's index has no uint32; use int32 or auto")
    if tok.tokenizer_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", tok.tokenizer_sha256):
        raise ConfigError("tokenize.tokenizer_sha256: 64 lower-case hex digits, or null")
    for flag, key in (("append_eos", "eos_token"), ("prepend_bos", "bos_token")):
        if getattr(tok, flag) and not getattr(tok, key):
            raise ConfigError(f"tokenize.{key}: name the token, since tokenize.{flag} is true")
    if tok.max_tokens_per_piece is not None and tok.max_tokens_per_piece < 8:
        raise ConfigError("tokenize.max_tokens_per_piece: must be at least 8, or null")
    if tok.shard_target_tokens is not None and tok.shard_target_bytes is not None:
        raise ConfigError("tokenize.shard_target_tokens: give it or tokenize.shard_target_bytes, not both")
    for key in ("shard_target_tokens", "shard_target_bytes"):
        if getattr(tok, key) is not None and getattr(tok, key) < 1:
            raise ConfigError(f"tokenize.{key}: must be at least 1, or null")
    for key in ("row_group_tokens", "batch_size", "threads_per_worker"):
        if getattr(tok, key) < 1:
            raise ConfigError(f"tokenize.{key}: must be at least 1")
    train = tok.training
    if train.model_type not in ("unigram", "bpe"):
        raise ConfigError("tokenize.training.model_type: must be unigram or bpe")
    if not 0.0 < train.character_coverage <= 1.0:
        raise ConfigError("tokenize.training.character_coverage: must be in (0, 1]")
    for key in ("vocab_size", "sample_documents", "max_sentence_length"):
        if getattr(train, key) < 1:
            raise ConfigError(f"tokenize.training.{key}: must be at least 1")
    if train.threads is not None and train.threads < 1:
        raise ConfigError("tokenize.training.threads: must be at least 1, or null")
