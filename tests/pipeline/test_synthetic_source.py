"""The synthetic source in the fetch stage, against the local chat-completions server of
tests/servers/chat.py: prompts, the generator allow-list, rights inherited from the seed
documents, rejections, the request cache, concurrency, and that the API key never leaks.

Seed documents are real: two Japanese Wikipedia paragraphs (CC BY-SA 4.0, sample/wikipedia_ja.jsonl)
and a Diet speech (sample/kokkai/meetings_rebuilt.json), written as an earlier run's `quality` shard.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet  # noqa: F401  (pa.parquet)
import pytest
import yaml
from servers.chat import PARAGRAPH, ChatServer

from manifests.io import atomic_write_json, atomic_write_parquet, manifest_table, write_manifest
from manifests.layout import docs_path, manifest_path, stage_stats_path
from manifests.schema import doc_id, new_row
from pipeline.config import ConfigError, load_config
from pipeline.stage import RunContext
from pipeline.stages.fetch import FetchStage

REPO = Path(__file__).resolve().parents[2]
MODEL = "llm-jp/llm-jp-3-13b-instruct"
KEY = "sk-test-8f3a1c9e77d2b6"
ENGLISH = "The rainy season in Japan usually lasts from early June to the middle of July in most regions."
TOPICS = {
    "梅雨前線": (PARAGRAPH, "stop"),
    "英語で答える話題": (ENGLISH, "stop"),
    "途中で切れる話題": (PARAGRAPH[:40], "length"),
    "断られる話題": ("", "stop", "その依頼には応じられません。"),
    "空の話題": ("", "stop"),
}


def reply(request: dict) -> tuple:
    prompt = request["messages"][-1]["content"]
    for topic, answer in TOPICS.items():
        if f"「{topic}」" in prompt:
            return answer
    # Document recipes: a rephrasing that keeps the subject (a real Wikipedia paragraph).
    return PARAGRAPH, "stop"


def seed_run(root: Path) -> Path:
    """An earlier run's finished `quality` stage with three documents and their rights."""
    wiki = [
        json.loads(line) for line in (REPO / "sample/wikipedia_ja.jsonl").read_text("utf-8").splitlines()[:2]
    ]
    meeting = json.loads((REPO / "sample/kokkai/meetings_rebuilt.json").read_text("utf-8"))["meetingRecord"][
        0
    ]
    speech = meeting["speechRecord"][0]["speech"]
    seeds = [
        (
            "local",
            w["id"],
            w["text"],
            {"license": "CC-BY-SA-4.0", "osaid_class": "open", "redistribution": "text"},
        )
        for w in wiki
    ] + [
        (
            "kokkai",
            meeting["issueID"],
            speech,
            {
                "license": "LicenseRef-Kokkai-SpeakerCopyright",
                "osaid_class": "public",
                "redistribution": "locator_only",
                "legal_basis": ["JP-Copyright-Art30-4", "JP-Copyright-Art40-1"],
                "attribution": "出典: 国会会議録検索システム (国立国会図書館)",
            },
        )
    ]
    run = root / "seed-run"
    rows, docs = [], []
    for source, upstream, text, rights in seeds:
        row = new_row(
            doc_id=doc_id(source, upstream),
            source=source,
            source_uri=f"https://example.jp/{upstream}",
            locator="{}",
            legal_basis=["JP-Copyright-Art30-4"],
            optout="{}",
            pipeline_version="test",
            config_sha256="test",
        )
        row.update(rights)
        rows.append(row)
        docs.append({"doc_id": row["doc_id"], "source": source, "text": text})
    atomic_write_parquet(docs_path(str(run), "quality", "part-00000"), pa.Table.from_pylist(docs))
    write_manifest(manifest_path(str(run), "quality", "part-00000"), manifest_table(rows))
    atomic_write_json(stage_stats_path(str(run), "quality"), {})
    return run


@pytest.fixture
def server():
    with ChatServer(reply=reply) as chat:
        yield chat


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTH_TEST_KEY", KEY)
    seed_run(tmp_path)
    (tmp_path / "topics.txt").write_text("# topics\n" + "\n".join(TOPICS) + "\n", "utf-8")
    return tmp_path


def synthetic(server: ChatServer, **extra) -> dict:
    recipes = REPO / "configs" / "recipes"
    return {
        "enabled": True,
        "base_url": server.url,
        "model": MODEL,
        "api_key_env": "SYNTH_TEST_KEY",
        "sampling": {"temperature": 0.7, "top_p": 0.95, "max_tokens": 512},
        "seed": 7,
        "http": {"max_attempts": 3, "backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05},
        "models": [{"name": MODEL, "revision": "abc123", "license": "Apache-2.0", "osaid_class": "open"}],
        "recipes": [
            {"name": "rephrase", "template": str(recipes / "rephrase_encyclopedic.txt")},
            {"name": "qa", "template": str(recipes / "qa_grounded.txt")},
            {"name": "explain", "template": str(recipes / "explain_topic.txt"), "input": "topic"},
        ],
        "seeds": {"run_dir": "seed-run"},
        "topics_path": "topics.txt",
    } | extra


def stage(workdir: Path, settings: dict, run: str = "run") -> FetchStage:
    sources = {"commoncrawl": {"enabled": False}, "local": {"enabled": False}, "synthetic": settings}
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump({"sources": sources}, allow_unicode=True), "utf-8")
    config = load_config(path)
    fetch = FetchStage(RunContext(str(workdir / run), config, config.sha256(), "test"))
    fetch.setup()
    return fetch


