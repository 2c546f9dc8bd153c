"""The Ray runtime: the one module that imports ray.

Shards run on a pool of Ray actors, one stage object per actor, so a stage's expensive
resources (fastText model, tokenizer) load once per worker process, not once per shard.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from typing import Any, Callable, Iterable, Iterator

import ray

from pipeline.errors import ClusterUnavailable, ShardFailed
from pipeline.stage import RunContext, ShardSpec
from pipeline.stats import ShardStats


class RayRuntime:
    """Starts a local Ray (and shuts it down) or joins an existing cluster."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.num_cpus = num_cpus
        self.started_local = False

    def __enter__(self) -> RayRuntime:
        if ray.is_initialized():
            return self
        common = {"logging_level": logging.WARNING, "log_to_driver": True}
        if self.address:
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
        if self.started_local:
            ray.shutdown()

    def cpus(self) -> int:
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def pmap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """Run `fn` (any picklable callable) on every item as a Ray task; results in input order."""
        return ray.get([_apply.remote(fn, item) for item in items])

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
        workers = min(num_workers or self.cpus(), len(shards))
        idle = [_StageWorker.remote(stage_name, ctx) for _ in range(workers)]
        queue = _ShardQueue(shards)
        running: dict[ray.ObjectRef, tuple[Any, ShardSpec]] = {}
        deaths: dict[int, int] = {}
        try:
            while running or queue:
                while idle and (shard := queue.next()) is not None:
                    actor = idle.pop()
                    running[actor.run.remote(shard)] = (actor, shard)
                (ref,), _ = ray.wait(list(running), num_returns=1)
                actor, shard = running.pop(ref)
                try:
                    _, result = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    deaths[shard.index] = deaths.get(shard.index, 0) + 1
                    cause = f"its Ray worker died ({type(exc).__name__})"
                    if deaths[shard.index] > WORKER_DEATHS_PER_SHARD:
                        raise ShardFailed(stage_name, shard.name, f"{cause} {deaths[shard.index]} times")
                    print(
                        f"[{stage_name}] {shard.name}: {cause}; running it again on a new worker",
                        file=sys.stderr,
                        flush=True,
                    )
                    ray.kill(actor)
                    idle.append(_StageWorker.remote(stage_name, ctx))
                    queue.retry(shard)
                    continue
                except ray.exceptions.RayError as exc:
                    raise ShardFailed(stage_name, shard.name, f"{type(exc).__name__}: {exc}") from None
                idle.append(actor)
                queue.finished(shard)
                if isinstance(result, ShardFailed):
                    raise result
                yield shard, result
        finally:
            actors = idle + [actor for actor, _ in running.values()]
            try:
                ray.get([actor.teardown.remote() for actor in idle], timeout=30)
            except ray.exceptions.RayError:
                pass  # a dead worker has nothing left to release
            for actor in actors:
                ray.kill(actor)


# Times a shard's worker may die before the stage fails (exit 3; a rerun resumes).
WORKER_DEATHS_PER_SHARD = 2


@ray.remote(num_cpus=1)
def _apply(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


class _ShardQueue:
    """Shards to submit, in order. Shards of one serial group go one after another, each when the
    one before it has finished; all other shards as soon as a worker is free."""

    def __init__(self, shards: list[ShardSpec]):
        self.free = deque(s for s in shards if s.serial is None)
        self.groups: dict[str, deque[ShardSpec]] = {}
        for shard in shards:
            if shard.serial is not None:
                self.groups.setdefault(shard.serial, deque()).append(shard)
        self.busy: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.free) or any(self.groups.values())

    def next(self) -> ShardSpec | None:
        for group, waiting in self.groups.items():
            if waiting and group not in self.busy:
                self.busy.add(group)
                return waiting.popleft()
        return self.free.popleft() if self.free else None

    def finished(self, shard: ShardSpec) -> None:
        self.busy.discard(shard.serial)

    def retry(self, shard: ShardSpec) -> None:
        """Run this shard again before any other of its group."""
        if shard.serial is None:
            self.free.appendleft(shard)
        else:
            self.groups[shard.serial].appendleft(shard)
            self.busy.discard(shard.serial)


@ray.remote(num_cpus=1)
class _StageWorker:
    def __init__(self, stage_name: str, ctx: RunContext):
        from pipeline.stages import STAGES

        self.stage = STAGES[stage_name](ctx)
        self.ready = False

    def teardown(self) -> None:
        if self.ready:
            self.stage.teardown()

    def run(self, shard: ShardSpec) -> tuple[int, ShardStats | ShardFailed | None]:
        from pipeline.shards import run_shard

        try:
            if not self.ready:
                self.stage.setup()
                self.ready = True
            return shard.index, run_shard(self.stage, shard)
        except Exception as exc:  # reported to the driver with the shard that failed
            return shard.index, ShardFailed(self.stage.name, shard.name, f"{type(exc).__name__}: {exc}")
