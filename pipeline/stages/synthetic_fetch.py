"""Synthetic documents in the fetch stage: an openly licensed model, through an OpenAI-compatible
server (sources/chat_client.py), writes text from recipes (prompt templates in configs/recipes/)
conditioned on an earlier run's documents or on a topic list.

A synthetic document is only as open as everything that made it. Before any request the generator
must be on the config's allow-list with a licence that lets its outputs train other models; each
document then takes the most restrictive OSAID class of the model and its conditioning documents,
`locator_only` if any input is, the union of their legal bases, and a licence expression joining
the model's licence and the inputs' (`A AND B`).

What to generate is decided once on the driver and stored, with the seed documents' text and
rights as they were read, so a rerun asks for exactly the same requests:

    RUN_DIR/fetch/synthetic/tasks-NNNNN.parquet   recipe, input, seed, conditioning rights, a shard each
    RUN_DIR/fetch/synthetic/plan.json             generator, recipes and template hashes; written last
    <cache_dir>/<request sha256>.json             each answer, by request: a rerun re-sends nothing

The same recipe, input and seed give the same doc_id. Answers cut off (`finish_reason` length),
refused, empty or not Japanese are rejected with that reason.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from string import Template
from typing import Any

import pyarrow as pa

from manifests.io import atomic_write_bytes, atomic_write_json, atomic_write_parquet, filesystem, read_parquet
from manifests.layout import docs_path, done_shards, manifest_path, source_dir, stage_dir
from manifests.schema import sha256_hex
from pipeline.config import OSAID_CLASS_ORDER, Config, ConfigError, SyntheticConfig
from pipeline.stage import ShardSpec, decision, transform
from pipeline.stages.fetch_rows import RowBuilder, fetch_reason, rejected_row, text_document

SERIAL_KEY = "synthetic"  # one worker at a time, so `concurrency` is the limit the server sees
TASK_SCHEMA = pa.schema(
    [
        ("recipe", pa.string()),
        ("input_kind", pa.string()),
        ("input_id", pa.string()),
        ("input_text", pa.string()),
        # The conditioning document's rights as its manifest said: license, legal_basis, ...
        ("input_rights", pa.string()),
        ("seed", pa.int64()),
    ]
)


def check_generator(cfg: SyntheticConfig):
    """The allow-list entry of the configured model; ConfigError if it may not generate training
    data. Called before any request is sent."""
    allowed = {m.name: m for m in cfg.models}
    model = allowed.get(cfg.model)
    if model is None:
        names = ", ".join(sorted(allowed)) or "none"
        raise ConfigError(
            f"sources.synthetic.model: {cfg.model!r} is not on the generator allow-list "
            f"(sources.synthetic.models: {names}); add it with its licence and OSAID class"
        )
    if not model.allows_training_other_models:
        raise ConfigError(
            f"sources.synthetic.models: the licence of {model.name} ({model.license}) does not allow "
            "using its outputs to train other models"
        )
    return model


def api_key(cfg: SyntheticConfig) -> str | None:
    if cfg.api_key_env is None:
        return None
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise ConfigError(
            f"sources.synthetic.api_key_env: the environment variable {cfg.api_key_env} is not set"
        )
    return key


def load_templates(config: Config) -> dict[str, tuple[str, str]]:
    """Recipe name -> (template text, its SHA-256)."""
    templates = {}
    for recipe in config.sources.synthetic.recipes:
        path = config.resolve_path(recipe.template)
        try:
            fs, fs_path = filesystem(path)
            with fs.open(fs_path, "rb") as f:
                raw = f.read()
        except OSError as err:
            raise ConfigError(
                f"sources.synthetic.recipes {recipe.name}: cannot read {path} ({err})"
            ) from None
        templates[recipe.name] = (raw.decode("utf-8"), sha256_hex(raw))
    return templates


# -- planning (driver) -----------------------------------------------------------------------


def plan_shards(config: Config, run_dir: str) -> list[dict[str, Any]]:
    cfg = config.sources.synthetic
    check_generator(cfg)
    api_key(cfg)
    templates = load_templates(config)
    root = source_dir(run_dir, "synthetic")
    fs, summary = filesystem(f"{root}/plan.json")
    if not fs.exists(summary):
        _write_tasks(config, root, templates)
    with fs.open(summary, "rb") as f:
        stored = json.load(f)
    if stored["template_sha256"] != {name: sha for name, (_, sha) in templates.items()}:
        raise ConfigError(
            f"{root}/plan.json: a recipe template changed since this run was planned; use a new run dir"
        )
    return [
        {"source": "synthetic", "kind": "synthetic", "path": f"{root}/{name}", "serial": SERIAL_KEY}
        for name in stored["chunks"]
    ]


def _seed_documents(config: Config) -> list[dict[str, Any]]:
    """Included documents of the seed run after `seeds.stage`, with their rights."""
    seeds = config.sources.synthetic.seeds
    run_dir = config.resolve_path(seeds.run_dir)
    names = done_shards(run_dir, seeds.stage)
    if not names:
        raise ConfigError(f"sources.synthetic.seeds: no finished shards in {stage_dir(run_dir, seeds.stage)}")
    documents = []
    for name in names:
        texts = read_parquet(docs_path(run_dir, seeds.stage, name), ["doc_id", "text"]).to_pylist()
        manifest = {
            r["doc_id"]: r for r in read_parquet(manifest_path(run_dir, seeds.stage, name)).to_pylist()
        }
        for doc in texts:
            row = manifest[doc["doc_id"]]
            if seeds.sources and row["source"] not in seeds.sources:
                continue
            rights = {
                k: row[k] for k in ("license", "legal_basis", "osaid_class", "redistribution", "attribution")
            }
            documents.append({"id": doc["doc_id"], "text": doc["text"], "rights": rights})
            if seeds.limit is not None and len(documents) >= seeds.limit:
                return documents
    return documents


def _topics(config: Config) -> list[dict[str, Any]]:
    path = config.resolve_path(config.sources.synthetic.topics_path)
    fs, fs_path = filesystem(path)
    with fs.open(fs_path, "rb") as f:
        lines = f.read().decode("utf-8").splitlines()
    topics = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return [{"id": f"topic:{sha256_hex(t)[:16]}", "text": t, "rights": None} for t in topics]


def _write_tasks(config: Config, root: str, templates: dict[str, tuple[str, str]]) -> None:
    cfg = config.sources.synthetic
    inputs = {}
    if any(r.input == "document" for r in cfg.recipes):
        inputs["document"] = _seed_documents(config)
    if any(r.input == "topic" for r in cfg.recipes):
        inputs["topic"] = _topics(config)
    tasks = [
        {
            "recipe": recipe.name,
            "input_kind": recipe.input,
            "input_id": item["id"],
            "input_text": item["text"],
            "input_rights": json.dumps(item["rights"], ensure_ascii=False) if item["rights"] else None,
            "seed": cfg.seed,
        }
        for recipe in cfg.recipes
        for item in inputs[recipe.input]
    ]
    chunks = []
    for start in range(0, len(tasks), cfg.documents_per_shard):
        name = f"tasks-{len(chunks):05d}.parquet"
        table = pa.Table.from_pylist(tasks[start : start + cfg.documents_per_shard], schema=TASK_SCHEMA)
        atomic_write_parquet(f"{root}/{name}", table)
        chunks.append(name)
    atomic_write_json(
        f"{root}/plan.json",
        {
            "planned_at": datetime.now(UTC).isoformat(),
            "model": cfg.model,
            "template_sha256": {name: sha for name, (_, sha) in templates.items()},
            "tasks": len(tasks),
            "chunks": chunks,
        },
    )


# -- generating (worker) ---------------------------------------------------------------------


def _request(cfg: SyntheticConfig, recipe, template: str, task: dict[str, Any]):
    from sources.chat_client import ChatRequest

    placeholder = "document" if task["input_kind"] == "document" else "topic"
    prompt = Template(template).safe_substitute({placeholder: task["input_text"]})
    messages = ([{"role": "system", "content": recipe.system}] if recipe.system else []) + [
        {"role": "user", "content": prompt}
    ]
    return ChatRequest(cfg.model, tuple(messages), {**cfg.sampling, "seed": task["seed"]}), prompt


def _cache_path(config: Config, run_dir: str, request_sha: str) -> str:
    cache = config.sources.synthetic.cache_dir
    root = config.resolve_path(cache) if cache else f"{stage_dir(run_dir, 'fetch')}/raw/synthetic"
    return f"{root}/{request_sha}.json"


def _store(path: str, result) -> dict[str, Any]:
    stored = {
        "response_id": result.response_id,
        "model": result.model,
        "content": result.content,
        "finish_reason": result.finish_reason,
        "refusal": result.refusal,
        "usage": dict(result.usage) if result.usage is not None else None,
        "retrieved_at": result.retrieved_at,
        "raw": result.raw.decode("utf-8", errors="replace"),
        "raw_sha256": sha256_hex(result.raw),
    }
    atomic_write_bytes(path, json.dumps(stored, ensure_ascii=False).encode("utf-8"))
    return stored


def _load(path: str) -> dict[str, Any] | None:
    fs, fs_path = filesystem(path)
    if not fs.exists(fs_path):
        return None
    with fs.open(fs_path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def combine_rights(cfg: SyntheticConfig, model, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rights of a document made by `model` from `inputs` (their manifest rights)."""
    licenses = [model.license] + [r["license"] for r in inputs if r.get("license")]
    unique = list(dict.fromkeys(licenses))
    license_ = (
        unique[0] if len(unique) == 1 else " AND ".join(f"({lic})" if " " in lic else lic for lic in unique)
    )
    classes = [cfg.osaid_class, model.osaid_class] + [r["osaid_class"] for r in inputs]
    legal_basis = list(dict.fromkeys(list(cfg.legal_basis) + [b for r in inputs for b in r["legal_basis"]]))
    locator_only = cfg.redistribution == "locator_only" or any(
        r["redistribution"] == "locator_only" for r in inputs
    )
    attributions = [r["attribution"] for r in inputs if r.get("attribution")]
    return {
        "license": license_,
        "legal_basis": legal_basis,
        "osaid_class": max(classes, key=OSAID_CLASS_ORDER.index),
        "redistribution": "locator_only" if locator_only else "text",
        "attribution": "; ".join(attributions) or None,
    }


