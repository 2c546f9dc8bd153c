"""notebooks/shard_statistics.ipynb runs top to bottom on a fresh run of the bundled sample, and is
committed without outputs; `python -m pipeline stats` summarises the same run."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from pipeline.run_statistics import open_run

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "shard_statistics.ipynb"


def read_notebook() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


def test_the_committed_notebook_has_no_outputs_and_a_parameters_cell():
    nb = read_notebook()
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and params[0].source == 'RUN_DIR = "../runs/sample"'


def test_every_plot_cell_has_a_sentence_on_how_to_read_it():
    nb = read_notebook()
    for before, cell in zip(nb.cells, nb.cells[1:]):
        if cell.cell_type == "code" and "plots." in cell.source and "import" not in cell.source:
            assert before.cell_type == "markdown" and len(before.source.split()) > 15, cell.source


@pytest.fixture(scope="module")
def executed(sample_run) -> nbformat.NotebookNode:
    nb = read_notebook()
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    # As papermill does: a cell after the parameters cell that sets them for this run.
    injected = new_code_cell(f"RUN_DIR = {str(sample_run)!r}", metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(at + 1, injected)
    # Raises CellExecutionError, with the cell and its traceback, when any cell fails.
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    return nb


def outputs(nb: nbformat.NotebookNode) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def test_the_notebook_runs_on_a_fresh_sample_run_and_draws_its_plots(executed, sample_run):
    outs = outputs(executed)
    assert not [o for o in outs if o.output_type == "error"]
    stderr = "".join(o.text for o in outs if o.output_type == "stream" and o.name == "stderr")
    assert "missing from font" not in stderr and "Glyph" not in stderr
    pngs = [base64.b64decode(o.data["image/png"]) for o in outs if "image/png" in o.get("data", {})]
    stats = open_run(str(sample_run))
    # funnel, rejects, tokens, length, one per score column, clusters, shards
    assert len(pngs) == 6 + len(stats.score_columns)
    assert all(p.startswith(b"\x89PNG") for p in pngs)
    html = "".join(o.data.get("text/html", "") for o in outs if "data" in o)
    fetched = stats.funnel()["documents_in"][0]
    assert f"<td>{fetched}</td>" in html  # the funnel table shows this run's numbers
    assert "duplicate_of" in html or stats.cluster_sizes()["cluster_size"].max() == 1


def test_the_sample_runs_figures_account_for_every_fetched_document(sample_run):
    stats = open_run(str(sample_run))
    funnel = stats.funnel()
    assert funnel["stage"].to_list() == ["fetch", "extract", "clean", "dedup", "quality", "tokenize"]
    fetched, tokenized = funnel["documents_in"][0], funnel["kept"][-1]
    assert fetched == tokenized + stats.rejects()["documents"].sum()
    totals = stats.totals("source")
    assert totals["documents"].sum() == tokenized
    assert {"kokkai", "egov"} <= set(totals["source"]) and totals["tokens"].min() > 0
    # The sample plants two copies of Wikipedia rows (ids ending in "#copy"): two clusters of two.
    assert stats.cluster_sizes().filter(cluster_size=2)["clusters"].item() == 2
    assert stats.rejects().filter(stage="dedup").rows() == [("dedup", "duplicate_of", 2)]


def test_the_stats_command_summarises_the_sample_run(sample_run, tmp_path):
    out = tmp_path / "report.html"
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "stats", str(sample_run), "--html", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    stats = open_run(str(sample_run))
    fetched = stats.funnel()["documents_in"][0]
    assert re.search(rf"^fetch\s+{fetched}\s", proc.stdout, re.M)
    assert re.search(r"^kokkai\s+\d", proc.stdout, re.M)
    page = out.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 6 + len(stats.score_columns)
