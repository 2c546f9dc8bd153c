"""The Ray runtime: the one module that imports ray.

Shards run on a pool of Ray actors, one stage object per actor, so a stage's expensive
resources (fastText model, tokenizer) load once per worker process, not once per shard.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Iterable, Iterator

import ray
from ray.util import ActorPool

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
        """Yield (shard, stats) as shards finish; raises ShardFailed on the first failure."""
        if not shards:
            return
        workers = min(num_workers or self.cpus(), len(shards))
        actors = [_StageWorker.remote(stage_name, ctx) for _ in range(workers)]
        pool = ActorPool(actors)
        by_index = {s.index: s for s in shards}
        try:
            for index, result in _unordered(pool, shards, stage_name):
                if isinstance(result, ShardFailed):
                    raise result
                yield by_index[index], result
        finally:
            try:
                ray.get([actor.teardown.remote() for actor in actors], timeout=30)
            except ray.exceptions.RayError:
                pass  # a dead worker has nothing left to release
            for actor in actors:
                ray.kill(actor)


@ray.remote(num_cpus=1)
def _apply(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


def _unordered(pool: ActorPool, shards: list[ShardSpec], stage_name: str) -> Iterator[tuple[int, Any]]:
    """Results as shards finish. Shards of one serial group are submitted one after another, each
    when the one before it has finished; all other shards at once."""
    queues: dict[str, list[ShardSpec]] = {}
    for shard in shards:
        if shard.serial is None:
            pool.submit(lambda actor, s: actor.run.remote(s), shard)
        else:
            queues.setdefault(shard.serial, []).append(shard)
    serial_of = {s.index: s.serial for s in shards}

    def submit_next(group: str) -> None:
        if queues[group]:
            pool.submit(lambda actor, s: actor.run.remote(s), queues[group].pop(0))

    for group in queues:
        submit_next(group)
    while pool.has_next():
        try:
            index, result = pool.get_next_unordered()
        except ray.exceptions.RayError as exc:
            # The actor died (killed, out of memory) rather than the shard raising.
            yield -1, ShardFailed(stage_name, "(unknown)", f"a Ray worker died: {type(exc).__name__}: {exc}")
            continue
        if serial_of.get(index) is not None:
            submit_next(serial_of[index])
        yield index, result


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
