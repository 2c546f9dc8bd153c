"""Runs stages in order over a run directory: plan, skip done shards, run the rest, sum stats."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import TextIO

import yaml

from manifests.io import atomic_write_bytes, filesystem
from manifests.layout import RESOLVED_CONFIG
from manifests.run_hashes import write_run_hashes
from pipeline import __version__
from pipeline.config import Config, ConfigError
from pipeline.errors import MissingInputError, ShardFailed
from pipeline.progress import StageProgress
from pipeline.shards import done_shards, is_stage_complete, remove_orphans, sum_stage_stats
from pipeline.stage import RunContext
from pipeline.stages import STAGE_ORDER, STAGES


def default_run_dir(config_path: str | None, config: Config) -> str:
    """Same config, same directory: rerunning `run` resumes instead of starting over."""
    stem = Path(config_path).stem if config_path else "default"
    return str(Path("runs") / f"{stem}-{config.sha256()[:12]}")


def ordered_stages(requested: list[str] | None) -> list[str]:
    if not requested:
        return list(STAGE_ORDER)
    unknown = [s for s in requested if s not in STAGES]
    if unknown:
        raise ConfigError(f"--stage {unknown[0]}: unknown stage (stages: {' '.join(STAGE_ORDER)})")
    return [s for s in STAGE_ORDER if s in requested]


def check_inputs(run_dir: str, stages: list[str]) -> None:
    """Each stage's input must be on disk already or be produced earlier in this invocation."""
    for i, name in enumerate(stages):
        needed = STAGES[name].input_stage
        if needed and needed not in stages[:i] and not is_stage_complete(run_dir, needed):
            raise MissingInputError(
                f"stage '{name}' needs the output of stage '{needed}', which is missing or unfinished "
                f"in {run_dir}/{needed}; run --stage {needed} first"
            )


def check_run_dir_config(run_dir: str, config: Config) -> None:
    """A run directory belongs to one config: mixing shards from two configs would be untraceable."""
    fs, path = filesystem(f"{run_dir}/{RESOLVED_CONFIG}")
    if fs.exists(path):
        with fs.open(path, "rb") as f:
            existing = f.read().decode("utf-8")
        if existing != config.to_yaml():
            changed = ", ".join(_changed_keys(yaml.safe_load(existing) or {}, config.to_dict())[:5])
            raise ConfigError(
                f"{run_dir} was produced with a different config (keys that differ: {changed}); "
                "use a new --run-dir for a new config"
            )


def _changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        dotted = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changed_keys(a, b, dotted + ".")
        elif a != b:
            keys.append(dotted)
    return keys


def run(
    config: Config,
    run_dir: str,
    stages: list[str],
    ray_address: str | None = None,
    stream: TextIO | None = None,
) -> None:
    stream = stream or sys.stderr
    check_run_dir_config(run_dir, config)
    check_inputs(run_dir, stages)
    ctx = RunContext(
        run_dir=run_dir, config=config, config_sha256=config.sha256(), pipeline_version=__version__
    )

    from pipeline.runtime import RayRuntime  # imported late: `stages` and bad configs never pay for Ray

    with RayRuntime(ray_address, config.runtime.num_cpus) as runtime:
        try:
            atomic_write_bytes(f"{run_dir}/{RESOLVED_CONFIG}", config.to_yaml().encode("utf-8"))
        except OSError as exc:  # a read-only or full output location: exit 3 naming the path
            raise ShardFailed(stages[0], "(run directory)", f"{type(exc).__name__}: {exc}") from exc
        for name in stages:
            run_stage(name, ctx, runtime, stream)
    # The run-level hashes the audit checks every file against (manifests/run_hashes.py).
    try:
        write_run_hashes(run_dir, config_base_dir=config.base_dir)
    except OSError as exc:
        raise ShardFailed(stages[-1], "(run_manifest.json)", f"{type(exc).__name__}: {exc}") from exc


def run_stage(name: str, ctx: RunContext, runtime, stream: TextIO) -> None:
    try:
        _run_stage(name, ctx, runtime, stream)
    except OSError as exc:
        # A full or read-only disk on the driver's side (plan files, stats): exit 3 naming the file;
        # the workers' own write errors arrive as ShardFailed already.
        raise ShardFailed(name, "(stage files)", f"{type(exc).__name__}: {exc}") from exc


def _run_stage(name: str, ctx: RunContext, runtime, stream: TextIO) -> None:
    stage = STAGES[name](ctx)
    remove_orphans(ctx.run_dir, name)
    shards = stage.plan()
    done = set(done_shards(ctx.run_dir, name))  # one listing, not one existence check per shard
    pending = [s for s in shards if s.name not in done]
    progress = StageProgress(name, len(shards), len(shards) - len(pending), stream)
    cpu_seconds = None
    if pending:
        cpu_before = runtime.cpu_seconds()
        stage.prepare(shards, functools.partial(runtime.pmap, stage=name))
        for _, stats in runtime.run_shards(name, ctx, pending, ctx.config.runtime.num_workers):
            progress.shard_done(stats.documents_in if stats else 0)
        cpu_seconds = runtime.cpu_seconds() - cpu_before
    # Every shard is done, so no temporary file is still being written: those of a worker that died
    # and was replaced (pipeline/runtime.py) go now, not at the next run.
    remove_orphans(ctx.run_dir, name)
    total = sum_stage_stats(ctx.run_dir, name)
    progress.finish(total.summary(), cpu_seconds)
