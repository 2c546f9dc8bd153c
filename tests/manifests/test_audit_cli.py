"""`python -m pipeline audit` exit codes: 0 clean, 1 violations, 2 unusable input (one line)."""

from __future__ import annotations

import json

import pytest

from manifests.io import read_manifest, write_manifest

from .conftest import run_pipeline


def test_a_clean_run_exits_0_and_a_tampered_one_1(sample_run, run_copy):
    proc = run_pipeline("audit", str(sample_run), "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["ok"] is True

    path = run_copy / "tokenize" / "part-00005.manifest.parquet"  # the two laws
    table = read_manifest(str(path))
    write_manifest(
        str(path), table.drop_columns(["license"]).append_column("license", table.column("source"))
    )
    proc = run_pipeline("audit", str(run_copy))
    assert proc.returncode == 1
    assert "verdict: FAIL" in proc.stdout and "licence 'egov' is not allowed for source 'egov'" in proc.stdout


@pytest.mark.parametrize(
    ("policy_text", "message"),
    [
        ("sources: [unclosed", "not valid YAML"),
        ("osaid_classes: [open]\nlicences: []\n", "licences: unknown key"),
        ("osaid_classes: [free]\n", "osaid_classes: unknown value 'free'"),
    ],
)
def test_a_bad_policy_file_exits_2_with_one_line(sample_run, tmp_path, policy_text, message):
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text, encoding="utf-8")
    proc = run_pipeline("audit", str(sample_run), "--policy", str(policy))
    assert proc.returncode == 2 and proc.stdout == ""
    assert (
        proc.stderr.count("\n") == 1
        and proc.stderr.startswith(f"error: {policy}: ")
        and message in proc.stderr
    )


def test_unusable_runs_exit_2(run_copy, tmp_path):
    proc = run_pipeline("audit", str(tmp_path / "nothing"))
    assert proc.returncode == 2 and "no such run directory" in proc.stderr

    (run_copy / "takedowns.jsonl").write_text('{"request_id": "td-1", "kind": "page", "value": "x"}\n')
    proc = run_pipeline("audit", str(run_copy))
    assert (
        proc.returncode == 2
        and "takedowns.jsonl: line 1: 'kind' must be one of url, domain, doc_id" in proc.stderr
    )

    (run_copy / "takedowns.jsonl").unlink()
    manifest = run_copy / "dedup" / "part-00003.manifest.parquet"
    manifest.write_bytes(b"not parquet" + manifest.read_bytes()[11:])
    proc = run_pipeline("audit", str(run_copy))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert f"error: {manifest}: not a readable Parquet manifest" in proc.stderr
    assert proc.stderr.rstrip().endswith("its bytes differ from run_manifest.json")
