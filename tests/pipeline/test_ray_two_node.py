"""A two-node Ray cluster on one machine, started with the real `ray start`, runs the pipeline.

Two raylets (a head with the dashboard, whose job server `ray job submit` talks to, and a worker
node that joins it with `ray start --address`), one CPU each, separate temp dirs, loopback only.
Every stage runs one actor per CPU, so with one CPU a node the work must spread over both nodes.
The test runs `--stage dedup --ray-address` and a whole run through `ray job submit`, reads from
Ray's state API on which node each task ran, and checks that the outputs are those of a
single-node run (a local Ray started by the CLI) on the same input.

It never calls `ray stop`, which stops every Ray process on the machine, other users' too: each
node's `ray start --block` runs in its own session, and the test ends exactly the processes of
those two sessions (raylets start their workers in the same session).

Loopback only, on 127.0.0.2 (head) and 127.0.0.3 (worker node): Ray replaces "127.0.0.1" and
"localhost" by the machine's interface address, and RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which
stops that for a single node, makes `ray start --address` refuse to add a node.
Other addresses of 127.0.0.0/8 are loopback on Linux and left alone. Ray >= 2.59 turns on token
authentication, so every process shares RAY_AUTH_TOKEN.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
RAY = shutil.which("ray", path=str(Path(sys.executable).parent))
STAGE_TASK = "_StageWorker.run"
NODE_IPS = ("127.0.0.2", "127.0.0.3")  # head, worker node
# The stage's summed statistics (compared apart) and dedup/phases.json (seconds and memory of each phase).
TIMED_FILES = {"stats.json", "phases.json"}

pytestmark = pytest.mark.skipif(RAY is None, reason="the `ray` command is not installed beside this Python")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def session_pids(sid: int) -> list[int]:
    """Every process of session `sid` (ray start --block, its raylet, GCS, dashboard, workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the fields after the command name, which may hold spaces: state ppid pgrp session ...
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid:
            pids.append(int(entry))
    return pids


def end_session(proc: subprocess.Popen) -> None:
    """SIGTERM every process of the node's session, then SIGKILL what is left after 10 s."""
    sid = proc.pid  # start_new_session=True: the `ray start` process leads its own session
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        pids = session_pids(sid)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while session_pids(sid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not session_pids(sid):
            break
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


class NodeStartFailed(RuntimeError):
    pass


class TwoNodeCluster:
    def __init__(self, root: Path):
        self.env = dict(
            os.environ,
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN=secrets.token_hex(32),
            # A raylet aborts ("An unexpected system state has occurred", in
            # NodeManager::WaitForDashboardAgentPorts) when its dashboard agent, a Python process,
            # has not reported its ports within this many ms; on a loaded machine its imports
            # alone take longer than the default.
            RAY_agent_register_timeout_ms="180000",
        )
        for var in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):
            self.env.pop(var, None)
        (self.port, self.dashboard_port, self.client_port, *self.node_ports) = free_ports(11)
        self.address = f"{NODE_IPS[0]}:{self.port}"
        self.dashboard = f"http://{NODE_IPS[0]}:{self.dashboard_port}"
        # Short temp dirs: Ray's socket paths must stay under the 107-byte AF_UNIX limit.
        self.temp_dirs = [Path("/tmp") / f"r2n-{self.port}-{name}" for name in ("head", "w1")]
        self.logs = root
        self.procs: list[subprocess.Popen] = []
        self.started_lines: dict[str, int] = {}

    def _node_args(self, i: int) -> list[str]:
        """Ports of the per-node agents: two nodes on one machine must not share the defaults
        (nor take those of another Ray running here)."""
        agent, grpc, metrics, runtime_env = self.node_ports[4 * i : 4 * i + 4]
        return [
            "--block",
            f"--node-ip-address={NODE_IPS[i]}",
            "--num-cpus=1",
            # shards pass through files, not the object store: keep it small
            f"--object-store-memory={200 * 2**20}",
            f"--temp-dir={self.temp_dirs[i]}",
            f"--dashboard-agent-listen-port={agent}",
            f"--dashboard-agent-grpc-port={grpc}",
            f"--metrics-export-port={metrics}",
            f"--runtime-env-agent-port={runtime_env}",
            "--disable-usage-stats",
        ]

    def _start(self, name: str, args: list[str]) -> None:
        # the log is appended to over attempts: this attempt's node runs once one more line says so
        self.started_lines[name] = self._started_runs(self.logs / f"ray-{name}.log")
        log = open(self.logs / f"ray-{name}.log", "ab")
        self.procs.append(
            subprocess.Popen(
                [RAY, "start", *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def start(self, attempts: int = 3) -> None:
        # On a loaded machine `ray start` may still give up waiting for its own raylet to register
        # ("The current node timed out during startup"): try again in a fresh session.
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once()
            except NodeStartFailed:
                if attempt == attempts:
                    raise
                self.stop()
                self.procs.clear()

    def _start_once(self) -> None:
        self._start(
            "head",
            [
                "--head",
                f"--port={self.port}",
                "--include-dashboard=true",  # the job server `ray job submit` talks to lives in it
                f"--dashboard-host={NODE_IPS[0]}",
                f"--dashboard-port={self.dashboard_port}",
                f"--ray-client-server-port={self.client_port}",
                *self._node_args(0),
            ],
        )
        self.wait_for_nodes(1)
        self._start("w1", [f"--address={self.address}", *self._node_args(1)])
        self.wait_for_nodes(2)

    def nodes(self) -> list[dict]:
        proc = self.ray("list", "nodes", "--format=json", "--filter", "state=ALIVE", check=False)
        return self._json_list(proc) if proc.returncode == 0 else []

    @staticmethod
    def _json_list(proc: subprocess.CompletedProcess) -> list[dict]:
        # `ray list` prints "No resource in the cluster" instead of an empty JSON list
        return json.loads(proc.stdout) if proc.stdout.lstrip().startswith("[") else []

    def wait_for_nodes(self, n: int, timeout: float = 300.0) -> None:
        """Wait until the last `ray start` says its node runs, then until the cluster lists `n` nodes.
        Asking the dashboard earlier only adds load to a GCS that is still starting."""
        deadline = time.monotonic() + timeout
        name = ("head", "w1")[n - 1]
        log = self.logs / f"ray-{name}.log"
        while time.monotonic() < deadline:
            for name, proc in zip(("head", "w1"), self.procs):
                if proc.poll() is not None:
                    tail = (self.logs / f"ray-{name}.log").read_text(errors="replace").splitlines()[-12:]
                    raise NodeStartFailed(
                        f"`ray start` ({name}) exited with {proc.returncode}:\n" + "\n".join(tail)
                    )
            if self._started_runs(log) > self.started_lines[name] and len(self.nodes()) >= n:
                return
            time.sleep(2.0)
        raise NodeStartFailed(f"the cluster did not reach {n} nodes in {timeout:.0f} s; see {self.logs}")

    @staticmethod
    def _started_runs(log: Path) -> int:
        return log.read_text(errors="replace").count("Ray runtime started") if log.exists() else 0

    def ray(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [RAY, *args[:2], f"--address={self.dashboard}", *args[2:]]
            if args[0] in ("list", "job")
            else [RAY, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert proc.returncode == 0, f"ray {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
        return proc

    def task_nodes(self, job_ids: set[str]) -> dict[str, set[str]]:
        """Task name -> ids of the nodes its runs executed on, over the given jobs."""
        proc = self.ray("list", "tasks", "--format=json", "--detail", "--limit=10000")
        by_name: dict[str, set[str]] = {}
        for task in self._json_list(proc):
            if task.get("job_id") in job_ids and task.get("node_id"):
                by_name.setdefault(task["name"], set()).add(task["node_id"])
        return by_name

    def job_ids(self) -> set[str]:
        proc = self.ray("list", "jobs", "--format=json", "--detail")
        return {job["job_id"] for job in self._json_list(proc) if job.get("job_id")}

    def stop(self) -> None:
        for proc in reversed(self.procs):
            end_session(proc)
        for d in self.temp_dirs:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = TwoNodeCluster(tmp_path_factory.mktemp("ray-logs"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


def wait_for_task_events(cluster: TwoNodeCluster, jobs: set[str], names: set[str]) -> dict[str, set[str]]:
    """Workers report task events to the GCS about once a second: wait until every name is seen."""
    deadline = time.monotonic() + 60
    while True:
        seen = cluster.task_nodes(jobs)
        if names <= set(seen) or time.monotonic() > deadline:
            return seen
        time.sleep(2.0)


def stage_files(run_dir: Path, stage: str) -> dict[str, Path]:
    base = run_dir / stage
    return {
        str(p.relative_to(base)): p
        for p in sorted(base.rglob("*"))
        if p.is_file() and p.name not in TIMED_FILES and "work" not in p.relative_to(base).parts
    }


def assert_same_stage(ours: Path, reference: Path, stage: str, byte_identical: bool) -> None:
    """Same files; Parquet files hold the same rows, and with `byte_identical` the same bytes."""
    a, b = stage_files(ours, stage), stage_files(reference, stage)
    assert sorted(a) == sorted(b), f"{stage}: files differ"
    assert any(name.endswith(".parquet") for name in a), f"{stage}: no shards to compare"
    for name in a:
        if name.endswith("stats.json"):  # a shard's statistics: the same but for its wall seconds
            assert _untimed(a[name]) == _untimed(b[name]), f"{stage}/{name} differs"
        elif byte_identical or not name.endswith(".parquet"):
            assert a[name].read_bytes() == b[name].read_bytes(), f"{stage}/{name} differs"
        else:
            assert pq.read_table(a[name]).equals(pq.read_table(b[name])), f"{stage}/{name} differs"


def _untimed(path: Path) -> dict:
    return {k: v for k, v in json.loads(path.read_text()).items() if k != "seconds"}


def copy_stages(src: Path, dst: Path, stages: list[str]) -> None:
    dst.mkdir(parents=True)
    shutil.copy2(src / "config.resolved.yaml", dst / "config.resolved.yaml")
    for stage in stages:
        shutil.copytree(src / stage, dst / stage)


def test_dedup_stage_on_two_nodes_matches_a_single_node_run(cluster, sample_run, tmp_path):
    # dedup's input is the single-node run's clean stage, so every dedup file must come out the same
    run_dir = tmp_path / "run"
    copy_stages(sample_run, run_dir, ["fetch", "extract", "clean"])
    before = cluster.job_ids()
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--stage", "dedup", "--run-dir", str(run_dir)]
        + ["--ray-address", cluster.address],
        cwd=REPO,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert not (run_dir / "quality").exists()

    jobs = cluster.job_ids() - before
    seen = wait_for_task_events(cluster, jobs, {STAGE_TASK})
    node_ids = {n["node_id"] for n in cluster.nodes()}
    assert len(node_ids) == 2
    assert seen.get(STAGE_TASK) == node_ids, f"dedup shards ran on {seen.get(STAGE_TASK)}, nodes {node_ids}"

    assert_same_stage(run_dir, sample_run, "dedup", byte_identical=True)
    assert _untimed(run_dir / "dedup" / "stats.json") == _untimed(sample_run / "dedup" / "stats.json")


def test_whole_run_submitted_as_a_ray_job_matches_a_single_node_run(cluster, sample_run, tmp_path):
    run_dir = tmp_path / "run"
    before = cluster.job_ids()
    # The entrypoint runs on the head node, with RAY_ADDRESS set by the job server: it joins.
    proc = cluster.ray(
        "job",
        "submit",
        "--submission-id",
        f"jcorpus-{secrets.token_hex(4)}",
        "--",
        # the job server quotes every argument on its own: no shell syntax here
        *(sys.executable, "-m", "pipeline", "run", "--run-dir", str(run_dir)),
        check=False,
        timeout=900,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert "output:" in proc.stdout  # the CLI's last line, streamed back by `ray job submit`

    jobs = cluster.job_ids() - before
    seen = wait_for_task_events(cluster, jobs, {STAGE_TASK})
    node_ids = {n["node_id"] for n in cluster.nodes()}
    assert seen.get(STAGE_TASK) == node_ids, f"shards ran on {seen.get(STAGE_TASK)}, nodes {node_ids}"

    # Fetch records when each document was retrieved, so manifests of two whole runs differ in
    # time; the documents themselves, rejections included, are the same rows.
    for stage in ("fetch", "extract", "clean", "dedup", "quality", "tokenize"):
        assert_same_stage_documents(run_dir, sample_run, stage)
    audit = subprocess.run(
        [sys.executable, "-m", "pipeline", "audit", str(run_dir), "--format", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert json.loads(audit.stdout)["ok"], audit.stdout


def assert_same_stage_documents(ours: Path, reference: Path, stage: str) -> None:
    a, b = stage_files(ours, stage), stage_files(reference, stage)
    docs = [n for n in a if n.endswith(".parquet") and not n.endswith(".manifest.parquet")]
    assert docs and sorted(docs) == sorted(n for n in b if n in docs), f"{stage}: document files differ"
    for name in docs:
        assert pq.read_table(a[name]).equals(pq.read_table(b[name])), f"{stage}/{name} differs"
