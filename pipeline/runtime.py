"""The Ray runtime: the one module that imports ray.

One pool of Ray actors serves the whole run: every stage's shards and every all-to-all step
(`pmap`) run on the same worker processes, which load a stage's expensive resources (fastText
model, tokenizer, trafilatura's child) once per stage and release them when the stage ends. A fresh
pool per stage cost 1.5 to 5 CPU seconds a stage in process start-up and imports
(benchmarks/RESULTS.md), more than the stages' own work on a small corpus.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from typing import Any, Callable, Iterable, Iterator

import ray

from pipeline.errors import ClusterUnavailable, ShardFailed
from pipeline.stage import RunContext, ShardSpec
from pipeline.stats import ShardStats

# Times one shard's or task's worker may die before the stage fails (exit 3; a rerun resumes).
WORKER_DEATHS_PER_SHARD = 2


class RayRuntime:
    """Starts a local Ray (and shuts it down) or joins an existing cluster; owns the worker pool."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.num_cpus = num_cpus
        self.started_local = False
        self.pool: list[Any] = []

    def __enter__(self) -> RayRuntime:
        if ray.is_initialized():
            return self
        common = {"logging_level": logging.WARNING, "log_to_driver": True}
        if self.address:
            _check_reachable(self.address)
            try:
                ray.init(address=self.address, **common)
            except (ConnectionError, ray.exceptions.AuthenticationError) as exc:
                first_line = str(exc).strip().splitlines()[0]
                raise ClusterUnavailable(
                    f"cannot join the Ray cluster at {self.address}: {first_line}"
                ) from None
        else:
            # A raylet aborts when its dashboard agent takes over 30 s to register, which a loaded
            # machine can exceed ("The current node timed out during startup"); give it 3 minutes.
            os.environ.setdefault("RAY_agent_register_timeout_ms", "180000")
            ray.init(num_cpus=self.num_cpus or os.cpu_count(), include_dashboard=False, **common)
            self.started_local = True
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._close_pool()
        finally:
            if self.started_local:
                ray.shutdown()

    def cpus(self) -> int:
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def cpu_seconds(self) -> float:
        """CPU seconds so far of this driver and of the pool's live workers, their reaped children
        (trafilatura's) included: a stage's cost is the difference across it."""
        try:
            workers = sum(ray.get([actor.cpu_seconds.remote() for actor in self.pool], timeout=30))
        except ray.exceptions.RayError:
            workers = 0.0  # a dead worker's seconds are gone; the figure is informative only
        return time.process_time() + workers

    def pmap(self, fn: Callable[[Any], Any], items: Iterable[Any], stage: str = "(all-to-all)") -> list[Any]:
        """Run `fn` (any picklable callable) on every item on the pool's workers; results in input
        order. An exception raised by `fn` propagates (as Ray's error, an instance of its class)."""
        items = list(items)
        results: list[Any] = [None] * len(items)
        calls = [_Call(i) for i in range(len(items))]
        name = getattr(fn, "__name__", type(fn).__name__)
        for call, value in self._schedule(
            stage,
            calls,
            lambda actor, call: actor.apply.remote(fn, items[call.key]),
            label=lambda call: f"{name} task {call.key}",
        ):
            results[call.key] = value
        return results

    def run_shards(
        self, stage_name: str, ctx: RunContext, shards: list[ShardSpec], num_workers: int | None
    ) -> Iterator[tuple[ShardSpec, ShardStats | None]]:
        """Yield (shard, stats) as shards finish; raises ShardFailed on the first failure.

        A worker process that dies (SIGKILL, the OOM killer, a lost node) is replaced and its shard
        run again, up to WORKER_DEATHS_PER_SHARD times: the shard was not done (its manifest is
        written last), so the new attempt redoes it whole and nothing is counted twice. A shard
        that raises is not retried: the same input would raise again.
        """
        if not shards:
            return
        by_index = {s.index: s for s in shards}
        calls = [_Call(s.index, s.serial) for s in shards]
        try:
            for call, result in self._schedule(
                stage_name,
                calls,
                lambda actor, call: actor.run.remote(stage_name, ctx, by_index[call.key]),
                num_workers,
                label=lambda call: by_index[call.key].name,
                failed=lambda call, exc: ShardFailed(
                    stage_name, by_index[call.key].name, f"{type(exc).__name__}: {exc}"
                ),
            ):
                if isinstance(result, ShardFailed):
                    raise result
                yield by_index[call.key], result
        finally:
            self._release(stage_name)

    def _schedule(
        self,
        what: str,
        calls: list[_Call],
        submit: Callable[[Any, _Call], Any],
        num_workers: int | None = None,
        label: Callable[[_Call], str] = str,
        failed: Callable[[_Call, Exception], Exception] | None = None,
    ) -> Iterator[tuple[_Call, Any]]:
        """Submit calls to idle workers, yield (call, result) as each finishes; a call whose worker
        died is resubmitted on a new worker. A call that raised raises `failed(call, error)`, or
        Ray's error itself (an instance of the original exception's class)."""
        idle = self._grow_pool(min(num_workers or self.cpus(), len(calls)))
        queue = _CallQueue(calls)
        running: dict[Any, tuple[Any, _Call]] = {}
        deaths: dict[Any, int] = {}
        try:
            while running or queue:
                while idle and (call := queue.next()) is not None:
                    actor = idle.pop()
                    running[submit(actor, call)] = (actor, call)
                (ref,), _ = ray.wait(list(running), num_returns=1)
                actor, call = running.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    deaths[call.key] = deaths.get(call.key, 0) + 1
                    cause = f"its Ray worker died ({type(exc).__name__})"
                    if deaths[call.key] > WORKER_DEATHS_PER_SHARD:
                        raise ShardFailed(what, label(call), f"{cause} {deaths[call.key]} times") from None
                    print(
                        f"[{what}] {label(call)}: {cause}; running it again on a new worker",
                        file=sys.stderr,
                        flush=True,
                    )
                    idle.append(self._replace(actor))
                    queue.retry(call)
                    continue
                except ray.exceptions.RayError as exc:
                    if failed is None:
                        raise
                    raise failed(call, exc) from None
                idle.append(actor)
                queue.finished(call)
                yield call, result
        finally:
            # A failure leaves calls running: their workers are stopped, not waited for.
            for actor, _ in running.values():
                ray.kill(actor)
                self.pool.remove(actor)

    def _grow_pool(self, n: int) -> list[Any]:
        """The first n workers of the pool, started if not there yet."""
        while len(self.pool) < n:
            self.pool.append(_StageWorker.remote())
        return list(reversed(self.pool[:n]))

    def _replace(self, actor: Any) -> Any:
        ray.kill(actor)
        new = _StageWorker.remote()
        self.pool[self.pool.index(actor)] = new
        return new

    def _release(self, stage_name: str) -> None:
        """The stage's resources (child processes, models) go when its shards are done."""
        try:
            ray.get([actor.release.remote(stage_name) for actor in self.pool], timeout=30)
        except ray.exceptions.RayError:
            pass  # a dead worker has nothing left to release

    def _close_pool(self) -> None:
        try:
            ray.get([actor.release.remote(None) for actor in self.pool], timeout=30)
        except ray.exceptions.RayError:
            pass
        for actor in self.pool:
            ray.kill(actor)
        self.pool = []


