"""The CLI contract of DESIGN.md: commands, exit codes, one-line errors, nothing written on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import load_config

REPO = Path(__file__).resolve().parents[2]


def pipeline(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_stages_lists_the_stages_in_order():
    proc = pipeline("stages")
    assert proc.returncode == 0
    assert proc.stdout.split("\n") == ["fetch", "extract", "clean", "dedup", "quality", "tokenize", ""]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--set", "clean.web.min_chars=many"],
            "error: clean.web.min_chars: expected int | None, got str 'many'",
        ),
        (["--set", "clean.web.min_charz=10"], "error: clean.web.min_charz: unknown config key"),
        (["--stage", "cleanse"], "error: --stage cleanse: unknown stage"),
        (["--config", "no/such.yaml"], "error: no/such.yaml: cannot read config"),
    ],
)
def test_bad_usage_exits_2_with_one_line_and_writes_nothing(tmp_path, args, message):
    run_dir = tmp_path / "run"
    proc = pipeline("run", "--run-dir", str(run_dir), *args)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in proc.stderr
    assert not run_dir.exists()


def test_a_cluster_that_cannot_be_joined_exits_2_at_once_and_writes_nothing(tmp_path):
    import socket

    with socket.socket() as closed:  # a port nothing listens on: bound, never listening
        closed.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{closed.getsockname()[1]}"
        proc = pipeline("run", "--run-dir", str(tmp_path / "run"), "--ray-address", address)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: cannot join the Ray cluster at {address}")
    assert not (tmp_path / "run").exists()


def test_a_stage_without_its_input_exits_2_naming_the_missing_stage(tmp_path):
    run_dir = tmp_path / "run"
    proc = pipeline("run", "--run-dir", str(run_dir), "--stage", "dedup")
    assert proc.returncode == 2
    assert "stage 'dedup' needs the output of stage 'clean'" in proc.stderr
    assert not run_dir.exists()


def test_a_run_dir_is_not_reused_with_another_config(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    other = load_config(None, ["clean.web.min_chars=1"])  # the default config but for one key
    (run_dir / "config.resolved.yaml").write_text(other.to_yaml(), encoding="utf-8")
    proc = pipeline("run", "--run-dir", str(run_dir), "--stage", "fetch")
    assert proc.returncode == 2 and "different config" in proc.stderr and "clean.web.min_chars" in proc.stderr


def test_a_failing_stage_exits_3_naming_stage_shard_and_input_and_keeps_done_shards(tmp_path):
    # A JSON Lines file cut short in its second line: fetch must fail on that shard and say how to
    # resume. (A damaged WARC record is rejected instead, and the run goes on: test_hostile_input.py.)
    good = (REPO / "sample" / "wikipedia_ja.jsonl").read_text(encoding="utf-8").splitlines()
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text(good[0] + "\n" + good[1][:40] + "\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    proc = pipeline(
        "run",
        "--run-dir",
        str(run_dir),
        "--stage",
        "fetch",
        "--set",
        f"sources.local.paths=[{truncated}]",
        "--set",
        "runtime.num_cpus=1",
    )
    assert proc.returncode == 3, proc.stderr
    assert "stage 'fetch' failed on shard part-00001" in proc.stderr
    assert "truncated.jsonl" in proc.stderr and "rerun the same command" in proc.stderr
    assert (run_dir / "fetch" / "part-00000.manifest.parquet").exists()  # the good shard stays done
    assert not (run_dir / "fetch" / "part-00001.manifest.parquet").exists()
    assert not (run_dir / "fetch" / "stats.json").exists()


def test_audit_of_a_missing_directory_exits_2(tmp_path):
    proc = pipeline("audit", str(tmp_path / "nothing"))
    assert proc.returncode == 2 and "no such run directory" in proc.stderr


def test_audit_of_an_unfinished_run_fails(tmp_path):
    (tmp_path / "fetch").mkdir()
    proc = pipeline("audit", str(tmp_path))
    assert proc.returncode == 1 and "stage 'fetch' has not finished" in proc.stdout


def test_minhash_curve_prints_the_s_curve_of_known_and_given_bandings(capsys):
    from pipeline.cli import main

    assert main(["minhash-curve", "--jaccard", "0.7", "0.8", "0.9", "--bands", "16", "--rows", "8"]) == 0
    rows = {line.split(" | ")[0].strip("| "): line for line in capsys.readouterr().out.splitlines()}
    # 1 - (1 - J^r)^b by hand: Swallow 40 x 20 at 0.8: 0.8^20 = 0.01153, 0.98847^40 = 0.6289 -> 0.3711.
    assert rows["Swallow (char 5-grams)"].endswith("| 0.0314 | 0.3711 | 0.9944 |")
    assert rows["LLM-jp v4 (Sudachi word 5-grams)"].endswith("| 0.4362 | 0.8969 | 0.9998 |")
    assert rows["FineWeb-2"].endswith("| 0.5645 | 0.9235 | 0.9996 |")
    assert "16 x 8" in rows["--bands 16 --rows 8"]


@pytest.mark.parametrize("args", [["--bands", "20"], ["--bands", "0", "--rows", "5"], ["--jaccard", "1.5"]])
def test_minhash_curve_refuses_bad_arguments(args, capsys):
    from pipeline.cli import main

    assert main(["minhash-curve", *args]) == 2
    assert capsys.readouterr().err.startswith("error: ")
