"""Matplotlib figures of a run's statistics (`pipeline.run_statistics`), for the notebook and the
HTML report of `python -m pipeline stats`.

Figures are made with `matplotlib.figure.Figure`, not pyplot: no GUI backend and no global figure
list, so the CLI can draw them anywhere, and Jupyter's inline backend still displays them.
Japanese labels need a CJK font: matplotlib's default DejaVu Sans draws them as empty boxes.
`matplotlib-fontja` ships IPAexGothic (IPA Font License) inside its wheel, so nothing is
downloaded and every machine draws the same glyphs.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import matplotlib
import polars as pl
from matplotlib import ticker
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from pipeline.run_statistics import RunStatistics


def use_japanese_font() -> str:
    """Make IPAexGothic the default font family and return the path of its font file."""
    import matplotlib_fontja  # registers the font and sets rcParams["font.family"] on import

    matplotlib_fontja.japanize()
    # Keep a hyphen-minus for negative numbers: IPAexGothic has U+2212 but the mix looks uneven.
    matplotlib.rcParams["axes.unicode_minus"] = False
    return matplotlib_fontja.get_font_ttf_path()


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def tokens_per_source(stats: RunStatistics) -> Figure:
    """Horizontal bars: tokens (characters before the tokenize stage) of the final documents."""
    totals = stats.totals("source")
    measure = "tokens" if totals["tokens"].null_count() < totals.height else "characters"
    totals = totals.sort(measure, nulls_last=False)
    fig = Figure(figsize=(7, 0.5 * max(totals.height, 2) + 1.2))
    ax = fig.add_subplot()
    ax.barh(totals["source"].to_list(), totals[measure].fill_null(0).to_list(), color="#4c72b0")
    ax.set_xlabel(measure)
    ax.set_title(f"{measure} per source（ソース別{'トークン数' if measure == 'tokens' else '文字数'}）")
    for y, value in enumerate(totals[measure].fill_null(0).to_list()):
        ax.annotate(f"{value:,}", (value, y), xytext=(3, 0), textcoords="offset points", va="center")
    ax.margins(x=0.15)
    return fig


def funnel(stats: RunStatistics) -> Figure:
    """Documents left after each stage, from the number fetched."""
    table = stats.funnel()
    labels = ["fetched"] + [
        "tokenized" if s == "tokenize" else f"after {s}" for s in table["stage"].to_list()
    ]
    values = [table["documents_in"][0]] + table["kept"].to_list()
    fig = Figure(figsize=(7, 0.45 * len(labels) + 1.2))
    ax = fig.add_subplot()
    ax.barh(labels[::-1], values[::-1], color="#55a868")
    for y, value in enumerate(values[::-1]):
        share = value / values[0] if values[0] else 0.0
        ax.annotate(f"{value:,} ({share:.0%})", (value, y), xytext=(3, 0), textcoords="offset points",
                    va="center")
    ax.set_xlabel("documents")
    ax.set_title("filter funnel（フィルタごとの残存文書数）")
    ax.margins(x=0.2)
    return fig


def rejects(stats: RunStatistics) -> Figure:
    """Rejected documents per stage and reason kind."""
    table = stats.rejects()
    labels = [f"{s}: {r}" for s, r in zip(table["stage"], table["reason"])]
    fig = Figure(figsize=(7, 0.35 * max(len(labels), 2) + 1.2))
    ax = fig.add_subplot()
    ax.barh(labels[::-1], table["documents"].to_list()[::-1], color="#c44e52")
    ax.set_xlabel("documents rejected")
    ax.set_title("rejects per stage and reason（段階・理由別の除外数）")
    return fig


def histogram_per_source(stats: RunStatistics, column: str, bins: int = 30, log: bool = False) -> Figure:
    """One panel per source, the same bins in each: the distribution of `column` (`characters` or a
    score column) over the documents kept by the last stage with text."""
    counts = stats.histogram(column, bins=bins, log=log)
    sources = sorted(counts["source"].unique().to_list())
    fig = Figure(figsize=(7, 1.6 * max(len(sources), 1) + 1.0))
    axes = fig.subplots(max(len(sources), 1), 1, sharex=True, squeeze=False)[:, 0]
    for ax, source in zip(axes, sources):
        part = counts.filter(pl.col("source") == source)
        widths = (part["bin_end"] - part["bin_start"]).to_list()
        ax.bar(part["bin_start"].to_list(), part["documents"].to_list(), width=widths, align="edge",
               color="#8172b2", edgecolor="white", linewidth=0.5)
        ax.set_ylabel(source, rotation=0, ha="right", va="center")
        ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))  # counts of documents
    if log:
        axes[-1].set_xscale("log")
    label = "length in characters（文字数）" if column == "characters" else f"{column}（スコア）"
    axes[-1].set_xlabel(label)
    fig.suptitle(f"{column} per source（ソース別の分布）")
    return fig


def cluster_sizes(stats: RunStatistics) -> Figure:
    """Number of duplicate clusters of each size, on log axes (a power law is a straight line)."""
    table = stats.cluster_sizes()
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.scatter(table["cluster_size"].to_list(), table["clusters"].to_list(), color="#dd8452")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        # Plain numbers (2, 60, 1000), not 6×10¹ on every minor tick of a short log range.
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
        axis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("cluster size (documents)")
    ax.set_ylabel("clusters")
    ax.set_title("duplicate cluster sizes（重複クラスタの大きさ）")
    return fig


def shard_sizes(stats: RunStatistics, stage: str | None = None) -> Figure:
    """Rows per shard of one stage (the final one by default): skewed shards show as tall bars."""
    stage = stage or stats.final_stage
    table = stats.shard_sizes(stage)
    fig = Figure(figsize=(7, 3))
    ax = fig.add_subplot()
    ax.bar(table["shard"].to_list(), table["rows"].to_list(), color="#937860")
    ax.set_ylabel("rows")
    ax.set_title(f"{stage} shard sizes（シャードごとの行数）")
    ax.tick_params(axis="x", labelrotation=90)
    return fig
