"""Helpers of the fault tests: the pipeline CLI run as a user runs it, with faults injected.

Faults are injected through the test-only hook of manifests/io.py (``PIPELINE_FAULT``): a process
that commits a chosen file is SIGKILLed, hangs, or gets ENOSPC/EROFS, after the file's temporary
copy is written and before the rename. The hook runs in whichever process writes, so a Ray worker
is killed in the middle of its shard exactly where the shard's documents are on disk and its
manifest is not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from manifests.io import FAULT_ENV, FAULT_ONCE_ENV
from manifests.layout import STAGE_ORDER

REPO = Path(__file__).resolve().parents[2]
# A kill test redoes at most this long a run; a hung run is a failure, not a stuck CI job.
RUN_TIMEOUT_SECONDS = 900


def pipeline(
    *args: str, faults: str | None = None, once_dir: Path | None = None
) -> subprocess.CompletedProcess:
    """``python -m pipeline ARGS`` from the repository, with faults (see manifests/io.py FAULT_ENV)."""
    for _ in range(RAY_START_ATTEMPTS):
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline", *args],
            cwd=REPO,
            env=fault_env(faults, once_dir),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
        )
        # Ray gives its local node 30 s to start, which a heavily loaded CI machine can miss; the run
        # has written nothing then (RayRuntime starts first), so starting it again changes nothing.
        if not (proc.returncode == 1 and RAY_START_TIMEOUT in proc.stderr):
            return proc
    return proc


RAY_START_TIMEOUT = "The current node timed out during startup"
RAY_START_ATTEMPTS = 5


def fault_env(faults: str | None, once_dir: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (FAULT_ENV, FAULT_ONCE_ENV, "RAY_ADDRESS")}
    if faults:
        env[FAULT_ENV] = faults
    if once_dir is not None:
        once_dir.mkdir(parents=True, exist_ok=True)
        env[FAULT_ONCE_ENV] = str(once_dir)
    return env


def explain(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\nstderr:\n{proc.stderr[-4000:]}"


def copy_until(baseline: Path, stage: str, target: Path) -> Path:
    """A copy of the baseline run holding the stages before ``stage`` only, as a run that stopped
    there would: rerunning it runs ``stage`` and everything after."""
    keep = STAGE_ORDER[: STAGE_ORDER.index(stage)]
    shutil.copytree(
        baseline,
        target,
        ignore=lambda d, names: [
            n for n in names if Path(d) == baseline and (n in STAGE_ORDER and n not in keep or n == "audit")
        ],
    )
    (target / "run_manifest.json").unlink(missing_ok=True)
    return target
