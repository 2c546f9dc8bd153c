"""The OSAID data information of a run: a dataset card, a Croissant JSON-LD file, and the listing of
every training document with where to obtain it.

Everything is generated from what the run recorded: the resolved config (sources, how each was
selected, every filter and threshold, dedup parameters, classifiers, tokenizer), the classifiers'
metadata.json (training data, validation figures), the tokenized shards' metadata (the tokenizer
actually used and its SHA-256) and the manifests (counts, PII masked, takedowns). Nothing is
typed in by hand, so the card describes this run and no other.

    python -m manifests.datacard RUN_DIR OUT_DIR
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from manifests.audit_summary import summarize
from manifests.croissant import croissant
from manifests.data_listing import write_listing
from manifests.io import atomic_write_bytes, filesystem, read_parquet
from manifests.layout import RESOLVED_CONFIG, STAGE_ORDER, docs_path, done_shards, manifest_path
from manifests.run_hashes import RunHashesError, read_run_hashes
from manifests.schema import sha256_hex

FIRST_STAGE, FINAL_STAGE = STAGE_ORDER[0], STAGE_ORDER[-1]
CARD, CROISSANT, LISTING = "DATACARD.md", "croissant.json", "document-listing.csv"
TOKENIZER_METADATA = b"jcorpus.tokenizer"
# How each source is obtained, and how a third party obtains a document again from its locator.
OBTAINED = {
    "commoncrawl": (
        "Common Crawl WARC records: whole WARC files (`warc_urls`) or records chosen from the CDX or "
        "columnar URL index, each read with one HTTP Range request and its payload digest verified.",
        "An HTTP Range request for bytes offset..offset+length-1 of the locator's warc_filename on the "
        "Common Crawl data host; the payload digest in the locator checks it.",
    ),
    "local": (
        "The operator's own files (JSONL, Parquet or WARC) listed in `sources.local.paths`; rights as "
        "configured, or per row where the file gives them.",
        "The source_uri (the page or article the row came from); the locator names the file and row.",
    ),
    "kokkai": (
        "The National Diet Library's Diet minutes API (国会会議録検索システム, /meeting, one request at a "
        "time) or its answers saved earlier; one document per meeting or per speech, never per speaker.",
        "The request URL in the locator (requestURLs), which returns the same meeting record.",
    ),
    "egov": (
        "e-Gov laws (法令API v2 /laws and /law_data, or the bulk-download ZIP) as 法令標準XML, "
        "turned into text with its structure as lines.",
        "The e-Gov API's /law_data/<law_revision_id> (the source_uri).",
    ),
    "gov_web": (
        "Pages of government hosts (`sources.gov_web.domains`) that arrived through Common Crawl or a "
        "local WARC; PDL 1.0 and 政府標準利用規約 pages are open, the rest keep their source's rights.",
        "As for the source it came through (the locator's `via`): a Common Crawl Range request or the page.",
    ),
    "synthetic": (
        "Text written by an openly licensed model through an OpenAI-compatible server, from recipes "
        "(prompt templates) and seed documents; rights inherited from the model and the seeds.",
        "Regenerate: the locator records model, revision, recipe and prompt hashes, seed, sampling and the "
        "conditioning documents' ids.",
    ),
}


def write_datacard(run_dir: str, out_dir: str, summary: dict[str, Any] | None = None) -> dict[str, str]:
    """DATACARD.md, croissant.json and document-listing.csv in `out_dir`; returns their paths.
    `summary` is summarize(run_dir) when the caller has it already (the audit does)."""
    run_dir, out_dir = run_dir.rstrip("/"), out_dir.rstrip("/")
    config = _resolved_config(run_dir)
    summary = summary if summary is not None else summarize(run_dir)
    facts = {
        "config": config,
        "summary": summary,
        "fetched": _fetched_by_source(run_dir),
        "classifiers": _classifiers(run_dir, config),
        "tokenizer": _tokenizer_metadata(run_dir),
        "pii": _pii_masked(run_dir),
    }
    paths = {
        "listing": f"{out_dir}/{LISTING}",
        "card": f"{out_dir}/{CARD}",
        "croissant": f"{out_dir}/{CROISSANT}",
    }
    facts["listing_classes"] = write_listing(run_dir, paths["listing"])
    atomic_write_bytes(paths["card"], card_markdown(run_dir, facts).encode("utf-8"))
    doc = croissant_document(run_dir, facts, paths["listing"])
    atomic_write_bytes(
        paths["croissant"], (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    )
    return paths


# -- facts read from the run ---------------------------------------------------------------------


def _resolved_config(run_dir: str) -> dict[str, Any]:
    fs, path = filesystem(f"{run_dir}/{RESOLVED_CONFIG}")
    if not fs.exists(path):
        raise FileNotFoundError(f"{run_dir}: no {RESOLVED_CONFIG} (not a pipeline run directory)")
    with fs.open(path, "rb") as f:
        return yaml.safe_load(f.read()) or {}


def _fetched_by_source(run_dir: str) -> dict[str, int]:
    counts: Counter = Counter()
    for shard in done_shards(run_dir, FIRST_STAGE):
        counts.update(
            read_parquet(manifest_path(run_dir, FIRST_STAGE, shard), ["source"]).column("source").to_pylist()
        )
    return dict(sorted(counts.items()))


def _config_base_dir(run_dir: str) -> str | None:
    try:
        return (read_run_hashes(run_dir) or {}).get("config_base_dir")
    except RunHashesError:
        return None


def _classifiers(run_dir: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    """Each configured classifier with its keep rules and, when its directory is found, its metadata."""
    base = _config_base_dir(run_dir)
    found = []
    for entry in (config.get("quality") or {}).get("classifiers") or []:
        model = str(entry.get("model") or "")
        path = Path(model) if Path(model).is_absolute() or base is None else Path(base) / model
        meta_file = path / "metadata.json"
        item = {"config": entry, "metadata": None, "metadata_path": str(meta_file)}
        if meta_file.is_file():
            item["metadata"] = json.loads(meta_file.read_text(encoding="utf-8"))
        found.append(item)
    return found


def _tokenizer_metadata(run_dir: str) -> dict[str, Any]:
    for shard in done_shards(run_dir, FINAL_STAGE):
        fs, path = filesystem(docs_path(run_dir, FINAL_STAGE, shard))
        meta = pq.read_schema(path, filesystem=fs).metadata or {}
        if TOKENIZER_METADATA in meta:
            return json.loads(meta[TOKENIZER_METADATA])
    return {}


def _pii_masked(run_dir: str) -> dict[str, int]:
    """Personal information masked in the training documents, per type (`pii:<type>` decisions)."""
    counts: Counter = Counter()
    for shard in done_shards(run_dir, FINAL_STAGE):
        table = read_parquet(manifest_path(run_dir, FINAL_STAGE, shard), ["decisions", "included"])
        for decisions, inc in zip(
            table.column("decisions").to_pylist(), table.column("included").to_pylist()
        ):
            for d in decisions if inc else []:
                if d["check"].startswith("pii:"):
                    counts[d["check"][4:]] += int(d["value"] or 0)
    return dict(sorted(counts.items()))


# -- the card ------------------------------------------------------------------------------------


def _yaml_block(value: Any) -> list[str]:
    return ["```yaml", yaml.safe_dump(value, allow_unicode=True, sort_keys=True).rstrip(), "```"]


def _without_nulls(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and not isinstance(v, dict)}


def _enabled_sources(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        k: v for k, v in (config.get("sources") or {}).items() if isinstance(v, dict) and v.get("enabled")
    }


def card_markdown(run_dir: str, facts: dict[str, Any]) -> str:
    config, summary = facts["config"], facts["summary"]
    included = summary["included_by"].get("source", {})
    lines = [
        f"# Data card: {run_dir.rsplit('/', 1)[-1]}",
        "",
        "Generated from the run's manifests and resolved config (manifests/datacard.py). This is the "
        "data information the Open Source AI Definition asks for: what the training data is, how each "
        "part was obtained and selected, every processing step with its parameters, and where a third "
        f"party obtains each document again (`{LISTING}`).",
        "",
        f"- documents fetched: {sum(facts['fetched'].values())}",
        f"- training documents: {summary['documents_included']}, tokens: {summary['tokens_included']}",
        f"- documents rejected with a reason: {summary['documents_rejected']}",
        "- training documents per OSAID class: "
        + ", ".join(f"{k} {v}" for k, v in sorted(facts["listing_classes"].items())),
        "",
        "## Sources",
        "",
        "| source | fetched | training documents | tokens |",
        "|---|---|---|---|",
    ]
    sources = sorted(set(facts["fetched"]) | set(included))
    lines += [
        f"| {s} | {facts['fetched'].get(s, 0)} | {included.get(s, {}).get('documents', 0)} | "
        f"{included.get(s, {}).get('tokens', 0)} |"
        for s in sources
    ]
    for name, settings in _enabled_sources(config).items():
        how, again = OBTAINED.get(name, ("(no description)", "The source_uri."))
        lines += [
            "",
            f"### {name}",
            "",
            f"How it was obtained: {how}",
            "",
            f"How to obtain a document again: {again}",
        ]
        lines += ["", "Selection and rights as configured:", ""]
        lines += _yaml_block({k: v for k, v in settings.items() if k != "http"})
    lines += ["", "## Filters and their thresholds", "", "### Extraction and opt-out", ""]
    lines += _yaml_block({k: config.get(k) for k in ("extract", "optout", "rights") if k in config})
    clean = config.get("clean") or {}
    profiles = sorted(k for k, v in clean.items() if isinstance(v, dict) and "min_letters" in v)
    lines += [
        "",
        "### Cleaning",
        "",
        f"Profiles per source: {clean.get('profiles')} (every other source: web).",
        "",
    ]
    lines += _yaml_block({k: v for k, v in clean.items() if k not in profiles})
    rules = sorted({rule for p in profiles for rule in clean[p]})
    lines += ["", "| rule | " + " | ".join(profiles) + " |", "|---|" + "---|" * len(profiles)]
    for rule in rules:
        values = [clean[p].get(rule) for p in profiles]
        if any(v is not None for v in values):
            lines.append(f"| {rule} | " + " | ".join("off" if v is None else str(v) for v in values) + " |")
    lines += ["", "## Deduplication", ""] + _yaml_block(config.get("dedup") or {})
    quality = config.get("quality") or {}
    lines += ["", "## Quality", ""] + _yaml_block({k: v for k, v in quality.items() if k != "classifiers"})
    for c in facts["classifiers"]:
        lines += _classifier_lines(c)
    lines += ["", "## Tokenizer", ""] + _yaml_block(
        {"shards": facts["tokenizer"], "config": _without_nulls(config.get("tokenize") or {})}
    )
    lines += [
        "",
        "## Rejected documents by stage and reason",
        "",
        "| stage | reason | documents |",
        "|---|---|---|",
    ]
    lines += [
        f"| {s} | {r} | {n} |" for s, kinds in summary["rejected_by_stage"].items() for r, n in kinds.items()
    ]
    lines += ["", "## Personal information", ""]
    lines.append(_pii_text(config, facts["pii"]))
    takedowns = summary["takedowns"] if isinstance(summary["takedowns"], list) else []
    lines += ["", "## Takedowns", ""]
    lines += [
        f"- {t['request_id']} ({t['requested_at']}): {t['kind']} {t['value']}, "
        f"{t['documents']} documents, {t['mode']}"
        for t in takedowns
    ] or ["None."]
    return "\n".join(lines) + "\n"


def _classifier_lines(c: dict[str, Any]) -> list[str]:
    entry, meta = c["config"], c["metadata"]
    lines = ["", f"### Classifier {entry.get('name')} v{entry.get('version')}", ""]
    rules = {k: entry.get(k) for k in ("min_score", "max_score", "top_fraction_per_source")}
    lines.append(
        f"Model SHA-256 {entry.get('sha256')}; keep rules {rules}"
        + (" (measured only)" if all(v is None for v in rules.values()) else "")
        + "."
    )
    if meta is None:
        return lines + ["", f"Its metadata was not found at {c['metadata_path']}."]
    training = meta.get("training_data") or {}
    lines += ["", f"Features {meta.get('features')}; score: {meta.get('score')}. Training data:", ""]
    lines += [
        f"- {s.get('label')}: {s.get('documents')} documents from {s.get('path')} (SHA-256 {s.get('sha256')})"
        for s in training.get("sources") or []
    ]
    lines += ["", "Training split and validation:", ""]
    lines += _yaml_block(
        {
            "train": training.get("train"),
            "validation": meta.get("validation"),
            "hyperparameters": meta.get("hyperparameters"),
        }
    )
    return lines


def _pii_text(config: dict[str, Any], pii: dict[str, int]) -> str:
    masked = (config.get("clean") or {}).get("mask_pii")
    found = ", ".join(f"{k} {v}" for k, v in pii.items()) or "none found"
    return (
        "Web pages and Diet minutes name people (public figures in the minutes; possibly private persons "
        "on the web). "
        + (
            "E-mail addresses, phone numbers, postal codes, My Numbers, card numbers and IP addresses are "
            "replaced by typed placeholders in the kept documents"
            if masked
            else "PII masking was off"
        )
        + f"; masked in the training documents: {found}."
    )


# -- Croissant -----------------------------------------------------------------------------------


def croissant_document(run_dir: str, facts: dict[str, Any], listing_path: str) -> dict[str, Any]:
    config, summary = facts["config"], facts["summary"]
    try:
        files = (read_run_hashes(run_dir) or {}).get("files") or {}
    except RunHashesError:
        files = {}
    shards = [f"{FINAL_STAGE}/{s}.parquet" for s in done_shards(run_dir, FINAL_STAGE)]
    shard_files = [(p, (files.get(p) or {}).get("sha256")) for p in shards]
    fs, path = filesystem(listing_path)
    with fs.open(path, "rb") as f:
        listing_sha = sha256_hex(f.read())
    included = summary["included_by"]
    sources = _enabled_sources(config)
    unlicensed = included.get("license", {}).get("NOASSERTION", {}).get("documents", 0)
    requests = len(summary["takedowns"]) if isinstance(summary["takedowns"], list) else 0
    rai = {
        "rai:dataCollection": " ".join(
            f"{name}: {OBTAINED.get(name, ('',))[0]} {facts['fetched'].get(name, 0)} documents fetched."
            for name in sources
        ),
        "rai:dataCollectionType": ["Web Scraping", "Secondary Data Analysis"]
        + (["Software Collection"] if "synthetic" in sources else []),
        "rai:dataPreprocessingProtocol": _preprocessing(config, facts),
        "rai:dataManipulationProtocol": (
            "Text normalised (ja_nfkc_v2: NFKC keeping dakuten), boilerplate lines trimmed, personal "
            "information masked with typed placeholders, documents longer than the token maximum split "
            "on line boundaries; every transform is recorded per document in the provenance manifests."
        ),
        "rai:dataLimitations": (
            "Japanese text only. Web documents are used under Japanese Copyright Act Art. 30-4 "
            f"(licence NOASSERTION for {unlicensed} "
            "training documents): they are listed by locator, not redistributed as text. Sources change and "
            "disappear, so a locator may stop resolving (`audit --verify-sample` measures it). Heuristic "
            "filters reject some good text and keep some bad text."
        ),
        "rai:dataBiases": (
            "Cleaning thresholds follow Swallow and LLM-jp, tuned for formal written Japanese; informal "
            "and dialect text is rejected more often. Laws and Diet minutes are kept over web copies by "
            "the dedup policy. Quality classifiers learn what their positive examples look like "
            "(see the data card for their training data)."
        ),
        "rai:personalSensitiveInformation": _pii_text(config, facts["pii"]),
        "rai:dataUseCases": (
            "Pre-training Japanese language models; corpus statistics and provenance research."
        ),
        "rai:dataSocialImpact": (
            "Opt-out signals (TDMRep, noai, block and takedown lists) were honoured as configured and are "
            "recorded per document; takedown requests remove documents from the tokenized shards."
        ),
        "rai:dataReleaseMaintenance": (
            "Takedowns: `python -m pipeline takedown RUN_DIR --url|--domain|--doc-id`; requests so far: "
            f"{requests} (takedowns.jsonl). "
            "The card, listing and this file are regenerated from the run after each change."
        ),
    }
    licenses = sorted(included.get("license", {}))
    listing_rel = listing_path.rsplit("/", 1)[-1]
    return croissant(
        name=run_dir.rsplit("/", 1)[-1],
        description=(
            f"Japanese pre-training corpus: {summary['documents_included']} documents, "
            f"{summary['tokens_included']} tokens, from {', '.join(sources)}."
        ),
        rai=rai,
        shard_files=shard_files,
        listing=(listing_rel, listing_sha),
        license_ids=licenses,
    )


def _preprocessing(config: dict[str, Any], facts: dict[str, Any]) -> list[str]:
    dedup = config.get("dedup") or {}
    tok = facts["tokenizer"]
    steps = [
        "Extraction: trafilatura (preset "
        f"{(config.get('extract') or {}).get('trafilatura_preset')}) after a Japanese pre-selection; "
        "opt-out and rights signals recorded before any boilerplate removal.",
        "Cleaning: Japanese rule profiles per source (thresholds in the data card), fastText language id.",
        f"Deduplication: exact SHA-256 of normalised text ({dedup.get('exact')}) and MinHash LSH on "
        "character "
        f"{dedup.get('shingle_size')}-grams, {dedup.get('bands')} bands x {dedup.get('rows')} rows; survivor "
        f"policy {dedup.get('policy')}.",
        f"Quality: hiragana fraction >= {(config.get('quality') or {}).get('min_hiragana_fraction')}; "
        "classifiers "
        + ", ".join(f"{c['config'].get('name')} v{c['config'].get('version')}" for c in facts["classifiers"])
        + ".",
        f"Tokenization: {tok.get('kind')} {tok.get('name')} (SHA-256 {tok.get('sha256')}), vocabulary "
        f"{tok.get('vocab_size')}, EOS id {tok.get('eos_id')}, BOS id {tok.get('bos_id')}.",
    ]
    return steps


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m manifests.datacard RUN_DIR OUT_DIR")
    for kind, written in write_datacard(sys.argv[1], sys.argv[2]).items():
        print(f"{kind}: {written}")
