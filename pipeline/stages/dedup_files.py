"""The shuffle under every dedup all-to-all: each task writes one Parquet file sorted by a key
column; a task of the next step reads, from all of them, only the rows whose key is its own.

Row groups are small (manifests.io.parquet_bytes: 10,000 rows) and sorted by the key, so the
reader's predicate skips every other row group by its min/max statistics; no task and not the
driver ever holds a whole step's output.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from manifests.io import atomic_write_parquet, filesystem


def parquet_files(directory: str) -> list[str]:
    """The committed Parquet files in ``directory`` (none if it does not exist), sorted."""
    fs, root = filesystem(directory)
    if not fs.exists(root):
        return []
    protocol = directory.split("://", 1)[0] + "://" if "://" in directory else ""
    return sorted(
        f"{protocol}{p}" if protocol and not p.startswith(protocol) else p
        for p in fs.glob(f"{root}/*.parquet")
    )


def read_key(directory: str, column: str, value: int, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """The rows of every file in ``directory`` whose ``column`` equals ``value``."""
    files = parquet_files(directory)
    if not files:
        return pl.DataFrame(schema=schema)
    return pl.scan_parquet(files).filter(pl.col(column) == value).select(list(schema)).collect()


def write_sorted(path: str, frame: pl.DataFrame, key: str, metadata: dict[str, str] | None = None) -> None:
    # Sorted by every plain column after the key: group-bys return rows in any order, and a rerun
    # must write the same bytes.
    others = [c for c, t in frame.schema.items() if c != key and not t.is_nested()]
    table: pa.Table = frame.sort([key, *others]).to_arrow()
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    atomic_write_parquet(path, table)


def done(path: str) -> bool:
    fs, fs_path = filesystem(path)
    return fs.exists(fs_path)


def metadata(path: str) -> dict[str, str]:
    import pyarrow.parquet as pq

    fs, fs_path = filesystem(path)
    raw = pq.read_schema(fs_path, filesystem=fs).metadata or {}
    return {k.decode(): v.decode() for k, v in raw.items()}


class _Measured:
    """A task that also reports its worker process's peak resident memory so far."""

    def __init__(self, fn):
        self.fn = fn
        self.__name__ = fn.__name__

    def __call__(self, item):
        import resource

        result = self.fn(item)
        return result, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


class PhaseLog:
    """A ParallelMap that records, per call (one phase), tasks, seconds and the largest peak RSS of
    the processes that ran them: the figure that must not grow with the corpus."""

    def __init__(self, pmap):
        self.pmap = pmap
        self.phases: list[dict] = []

    def __call__(self, fn, items):
        import time

        items = list(items)
        started = time.perf_counter()
        results = self.pmap(_Measured(fn), items)
        self.phases.append(
            {
                "phase": fn.__name__.lstrip("_"),
                "tasks": len(items),
                "seconds": round(time.perf_counter() - started, 3),
                "peak_worker_rss_mib": round(max((rss for _, rss in results), default=0) / 2**20, 1),
            }
        )
        return [r for r, _ in results]
