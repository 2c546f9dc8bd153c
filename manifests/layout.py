"""Run-directory layout (DESIGN.md, "Run directory"): where each stage's files live.

Shared by the pipeline that writes a run and the audit that reads it.
"""

from __future__ import annotations

from manifests.io import TMP_MARKER, filesystem

# The stage directories of a run, in order: documents enter at the first and leave at the last.
STAGE_ORDER = ("fetch", "extract", "clean", "dedup", "quality", "tokenize")
STAGE_STATS = "stats.json"
# The config a run was made with, written first: a run directory belongs to one config.
RESOLVED_CONFIG = "config.resolved.yaml"
MANIFEST_SUFFIX = ".manifest.parquet"


def stage_dir(run_dir: str, stage: str) -> str:
    return f"{run_dir.rstrip('/')}/{stage}"


def docs_path(run_dir: str, stage: str, shard: str) -> str:
    return f"{stage_dir(run_dir, stage)}/{shard}.parquet"


def manifest_path(run_dir: str, stage: str, shard: str) -> str:
    return f"{stage_dir(run_dir, stage)}/{shard}{MANIFEST_SUFFIX}"


def rejected_path(run_dir: str, stage: str, shard: str) -> str:
    return f"{stage_dir(run_dir, stage)}/rejected/{shard}.parquet"


def shard_stats_path(run_dir: str, stage: str, shard: str) -> str:
    return f"{stage_dir(run_dir, stage)}/{shard}.stats.json"


def stage_stats_path(run_dir: str, stage: str) -> str:
    return f"{stage_dir(run_dir, stage)}/{STAGE_STATS}"


def exists(path: str) -> bool:
    fs, fs_path = filesystem(path)
    return fs.exists(fs_path)


def done_shards(run_dir: str, stage: str) -> list[str]:
    """Names (`part-NNNNN`) of the shards of `stage` whose manifest exists, sorted."""
    fs, fs_path = filesystem(stage_dir(run_dir, stage))
    if not fs.exists(fs_path):
        return []
    names = [p.rsplit("/", 1)[-1] for p in fs.ls(fs_path, detail=False)]
    return sorted(
        n[: -len(MANIFEST_SUFFIX)] for n in names if n.endswith(MANIFEST_SUFFIX) and TMP_MARKER not in n
    )


def is_stage_complete(run_dir: str, stage: str) -> bool:
    """A stage's summed stats are written only after every one of its shards is done."""
    return exists(stage_stats_path(run_dir, stage))


def safe_name(name: str, what: str) -> str:
    """``name`` if it is one plain file-name part, else ValueError: names that come from input (an
    API's ids) must not lead a path out of the run directory.

    >>> safe_name("121905261X00320240301", "issueID")
    '121905261X00320240301'
    >>> safe_name("../../etc/cron.d/x", "issueID")
    Traceback (most recent call last):
    ...
    ValueError: issueID '../../etc/cron.d/x' cannot name a file (letters, digits and ._- only)
    """
    if not name or name in (".", "..") or not all(c.isalnum() and c.isascii() or c in "._-" for c in name):
        raise ValueError(f"{what} {name!r} cannot name a file (letters, digits and ._- only)")
    return name


def raw_path(run_dir: str, source: str, key: str) -> str:
    """Where an API answer is kept: the bytes a document's raw_sha256 is taken of. ``key`` comes
    from the API (an issueID, a law id) and is checked by :func:`safe_name`."""
    name = safe_name(key, f"{source} id")
    return f"{stage_dir(run_dir, 'fetch')}/raw/{safe_name(source, 'source')}/{name}.json"


def source_dir(run_dir: str, source: str) -> str:
    """A source's listing of what to fetch (made once, on the driver)."""
    return f"{stage_dir(run_dir, 'fetch')}/{source}"