def generate(
    row_for: RowBuilder, config: Config, run_dir: str, shard: ShardSpec, langid
) -> tuple[list[dict], list[dict], list[dict]]:
    """Documents, manifest rows and rejections of one chunk of tasks."""
    from sources.chat_client import ChatClient, public_url
    from sources.http_client import RetryPolicy

    cfg = config.sources.synthetic
    model = check_generator(cfg)
    templates = load_templates(config)
    recipes = {r.name: r for r in cfg.recipes}
    tasks = read_parquet(shard.inputs["path"]).to_pylist()
    requests = []
    for task in tasks:
        request, prompt = _request(cfg, recipes[task["recipe"]], templates[task["recipe"]][0], task)
        requests.append((task, request, prompt, _cache_path(config, run_dir, request.sha256())))

    answers = {path: _load(path) for _, _, _, path in requests}  # read once; new ones added below
    pending = [(request, path) for _, request, _, path in requests if answers[path] is None]
    errors: dict[str, Exception] = {}
    if pending:
        retry = RetryPolicy(
            max_attempts=cfg.http.max_attempts,
            backoff_base_seconds=cfg.http.backoff_base_seconds,
            backoff_max_seconds=cfg.http.backoff_max_seconds,
        )
        with ChatClient(
            cfg.base_url,
            api_key=api_key(cfg),
            timeout_seconds=cfg.http.timeout_seconds,
            retry=retry,
            concurrency=cfg.concurrency,
            stream=cfg.stream,
        ) as client:
            paths = {request.sha256(): path for request, path in pending}
            for request, result in client.complete_many(request for request, _ in pending):
                if isinstance(result, Exception):
                    errors[request.sha256()] = result
                else:
                    path = paths[request.sha256()]
                    answers[path] = _store(path, result)

    server = public_url(cfg.base_url)
    docs, rows, rejected = [], [], []
    for task, request, prompt, path in requests:
        request_sha = request.sha256()
        upstream_id = f"{task['recipe']}:{task['input_id']}:{task['seed']}"
        inputs = [json.loads(task["input_rights"])] if task["input_rights"] else []
        locator = {
            "generator": {
                "model": model.name,
                "revision": model.revision,
                "license": model.license,
                "osaid_class": model.osaid_class,
                "server": server,
            },
            "recipe": task["recipe"],
            "prompt_template": recipes[task["recipe"]].template,
            "prompt_template_sha256": templates[task["recipe"]][1],
            "prompt_sha256": sha256_hex(prompt),
            "request_sha256": request_sha,
            "seed": task["seed"],
            "sampling": dict(request.sampling),
            "conditioning_doc_ids": [task["input_id"]] if task["input_kind"] == "document" else [],
            "topic": task["input_text"] if task["input_kind"] == "topic" else None,
        }
        source_uri = f"{server}/chat/completions#request={request_sha}"
        rights = combine_rights(cfg, model, inputs)
        if request_sha in errors:
            err = errors[request_sha]
            row, entry = rejected_row(
                row_for, "synthetic", upstream_id, source_uri, locator, fetch_reason(err), str(err)
            )
            row.update(rights)
            rows.append(row)
            rejected.append(entry)
            continue
        answer = answers[path]
        locator |= {
            "response_id": answer["response_id"],
            "response_model": answer["model"],
            "finish_reason": answer["finish_reason"],
            "usage": answer["usage"],
            "cache": path.removeprefix(run_dir.rstrip("/") + "/"),
        }
        text = answer["content"]
        reason, score = _verdict(answer, text, langid, cfg.min_japanese_score)
        row = row_for(
            "synthetic",
            upstream_id,
            source_uri=source_uri,
            locator=json.dumps(locator, ensure_ascii=False, sort_keys=True),
            retrieved_at=answer["retrieved_at"],
            raw_sha256=answer["raw_sha256"],
            text_sha256=sha256_hex(text),
            transforms=[
                transform("fetch", "sources.chat_client", model.revision or model.name, locator["sampling"])
            ],
            decisions=[decision("fetch", "synthetic_japanese_score", score, reason is None)],
            **rights,
        )
        if reason is not None:
            row.update(included=False, exclusion_reason=f"fetch:{reason}")
            rows.append(row)
            rejected.append(
                {
                    "doc_id": row["doc_id"],
                    "source": "synthetic",
                    "reason": reason,
                    "detail": _detail(answer),
                    "text": text,
                }
            )
            continue
        rows.append(row)
        docs.append(text_document(row, source_uri, text))
    return docs, rows, rejected


def _verdict(answer: dict[str, Any], text: str, langid, min_score: float) -> tuple[str | None, float | None]:
    """The rejection reason of an answer (None: keep) and its Japanese score."""
    if answer["finish_reason"] == "length":
        return "synthetic_truncated", None
    if answer["refusal"] or answer["finish_reason"] == "content_filter":
        return "synthetic_refused", None
    if not text.strip():
        return "synthetic_empty", None
    score = langid.score(text, "ja")
    if score < min_score:
        return "synthetic_not_japanese", score
    return None, score


def _detail(answer: dict[str, Any]) -> str:
    return json.dumps(
        {k: answer[k] for k in ("response_id", "finish_reason", "refusal", "usage")}, ensure_ascii=False
    )