def _check_reachable(address: str, timeout_seconds: float = 10.0) -> None:
    """Fail fast when nothing listens at a HOST:PORT address: ray.init retries an unreachable GCS
    for minutes, logging, where the user needs one line and exit 2. ("auto" is left to Ray.)"""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_seconds).close()
    except OSError as exc:
        raise ClusterUnavailable(
            f"cannot join the Ray cluster at {address}: nothing answers at {host}:{port} ({exc})"
        ) from None


class _Call:
    """One unit of scheduled work: a shard (key = its index) or a pmap item (key = its position)."""

    __slots__ = ("key", "serial")

    def __init__(self, key: Any, serial: str | None = None):
        self.key = key
        self.serial = serial


class _CallQueue:
    """Calls to submit, in order. Calls of one serial group go one after another, each when the
    one before it has finished; all other calls as soon as a worker is free."""

    def __init__(self, calls: list[_Call]):
        self.free = deque(c for c in calls if c.serial is None)
        self.groups: dict[str, deque[_Call]] = {}
        for call in calls:
            if call.serial is not None:
                self.groups.setdefault(call.serial, deque()).append(call)
        self.busy: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.free) or any(self.groups.values())

    def next(self) -> _Call | None:
        for group, waiting in self.groups.items():
            if waiting and group not in self.busy:
                self.busy.add(group)
                return waiting.popleft()
        return self.free.popleft() if self.free else None

    def finished(self, call: _Call) -> None:
        self.busy.discard(call.serial)

    def retry(self, call: _Call) -> None:
        """Run this call again before any other of its group."""
        if call.serial is None:
            self.free.appendleft(call)
        else:
            self.groups[call.serial].appendleft(call)
            self.busy.discard(call.serial)


@ray.remote(num_cpus=1)
class _StageWorker:
    """One worker process of the pool: runs any stage's shards and any pmap task."""

    def __init__(self) -> None:
        self.stages: dict[str, Any] = {}  # stage name -> (run key, set-up stage)

    def run(self, stage_name: str, ctx: RunContext, shard: ShardSpec) -> ShardStats | ShardFailed | None:
        from pipeline.shards import run_shard

        try:
            return run_shard(self._stage(stage_name, ctx), shard)
        except Exception as exc:  # reported to the driver with the shard that failed
            return ShardFailed(stage_name, shard.name, f"{type(exc).__name__}: {exc}")

    def cpu_seconds(self) -> float:
        import resource

        own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    def apply(self, fn: Callable[[Any], Any], item: Any) -> Any:
        return fn(item)

    def release(self, stage_name: str | None) -> None:
        """Tear down one stage (None: all) set up in this process."""
        for name in [stage_name] if stage_name else list(self.stages):
            if name in self.stages:
                _, stage = self.stages.pop(name)
                stage.teardown()

    def _stage(self, stage_name: str, ctx: RunContext):
        key = (ctx.run_dir, ctx.config_sha256)
        if stage_name in self.stages and self.stages[stage_name][0] != key:
            self.release(stage_name)
        if stage_name not in self.stages:
            from pipeline.stages import STAGES

            stage = STAGES[stage_name](ctx)
            stage.setup()
            self.stages[stage_name] = (key, stage)
        return self.stages[stage_name][1]
