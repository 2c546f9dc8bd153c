"""The audit on the bundled sample: a clean run passes, and each kind of tampering with a copy of
it is found, with the document, file and row and the message a reviewer reads."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from manifests.audit import audit_run
from manifests.audit_locators import locator_problems
from manifests.audit_policy import DEFAULT_POLICY, load_policy, policy_problems
from manifests.io import read_manifest, write_manifest
from manifests.run_hashes import RUN_MANIFEST
from pipeline.stages.tokenize_takedown import drop_documents
from pipeline.tokenizer_models import load_tokenizer

from .conftest import run_pipeline


def audit(run, **options):
    return audit_run(str(run), load_tokenizer=load_tokenizer, **options)


def found(report, check: str) -> list[tuple]:
    return [(v.doc_id, v.file, v.row, v.message) for v in report.violations if v.check == check]


def final_rows(run, source: str | None = None) -> list[dict]:
    """Included documents of the final manifests with the manifest file and row."""
    rows = []
    for path in sorted((run / "tokenize").glob("part-?????.manifest.parquet")):
        for i, row in enumerate(read_manifest(str(path)).to_pylist()):
            if row["included"] and (source is None or row["source"] == source):
                rows.append(row | {"manifest_file": str(path), "manifest_row": i})
    return rows


def set_value(path, row: int, column: str, value) -> None:
    table = read_manifest(str(path))
    values = table.column(column).to_pylist()
    values[row] = value
    index = table.schema.get_field_index(column)
    write_manifest(
        str(path), table.set_column(index, column, pa.array(values, table.schema.field(column).type))
    )


def test_the_bundled_sample_audits_clean_with_every_text_decoded(sample_run):
    report = audit(sample_run)
    assert report.ok and report.violations == [], report.violations
    included = final_rows(sample_run)
    assert report.documents_included == len(included) > 50
    assert report.tokens_included == sum(r["num_tokens"] for r in included)
    listed = [
        p
        for p in sample_run.rglob("*")
        if p.is_file()
        and p.name != RUN_MANIFEST
        and not p.relative_to(sample_run).as_posix().startswith(("dedup/work/", "audit/"))
    ]
    assert report.integrity["run_manifest"] == "checked"
    assert report.integrity["files_checked"] == len(listed)
    assert report.integrity["documents_decoded"] == len(included)
    assert report.policy_file.endswith("configs/audit_policy.yaml")
    assert {r["source"] for r in included} >= {"kokkai", "egov", "gov_web", "local"}


def test_a_changed_token_is_found_with_its_document_shard_and_row(run_copy):
    shard = run_copy / "tokenize" / "part-00004.parquet"
    table = pq.read_table(shard)
    ids = table.column("input_ids").to_pylist()
    ids[1][100] = ids[1][100] + 1  # one token of the second Diet meeting
    changed = table.set_column(
        table.schema.get_field_index("input_ids"),
        "input_ids",
        pa.array(ids, table.schema.field("input_ids").type),
    )
    pq.write_table(changed, shard)
    doc = table.column("doc_id")[1].as_py()
    report = audit(run_copy)
    integrity = found(report, "integrity")
    assert (None, "tokenize/part-00004.parquet", None) == integrity[0][:3]
    assert integrity[0][3].startswith("file changed since the run")
    (decoded,) = [v for v in integrity if v[0] == doc]
    assert decoded[1:3] == (str(shard), 1) and decoded[3].startswith("tokens decode to a different text")


def test_a_flipped_byte_anywhere_in_a_shard_fails_the_audit(run_copy):
    shard = run_copy / "tokenize" / "part-00001.parquet"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    report = audit(run_copy)
    assert not report.ok
    assert ("tokenize/part-00001.parquet", True) in [
        (v.file, v.message.startswith("file changed")) for v in report.violations
    ]


def test_a_deleted_manifest_row_leaves_a_document_unaccounted_for_and_a_row_unexplained(run_copy):
    victim = final_rows(run_copy, "egov")[0]
    path = victim["manifest_file"]
    table = read_manifest(path)
    write_manifest(path, table.filter(pc.not_equal(table.column("doc_id"), victim["doc_id"])))
    report = audit(run_copy)
    assert (victim["doc_id"], None, None, "fetched but neither in the final shards nor rejected") in found(
        report, "conservation"
    )
    shard = run_copy / victim["shard"]
    assert (
        victim["doc_id"],
        str(shard),
        victim["row"],
        "row of a document with no manifest row (an added row)",
    ) in (found(report, "integrity"))


def test_a_dropped_and_an_added_shard_row_are_found(run_copy):
    victim = final_rows(run_copy, "local")[3]
    prefix = str(run_copy / victim["shard"]).removesuffix(".parquet")
    drop_documents(prefix, {victim["doc_id"]}, prefix + "-new")
    shutil.move(prefix + "-new.parquet", prefix + ".parquet")
    # And a row of a document nobody fetched, appended at the end of the same shard.
    table = pq.read_table(prefix + ".parquet")
    extra = table.slice(0, 1).to_pylist()[0]
    end = table.column("token_end")[-1].as_py()
    extra |= {"doc_id": "f" * 32, "token_start": end, "token_end": end + extra["num_tokens"]}
    added = pa.concat_tables([table, pa.Table.from_pylist([extra], schema=table.schema)])
    pq.write_table(added.replace_schema_metadata(table.schema.metadata), prefix + ".parquet")
    report = audit(run_copy)
    integrity = found(report, "integrity")
    where = (victim["doc_id"], victim["manifest_file"], victim["manifest_row"])
    assert where + (f"included but has no row in {victim['shard']} (a dropped row)",) in integrity
    added_row = (
        "f" * 32,
        prefix + ".parquet",
        table.num_rows,
        "row of a document with no manifest row (an added row)",
    )
    assert added_row in integrity


@pytest.mark.parametrize(
    ("signal", "message"),
    [
        (
            {"tdmrep": {"effective": "reserved", "decided_by": "html-meta"}},
            "TDM reservation (tdmrep decided by html-meta)",
        ),
        ({"robots": {"noai": True}}, "noai/noml in robots directives"),
        ({"blocklist": {"match": "example.jp"}}, "a blocklist match"),
    ],
)
def test_an_included_document_with_an_opt_out_breaks_the_policy(run_copy, signal, message):
    victim = final_rows(run_copy, "gov_web")[0]
    optout = json.loads(victim["optout"])
    for name, values in signal.items():
        optout["signals"][name] = (optout["signals"][name] or {}) | values
    set_value(
        victim["manifest_file"], victim["manifest_row"], "optout", json.dumps(optout, ensure_ascii=False)
    )
    report = audit(run_copy)
    where = (victim["doc_id"], victim["manifest_file"], victim["manifest_row"])
    assert found(report, "policy") == [where + (f"included despite {message}",)]


def test_a_changed_licence_breaks_the_policy(run_copy):
    victim = next(r for r in final_rows(run_copy, "local") if r["license"] == "CC-BY-SA-4.0")
    set_value(victim["manifest_file"], victim["manifest_row"], "license", "LicenseRef-AllRightsReserved")
    report = audit(run_copy)
    where = (victim["doc_id"], victim["manifest_file"], victim["manifest_row"])
    assert found(report, "policy") == [
        where + ("licence 'LicenseRef-AllRightsReserved' is not allowed for source 'local'",)
    ]


def test_files_added_or_removed_after_the_run_are_found(run_copy):
    shutil.copy(run_copy / "tokenize" / "part-00000.parquet", run_copy / "tokenize" / "part-00099.parquet")
    (run_copy / "quality" / "part-00002.stats.json").unlink()
    report = audit(run_copy)
    assert found(report, "integrity") == [
        (None, "quality/part-00002.stats.json", None, "file listed in run_manifest.json is missing"),
        (
            None,
            "tokenize/part-00099.parquet",
            None,
            "file not listed in run_manifest.json (added after the run)",
        ),
    ]


def test_a_run_without_its_hashes_fails(run_copy):
    (run_copy / RUN_MANIFEST).unlink()
    report = audit(run_copy)
    assert report.integrity["run_manifest"] == "missing"
    assert [v.message.split(":")[0] for v in report.violations] == ["no run_manifest.json"]


def test_a_common_crawl_row_without_its_warc_coordinates_is_incomplete(run_copy):
    # The sample's Common Crawl record (an Aragonese page) is rejected by extract: its verdict row is there.
    for path in sorted((run_copy / "extract").glob("part-?????.manifest.parquet")):
        rows = read_manifest(str(path)).to_pylist()
        hits = [i for i, r in enumerate(rows) if r["source"] == "commoncrawl"]
        if hits:
            locator = json.loads(rows[hits[0]]["locator"])
            del locator["payload_digest"], locator["length"]
            set_value(path, hits[0], "locator", json.dumps(locator))
            break
    report = audit(run_copy)
    assert [(v[1], v[2], v[3]) for v in found(report, "completeness")] == [
        (str(path), hits[0], "locator lacks 'length' (Common Crawl record)"),
        (str(path), hits[0], "locator lacks 'payload_digest' (Common Crawl record)"),
    ]


def synthetic_locator(**changes) -> str:
    # The shape pipeline/stages/synthetic_fetch.py writes.
    locator = {
        "generator": {"model": "llm-jp/llm-jp-3-13b-instruct", "revision": "abc123", "license": "Apache-2.0"},
        "recipe": "rephrase_encyclopedic",
        "prompt_template_sha256": "9" * 64,
        "seed": 7,
        "conditioning_doc_ids": ["0aefe826f4d2425fe61f6353c2774a70"],
        "topic": None,
    }
    for key, value in changes.items():
        if key == "generator":
            locator["generator"] = value
        elif value is None:
            locator.pop(key)
        else:
            locator[key] = value
    return json.dumps(locator, ensure_ascii=False)


def test_synthetic_rows_need_the_generator_licence_and_conditioning_ids():
    assert locator_problems("synthetic", synthetic_locator()) == []
    assert locator_problems("synthetic", synthetic_locator(conditioning_doc_ids=[], topic="梅雨前線")) == []
    no_licence = synthetic_locator(generator={"model": "llm-jp/llm-jp-3-13b-instruct"})
    assert locator_problems("synthetic", no_licence) == [
        "locator lacks 'generator.license' (synthetic generator)"
    ]
    assert locator_problems("synthetic", synthetic_locator(conditioning_doc_ids=None)) == [
        "locator lacks 'conditioning_doc_ids' (synthetic text)"
    ]


def synthetic_row(locator: str, **changes) -> dict:
    row = {
        "doc_id": "1" * 32,
        "source": "synthetic",
        "source_uri": "http://gpu-node:8000/v1/chat/completions#request=ab",
        "locator": locator,
        "license": "Apache-2.0 AND CC-BY-SA-4.0",
        "legal_basis": ["JP-Copyright-Art30-4"],
        "osaid_class": "open",
        "optout": json.dumps({"signals": {"tdmrep": {"effective": "unset"}, "robots": {"noai": False}}}),
    }
    return row | changes


def test_the_default_policy_allows_listed_generators_only():
    policy = load_policy()
    assert policy_problems(policy, synthetic_row(synthetic_locator())) == []
    other = synthetic_locator(
        generator={"model": "meta-llama/Llama-2-7b-chat-hf", "license": "LicenseRef-Llama-2"}
    )
    assert policy_problems(policy, synthetic_row(other)) == [
        "generator 'meta-llama/Llama-2-7b-chat-hf' is not on the policy's allow-list"
    ]
    assert policy_problems(policy, synthetic_row(synthetic_locator(), osaid_class="unshareable")) == [
        "OSAID class 'unshareable' is not allowed"
    ]


def test_a_stricter_policy_names_every_document_it_refuses(run_copy, tmp_path):
    # A legal review that does not accept Copyright Act Art. 40(1) for Diet minutes, nor ipa.go.jp.
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    text = text.replace(
        "legal_bases: [JP-Copyright-Art30-4, JP-Copyright-Art40-1]", "legal_bases: [JP-Copyright-Art30-4]"
    )
    text = text.replace("blocked_domains: []", "blocked_domains: [ipa.go.jp]")
    text = text.replace("blocked_urls: []", "blocked_urls: ['HTTP://10E.ORG:80']")  # http://10e.org/
    strict = tmp_path / "strict.yaml"
    strict.write_text(text, encoding="utf-8")
    report = audit(run_copy, policy_file=str(strict))
    diet = {r["doc_id"] for r in final_rows(run_copy, "kokkai")}
    refused = {v[0] for v in found(report, "policy") if "JP-Copyright-Art40-1" in v[3]}
    assert refused == diet and len(diet) >= 3
    ipa = [v for v in found(report, "policy") if "blocked domain" in v[3]]
    assert [v[3] for v in ipa] == ["host www.ipa.go.jp is in blocked domain ipa.go.jp"]
    assert [v[3] for v in found(report, "policy") if "blocked by" in v[3]] == [
        "URL http://10e.org/ is blocked by the policy"
    ]


def test_megatron_shards_grouped_by_a_plan_are_checked_from_the_bin(run_copy):
    # The sample tokenized again into Megatron .bin/.idx (no input_ids in the Parquet rows), in
    # output shards grouped from several quality shards (tokenize/plan.json).
    shutil.rmtree(run_copy / "tokenize")
    (run_copy / "config.resolved.yaml").unlink()
    settings = ["--set", "tokenize.formats=[megatron]", "--set", "tokenize.shard_target_tokens=30000"]
    proc = run_pipeline("run", "--run-dir", str(run_copy), "--stage", "tokenize", *settings)
    assert proc.returncode == 0, proc.stderr
    assert (run_copy / "tokenize" / "plan.json").exists()
    report = audit(run_copy)
    assert report.ok, report.violations
    assert report.integrity["documents_decoded"] == report.documents_included > 50

    rows = pq.read_table(run_copy / "tokenize" / "part-00001.parquet")
    assert "input_ids" not in rows.column_names
    stream = np.fromfile(run_copy / "tokenize" / "part-00001.bin", np.int32)
    at = rows.column("token_start")[2].as_py() + 10
    stream[at] += 1
    stream.tofile(run_copy / "tokenize" / "part-00001.bin")
    report = audit(run_copy)
    (changed,) = [v for v in found(report, "integrity") if v[0] is not None]
    assert changed[:3] == (
        rows.column("doc_id")[2].as_py(),
        str(run_copy / "tokenize" / "part-00001.parquet"),
        2,
    )
    assert changed[3].startswith("tokens decode to a different text")
