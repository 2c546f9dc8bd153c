"""The OSAID data information of a real run of the bundled sample: a Croissant JSON-LD file with the
RAI fields whose figures and hashes are the run's, a listing that holds every training document
with where to obtain it, and a card that states the filters, dedup, classifier and tokenizer used."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import yaml

from manifests.croissant import RAI_KEYS
from manifests.datacard import write_datacard
from pipeline.takedown import take_down

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(sample_run) -> Path:
    """The audit tests' finished sample run (tests/manifests/conftest.py): read, never changed."""
    return sample_run


@pytest.fixture(scope="module")
def card(sample_run, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("card")
    return {k: Path(v) for k, v in write_datacard(str(sample_run), str(out)).items()}


def included(run: Path) -> pl.DataFrame:
    final = pl.read_parquet(sorted((run / "tokenize").glob("part-?????.manifest.parquet")))
    return final.filter(pl.col("included"))


def listing(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_croissant_is_json_ld_with_the_context_rai_fields_and_the_runs_hashes(run, card):
    doc = json.loads(card["croissant"].read_text(encoding="utf-8"))
    context = doc["@context"]
    assert context["@vocab"] == "https://schema.org/" and context["cr"] == "http://mlcommons.org/croissant/"
    assert (
        context["rai"] == "http://mlcommons.org/croissant/RAI/" and context["conformsTo"] == "dct:conformsTo"
    )
    assert doc["@type"] == "sc:Dataset" and "http://mlcommons.org/croissant/1.0" in doc["conformsTo"]
    for key in ("name", "description", "license", "url", "distribution", "recordSet"):
        assert doc[key], key
    for key in RAI_KEYS:
        assert doc[key], key
    final = included(run)
    assert f"{final.height} documents, {final['num_tokens'].sum()} tokens" in doc["description"]
    assert sorted(doc["license"]) == sorted(set(final["license"]))
    files = {d["contentUrl"]: d.get("sha256") for d in doc["distribution"] if d["@type"] == "cr:FileObject"}
    shards = sorted((run / "tokenize").glob("part-?????.parquet"))
    for shard in shards:
        assert files[f"tokenize/{shard.name}"] == hashlib.sha256(shard.read_bytes()).hexdigest()
    assert files["document-listing.csv"] == hashlib.sha256(card["listing"].read_bytes()).hexdigest()
    fields = {f["name"] for f in doc["recordSet"][0]["field"]}
    assert fields == set(pl.read_parquet_schema(shards[0])) - {"input_ids"}  # every column described
    assert (
        "kokkai: " in doc["rai:dataCollection"]
        and "masked in the training documents" in doc["rai:personalSensitiveInformation"]
    )


def test_the_listing_holds_every_training_document_with_where_to_obtain_it(run, card):
    rows = {r["doc_id"]: r for r in listing(card["listing"])}
    final = included(run)
    assert set(rows) == set(final["doc_id"]) and len(rows) == final.height
    for doc in final.iter_rows(named=True):
        row = rows[doc["doc_id"]]
        assert (row["source_uri"], row["license"], row["osaid_class"]) == (
            doc["source_uri"],
            doc["license"],
            doc["osaid_class"],
        )
        assert json.loads(row["locator"]) == json.loads(doc["locator"])
    laws = [r for r in rows.values() if r["source"] == "egov"]
    assert laws and all(json.loads(r["locator"])["law_revision_id"] in r["source_uri"] for r in laws)


def test_the_card_states_counts_filters_dedup_classifier_and_tokenizer(run, card):
    text = card["card"].read_text(encoding="utf-8")
    config = yaml.safe_load((run / "config.resolved.yaml").read_text(encoding="utf-8"))
    final = included(run)
    assert f"training documents: {final.height}, tokens: {final['num_tokens'].sum()}" in text
    kokkai = final.filter(pl.col("source") == "kokkai")
    assert f"| kokkai | 4 | {kokkai.height} | {kokkai['num_tokens'].sum()} |" in text
    web, law = config["clean"]["web"], config["clean"]["law"]
    assert (
        f"| min_letters | {config['clean']['diet']['min_letters'] or 'off'} | {law['min_letters'] or 'off'} |"
        in text
    )
    assert f" {web['min_letters']} |" in text.split("| min_letters |")[1].splitlines()[0]
    assert (
        f"bands: {config['dedup']['bands']}" in text
        and f"shingle_size: {config['dedup']['shingle_size']}" in text
    )
    metadata = json.loads((REPO / "filters/classifiers/data/wikilike_v1/metadata.json").read_text())
    for source in metadata["training_data"]["sources"]:
        assert f"- {source['label']}: {source['documents']} documents from {source['path']}" in text
    assert "f1: 0.9744" in text and "(measured only)" in text
    assert (
        "sha256: f3907dacc84f5aa53304063e73ce9fbc601acf173bad706793707a4f54dc5a6e" in text
    )  # the LLM-jp tokenizer


def test_after_a_takedown_the_listing_leaves_out_the_documents_and_the_card_lists_the_request(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    outcome = take_down(str(copy), "domain", "go.jp", "行政からの依頼")
    paths = write_datacard(str(copy), str(tmp_path / "card"))
    rows = {r["doc_id"] for r in listing(Path(paths["listing"]))}
    assert rows == set(included(copy)["doc_id"]) and not rows & set(outcome.doc_ids)
    text = Path(paths["card"]).read_text(encoding="utf-8")
    assert (
        f"{outcome.request_id} " in text
        and f"domain go.jp, {len(outcome.doc_ids)} documents, rewrite" in text
    )
