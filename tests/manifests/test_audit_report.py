"""The reviewer's report on a real run of the bundled sample: the summary's figures equal the
manifests', the three formats carry them, and values from the web cannot inject markup."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from manifests.audit import AuditReport, Violation, audit_run
from manifests.audit_report import render, write_reports
from manifests.audit_summary import summarize

HOSTILE_ID = '<script>alert("x")</script>'
HOSTILE_URL = 'https://例え.jp/"><img src=x onerror=alert(1)>|col'


@pytest.fixture
def run(sample_run) -> Path:
    """The audit tests' finished sample run (tests/manifests/conftest.py): read, never changed."""
    return sample_run


def manifests(run: Path, stage: str) -> pl.DataFrame:
    return pl.read_parquet(sorted((run / stage).glob("part-?????.manifest.parquet")))


def test_summary_figures_equal_the_manifests(run):
    summary = summarize(str(run))
    final = manifests(run, "tokenize").filter(pl.col("included"))
    assert summary["documents_included"] == final.height
    assert summary["tokens_included"] == final["num_tokens"].sum()
    by_source = {
        s: {"documents": n, "tokens": t}
        for s, n, t in final.group_by("source").agg(pl.len(), pl.col("num_tokens").sum()).iter_rows()
    }
    assert summary["included_by"]["source"] == by_source
    assert set(summary["included_by"]["osaid_class"]) == set(final["osaid_class"])
    bases = final.explode("legal_basis").group_by("legal_basis").len()
    assert {k: v["documents"] for k, v in summary["included_by"]["legal_basis"].items()} == dict(
        bases.iter_rows()
    )
    # rejects: the same totals as the audit's own count, per stage
    audit = audit_run(str(run))
    assert {s: sum(k.values()) for s, k in summary["rejected_by_stage"].items()} == audit.rejected_by_stage
    clean = manifests(run, "clean").filter(~pl.col("included"))
    kinds = clean["exclusion_reason"].str.strip_prefix("clean:").value_counts()
    assert summary["rejected_by_stage"]["clean"] == dict(kinds.iter_rows())
    # every document reaching extraction had its opt-out signals checked
    examined = summary["optout"]["examined"]
    assert examined["documents"] == manifests(run, "extract").height
    assert sum(examined["verdict"].values()) == examined["documents"]
    assert summary["takedowns"] == []


def test_the_three_formats_carry_the_figures(run, tmp_path):
    report, summary = audit_run(str(run)), summarize(str(run))
    paths = write_reports(report, summary, str(tmp_path / "out"))
    assert sorted(Path(p).name for p in paths.values()) == ["audit.html", "audit.json", "audit.md"]
    data = json.loads(Path(paths["json"]).read_text())
    assert (
        data["ok"] is report.ok and data["summary"]["tokens_included"] == summary["tokens_included"]
    )
    md = Path(paths["md"]).read_text()
    assert f"| kokkai | {summary['included_by']['source']['kokkai']['documents']} |" in md
    page = Path(paths["html"]).read_text()
    assert (
        page.startswith("<!DOCTYPE html>")
        and "<svg" in page
        and "<link" not in page
        and "<script" not in page
    )
    assert "LicenseRef-Kokkai-SpeakerCopyright" in page


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [name for name, _ in attrs]


def test_values_from_the_web_are_escaped_in_every_format():
    report = AuditReport(run_dir="runs/x")
    report.add(
        Violation(
            "policy",
            f"document from {HOSTILE_URL} has a TDM reservation",
            HOSTILE_ID,
            "tokenize/part-00000.manifest.parquet",
            3,
        )
    )
    report.verification = {
        "seed": 7,
        "requested": 3,
        "sample": [HOSTILE_ID, "b", "c"],
        "results": [
            {
                "doc_id": HOSTILE_ID,
                "source": "commoncrawl",
                "status": "match",
                "shard": "s",
                "row": 0,
                "detail": "",
            },
            {
                "doc_id": "b",
                "source": "kokkai",
                "status": "mismatch",
                "shard": "s",
                "row": 1,
                "detail": "SHA-256 differs",
            },
            {
                "doc_id": "c",
                "source": "egov",
                "status": "unreachable",
                "shard": "s",
                "row": 2,
                "detail": "HTTP 503",
            },
        ],
        "counts": {"match": 1, "mismatch": 1, "unreachable": 1},
    }
    summary = {"included_by": {"source": {HOSTILE_ID: {"documents": 1, "tokens": 9}}}, "takedowns": []}
    page = render(report, summary, "html")
    parsed = _Collect()
    parsed.feed(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags and "onerror" not in parsed.attrs
    assert "&lt;script&gt;" in page and "unreachable" in page and "HTTP 503" in page
    md = render(report, summary, "md")
    violation_row = next(line for line in md.splitlines() if line.startswith("| policy |"))
    assert violation_row.count(" | ") == 4  # the URL's "|" does not make a sixth column
    assert "| c | egov | unreachable |" in md
    data = json.loads(render(report, summary, "json"))
    assert data["violations"][0]["doc_id"] == HOSTILE_ID and data["ok"] is False
    assert data["summary"]["included_by"]["source"][HOSTILE_ID]["documents"] == 1
