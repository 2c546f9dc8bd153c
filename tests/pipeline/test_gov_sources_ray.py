"""The Diet minutes API on Ray workers: shards run on several workers, yet the API sees one
request at a time with the pause between them (the shards share a serial key), and a second run
asks nothing (the listing, the answers and the shards are stored)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
from servers.kokkai import KokkaiReplay

REPO = Path(__file__).resolve().parents[2]
PAUSE = 0.3


def run_fetch(server: KokkaiReplay, run_dir: Path) -> subprocess.CompletedProcess:
    settings = [
        "sources.commoncrawl.enabled=false",
        "sources.local.enabled=false",
        "sources.egov.enabled=false",
        "sources.kokkai.saved_responses=[]",
        f"sources.kokkai.base_url={server.base_url}",
        "sources.kokkai.from=2024-03-01",
        "sources.kokkai.until=2024-03-06",
        "sources.kokkai.meetings_per_shard=1",
        f"sources.kokkai.pause_seconds={PAUSE}",
        "runtime.num_cpus=2",
        "runtime.num_workers=2",
    ]
    args = ["run", "--stage", "fetch", "--run-dir", str(run_dir)]
    for setting in settings:
        args += ["--set", setting]
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )


def test_serial_shards_keep_the_api_at_one_request_at_a_time_across_workers(tmp_path):
    server = KokkaiReplay()
    try:
        proc = run_fetch(server, tmp_path / "run")
        assert proc.returncode == 0, proc.stderr
        log = server.log
        assert [r["path"] for r in log] == ["/api/meeting_list"] + ["/api/meeting"] * 6
        assert server.max_in_flight == 1
        # Between every answer and the next request, on whichever worker: at least the pause.
        gaps = [b["arrived"] - a["finished"] for a, b in zip(log, log[1:])]
        assert min(gaps) >= PAUSE * 0.95, gaps
        # In date order, one shard after another.
        asked = [r["query"]["issueID"] for r in log[1:]]
        manifest = pl.read_parquet(sorted((tmp_path / "run/fetch").glob("*.manifest.parquet")))
        assert manifest.height == 6 and manifest["included"].all()
        assert asked == sorted(asked, key=lambda i: i[-8:])

        again = run_fetch(server, tmp_path / "run")
        assert again.returncode == 0, again.stderr
        assert len(server.log) == len(log)
    finally:
        server.close()
