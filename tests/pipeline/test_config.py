"""Config parsing and `--set` overrides: typed keys, one clear error naming the key."""

from pathlib import Path

import pytest

from pipeline.config import DEFAULT_CONFIG, ConfigError, load_config


def test_default_config_enables_only_the_bundled_sample():
    config = load_config()
    assert config.sources.commoncrawl.enabled and config.sources.local.enabled
    for path in config.sources.commoncrawl.warc_urls + config.sources.local.paths:
        assert Path(config.resolve_path(path)).is_file(), path
    assert Path(config.resolve_path(config.tokenize.tokenizer_path)).is_file()


def test_set_parses_values_as_yaml_and_changes_the_hash():
    base = load_config()
    config = load_config(
        None,
        [
            "clean.web.min_chars=400",
            "sources.local.paths=[a.jsonl, b.parquet]",
            "clean.web.min_language_score=1",
            "runtime.num_cpus=null",
        ],
    )
    assert config.clean.web.min_chars == 400
    assert config.clean.web.min_language_score == 1.0 and isinstance(
        config.clean.web.min_language_score, float
    )
    assert config.runtime.num_cpus is None
    assert config.sha256() != base.sha256()


def test_set_paths_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    data = tmp_path / "mine.jsonl"
    data.write_text('{"text": "吾輩は猫である。"}\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    config = load_config(None, ["sources.local.paths=[mine.jsonl]"])
    assert Path(config.resolve_path(config.sources.local.paths[0])) == data


@pytest.mark.parametrize(
    "override, message",
    [
        ("clean.web.min_chars=many", "clean.web.min_chars: expected int"),
        ("clean.web.min_chars=1.5", "clean.web.min_chars: expected int"),
        ("clean.web.max_katakana_fraction=2", "clean.web.max_katakana_fraction: must be between 0 and 1"),
        (
            "clean.law.repetition_definition=words",
            "clean.law.repetition_definition: must be swallow or gopher",
        ),
        ("clean.profiles={kokkai: speech}", "clean.profiles.kokkai: 'speech' is not one of"),
        ("clean.no_such_rule=1", "clean.no_such_rule: unknown config key"),
        ("nosection.x=1", "nosection: unknown config key"),
        ("clean=3", "clean: expected a mapping"),
        ("clean.web.min_chars.deeper=3", "clean.web.min_chars: is a value, not a section"),
        ("sources.local.paths=data.jsonl", "sources.local.paths: expected a list"),
        ("sources.local.enabled=maybe", "sources.local.enabled: expected bool"),
        ("sources.local.osaid_class=free", "sources.local.osaid_class: must be one of"),
        ("quality.min_hiragana_fraction=1.5", "quality.min_hiragana_fraction: must be between 0 and 1"),
        ("clean.web.min_chars", "--set expects key=value"),
        ("dedup.policy=[oldest]", "dedup.policy[0]: 'oldest' is not one of newest, quality, source_priority"),
        ("dedup.policy=[quality]", "dedup.quality_column: the quality policy needs a score column"),
        ("dedup.hash_bits=16", "dedup: hash_bits must be 32 or 64, not 16"),
        ("dedup.jaccard_threshold=1.5", "dedup.jaccard_threshold: must be in (0, 1], or null"),
        ("dedup.num_partitions=0", "dedup.num_partitions: must be at least 1, or null"),
        ("extract.trafilatura_preset=fast", "extract.trafilatura_preset: must be one of"),
        (
            "sources.commoncrawl.cdx.url_patterns=[example.jp/*]",
            "sources.commoncrawl.cdx.crawls: name the crawls",
        ),
        (
            "sources.commoncrawl.http.concurrency=0",
            "sources.commoncrawl.http.concurrency: must be at least 1",
        ),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("clean:\n  web: [1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("clean:\n  min_chras: 10\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="clean.min_chras: unknown config key"):
        load_config(unknown)
    with pytest.raises(ConfigError, match="missing.yaml: cannot read config"):
        load_config(tmp_path / "missing.yaml")


def test_relative_paths_in_a_file_resolve_against_its_directory(tmp_path):
    (tmp_path / "sub").mkdir()
    cfg = tmp_path / "sub" / "run.yaml"
    cfg.write_text("tokenize:\n  tokenizer_path: ../tok.json\n", encoding="utf-8")
    config = load_config(cfg)
    assert config.resolve_path(config.tokenize.tokenizer_path) == str(tmp_path / "tok.json")
    assert DEFAULT_CONFIG.is_file()


def test_a_profile_given_in_part_keeps_its_own_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("clean:\n  law:\n    min_chars: 10\n", encoding="utf-8")
    config = load_config(path)
    # The law profile's other rules stay as the law profile has them, not as the web's.
    assert config.clean.law.min_chars == 10 and config.clean.law.max_sentence_length is None
    assert config.clean.web.max_sentence_length == 200


def test_the_jaccard_check_needs_signatures():
    with pytest.raises(ConfigError, match="dedup.jaccard_threshold: needs dedup.near"):
        load_config(None, ["dedup.near=false", "dedup.jaccard_threshold=0.8"])