def fetch_all(fetch: FetchStage):
    docs, rows, rejected = [], [], []
    shards = fetch.plan()
    for shard in shards:
        result = fetch.process(shard)
        docs += result.kept.to_pylist()
        rows += result.manifest
        rejected += result.rejected
    return docs, rows, rejected, shards


def test_documents_carry_the_generator_the_prompt_and_their_inputs_rights(server, workdir):
    docs, rows, rejected, shards = fetch_all(stage(workdir, synthetic(server)))
    assert [s.serial for s in shards] == ["synthetic"]
    assert len(server.requests) == len(rows) == 2 * 3 + len(TOPICS)

    # What the server received: the rendered template, the sampling, the seed, the key as a header.
    for request in server.requests:
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        body = request.body
        assert (body["model"], body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (
            MODEL, 0.7, 0.95, 512, 7,
        )  # fmt: skip
    prompts = [r.body["messages"][-1]["content"] for r in server.requests]
    template = (REPO / "configs/recipes/rephrase_encyclopedic.txt").read_text("utf-8")
    wiki = json.loads((REPO / "sample/wikipedia_ja.jsonl").read_text("utf-8").splitlines()[0])
    assert template.replace("${document}", wiki["text"]) in prompts
    assert any(p.startswith("「梅雨前線」について、高校生にも分かるように") for p in prompts)

    by_id = {r["doc_id"]: r for r in rows}
    kokkai_seed = doc_id("kokkai", "118004401X01620120607")
    wiki_seed = doc_id("local", wiki["id"])
    # The same recipe, input and seed: the same id, on every run.
    from_speech = by_id[doc_id("synthetic", f"qa:{kokkai_seed}:7")]
    from_wiki = by_id[doc_id("synthetic", f"rephrase:{wiki_seed}:7")]
    locator = json.loads(from_speech["locator"])
    generator = {"model": MODEL, "revision": "abc123", "license": "Apache-2.0", "osaid_class": "open"}
    assert locator["generator"] == generator | {"server": server.url}
    assert locator["conditioning_doc_ids"] == [kokkai_seed] and locator["seed"] == 7
    assert locator["sampling"] == {"temperature": 0.7, "top_p": 0.95, "max_tokens": 512, "seed": 7}
    assert locator["response_id"].startswith("chatcmpl-") and locator["finish_reason"] == "stop"
    assert set(locator["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert len(locator["prompt_template_sha256"]) == 64 and len(locator["prompt_sha256"]) == 64
    # Rights propagate: a locator_only input makes a locator_only document, with its legal bases.
    assert from_speech["redistribution"] == "locator_only" and from_speech["osaid_class"] == "public"
    assert from_speech["legal_basis"] == ["JP-Copyright-Art30-4", "JP-Copyright-Art40-1"]
    assert from_speech["license"] == "Apache-2.0 AND LicenseRef-Kokkai-SpeakerCopyright"
    assert from_speech["attribution"].startswith("出典: 国会会議録検索システム")
    assert (from_wiki["license"], from_wiki["osaid_class"], from_wiki["redistribution"]) == (
        "Apache-2.0 AND CC-BY-SA-4.0", "open", "text",
    )  # fmt: skip
    topic_id = "topic:" + hashlib.sha256("梅雨前線".encode()).hexdigest()[:16]
    topic = by_id[doc_id("synthetic", f"explain:{topic_id}:7")]
    assert (topic["license"], topic["included"]) == ("Apache-2.0", True)
    assert json.loads(topic["locator"])["conditioning_doc_ids"] == []

    # No credential anywhere the run wrote.
    written = [p.read_bytes() for p in (workdir / "run").rglob("*") if p.is_file()]
    assert written and not any(KEY.encode() in data for data in written)
    assert KEY not in json.dumps([docs, rows, rejected], ensure_ascii=False, default=str)


def test_cut_refused_empty_and_non_japanese_answers_are_rejected_with_their_reason(server, workdir):
    _, rows, rejected, _ = fetch_all(stage(workdir, synthetic(server)))
    reasons = {
        json.loads(r["locator"])["topic"]: r["exclusion_reason"] for r in rows if r["exclusion_reason"]
    }
    assert reasons == {
        "英語で答える話題": "fetch:synthetic_not_japanese",
        "途中で切れる話題": "fetch:synthetic_truncated",
        "断られる話題": "fetch:synthetic_refused",
        "空の話題": "fetch:synthetic_empty",
    }
    assert {r["reason"] for r in rejected} == {v.removeprefix("fetch:") for v in reasons.values()}
    english = next(r for r in rejected if r["reason"] == "synthetic_not_japanese")
    assert english["text"] == ENGLISH


def test_a_rerun_re_sends_nothing(server, workdir):
    first = fetch_all(stage(workdir, synthetic(server)))
    sent = len(server.requests)
    again = fetch_all(stage(workdir, synthetic(server)))
    assert len(server.requests) == sent
    assert again[0] == first[0] and [r["doc_id"] for r in again[1]] == [r["doc_id"] for r in first[1]]
    # A new run sharing the cache asks nothing either.
    shared = synthetic(server, cache_dir=str(workdir / "cache"))
    fetch_all(stage(workdir, shared, run="a"))
    sent = len(server.requests)
    fetch_all(stage(workdir, shared, run="b"))
    assert len(server.requests) == sent


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ([], "not on the generator allow-list"),
        (
            [{"name": MODEL, "license": "LicenseRef-Llama-2", "allows_training_other_models": False}],
            "does not allow using its outputs to train other models",
        ),
    ],
)
def test_a_model_off_the_allow_list_stops_before_any_request(server, workdir, models, message):
    with pytest.raises(ConfigError, match=message):
        stage(workdir, synthetic(server, models=models)).plan()
    assert server.requests == []


def test_a_missing_key_variable_is_a_clear_error(server, workdir, monkeypatch):
    monkeypatch.delenv("SYNTH_TEST_KEY")
    with pytest.raises(ConfigError, match="SYNTH_TEST_KEY is not set"):
        stage(workdir, synthetic(server)).plan()


def test_concurrency_is_the_limit_the_server_sees(server, workdir):
    server.delay_seconds = 0.1
    settings = synthetic(server, concurrency=3, recipes=[synthetic(server)["recipes"][2]], seeds={})
    (workdir / "topics.txt").write_text("\n".join(f"梅雨前線 {i}" for i in range(9)), "utf-8")
    fetch_all(stage(workdir, settings))
    assert len(server.requests) == 9 and server.max_in_flight == 3


def test_throttling_is_retried_and_a_failing_request_is_rejected(server, workdir):
    settings = synthetic(server, recipes=[synthetic(server)["recipes"][2]], seeds={})
    (workdir / "topics.txt").write_text("梅雨前線\n", "utf-8")
    server.fail_next(429, retry_after="0")
    docs, _, _, _ = fetch_all(stage(workdir, settings))
    assert len(docs) == 1 and len(server.requests) == 2

    server.fail_next(500, times=3)
    _, rows, rejected, _ = fetch_all(stage(workdir, settings, run="other"))
    (entry,) = rejected
    assert entry["reason"] == "fetch_http_500" and rows[0]["exclusion_reason"] == "fetch:fetch_http_500"
    assert KEY not in entry["detail"]


def test_streaming_gives_the_same_documents(server, workdir):
    plain = fetch_all(stage(workdir, synthetic(server)))[0]
    sent = len(server.requests)
    streamed = fetch_all(stage(workdir, synthetic(server, stream=True, cache_dir="stream-cache"), run="s"))[0]
    assert [d["text"] for d in streamed] == [d["text"] for d in plain]
    assert len(server.requests) == 2 * sent and all(r.body["stream"] for r in server.requests[sent:])


def test_a_whole_run_on_ray_takes_the_key_from_the_environment_and_passes_the_audit(server, workdir):
    import os
    import subprocess
    import sys

    settings = synthetic(server, recipes=[synthetic(server)["recipes"][2]], seeds={})
    sources = {"commoncrawl": {"enabled": False}, "local": {"enabled": False}, "synthetic": settings}
    sources["kokkai"] = {"enabled": False}
    sources["egov"] = {"enabled": False}
    config = workdir / "run.yaml"
    tokenizer = {"tokenizer_path": str(REPO / "sample/tokenizer_llm_jp_v2.2/tokenizer.json")}
    # The reply is one short paragraph: the synthetic profile's size and compression rules are set to fit it.
    short = {"min_letters": 50, "min_japanese_letters": 50, "max_compression_ratio": None}
    settings = {"sources": sources, "clean": {"synthetic": short}, "tokenize": tokenizer}
    config.write_text(yaml.safe_dump(settings, allow_unicode=True), "utf-8")
    run_dir = workdir / "ray-run"
    env = os.environ | {"SYNTH_TEST_KEY": KEY}
    for args in (["run", "--config", str(config)], ["audit"]):
        args += ["--run-dir", str(run_dir)] if args[0] == "run" else [str(run_dir)]
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert KEY not in proc.stdout + proc.stderr
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in server.requests)
    final = pa.concat_tables(
        [pa.parquet.read_table(p) for p in sorted((run_dir / "tokenize").glob("part-?????.manifest.parquet"))]
    ).to_pylist()
    kept = [r for r in final if r["included"]]
    assert [json.loads(r["locator"])["topic"] for r in kept] == ["梅雨前線"]
    assert kept[0]["num_tokens"] > 0 and kept[0]["source"] == "synthetic"
