"""The stats API, its text and HTML report and `python -m pipeline stats`, on a small run directory
written here with known numbers (the notebook test runs them on a real run of the bundled sample)."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifests.io import ManifestError, atomic_write_parquet, manifest_table, write_manifest
from manifests.schema import doc_id, new_row
from pipeline.run_statistics import RunStatsError, open_run
from pipeline.run_statistics_report import format_table, text_summary

REPO = Path(__file__).resolve().parents[2]

# Real Japanese text: a Diet speech, an article of 行政手続法, Wikipedia paragraphs.
TEXTS = {
    "diet": "これより会議を開きます。内閣提出、地方税法等の一部を改正する法律案を議題といたします。",
    "law": "第一条　この法律は、処分、行政指導及び届出に関する手続並びに命令等を定める手続に関し、"
    "共通する事項を定める。",
    "tsuyu": "梅雨（つゆ、ばいう）は、北海道と小笠原諸島を除く日本、朝鮮半島南部、中国の華南や華中の"
    "沿海部、および台湾など、東アジアの広範囲においてみられる特有の気象現象で、5月から7月にかけて来る"
    "曇りや雨の多い期間のこと。",
    "tsuyu_copy": "梅雨（つゆ、ばいう）は、北海道と小笠原諸島を除く日本、朝鮮半島南部、中国の華南や華中の"
    "沿海部、および台湾など、東アジアの広範囲においてみられる特有の気象現象で、5月から7月にかけて来る"
    "曇りや雨の多い期間。",
    "short": "ハノーファーは、ドイツの都市。",
}

# name: source, licence, OSAID class, text, the stage that rejects it and why (None: reaches the end).
DOCS = {
    "diet": ("kokkai", "LicenseRef-Kokkai-SpeakerCopyright", "public", None),
    "law": ("egov", "LicenseRef-JP-Copyright-Art13-NonCopyrightable", "open", None),
    "tsuyu": ("local", "CC-BY-SA-4.0", "open", None),
    "tsuyu_copy": ("local", "CC-BY-SA-4.0", "open", ("dedup", "duplicate_of:{tsuyu}")),
    "short": ("local", "CC-BY-SA-4.0", "open", ("clean", "too_few_letters")),
    "missing": ("commoncrawl", "NOASSERTION", "obtainable", ("fetch", "fetch_http_503")),
}
STAGES = ("fetch", "extract", "clean", "dedup", "quality", "tokenize")
TOKENS = {"diet": 31, "law": 40, "tsuyu": 77}
QUALITY = {"diet": 0.9, "law": 0.95, "tsuyu": 0.3}
# Which shard each document is in (the same in every stage): two shards per stage.
SHARD = {"diet": 0, "law": 0, "tsuyu": 1, "tsuyu_copy": 1, "short": 1, "missing": 1}
CLUSTER = {"tsuyu": "tsuyu", "tsuyu_copy": "tsuyu"}


def ids() -> dict[str, str]:
    return {name: doc_id(DOCS[name][0], name) for name in DOCS}


def write_run(root: Path) -> Path:
    """A run directory as the stages leave it: per stage and shard, documents, manifest, rejects."""
    did = ids()
    alive = list(DOCS)
    for stage in STAGES:
        for shard in (0, 1):
            names = [n for n in alive if SHARD[n] == shard]
            rows, docs, rejected = [], [], []
            for name in names:
                source, licence, osaid, rejection = DOCS[name]
                text = TEXTS.get(name, "")
                row = new_row(
                    doc_id=did[name], source=source, source_uri=f"https://example.jp/{name}", locator="{}",
                    license=licence, legal_basis=["JP-Copyright-Art30-4"], osaid_class=osaid,
                    redistribution="text", optout="{}", pipeline_version="test", config_sha256="test",
                )
                if stage in ("dedup", "quality", "tokenize"):
                    cluster = CLUSTER.get(name, name)
                    row.update(dedup_cluster_id=did[cluster], dedup_cluster_size=2 if name in CLUSTER else 1)
                if rejection and rejection[0] == stage:
                    reason = rejection[1].format(**did)
                    row.update(included=False, exclusion_reason=f"{stage}:{reason}")
                    rejected.append({"doc_id": did[name], "source": source, "reason": reason,
                                     "detail": "test", "text": text or None})
                    rows.append(row)
                    continue
                if stage == "tokenize":
                    row.update(shard=f"tokenize/part-{shard:05d}.parquet", row=len(docs),
                               num_tokens=TOKENS[name])
                    docs.append({"doc_id": did[name], "source": source, "num_tokens": TOKENS[name]})
                else:
                    doc = {"doc_id": did[name], "source": source, "text": text}
                    if stage in ("clean", "dedup", "quality"):
                        doc |= {"clean_chars": float(len(text)), "language_score_lid176_v1": 0.99}
                    if stage == "quality":
                        doc["quality_wikilike_v1"] = QUALITY[name]
                    docs.append(doc)
                rows.append(row)
            part = f"part-{shard:05d}"
            stage_dir = root / stage
            atomic_write_parquet(str(stage_dir / f"{part}.parquet"), _table(docs, stage))
            atomic_write_parquet(str(stage_dir / "rejected" / f"{part}.parquet"), _rejected_table(rejected))
            write_manifest(str(stage_dir / f"{part}.manifest.parquet"), manifest_table(rows))
        alive = [n for n in alive if not (DOCS[n][3] and DOCS[n][3][0] == stage)]
    return root


def _table(docs: list[dict], stage: str) -> pa.Table:
    if docs:
        return pa.Table.from_pylist(docs)
    columns = {"doc_id": pa.string(), "source": pa.string()}
    return pa.table({k: pa.array([], t) for k, t in columns.items()})


def _rejected_table(rows: list[dict]) -> pa.Table:
    schema = pa.schema([(c, pa.string()) for c in ("doc_id", "source", "reason", "detail", "text")])
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return write_run(tmp_path_factory.mktemp("stats") / "run")


def as_dicts(frame: pl.DataFrame, key: str) -> dict:
    return {row[key]: {k: v for k, v in row.items() if k != key} for row in frame.iter_rows(named=True)}


def test_totals_count_the_final_documents_per_source_licence_and_osaid_class(run):
    stats = open_run(str(run))
    by_source = as_dicts(stats.totals("source"), "source")
    assert by_source == {
        "local": {"documents": 1, "tokens": 77, "characters": len(TEXTS["tsuyu"])},
        "egov": {"documents": 1, "tokens": 40, "characters": len(TEXTS["law"])},
        "kokkai": {"documents": 1, "tokens": 31, "characters": len(TEXTS["diet"])},
    }
    assert stats.totals("source")["source"].to_list() == ["local", "egov", "kokkai"]  # most tokens first
    by_class = as_dicts(stats.totals("osaid_class"), "osaid_class")
    assert by_class["open"]["tokens"] == 117 and by_class["public"]["tokens"] == 31
    assert set(as_dicts(stats.totals("license"), "license")) == {DOCS[n][1] for n in TOKENS}
    with pytest.raises(ValueError, match="choose one of source, license, osaid_class"):
        stats.totals("url")


def test_rejects_count_reason_kinds_per_stage(run):
    rejects = open_run(str(run)).rejects()
    assert rejects.rows() == [
        ("fetch", "fetch_http_503", 1),
        ("clean", "too_few_letters", 1),
        ("dedup", "duplicate_of", 1),  # duplicate_of:<doc_id> counts as its kind
    ]


def test_the_funnel_runs_from_fetched_to_tokenized_and_accounts_for_every_document(run):
    stats = open_run(str(run))
    funnel = stats.funnel()
    assert funnel.rows() == [
        ("fetch", 6, 5, 1),
        ("extract", 5, 5, 0),
        ("clean", 5, 4, 1),
        ("dedup", 4, 3, 1),
        ("quality", 3, 3, 0),
        ("tokenize", 3, 3, 0),
    ]
    fetched = funnel["documents_in"][0]
    assert fetched == funnel["kept"][-1] + stats.rejects()["documents"].sum()


def test_histograms_share_bins_across_sources_and_count_every_kept_document(run):
    stats = open_run(str(run))
    assert stats.text_stage == "quality"
    assert stats.score_columns == ["language_score_lid176_v1", "quality_wikilike_v1"]
    hist = stats.histogram("quality_wikilike_v1", bins=4)
    assert dict(hist.group_by("source").agg(pl.col("documents").sum()).rows()) == {
        "kokkai": 1, "egov": 1, "local": 1
    }
    edges = sorted(set(hist["bin_start"].to_list()) | set(hist["bin_end"].to_list()))
    assert edges[0] == pytest.approx(0.3) and edges[-1] == pytest.approx(0.95)
    width = (0.95 - 0.3) / 4
    for start in hist["bin_start"]:  # every source's bars sit on the same grid
        assert ((start - 0.3) / width) == pytest.approx(round((start - 0.3) / width))
    # The highest value falls in the last bin, not one past it.
    assert hist.filter(pl.col("source") == "egov")["bin_end"][0] == pytest.approx(0.95)
    lengths = stats.histogram("characters", bins=3, log=True)
    assert lengths["bin_start"].min() == pytest.approx(min(len(TEXTS[n]) for n in TOKENS))
    assert lengths["bin_end"].max() == pytest.approx(max(len(TEXTS[n]) for n in TOKENS))
    q = as_dicts(stats.quantiles("characters"), "source")
    assert q["local"]["median"] == len(TEXTS["tsuyu"]) and q["local"]["documents"] == 1


def test_cluster_sizes_count_clusters_not_documents(run):
    clusters = open_run(str(run)).cluster_sizes()
    # 4 documents entered dedup: 2 alone, 2 in one cluster.
    assert clusters.rows() == [(1, 2, 2), (2, 1, 2)]


def test_shard_sizes_come_from_the_files(run):
    sizes = open_run(str(run)).shard_sizes()
    assert sizes.height == 12
    row = sizes.filter((pl.col("stage") == "clean") & (pl.col("shard") == "part-00001")).row(0, named=True)
    assert row["rows"] == 2  # tsuyu and tsuyu_copy; short was rejected there
    assert row["bytes"] == (run / "clean" / "part-00001.parquet").stat().st_size
    tokens = sizes.filter(pl.col("stage") == "tokenize").select("shard", "tokens").rows()
    assert tokens == [("part-00000", 71), ("part-00001", 77)]
    assert sizes.filter(pl.col("stage") == "clean")["tokens"].null_count() == 2


def test_rejected_samples_show_the_text_of_each_reason(run):
    samples = open_run(str(run)).rejected_samples(per_reason=2, max_chars=10)
    assert samples.select("stage", "reason").rows() == [
        ("fetch", "fetch_http_503"), ("clean", "too_few_letters"), ("dedup", "duplicate_of")
    ]
    texts = dict(zip(samples["reason"], samples["text"]))
    assert texts["too_few_letters"] == TEXTS["short"][:10]
    assert texts["duplicate_of"] == TEXTS["tsuyu_copy"][:10]
    assert texts["fetch_http_503"] is None


def summary(stats) -> dict:
    return {
        "totals": stats.totals("source").rows(),
        "rejects": stats.rejects().rows(),
        "funnel": stats.funnel().rows(),
        "clusters": stats.cluster_sizes().rows(),
        "shards": stats.shard_sizes().drop("bytes").rows(),
        "hist": stats.histogram("characters", bins=5).rows(),
        "samples": stats.rejected_samples().rows(),
    }


def test_a_file_url_and_an_fsspec_memory_url_give_the_same_figures(run):
    expected = summary(open_run(str(run)))
    assert summary(open_run(run.as_uri())) == expected
    memory = fsspec.filesystem("memory")
    for path in run.rglob("*"):
        if path.is_file():
            memory.pipe(f"/statsrun/{path.relative_to(run)}", path.read_bytes())
    try:
        assert summary(open_run("memory://statsrun")) == expected
    finally:
        memory.rm("/statsrun", recursive=True)


def test_stats_are_lazy_frames_that_read_only_the_columns_asked_for(run):
    stats = open_run(str(run))
    query = stats.documents("quality").select("source")
    assert isinstance(query, pl.LazyFrame)
    # The scan's projection is the one column: the text is never read for it.
    assert re.search(r"PROJECT 1/\d+ COLUMNS", query.explain())


def test_a_missing_or_invalid_run_directory_is_refused_by_name(tmp_path, run):
    with pytest.raises(RunStatsError, match=f"{tmp_path / 'nope'}: no such run directory"):
        open_run(str(tmp_path / "nope"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(RunStatsError, match="file.txt: not a directory"):
        open_run(str(tmp_path / "file.txt"))
    with pytest.raises(RunStatsError, match="not a run directory"):
        open_run(str(tmp_path))
    future = tmp_path / "future"
    shutil.copytree(run, future)
    manifest = future / "fetch" / "part-00000.manifest.parquet"
    table = pq.read_table(manifest)
    pq.write_table(table.replace_schema_metadata({b"manifest_version": b"2.0"}), manifest)
    with pytest.raises(ManifestError, match="manifest schema version 2.0 is not supported"):
        open_run(str(future))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "stats", *args], cwd=REPO, capture_output=True, text=True,
        timeout=300,
    )


def test_the_stats_command_exits_2_for_a_missing_run_directory(tmp_path):
    proc = cli(str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'nope'}: no such run directory"
    assert proc.stdout == ""


def test_the_stats_command_prints_aligned_tables_and_writes_an_html_report(run, tmp_path):
    out = tmp_path / "report.html"
    proc = cli(str(run), "--html", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = lines.index("Rejects per stage and reason")
    assert lines[header + 1 : header + 5] == [
        "stage  reason           documents",
        "fetch  fetch_http_503           1",
        "clean  too_few_letters          1",
        "dedup  duplicate_of             1",
    ]
    page = out.read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    # tokens, funnel, rejects, length, 2 scores, clusters, shards
    assert len(images) == 8
    assert all(base64.b64decode(i).startswith(b"\x89PNG\r\n\x1a\n") for i in images)
    assert TEXTS["short"][:10] in page  # a rejected document's text, escaped into a table
    assert "<td>too_few_letters</td>" in page


def test_format_table_aligns_japanese_text_by_its_display_width():
    frame = pl.DataFrame({"reason": ["梅雨", "too_short"], "documents": [3, 12]})
    assert format_table(frame).splitlines() == [
        "reason     documents",
        "梅雨               3",
        "too_short         12",
    ]


def test_the_text_summary_names_the_run_and_its_stages(run):
    text = text_summary(open_run(str(run)))
    assert text.startswith(f"run: {run}\nstages done: {' '.join(STAGES)}\n")


def test_japanese_labels_render_with_a_font_that_has_their_glyphs(tmp_path):
    from fontTools.ttLib import TTFont
    from matplotlib import font_manager
    from matplotlib.figure import Figure

    from pipeline.run_statistics_plots import png_bytes, use_japanese_font

    font_path = use_japanese_font()
    label = "ソース別トークン数（国会会議録・法令）"
    fig = Figure()
    ax = fig.add_subplot()
    ax.set_title(label)
    ax.set_xlabel("梅雨の文字数")
    with warnings.catch_warnings():
        # DejaVu Sans would warn "Glyph ... missing from font(s)" for each kana and kanji.
        warnings.simplefilter("error")
        png = png_bytes(fig)
    assert png.startswith(b"\x89PNG")
    used = font_manager.findfont(ax.title.get_fontproperties(), fallback_to_default=False)
    assert Path(used).name == "ipaexg.ttf" and Path(used) == Path(font_path)
    cmap = TTFont(used).getBestCmap()
    assert all(ord(ch) in cmap for ch in label + "梅雨の文字数")
    (tmp_path / "label.png").write_bytes(png)


def test_a_run_before_tokenize_reports_characters_and_no_tokens(run, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(run, partial)
    shutil.rmtree(partial / "tokenize")
    stats = open_run(str(partial))
    assert stats.final_stage == "quality"
    totals = as_dicts(stats.totals("source"), "source")
    assert totals["kokkai"] == {"documents": 1, "tokens": None, "characters": len(TEXTS["diet"])}
    assert stats.funnel()["stage"].to_list()[-1] == "quality"
