"""The summary of `python -m pipeline stats`: plain aligned tables for a terminal, and a single-file
HTML report with the same tables and the figures inline (PNG as base64), for people without Jupyter.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Iterator

import polars as pl

from pipeline.run_statistics import RunStatistics

SAMPLE_TEXT_CHARS = 120


def tables(stats: RunStatistics) -> Iterator[tuple[str, pl.DataFrame]]:
    """The summary's tables, titled, in reading order."""
    yield "Filter funnel (documents in, kept, rejected per stage)", stats.funnel()
    for by in ("source", "license", "osaid_class"):
        yield f"Final documents per {by} (stage {stats.final_stage})", stats.totals(by)
    yield "Rejects per stage and reason", stats.rejects()
    yield "Duplicate clusters per size (dedup)", stats.cluster_sizes()
    for column in ("characters", *stats.score_columns):
        yield f"{column} of the documents kept by {stats.text_stage}, per source", stats.quantiles(column)
    yield "Shard sizes", stats.shard_sizes()


def format_table(frame: pl.DataFrame) -> str:
    """Columns padded to their widest cell, numbers right-aligned.

    Hand-written because polars' own repr draws box characters, shortens long tables and long
    strings, and adds a shape line: a report must show every row as plain text.

    >>> print(format_table(pl.DataFrame({"source": ["kokkai", "egov"], "tokens": [8435, 15959]})))
    source  tokens
    kokkai   8,435
    egov    15,959
    """
    cells = [[_cell(v) for v in row] for row in frame.iter_rows()]
    header = frame.columns
    widths = [max([len(h)] + [_width(r[i]) for r in cells]) for i, h in enumerate(header)]
    numeric = [dtype.is_numeric() for dtype in frame.dtypes]
    lines = ["  ".join(_pad(h, w, False) for h, w in zip(header, widths)).rstrip()]
    for row in cells:
        lines.append("  ".join(_pad(c, w, n) for c, w, n in zip(row, widths, numeric)).rstrip())
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("\n", " ")


def _width(text: str) -> int:
    # Japanese (East Asian wide) characters take two terminal columns.
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - _width(text))
    return fill + text if right else text + fill


def text_summary(stats: RunStatistics) -> str:
    parts = [f"run: {stats.run_dir}", f"stages done: {' '.join(stats.stages)}"]
    for title, frame in tables(stats):
        parts.append(f"\n{title}\n{format_table(frame) if frame.height else '(none)'}")
    return "\n".join(parts) + "\n"


def html_report(stats: RunStatistics) -> str:
    """One self-contained HTML page: the tables, the figures as inline PNG, and rejected samples."""
    from pipeline import run_statistics_plots as plots

    plots.use_japanese_font()
    figures: list[tuple[str, Callable]] = [
        ("Tokens per source", plots.tokens_per_source),
        ("Filter funnel", plots.funnel),
        ("Rejects per stage and reason", plots.rejects),
        ("Length per source", lambda s: plots.histogram_per_source(s, "characters", log=True)),
        *((f"{c} per source", lambda s, c=c: plots.histogram_per_source(s, c)) for c in stats.score_columns),
        ("Duplicate cluster sizes", plots.cluster_sizes),
        ("Shard sizes", plots.shard_sizes),
    ]
    body = [f"<h1>Run statistics: {html.escape(stats.run_dir)}</h1>",
            f"<p>Stages done: {html.escape(' '.join(stats.stages))}</p>"]
    for title, draw in figures:
        png = base64.b64encode(plots.png_bytes(draw(stats))).decode("ascii")
        body.append(f'<h2>{html.escape(title)}</h2>\n<img alt="{html.escape(title)}" '
                    f'src="data:image/png;base64,{png}">')
    for title, frame in tables(stats):
        body.append(f"<h2>{html.escape(title)}</h2>\n{_html_table(frame)}")
    samples = stats.rejected_samples(per_reason=3, max_chars=SAMPLE_TEXT_CHARS)
    body.append(f"<h2>Rejected documents, up to 3 per reason</h2>\n{_html_table(samples)}")
    return (
        "<!DOCTYPE html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\">"
        f"<title>Run statistics: {html.escape(stats.run_dir)}</title><style>{_CSS}</style></head>"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


_CSS = (
    "body{font-family:sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse;margin-bottom:1rem}td,th{border:1px solid #ccc;padding:2px 6px;"
    "vertical-align:top}td.n{text-align:right}img{max-width:100%}"
)


def _html_table(frame: pl.DataFrame) -> str:
    if not frame.height:
        return "<p>(none)</p>"
    numeric = [dtype.is_numeric() for dtype in frame.dtypes]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    rows = [
        "<tr>" + "".join(
            f"<td{' class=n' if n else ''}>{html.escape(_cell(v))}</td>" for v, n in zip(row, numeric)
        ) + "</tr>"
        for row in frame.iter_rows()
    ]
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
