"""Disk errors: a full or read-only output location fails the stage with exit 3 and a message naming
the file it could not write; no shard that is marked done (its manifest exists) is incomplete; once
the disk is fixed, `run` again finishes the run as if nothing had happened.

Real faults where the machine allows them: a read-only directory (chmod for a normal user; for root,
who ignores permission bits, a read-only bind mount) and a tiny tmpfs that fills up (root only).
The same faults are also injected at the write layer (manifests/io.py PIPELINE_FAULT: ENOSPC and
EROFS at a chosen file), which needs no privilege and hits an exact file: a worker's shard or the
driver's stage statistics.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from reliability.helpers import copy_until, explain, pipeline
from reliability.run_compare import differences, temp_files

from manifests.io import FAULT_ENV, FAULT_ONCE_ENV, atomic_write_bytes, read_manifest
from manifests.layout import done_shards

IS_ROOT = os.geteuid() == 0


def assert_done_shards_complete(run: Path, baseline: Path, stage: str) -> None:
    """Every shard marked done has all its files, readable and equal to the fault-free run's."""
    for shard in done_shards(str(run), stage):
        for rel in (f"{shard}.parquet", f"{shard}.manifest.parquet", f"rejected/{shard}.parquet"):
            assert (run / stage / rel).read_bytes() == (baseline / stage / rel).read_bytes(), rel
        read_manifest(str(run / stage / f"{shard}.manifest.parquet"))
        pq.read_table(run / stage / f"{shard}.parquet")


@pytest.mark.parametrize(
    "fault, path, message",
    [
        ("enospc", "clean/part-00002.parquet", "No space left on device"),
        ("erofs", "clean/part-00003.manifest.parquet", "Read-only file system"),
        ("enospc", "clean/stats.json", "No space left on device"),  # written by the driver
    ],
)
def test_a_write_error_fails_the_stage_naming_the_file_and_a_rerun_resumes(
    fault, path, message, baseline, tmp_path
):
    run = copy_until(baseline, "clean", tmp_path / "run")
    failed = pipeline("run", "--run-dir", str(run), "--stage", "clean", faults=f"{fault}@{path}")
    assert failed.returncode == 3, explain(failed)
    assert "stage 'clean' failed" in failed.stderr
    assert f"cannot write {run}/{path}: {message}" in failed.stderr
    assert "rerun the same command" in failed.stderr
    assert not (run / "clean" / "stats.json").exists()  # the stage is not complete
    if path.endswith("parquet"):
        shard = Path(path).name.split(".")[0]
        assert shard not in done_shards(str(run), "clean")
    assert_done_shards_complete(run, baseline, "clean")
    assert temp_files(run) == []  # the write layer removed its temporary file

    resumed = pipeline("run", "--run-dir", str(run))
    assert resumed.returncode == 0, explain(resumed)
    assert differences(baseline, run) == []


@contextlib.contextmanager
def read_only(directory: Path):
    if not IS_ROOT:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    if not _run_ok("mount", "--bind", str(directory), str(directory)):
        pytest.skip("running as root and cannot bind-mount: no way to make a directory read-only")
    try:
        assert _run_ok("mount", "-o", "remount,bind,ro", str(directory))
        yield
    finally:
        _run_ok("umount", str(directory))


def test_a_read_only_stage_directory_fails_the_stage_and_a_rerun_resumes(baseline, tmp_path):
    run = copy_until(baseline, "clean", tmp_path / "run")
    (run / "clean").mkdir()
    with read_only(run / "clean"):
        failed = pipeline("run", "--run-dir", str(run), "--stage", "clean")
    assert failed.returncode == 3, explain(failed)
    assert "stage 'clean' failed on shard part-0000" in failed.stderr
    assert f"cannot write {run}/clean/part-0000" in failed.stderr
    assert ("Read-only file system" if IS_ROOT else "Permission denied") in failed.stderr
    assert done_shards(str(run), "clean") == []

    resumed = pipeline("run", "--run-dir", str(run))
    assert resumed.returncode == 0, explain(resumed)
    assert differences(baseline, run) == []


@pytest.mark.skipif(not IS_ROOT, reason="mounting a tmpfs needs root")
def test_a_full_disk_fails_the_stage_and_a_rerun_after_making_room_resumes(baseline, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _run_ok("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)):
        pytest.skip("cannot mount a tmpfs here")
    try:
        run = copy_until(baseline, "clean", disk / "run")
        used_kib = shutil.disk_usage(disk).used // 1024
        # Room for a few clean shards, not for all of them (clean writes about 0.5 MB here).
        assert _run_ok("mount", "-o", f"remount,size={used_kib + 96}k", str(disk))
        failed = pipeline("run", "--run-dir", str(run), "--stage", "clean")
        assert failed.returncode == 3, explain(failed)
        assert "No space left on device" in failed.stderr and f"cannot write {run}/clean/" in failed.stderr
        assert not (run / "clean" / "stats.json").exists()
        assert_done_shards_complete(run, baseline, "clean")

        assert _run_ok("mount", "-o", "remount,size=16m", str(disk))
        resumed = pipeline("run", "--run-dir", str(run))
        assert resumed.returncode == 0, explain(resumed)
        assert differences(baseline, run) == []
        assert temp_files(run) == []
    finally:
        _run_ok("umount", "-l", str(disk))


def _run_ok(*command: str) -> bool:
    return subprocess.run(command, capture_output=True).returncode == 0


@pytest.mark.parametrize("fault, code", [("enospc", errno.ENOSPC), ("erofs", errno.EROFS)])
def test_the_write_layer_names_the_file_keeps_errno_and_leaves_no_file(fault, code, tmp_path, monkeypatch):
    target = tmp_path / "clean" / "part-00000.manifest.parquet"
    monkeypatch.setenv(FAULT_ENV, f"{fault}@clean/part-00000.manifest.parquet")
    with pytest.raises(OSError) as raised:
        atomic_write_bytes(str(target), "会議録".encode())
    assert raised.value.errno == code
    assert str(raised.value).startswith(f"[Errno {code}] cannot write {target}: ")
    assert list(target.parent.iterdir()) == []  # neither the file nor its temporary copy
    atomic_write_bytes(str(tmp_path / "clean" / "part-00001.parquet"), b"x")  # other files unaffected


def test_a_fault_fires_once_across_processes_with_a_once_directory(tmp_path, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "enospc@part-00000.parquet")
    monkeypatch.setenv(FAULT_ONCE_ENV, str(tmp_path / "fired"))
    (tmp_path / "fired").mkdir()
    with pytest.raises(OSError):
        atomic_write_bytes(str(tmp_path / "part-00000.parquet"), b"1")
    atomic_write_bytes(str(tmp_path / "part-00000.parquet"), b"2")  # the retry gets through
    assert (tmp_path / "part-00000.parquet").read_bytes() == b"2"
    assert [p.read_text() for p in (tmp_path / "fired").iterdir()] == [f"{os.getpid()}\n"]


def test_an_unknown_fault_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "explode@x.parquet")
    with pytest.raises(ValueError, match="unknown fault 'explode@x.parquet'"):
        atomic_write_bytes(str(tmp_path / "x.parquet"), b"")
