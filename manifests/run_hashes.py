"""The run-level hash manifest: RUN_DIR/run_manifest.json, the SHA-256 and size of every file of a run.

Written when a run finishes (and again after a takedown rewrites shards), so that the audit can
show the shards, manifests, rejects, side-cars and Megatron files are byte for byte what the run
made: a changed byte, a missing file or a file added later is a violation. The file has no time
stamp and its keys are sorted, so the same run directory always gives the same bytes (reruns stay
idempotent).

    >>> path = write_run_hashes("runs/sample")          # doctest: +SKIP
    >>> verify_run_hashes("runs/sample")                # doctest: +SKIP
    []
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

from manifests.audit_violation import Violation
from manifests.io import TMP_MARKER, atomic_write_json, filesystem

RUN_MANIFEST = "run_manifest.json"
FORMAT = "jcorpus.run_manifest/1"
# Not part of what the run made: the hash file itself, the audit's own reports, and dedup's
# intermediate edges (README: safe to delete after the run).
EXCLUDED_PREFIXES = ("audit/", "dedup/work/")
_CHUNK = 1 << 20
_THREADS = 4  # hashlib releases the GIL on large buffers: a few threads keep a disk busy


class RunHashesError(Exception):
    """run_manifest.json exists but cannot be read; the message names the file."""


def run_manifest_path(run_dir: str) -> str:
    return f"{run_dir.rstrip('/')}/{RUN_MANIFEST}"


def _listed(run_dir: str) -> dict[str, int]:
    """Relative path -> size of every file of the run that the hash manifest covers."""
    fs, root = filesystem(run_dir)
    root = root.rstrip("/")
    found = {}
    for path, info in fs.find(root, detail=True).items():
        rel = path[len(root) + 1 :]
        if rel == RUN_MANIFEST or rel.startswith(EXCLUDED_PREFIXES) or TMP_MARKER in rel:
            continue
        found[rel] = int(info.get("size") or 0)
    return found


def _sha256(run_dir: str, rel: str) -> str:
    fs, path = filesystem(f"{run_dir.rstrip('/')}/{rel}")
    digest = hashlib.sha256()
    with fs.open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _hash_all(run_dir: str, rels: list[str]) -> dict[str, str]:
    with ThreadPoolExecutor(_THREADS) as pool:
        return dict(zip(rels, pool.map(lambda rel: _sha256(run_dir, rel), rels)))


def read_run_hashes(run_dir: str) -> dict | None:
    """The parsed run_manifest.json, or None when the run has none."""
    fs, path = filesystem(run_manifest_path(run_dir))
    if not fs.exists(path):
        return None
    try:
        with fs.open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunHashesError(f"{run_manifest_path(run_dir)}: not readable JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("files"), dict):
        raise RunHashesError(f"{run_manifest_path(run_dir)}: not a run manifest of format {FORMAT}")
    return data


def write_run_hashes(run_dir: str, config_base_dir: str | None = None) -> str:
    """Hash every file of the run into run_manifest.json (atomically); returns its path.

    `config_base_dir` is the directory the run's config paths are relative to (the config file's);
    the audit needs it to find local inputs again. When not given, the previous value is kept, so a
    takedown that rewrites the hashes does not lose it.
    """
    if config_base_dir is None:
        try:
            config_base_dir = (read_run_hashes(run_dir) or {}).get("config_base_dir")
        except RunHashesError:
            config_base_dir = None
    sizes = _listed(run_dir)
    digests = _hash_all(run_dir, sorted(sizes))
    files = {rel: {"sha256": digests[rel], "size": sizes[rel]} for rel in sorted(sizes)}
    data = {
        "format": FORMAT,
        "config_base_dir": config_base_dir,
        "files": files,
        "file_count": len(files),
        "total_bytes": sum(sizes.values()),
    }
    path = run_manifest_path(run_dir)
    atomic_write_json(path, data)
    return path


def verify_run_hashes(run_dir: str) -> list[Violation]:
    """Every difference between the run directory and its run_manifest.json: changed bytes,
    missing files and files added after it was written. A run without one is a violation too."""
    data = read_run_hashes(run_dir)
    if data is None:
        return [
            Violation(
                "integrity",
                f"no {RUN_MANIFEST}: the run's files cannot be checked against the hashes made when it "
                "finished (rerun `python -m pipeline run` on it to write them)",
                file=RUN_MANIFEST,
            )
        ]
    recorded: dict[str, dict] = data["files"]
    present = _listed(run_dir)
    violations = []
    for rel in sorted(set(recorded) - set(present)):
        violations.append(Violation("integrity", f"file listed in {RUN_MANIFEST} is missing", file=rel))
    for rel in sorted(set(present) - set(recorded)):
        violations.append(
            Violation("integrity", f"file not listed in {RUN_MANIFEST} (added after the run)", file=rel)
        )
    common = sorted(set(present) & set(recorded))
    digests = _hash_all(run_dir, common)
    for rel in common:
        want = recorded[rel]
        if digests[rel] != want.get("sha256") or present[rel] != want.get("size"):
            violations.append(
                Violation(
                    "integrity",
                    f"file changed since the run: SHA-256 {digests[rel][:16]}…, {present[rel]} bytes; "
                    f"{RUN_MANIFEST} has {str(want.get('sha256'))[:16]}…, {want.get('size')} bytes",
                    file=rel,
                )
            )
    return violations
