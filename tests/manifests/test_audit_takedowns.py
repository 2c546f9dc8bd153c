"""A run after takedowns, as `python -m pipeline takedown` leaves it (takedowns.jsonl, manifest rows
excluded with `takedown:<request_id>`, tokenize/rejected/ rows, shards rewritten or masked, hashes
rewritten): the audit passes and lists the requests; a document a request names that is still
included is a policy violation."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq

from manifests.audit import audit_run
from manifests.io import read_manifest, write_manifest
from manifests.run_hashes import write_run_hashes
from pipeline.stages.tokenize_takedown import drop_documents
from pipeline.tokenizer_models import load_tokenizer


def included(run, source: str) -> list[dict]:
    rows = []
    for path in sorted((run / "tokenize").glob("part-?????.manifest.parquet")):
        rows += [
            r | {"manifest_file": str(path)} for r in read_manifest(str(path)).to_pylist() if r["included"]
        ]
    return [r for r in rows if r["source"] == source]


def log(run, request: dict) -> None:
    with open(run / "takedowns.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(request, ensure_ascii=False) + "\n")


def take_down(run, doc: dict, request_id: str, mode: str) -> None:
    """What the takedown command does to one document (issue 10B), done by hand."""
    prefix = str(run / doc["shard"]).removesuffix(".parquet")
    if mode == "rewrite":
        drop_documents(prefix, {doc["doc_id"]}, prefix + "-new")
        shutil.move(prefix + "-new.parquet", prefix + ".parquet")
    shard_ids = pq.read_table(prefix + ".parquet", columns=["doc_id"]).column("doc_id").to_pylist()
    first = {d: shard_ids.index(d) for d in dict.fromkeys(shard_ids)}
    table = read_manifest(doc["manifest_file"])
    rows = table.to_pylist()
    for row in rows:
        if row["doc_id"] == doc["doc_id"]:
            row.update(included=False, exclusion_reason=f"takedown:{request_id}", shard=None, row=None)
        elif row["included"]:
            row["row"] = first[row["doc_id"]]  # later rows moved up in a rewritten shard
    write_manifest(doc["manifest_file"], pa.Table.from_pylist(rows, schema=table.schema))
    rejected = run / "tokenize" / "rejected" / (prefix.rsplit("/", 1)[-1] + ".parquet")
    entry = {"doc_id": doc["doc_id"], "source": doc["source"], "reason": f"takedown:{request_id}"}
    entry |= {"detail": "takedown request", "text": None}
    old = pq.read_table(rejected).to_pylist() if rejected.exists() else []
    rejected.parent.mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist(old + [entry]), rejected)
    log(
        run,
        {
            "request_id": request_id,
            "requested_at": "2026-11-29T14:00:00+00:00",
            "kind": "url",
            "value": doc["source_uri"],
            "doc_ids": [doc["doc_id"]],
            "mode": mode,
            "shards": [doc["shard"]],
        },
    )
    write_run_hashes(str(run))


def test_a_rewritten_and_a_masked_takedown_pass_and_are_listed(run_copy):
    pages = included(run_copy, "local")
    take_down(run_copy, pages[2], "td-0001", "rewrite")
    take_down(run_copy, pages[-1], "td-0002", "mask")
    report = audit_run(str(run_copy), load_tokenizer=load_tokenizer)
    assert report.ok, report.violations
    assert report.documents_included == len(included(run_copy, "local")) + len(
        [r for s in ("kokkai", "egov", "gov_web") for r in included(run_copy, s)]
    )
    assert report.rejected_by_stage["tokenize"] == 2
    assert [
        (t["request_id"], t["kind"], t["value"], t["mode"], t["documents"]) for t in report.takedowns
    ] == [
        ("td-0001", "url", pages[2]["source_uri"], "rewrite", 1),
        ("td-0002", "url", pages[-1]["source_uri"], "mask", 1),
    ]


def test_a_document_a_takedown_names_that_is_still_included_is_a_violation(run_copy):
    page = included(run_copy, "gov_web")[0]  # https://www.ipa.go.jp/...
    log(
        run_copy,
        {"request_id": "td-0003", "kind": "domain", "value": "ipa.go.jp", "doc_ids": [], "mode": "rewrite"},
    )
    write_run_hashes(str(run_copy))
    report = audit_run(str(run_copy), load_tokenizer=load_tokenizer)
    assert [(v.check, v.doc_id, v.message) for v in report.violations] == [
        ("policy", page["doc_id"], "still included although takedown td-0003 names it")
    ]


def test_a_rewrite_takedown_whose_rows_stayed_in_the_shard_is_found(run_copy):
    page = included(run_copy, "local")[5]
    take_down(run_copy, page, "td-0004", "mask")
    lines = (run_copy / "takedowns.jsonl").read_text(encoding="utf-8").replace('"mask"', '"rewrite"')
    (run_copy / "takedowns.jsonl").write_text(lines, encoding="utf-8")
    write_run_hashes(str(run_copy))
    report = audit_run(str(run_copy), load_tokenizer=load_tokenizer)
    assert [(v.check, v.doc_id, v.message) for v in report.violations] == [
        (
            "integrity",
            page["doc_id"],
            "row of a document the manifest excludes (takedown:td-0004): still in the shard",
        )
    ]


def test_a_takedown_naming_a_url_in_another_spelling_still_names_the_document(run_copy):
    page = included(run_copy, "local")[0]
    scheme, rest = page["source_uri"].split("://", 1)
    host, _, path = rest.partition("/")
    port = {"http": 80, "https": 443}[scheme]
    respelled = f"{scheme.upper()}://{host.upper()}:{port}/{path}#top"  # the default port, a fragment
    request = {"request_id": "td-0004", "kind": "url", "value": respelled, "doc_ids": [], "mode": "rewrite"}
    log(run_copy, request)
    write_run_hashes(str(run_copy))
    report = audit_run(str(run_copy), load_tokenizer=load_tokenizer)
    assert [(v.check, v.doc_id, v.message) for v in report.violations] == [
        ("policy", page["doc_id"], "still included although takedown td-0004 names it")
    ]
