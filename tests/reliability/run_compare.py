"""Compare two run directories file by file, leaving out only what records wall time.

Every file must exist in both and be byte-identical, except these, which are compared as JSON with
their wall-time fields removed:
- ``<stage>/part-NNNNN.stats.json`` and ``<stage>/stats.json``: ``seconds``;
- ``dedup/phases.json``: ``seconds`` and ``peak_worker_rss_mib`` of each phase;
- ``run_manifest.json``: the SHA-256 and size of the files above, and ``total_bytes`` (the rest
  must match).
"""

from __future__ import annotations

import json
from pathlib import Path

from manifests.io import TMP_MARKER

WALL_TIME_FIELDS = ("seconds", "peak_worker_rss_mib")


def run_files(run_dir: Path) -> dict[str, Path]:
    """The run's files, without the audit's reports (audit/), which are not part of the run."""
    files = {str(p.relative_to(run_dir)): p for p in sorted(run_dir.rglob("*")) if p.is_file()}
    return {rel: p for rel, p in files.items() if not rel.startswith("audit/")}


def temp_files(run_dir: Path) -> list[str]:
    """Temporary files of interrupted writes (manifests.io.TMP_MARKER) still in the run directory."""
    return [rel for rel in run_files(run_dir) if TMP_MARKER in rel]


def _without_wall_time(value):
    if isinstance(value, dict):
        return {k: _without_wall_time(v) for k, v in value.items() if k not in WALL_TIME_FIELDS}
    if isinstance(value, list):
        return [_without_wall_time(v) for v in value]
    return value


def _timed(rel: str) -> bool:
    return rel.endswith("stats.json") or rel == "dedup/phases.json"


def differences(expected: Path, actual: Path) -> list[str]:
    """What differs between two runs, one line each; empty when they are the same."""
    want, got = run_files(expected), run_files(actual)
    problems = [f"missing: {rel}" for rel in sorted(set(want) - set(got))]
    problems += [f"extra: {rel}" for rel in sorted(set(got) - set(want))]
    for rel in sorted(set(want) & set(got)):
        a, b = want[rel].read_bytes(), got[rel].read_bytes()
        if a == b:
            continue
        if _timed(rel):
            if _without_wall_time(json.loads(a)) != _without_wall_time(json.loads(b)):
                problems.append(f"differs beyond wall time: {rel}")
        elif rel == "run_manifest.json":
            ja, jb = json.loads(a), json.loads(b)
            if _hashes_of_untimed(ja) != _hashes_of_untimed(jb):
                problems.append(f"differs in the hashes of untimed files: {rel}")
        else:
            problems.append(f"differs: {rel}")
    return problems


def _hashes_of_untimed(run_manifest: dict) -> dict:
    files = {k: v for k, v in run_manifest.get("files", {}).items() if not _timed(k)}
    # total_bytes sums the sizes of the timed files too ("seconds": 0.5 vs 0.25).
    return {k: v for k, v in run_manifest.items() if k != "total_bytes"} | {"files": files}
