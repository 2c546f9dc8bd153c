"""The reviewer's audit report in Markdown, JSON and one self-contained HTML page.

`report` is a manifests.audit.AuditReport, read as a dict (dataclasses.asdict), so fields the
audit adds later appear in the JSON and missing ones are simply left out of the tables;
`summary` is manifests.audit_summary.summarize(run_dir). Everything shown comes from the web in
the end (document ids, URLs, reasons, details), so every value is escaped: HTML-escaped on the
page (URLs are shown as text, never as links), and `|` and newlines escaped in Markdown
tables. Charts on the page are inline SVG bars drawn here: a few rectangles do not
justify a plotting dependency, and the page must work offline as one file.
"""

from __future__ import annotations

import dataclasses
import html
import json
from typing import Any

from manifests.io import atomic_write_bytes

FORMATS = ("md", "json", "html")
REPORT_FILES = {"md": "audit.md", "json": "audit.json", "html": "audit.html"}
DIMENSION_TITLES = {
    "source": "Source",
    "license": "Licence",
    "legal_basis": "Legal basis",
    "osaid_class": "OSAID class",
    "redistribution": "Redistribution",
}


def _lower(title: str) -> str:
    return title if title.split()[0].isupper() else title.lower()


def report_dict(report: Any) -> dict[str, Any]:
    data = dataclasses.asdict(report) if dataclasses.is_dataclass(report) else dict(report)
    data["ok"] = bool(getattr(report, "ok", not data.get("violation_counts")))
    return data


def render(report: Any, summary: dict[str, Any], fmt: str = "md") -> str:
    data = report_dict(report)
    if fmt == "json":
        # Flat: the report's fields at the top, as scripts read them, and the summary beside them.
        return json.dumps({**data, "summary": summary}, ensure_ascii=False, indent=2, default=str)
    if fmt == "md":
        return _markdown(data, summary)
    if fmt == "html":
        return _html(data, summary)
    raise ValueError(f"report format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def write_reports(report: Any, summary: dict[str, Any], out_dir: str) -> dict[str, str]:
    """audit.md, audit.json and audit.html in `out_dir` (each written atomically); returns their paths."""
    paths = {}
    for fmt, name in REPORT_FILES.items():
        path = f"{out_dir.rstrip('/')}/{name}"
        atomic_write_bytes(path, (render(report, summary, fmt) + "\n").encode("utf-8"))
        paths[fmt] = path
    return paths


# -- the parts both readable formats show, as (title, header, rows) tables ----------------------


def _tables(data: dict[str, Any], summary: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]]]]:
    tables = []
    for dim, title in DIMENSION_TITLES.items():
        counts = (summary.get("included_by") or {}).get(dim) or {}
        if counts:
            rows = [[k, v.get("documents", 0), v.get("tokens", 0)] for k, v in counts.items()]
            tables.append((f"Training documents by {_lower(title)}", [title, "documents", "tokens"], rows))
    rejected = summary.get("rejected_by_stage") or {}
    rows = [[stage, kind, n] for stage, kinds in rejected.items() for kind, n in kinds.items()]
    if rows:
        tables.append(("Rejected documents by stage and reason", ["stage", "reason", "documents"], rows))
    for scope, title in (("examined", "every document examined"), ("included", "training documents")):
        signals = (summary.get("optout") or {}).get(scope) or {}
        rows = [
            [group, name, n]
            for group, values in signals.items()
            if isinstance(values, dict)
            for name, n in values.items()
        ]
        if rows:
            tables.append(
                (
                    f"Opt-out and rights signals: {title} ({signals.get('documents', 0)})",
                    ["signal", "value", "documents"],
                    rows,
                )
            )
    takedowns = (
        summary.get("takedowns")
        if isinstance(summary.get("takedowns"), list)
        else data.get("takedowns") or []
    )
    if takedowns:
        rows = [
            [
                t.get("request_id"),
                t.get("requested_at"),
                t.get("kind"),
                t.get("value"),
                t.get("mode"),
                t.get("documents"),
                ", ".join(t.get("shards") or []),
                t.get("reason") or "",
            ]
            for t in takedowns
        ]
        tables.append(
            (
                "Takedowns",
                ["request", "requested at", "kind", "value", "mode", "documents", "shards", "reason"],
                rows,
            )
        )
    verification = data.get("verification") or {}
    if verification:
        rows = [
            [r.get("doc_id"), r.get("source"), r.get("status"), r.get("shard"), r.get("row"), r.get("detail")]
            for r in verification.get("results") or []
        ]
        tables.append(
            (
                "Verification: documents fetched again",
                ["document", "source", "status", "shard", "row", "detail"],
                rows,
            )
        )
    violations = data.get("violations") or []
    if violations:
        rows = [
            [v.get("check"), v.get("doc_id"), v.get("file"), v.get("row"), v.get("message")]
            for v in violations
        ]
        tables.append(("Violations", ["check", "document", "file", "row", "problem"], rows))
    return tables


