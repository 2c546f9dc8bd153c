"""The listing of every training document and where a third party obtains it (OSAID data information,
items 2 and 3: the public and obtainable data, and how to get it).

One CSV row per included document of the final manifests, shard by shard: its id, source, the
address that fetches it again (`source_uri`) and the source-specific coordinates (`locator`, JSON:
WARC file, offset and length; Diet issueID and request URL; e-Gov law revision id; ...), its
licence, legal bases, OSAID class, redistribution mode, attribution, the SHA-256 of the bytes as
fetched and of the text as emitted, and where its tokens are. Open documents (`redistribution:
text`) may be shared as text; for the others the locator is what may be shared.
"""

from __future__ import annotations

import csv
import uuid
from collections import Counter

from manifests.io import TMP_MARKER, filesystem, read_parquet
from manifests.layout import STAGE_ORDER, done_shards, manifest_path

FINAL_STAGE = STAGE_ORDER[-1]
LISTING_COLUMNS = (
    "doc_id",
    "source",
    "source_uri",
    "locator",
    "license",
    "legal_basis",
    "osaid_class",
    "redistribution",
    "attribution",
    "retrieved_at",
    "raw_sha256",
    "text_sha256",
    "shard",
    "row",
    "num_tokens",
)


def write_listing(run_dir: str, path: str) -> Counter:
    """Write the CSV (UTF-8, a header line, RFC 4180 quoting); returns documents per OSAID class.

    Streamed to a temporary file shard by shard (a corpus has billions of rows), then renamed."""
    fs, fs_path = filesystem(path)
    fs.makedirs(fs_path.rsplit("/", 1)[0], exist_ok=True)
    tmp = f"{fs_path}{TMP_MARKER}{uuid.uuid4().hex}"
    try:
        with fs.open(tmp, "w", encoding="utf-8", newline="") as f:
            classes = _write_rows(run_dir, csv.writer(f, lineterminator="\n"))
        fs.mv(tmp, fs_path)
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise
    return classes


def _write_rows(run_dir: str, writer) -> Counter:
    writer.writerow(LISTING_COLUMNS)
    classes: Counter = Counter()
    for shard in done_shards(run_dir, FINAL_STAGE):
        table = read_parquet(manifest_path(run_dir, FINAL_STAGE, shard), [*LISTING_COLUMNS, "included"])
        cols = {c: table.column(c).to_pylist() for c in table.column_names}
        for i, inc in enumerate(cols["included"]):
            if not inc:
                continue
            values = [cols[c][i] for c in LISTING_COLUMNS]
            values[LISTING_COLUMNS.index("legal_basis")] = " ".join(cols["legal_basis"][i] or [])
            writer.writerow(["" if v is None else v for v in values])
            classes[cols["osaid_class"][i]] += 1
    return classes
