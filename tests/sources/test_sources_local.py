"""sources.local: a user's JSON Lines and Parquet files, on real Japanese Wikipedia paragraphs."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sources.local
from sources.errors import SourceError
from sources.local import LocalDocument, is_warc_path, iter_local_documents

# Japanese Wikipedia paragraphs from the JSQuAD validation set (CC BY-SA 4.0), the leading
# "title [SEP] " removed; see tests/data/sources/README.md.
TSUYU = (
    "梅雨（つゆ、ばいう）は、北海道と小笠原諸島を除く日本、朝鮮半島南部、中国の南部から長江流域にかけての"
    "沿海部、および台湾など、東アジアの広範囲においてみられる特有の気象現象で、5月から7月にかけて来る曇りや"
    "雨の多い期間のこと。雨季の一種である。"
)
KYOHO = (
    "享保（きょうほう）は、日本の元号の一つ。正徳の後、元文の前。1716年から1736年までの期間を指す。"
    "この時代の天皇は中御門天皇、桜町天皇。江戸幕府将軍は徳川吉宗。"
)
OURYOKU = (
    "応力（おうりょく、ストレス）とは、物体の内部に生じる力の大きさや作用方向を表現するために用いられる"
    "物理量である。物体の変形や破壊などに対する負担の大きさを検討するのに用いられる。"
)

ROWS = [
    {
        "id": "ja-wiki-梅雨",
        "text": TSUYU,
        "url": "https://ja.wikipedia.org/wiki/梅雨",
        "license": "CC-BY-SA-4.0",
        "osaid_class": "open",
        "redistribution": "text",
    },
    {"id": 1716, "text": KYOHO, "url": None, "license": "CC-BY-SA-4.0"},
    {"text": OURYOKU},
]


def _jsonl_lines(rows) -> list[bytes]:
    return [json.dumps(row, ensure_ascii=False).encode("utf-8") for row in rows]


def _check_rows(docs: list[LocalDocument], path: str, name: str, indexes: list[int]):
    assert [d.text for d in docs] == [TSUYU, KYOHO, OURYOKU]
    assert [d.line_or_row for d in docs] == indexes
    assert [d.upstream_id for d in docs] == ["ja-wiki-梅雨", "1716", f"{name}:{indexes[2]}"]
    assert [d.path for d in docs] == [path] * 3
    assert [d.url for d in docs] == ["https://ja.wikipedia.org/wiki/梅雨", None, None]
    assert [d.license for d in docs] == ["CC-BY-SA-4.0", "CC-BY-SA-4.0", None]
    assert [(d.osaid_class, d.redistribution) for d in docs] == [("open", "text"), (None, None), (None, None)]


def test_jsonl(tmp_path):
    lines = _jsonl_lines(ROWS)
    # An empty line and a blank one are skipped, but still counted as lines.
    content = lines[0] + b"\n\n" + lines[1] + b"\r\n   \n" + lines[2] + b"\n"
    path = tmp_path / "wiki.jsonl"
    path.write_bytes(content)
    docs = list(iter_local_documents(str(path)))
    _check_rows(docs, str(path), "wiki.jsonl", [0, 2, 4])
    # raw_sha256 is of the line's bytes as stored, without the line ending.
    assert [d.raw_sha256 for d in docs] == [hashlib.sha256(line).hexdigest() for line in lines]


def test_jsonl_gz_and_json_suffixes(tmp_path):
    lines = _jsonl_lines(ROWS)
    gz = tmp_path / "wiki.jsonl.gz"
    gz.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    _check_rows(list(iter_local_documents(str(gz))), str(gz), "wiki.jsonl.gz", [0, 1, 2])
    plain = tmp_path / "wiki.json"
    plain.write_bytes(b"\n".join(lines))  # no final newline
    _check_rows(list(iter_local_documents(str(plain))), str(plain), "wiki.json", [0, 1, 2])


def test_jsonl_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + _jsonl_lines(ROWS[:1])[0] + b"\n")
    [doc] = iter_local_documents(str(path))
    assert doc.text == TSUYU


def test_fsspec_url():
    import fsspec

    url = "memory://tests-sources-local/wiki.jsonl"
    with fsspec.open(url, "wb") as f:
        f.write(b"\n".join(_jsonl_lines(ROWS)))
    _check_rows(list(iter_local_documents(url)), url, "wiki.jsonl", [0, 1, 2])


def test_parquet_read_in_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(sources.local, "_PARQUET_BATCH_ROWS", 2)  # rows 0-1, then row 2
    table = pa.table(
        {
            "id": ["ja-wiki-梅雨", "1716", None],
            "text": [TSUYU, KYOHO, OURYOKU],
            "url": ["https://ja.wikipedia.org/wiki/梅雨", None, None],
            "license": ["CC-BY-SA-4.0", "CC-BY-SA-4.0", None],
            "osaid_class": ["open", None, None],
            "redistribution": ["text", None, None],
            "views": [1, 2, 3],  # other columns are not read
        }
    )
    path = tmp_path / "wiki.parquet"
    pq.write_table(table, path, row_group_size=2)
    docs = list(iter_local_documents(str(path)))
    _check_rows(docs, str(path), "wiki.parquet", [0, 1, 2])
    assert [d.raw_sha256 for d in docs] == [
        hashlib.sha256(t.encode("utf-8")).hexdigest() for t in (TSUYU, KYOHO, OURYOKU)
    ]


def test_parquet_integer_ids_and_large_strings(tmp_path):
    table = pa.table(
        {"id": pa.array([7, 8], pa.int64()), "text": pa.array([KYOHO, OURYOKU], pa.large_string())}
    )
    path = tmp_path / "ids.parquet"
    pq.write_table(table, path)
    assert [(d.upstream_id, d.text) for d in iter_local_documents(str(path))] == [
        ("7", KYOHO),
        ("8", OURYOKU),
    ]


def _bad_parquet(path: Path, table: pa.Table) -> None:
    pq.write_table(table, path)


# (file name, how to write it, expected message after "<path>: ")
ERRORS = [
    (
        "bad.jsonl",
        lambda p: p.write_bytes(_jsonl_lines(ROWS)[0] + '\n{"text": "梅雨",}\n'.encode()),
        "line 2: invalid JSON: Expecting property name enclosed in double quotes at column 15",
    ),
    (
        "notext.jsonl",
        lambda p: p.write_text('{"id": "a", "body": "梅雨"}\n', encoding="utf-8"),
        "line 1: no `text` field, expected a string",
    ),
    (
        "nulltext.jsonl",
        lambda p: p.write_text('\n{"text": null}\n', encoding="utf-8"),
        "line 2: `text` is null, expected a string",
    ),
    (
        "inttext.jsonl",
        lambda p: p.write_text('{"text": 1716}\n', encoding="utf-8"),
        "line 1: `text` is int, expected a string",
    ),
    (
        "list.jsonl",
        lambda p: p.write_text('["梅雨"]\n', encoding="utf-8"),
        "line 1: expected a JSON object, got list",
    ),
    (
        "array.json",
        lambda p: p.write_text(json.dumps(ROWS, ensure_ascii=False, indent=1), encoding="utf-8"),
        "line 1: invalid JSON: Expecting value at column 2 (one JSON object per line is expected, not an array)",
    ),
    (
        "badurl.jsonl",
        lambda p: p.write_text('{"text": "梅雨", "url": 3}\n', encoding="utf-8"),
        "line 1: `url` is int, expected a string",
    ),
    (
        "badid.jsonl",
        lambda p: p.write_text('{"text": "梅雨", "id": ""}\n', encoding="utf-8"),
        "line 1: `id` is '', expected a non-empty string or an integer",
    ),
    # A user's file saved as Shift_JIS rather than UTF-8.
    (
        "sjis.jsonl",
        lambda p: p.write_bytes('{"text": "梅雨は雨季の一種である。"}\n'.encode("shift_jis")),
        "line 1: not UTF-8 (byte 10: invalid start byte)",
    ),
    (
        "cut.jsonl.gz",
        lambda p: p.write_bytes(gzip.compress(b"\n".join(_jsonl_lines(ROWS)))[:-30]),
        "line 3: unreadable: Compressed file ended before the end-of-stream marker was reached",
    ),
    (
        "notgzip.jsonl.gz",
        lambda p: p.write_bytes(b"\n".join(_jsonl_lines(ROWS))),
        "line 1: unreadable: Not a gzipped file",
    ),
    (
        "notext.parquet",
        lambda p: _bad_parquet(p, pa.table({"body": [TSUYU], "id": ["a"]})),
        "no `text` column (columns: body, id)",
    ),
    (
        "inttext.parquet",
        lambda p: _bad_parquet(p, pa.table({"text": [1716]})),
        "column `text` has type int64, expected a string type",
    ),
    (
        "nulltext.parquet",
        lambda p: _bad_parquet(p, pa.table({"text": [TSUYU, None]})),
        "row 1: `text` is null, expected a string",
    ),
    ("garbage.parquet", lambda p: p.write_bytes(b"PAR1 but not really"), "not a readable Parquet file"),
    (
        "wiki.csv",
        lambda p: p.write_text("text\n梅雨\n", encoding="utf-8"),
        "unknown file type, expected one of .jsonl, .jsonl.gz, .json, .parquet",
    ),
    (
        "crawl.warc.gz",
        lambda p: p.write_bytes(b""),
        "unknown file type, expected one of .jsonl, .jsonl.gz, .json, .parquet (WARC files go through sources.warc)",
    ),
]


@pytest.mark.parametrize("name, write, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_name_the_file_and_the_line_or_row(tmp_path, name, write, message):
    path = tmp_path / name
    write(path)
    with pytest.raises(SourceError) as err:
        list(iter_local_documents(str(path)))
    assert str(err.value).startswith(f"{path}: {message}")


def test_documents_before_a_bad_line_are_yielded(tmp_path):
    path = tmp_path / "half.jsonl"
    path.write_bytes(_jsonl_lines(ROWS)[0] + b"\n{oops\n")
    docs = iter_local_documents(str(path))
    assert next(docs).text == TSUYU
    with pytest.raises(SourceError, match="line 2: invalid JSON"):
        next(docs)


def test_missing_file(tmp_path):
    path = tmp_path / "missing.jsonl"
    with pytest.raises(SourceError, match=r"missing\.jsonl: no such file"):
        list(iter_local_documents(str(path)))


@pytest.mark.parametrize(
    "path, expected",
    [
        (
            "crawl-data/CC-MAIN-2024-22/segments/1715971057216.39/warc/CC-MAIN-20240517233122-20240518023122-00000.warc.gz",
            True,
        ),
        ("/data/own/site.WARC", True),
        ("s3://bucket/x.warc.gz", True),
        ("/data/own/site.warc.wet.gz", False),
        ("/data/own/docs.jsonl", False),
        ("/data/own/docs.parquet", False),
    ],
)
def test_is_warc_path(path, expected):
    assert is_warc_path(path) is expected
