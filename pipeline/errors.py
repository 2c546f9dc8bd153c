"""Errors the CLI turns into exit codes (ConfigError, for bad configs, lives in pipeline.config)."""

from __future__ import annotations


class MissingInputError(Exception):
    """A stage was asked to run before the stage it reads from has finished (exit 2)."""


class ClusterUnavailable(Exception):
    """The Ray cluster named by --ray-address / RAY_ADDRESS cannot be joined (exit 2)."""


class ShardFailed(Exception):
    """A shard raised, or its worker died; done shards stay done (exit 3)."""

    def __init__(self, stage: str, shard: str, cause: str):
        super().__init__(f"stage '{stage}' failed on shard {shard}: {cause}")
        self.stage, self.shard, self.cause = stage, shard, cause

    def __reduce__(self):  # picklable across Ray processes despite the 3-argument __init__
        return ShardFailed, (self.stage, self.shard, self.cause)
