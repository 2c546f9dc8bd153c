"""Config and paths (issue 13): YAML is loaded safely and no config value runs code; names that
come from input never lead a file out of the run directory; a manifest of an unknown major
schema version is refused by every reader."""

from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from manifests.io import (
    ManifestError,
    atomic_write_json,
    atomic_write_parquet,
    manifest_table,
    read_manifest,
    write_manifest,
)
from manifests.layout import docs_path, manifest_path, raw_path, stage_stats_path
from manifests.schema import doc_id, new_row
from pipeline.config import ConfigError, load_config
from pipeline.shards import run_shard
from pipeline.stage import RunContext, ShardSpec, read_input
from pipeline.stages.fetch import FetchStage
from sources.commoncrawl_fetch import fetch_records
from sources.commoncrawl_index import IndexRecord
from sources.http_client import HttpClient

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("pipeline", "sources", "filters", "manifests")
JA = (REPO / "tests" / "data" / "hostile" / "ja_text.txt").read_text(encoding="utf-8")


def pipeline(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


# -- YAML and code from config ------------------------------------------------------------------

PYTHON_TAGS = {
    "object/apply": "sources: !!python/object/apply:os.system ['touch {marker}']\n",
    "object/new": "sources: !!python/object/new:subprocess.Popen [['touch', '{marker}']]\n",
    "name": "clean:\n  language: !!python/name:os.system\n",
}


@pytest.mark.parametrize("tag", PYTHON_TAGS)
def test_a_python_tag_in_a_config_file_is_refused_with_exit_2_and_runs_nothing(tag, tmp_path):
    marker = tmp_path / "PWNED"
    config = tmp_path / "evil.yaml"
    config.write_text(PYTHON_TAGS[tag].format(marker=marker), encoding="utf-8")
    run_dir = tmp_path / "run"
    proc = pipeline("run", "--config", str(config), "--run-dir", str(run_dir))
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and "evil.yaml: not valid YAML" in line and "python/" in line
    assert not marker.exists() and not run_dir.exists()


def test_a_python_tag_in_a_set_override_is_refused_with_exit_2(tmp_path):
    marker = tmp_path / "PWNED"
    proc = pipeline(
        "run",
        "--run-dir",
        str(tmp_path / "run"),
        "--set",
        f"clean.language=!!python/object/apply:os.system ['touch {marker}']",
    )
    assert proc.returncode == 2 and "clean.language: value" in proc.stderr and "not valid YAML" in proc.stderr
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_load_config_refuses_python_tags_in_process(tmp_path):
    config = tmp_path / "evil.yaml"
    config.write_text("clean: !!python/object/apply:builtins.print ['ran']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(config)


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = (
                func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            )
            yield owner, name, node


def test_no_code_loads_yaml_unsafely_or_evaluates_strings():
    offences = []
    files = [p for package in PACKAGES for p in (REPO / package).rglob("*.py")]
    assert len(files) > 50
    for path in files:
        for owner, name, node in _calls(path):
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            if owner == "yaml" and name not in ("safe_load", "safe_dump", "safe_load_all", "YAMLError"):
                offences.append(f"{where}: yaml.{name}")
            if owner == "" and name in ("eval", "exec", "compile", "__import__"):
                offences.append(f"{where}: {name}()")
            if owner in ("pickle", "marshal", "dill") and name.startswith("load"):
                offences.append(f"{where}: {owner}.{name}")
            if owner == "importlib" and name == "import_module":
                offences.append(f"{where}: importlib.import_module")
    assert offences == []


# -- names from input -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["../../etc/cron.d/x", "/etc/passwd", "a/b", "..", "", "x\x00y", "ｘ"])
def test_an_api_id_cannot_name_a_file_outside_the_raw_store(key, tmp_path):
    with pytest.raises(ValueError, match="cannot name a file"):
        raw_path(str(tmp_path), "kokkai", key)


def test_real_ids_name_files_in_the_raw_store(tmp_path):
    for source, key in (
        ("kokkai", "121905261X00320240301"),
        ("egov", "405AC0000000088_20240401_505AC0000000047"),
    ):
        path = Path(raw_path(str(tmp_path), source, key))
        assert path.parent == tmp_path / "fetch" / "raw" / source


@pytest.mark.parametrize(
    "warc_filename, why",
    [
        ("crawl-data/../../admin/secrets.warc.gz", "has a '..' segment"),
        ("../outside.warc.gz", "has a '..' segment"),
        ("/etc/passwd", "is an absolute path or URL"),
        ("http://elsewhere.example/x.warc.gz", "is an absolute path or URL"),
    ],
)
def test_an_index_warc_filename_that_leaves_the_data_host_is_rejected_unfetched(
    cc_server, warc_filename, why
):
    record = IndexRecord.from_dict(
        {"url": "https://example.jp/", "warc_filename": warc_filename, "offset": 0, "length": 100}
    )
    with HttpClient(timeout_seconds=5.0) as client:
        [(_, error)] = list(fetch_records(client, cc_server.url, [record], concurrency=1))
    assert error.reason == "bad_request" and why in error.problem
    assert cc_server.requests == []  # nothing was asked for


def _warc_with_target_uris(uris: list[str]) -> bytes:
    out = io.BytesIO()
    writer = WARCWriter(out, gzip=True)
    for i, uri in enumerate(uris):
        body = f'<html lang="ja"><head><title>小さい花</title></head><body><p>{JA[:300]}</p></body></html>'
        body = body.encode()
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
        writer.write_record(
            writer.create_warc_record(
                uri,
                "response",
                payload=io.BytesIO(body),
                http_headers=http,
                warc_headers_dict={"WARC-Date": "2024-05-18T01:58:10Z", "WARC-Record-ID": f"<urn:uuid:{i}>"},
            )
        )
    return out.getvalue()


def test_hostile_target_uris_and_warc_paths_write_only_inside_the_run_directory(tmp_path):
    # Target URIs are data: they go into the manifest as they are and never into a path.
    uris = [
        "http://example.jp/../../../../etc/passwd",
        "file:///etc/passwd",
        "http://example.jp/%2e%2e/%2e%2e/x",
    ]
    inputs = tmp_path / "in" / "sub"
    inputs.mkdir(parents=True)
    (tmp_path / "in" / "..evil.warc.gz").write_bytes(_warc_with_target_uris(uris))
    warc = f"{inputs}/../..evil.warc.gz"  # a path given by the user may climb: it is theirs
    run_dir = tmp_path / "run"
    before = set(tmp_path.rglob("*"))
    config = load_config(
        None,
        [
            f"sources.commoncrawl.warc_urls=[{warc}]",
            "sources.local.enabled=false",
            "sources.kokkai.enabled=false",
            "sources.egov.enabled=false",
        ],
    )
    # The fetch stage as a worker runs it (without Ray: the paths are the stage's, not Ray's).
    stage = FetchStage(RunContext(str(run_dir), config, config.sha256(), "test"))
    stage.setup()
    for shard in stage.plan():
        run_shard(stage, shard)
    atomic_write_json(stage_stats_path(str(run_dir), "fetch"), {})
    created = set(tmp_path.rglob("*")) - before
    assert created and all(p == run_dir or run_dir in p.parents for p in created)
    names = {p.name for p in (run_dir / "fetch").iterdir()}
    assert {"part-00000.parquet", "part-00000.manifest.parquet", "stats.json"} <= names
    manifest = read_manifest(str(run_dir / "fetch" / "part-00000.manifest.parquet"))
    # The file: record carries no HTTP response, so it is skipped like a request record.
    assert manifest.column("source_uri").to_pylist() == [uris[0], uris[2]]


# -- manifests of an unknown schema version -------------------------------------------------------


def _fetch_shard(run_dir: Path, version: bytes) -> ShardSpec:
    row = new_row(
        doc_id=doc_id("local", "chiisai-hana"),
        source="local",
        source_uri="https://example.jp/chiisai-hana",
        locator=json.dumps({"id": "chiisai-hana"}),
        license="NOASSERTION",
        legal_basis=["JP-Copyright-Art30-4"],
        osaid_class="public",
        redistribution="locator_only",
        optout="{}",
        pipeline_version="test",
        config_sha256="test",
    )
    docs = pa.table({"doc_id": [row["doc_id"]], "source": ["local"], "url": [None], "text": [JA]})
    atomic_write_parquet(docs_path(str(run_dir), "fetch", "part-00000"), docs)
    table = manifest_table([row])
    write_manifest(manifest_path(str(run_dir), "fetch", "part-00000"), table)
    path = manifest_path(str(run_dir), "fetch", "part-00000")
    if version != b"1.1":  # rewritten as a writer of that version would have written it
        atomic_write_parquet(
            path, read_manifest(path).replace_schema_metadata({b"manifest_version": version})
        )
    atomic_write_json(stage_stats_path(str(run_dir), "fetch"), {})
    return ShardSpec(0, {"docs": docs_path(str(run_dir), "fetch", "part-00000"), "manifest": path})


def test_a_stage_refuses_an_input_manifest_of_an_unknown_major_version(tmp_path):
    shard = _fetch_shard(tmp_path, b"2.0")
    with pytest.raises(
        ManifestError,
        match=r"part-00000\.manifest\.parquet: manifest schema version 2\.0 is not "
        r"supported \(this reader understands 1\.x\)",
    ):
        read_input(shard)


def test_a_newer_minor_version_is_read_by_a_stage(tmp_path):
    table, rows = read_input(_fetch_shard(tmp_path, b"1.9"))
    assert table.num_rows == 1 and rows[0]["source_uri"] == "https://example.jp/chiisai-hana"