def _facts(data: dict[str, Any], summary: dict[str, Any]) -> list[tuple[str, Any]]:
    facts = [
        ("verdict", "PASS" if data.get("ok") else "FAIL"),
        ("policy", data.get("policy_file")),
        ("documents fetched", data.get("documents_fetched")),
        (
            "documents in the training shards",
            summary.get("documents_included", data.get("documents_included")),
        ),
        ("tokens in the training shards", summary.get("tokens_included", data.get("tokens_included"))),
        ("documents rejected with a reason", data.get("documents_rejected")),
    ]
    for check, n in sorted((data.get("violation_counts") or {}).items()):
        facts.append((f"violations: {check}", n))
    verification = data.get("verification") or {}
    if verification:
        counts = ", ".join(f"{k} {v}" for k, v in (verification.get("counts") or {}).items())
        facts.append(
            (
                "verification",
                f"seed {verification.get('seed')}, "
                f"{len(verification.get('sample') or [])} documents: {counts}",
            )
        )
    integrity = data.get("integrity") or {}
    if integrity:
        facts.append(
            (
                "integrity",
                ", ".join(f"{k} {v}" for k, v in integrity.items() if not isinstance(v, (list, dict))),
            )
        )
    return [(k, v) for k, v in facts if v is not None]


# -- Markdown ------------------------------------------------------------------------------------


def md_cell(value: Any) -> str:
    """A table cell that cannot break the table or start markup.

    >>> md_cell("a|b\\n`c`")
    'a\\\\|b `c`'
    """
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _markdown(data: dict[str, Any], summary: dict[str, Any]) -> str:
    lines = [f"# Audit of {md_cell(data.get('run_dir'))}", ""]
    lines += [f"- {name}: {md_cell(value)}" for name, value in _facts(data, summary)]
    for note in data.get("notes") or []:
        lines.append(f"- note: {md_cell(note)}")
    for title, header, rows in _tables(data, summary):
        lines += ["", f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# -- HTML ----------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,"Hiragino Sans","Noto Sans JP",sans-serif;margin:2rem;color:#222;max-width:72rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#0a0;font-weight:bold}.fail{color:#c00;font-weight:bold}
.charts{display:flex;flex-wrap:wrap;gap:2rem}figure{margin:0}figcaption{font-weight:bold;margin-bottom:.3rem}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def bar_chart(title: str, items: list[tuple[str, float]], width: int = 420) -> str:
    """Horizontal bars as inline SVG; labels escaped.

    >>> "<rect" in bar_chart("t", [("<b>", 3)]) and "&lt;b&gt;" in bar_chart("t", [("<b>", 3)])
    True
    """
    items = items[:12]
    top = max((v for _, v in items), default=0) or 1
    label_w, bar_h, gap = 170, 18, 6
    height = len(items) * (bar_h + gap) + gap
    parts = [
        f"<figure><figcaption>{_e(title)}</figcaption>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{_e(title)}">'
    ]
    for i, (label, value) in enumerate(items):
        y = gap + i * (bar_h + gap)
        w = max(1, round((width - label_w - 70) * value / top))
        short = label if len(label) <= 24 else label[:23] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end" font-size="12">{_e(short)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="#4a7fb5">'
            f"<title>{_e(label)}: {_e(value)}</title></rect>"
            f'<text x="{label_w + w + 4}" y="{y + 13}" font-size="12">{_e(f"{value:,}")}</text>'
        )
    parts.append("</svg></figure>")
    return "".join(parts)


def _charts(summary: dict[str, Any]) -> str:
    by = summary.get("included_by") or {}
    charts = []
    for dim, what in (
        ("source", "tokens"),
        ("source", "documents"),
        ("license", "tokens"),
        ("osaid_class", "tokens"),
    ):
        counts = by.get(dim) or {}
        if counts:
            items = [(k, v.get(what, 0)) for k, v in counts.items()]
            charts.append(bar_chart(f"{what.capitalize()} by {_lower(DIMENSION_TITLES[dim])}", items))
    rejected = summary.get("rejected_by_stage") or {}
    if rejected:
        charts.append(
            bar_chart("Rejected documents by stage", [(s, sum(k.values())) for s, k in rejected.items()])
        )
    return f'<div class="charts">{"".join(charts)}</div>' if charts else ""


def _html_table(header: list[str] | None, rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header or [])
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{_e(c)}</td>'
            if isinstance(c, (int, float)) and not isinstance(c, bool)
            else f"<td>{_e(c)}</td>"
            for c in row
        )
        + "</tr>"
        for row in rows
    )
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _html(data: dict[str, Any], summary: dict[str, Any]) -> str:
    verdict = "PASS" if data.get("ok") else "FAIL"
    facts = [(k, v) for k, v in _facts(data, summary) if k != "verdict"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Audit of {_e(data.get('run_dir'))}</title><style>{_CSS}</style></head><body>",
        f'<h1>Audit of {_e(data.get("run_dir"))}: <span class="{verdict.lower()}">{verdict}</span></h1>',
        _html_table(None, [[k, v] for k, v in facts]),
    ]
    notes = data.get("notes") or []
    if notes:
        parts.append("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    parts.append(_charts(summary))
    for title, header, rows in _tables(data, summary):
        parts += [f"<h2>{_e(title)}</h2>", _html_table(header, rows)]
    parts.append("</body></html>")
    return "\n".join(parts)
