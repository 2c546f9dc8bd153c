"""Kill tests: a Ray worker SIGKILLed in the middle of a shard of fetch, clean, dedup and tokenize,
and the driver (`python -m pipeline run`) SIGKILLed while a worker is half way through committing a
shard. After `run` again, every file of the run is what the fault-free baseline run made (byte for
byte, but for the wall-time fields listed in run_compare.py), the audit passes and no temporary
file is left.

"In the middle of a shard" is exact: the fault hook (manifests/io.py) kills the worker when it
commits the shard's manifest, after the shard's documents, rejects and stats are on disk and the
manifest's temporary copy is written, before the rename that marks the shard done.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability.helpers import REPO, copy_until, explain, fault_env, pipeline
from reliability.run_compare import differences, temp_files

from manifests.layout import done_shards


def audit_ok(run: Path) -> dict:
    proc = pipeline("audit", str(run), "--format", "json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], report.get("violations")
    return report


def assert_half_done(run: Path, stage: str, shard: str) -> None:
    """The killed shard's documents are on disk, but it is not done and its manifest is a temp file."""
    assert (run / stage / f"{shard}.parquet").exists()
    assert not (run / stage / f"{shard}.manifest.parquet").exists()
    assert shard not in done_shards(str(run), stage)
    assert any(t.startswith(f"{stage}/{shard}.manifest.parquet.tmp-") for t in temp_files(run)), temp_files(
        run
    )
    assert not (run / stage / "stats.json").exists()  # the stage is not complete


@pytest.mark.parametrize("stage", ["fetch", "clean", "dedup", "tokenize"])
def test_a_worker_killed_mid_shard_loses_and_duplicates_nothing(stage, baseline, tmp_path):
    run = copy_until(baseline, stage, tmp_path / "run")
    target = f"{stage}/part-00001.manifest.parquet"

    # Killed every time it tries: after its retries on new workers the stage fails, exit 3 naming it.
    failed = pipeline("run", "--run-dir", str(run), faults=f"kill@{target}")
    assert failed.returncode == 3, explain(failed)
    assert f"stage '{stage}' failed on shard part-00001" in failed.stderr
    assert "died" in failed.stderr and "rerun the same command" in failed.stderr
    assert_half_done(run, stage, "part-00001")

    # Run again, the worker killed once more on the same shard: it is replaced and the run finishes.
    # Fetch reruns every stage, so a dedup task (a plain Ray task, retried by Ray) is killed too.
    faults = f"kill@{target}"
    if stage == "fetch":
        faults += ";kill@dedup/index/signatures/part-00003.parquet"
    resumed = pipeline("run", "--run-dir", str(run), faults=faults, once_dir=tmp_path / "fired")
    assert resumed.returncode == 0, explain(resumed)
    fired = list((tmp_path / "fired").iterdir())
    assert len(fired) == len(faults.split(";")), "a fault did not fire: the test proves nothing"
    assert "running it again on a new worker" in resumed.stderr

    assert differences(baseline, run) == []
    assert temp_files(run) == []
    audit_ok(run)


def test_the_driver_killed_mid_shard_resumes_to_the_same_run(baseline, tmp_path):
    run = copy_until(baseline, "clean", tmp_path / "run")
    fired = tmp_path / "fired"
    # A clean worker stops half way through committing part-00001 (the hook writes its pid and hangs).
    driver = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "--run-dir", str(run)],
        cwd=REPO,
        env=fault_env("hang@clean/part-00001.manifest.parquet", fired),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        worker = wait_for_hang(fired, driver)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=60)
        assert driver.returncode == -signal.SIGKILL
        # Ray's processes die with the driver that started them; the hung worker too.
        assert wait_gone(worker, 120), f"the worker {worker} outlived its driver"
    finally:
        stop_session(driver)
    assert_half_done(run, "clean", "part-00001")

    resumed = pipeline("run", "--run-dir", str(run))
    assert resumed.returncode == 0, explain(resumed)
    assert differences(baseline, run) == []
    assert temp_files(run) == []
    audit_ok(run)


def wait_for_hang(fired: Path, driver: subprocess.Popen) -> int:
    """The pid the hung worker wrote into its fault marker."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert driver.poll() is None, f"the run ended before the fault fired:\n{driver.stderr.read()}"
        markers = list(fired.iterdir()) if fired.exists() else []
        if markers and markers[0].read_text().endswith("\n"):
            return int(markers[0].read_text())
        time.sleep(0.2)
    raise AssertionError("the fault never fired")


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def stop_session(driver: subprocess.Popen) -> None:
    """Whatever of the killed run is left in its own session (started by this test) is ended."""
    try:
        os.killpg(driver.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
