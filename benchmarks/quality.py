"""Quality classifiers measured (issue 8): validation figures on real Japanese text, and scoring speed.

    python benchmarks/quality.py [--shared ../shared/data] [--skip-sudachi] [--docs N]

1. Validation. The default classifier's training set (pipeline/stages/quality_default.py: 573
   Wikipedia paragraphs, 250 Diet speeches and 69 articles of a law against 704 entries of real
   2005-08 blogs), trained with character and with Sudachi-word features; the held-out split keeps
   whole articles, meetings, law chapters and blogs out of training. Then the documents of the same
   kinds that no model saw (the other 572 Wikipedia paragraphs, the other 1,750 Diet speeches):
   the fraction scored as positive (recall on unseen sources).
2. Speed, one process (so per core): the quality stage's `process` on one shard of real documents
   (every Wikipedia paragraph, Diet speech and blog entry of the shared data) with hiragana only,
   with one classifier (the default), with three character classifiers, and with one Sudachi
   classifier; and `Classifier.score` alone. CPU seconds of this process, so the figure is per core
   even on a busy machine. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from filters.classifiers.model import Classifier
from filters.classifiers.train import LabelledDocument, TrainParams, save, train
from manifests.io import atomic_write_json, atomic_write_parquet, manifest_table, write_manifest
from manifests.layout import docs_path, manifest_path, stage_stats_path
from manifests.schema import doc_id, new_row, sha256_hex
from pipeline.stages import quality_default as qd

DEFAULT_MODEL = REPO / "filters" / "classifiers" / "data" / "wikilike_v1"


def labelled(rows: list[dict], positive: bool) -> list[LabelledDocument]:
    return [LabelledDocument(r["id"], r["text"], positive, r["group"]) for r in rows]


def unseen(shared: Path) -> dict[str, list[str]]:
    """Documents of the positive kinds that the default training set leaves out."""
    wiki = (shared / qd.WIKI).read_text(encoding="utf-8").splitlines()
    speeches = (shared / qd.KOKKAI).read_text(encoding="utf-8").splitlines()
    return {
        "Wikipedia paragraphs": [
            json.loads(line)["context"].split(" [SEP] ", 1)[1]
            for i, line in enumerate(wiki)
            if i % qd.WIKI_STRIDE
        ],
        "Diet speeches": [
            json.loads(line)["speech"][: qd.MAX_CHARS]
            for i, line in enumerate(speeches)
            if i % qd.KOKKAI_STRIDE
        ],
    }


def validation(shared: Path, skip_sudachi: bool, models_dir: Path) -> dict[str, Path]:
    positives, negatives = qd.training_sets(shared)
    docs = labelled(positives, True) + labelled(negatives, False)
    hashes = {d.id: sha256_hex(d.text) for d in docs}
    settings = {
        "char, dim 8, 8,192 buckets (the default model)": TrainParams(dim=8, bucket=8192),
        "char, dim 16, 65,536 buckets (train-classifier's defaults)": TrainParams(),
        "sudachi words, dim 8, 8,192 buckets": TrainParams(
            features="sudachi", word_ngrams=2, dim=8, bucket=8192
        ),
    }
    if skip_sudachi:
        settings.pop("sudachi words, dim 8, 8,192 buckets")
    held_out = unseen(shared)
    print(f"## Validation: {len(positives)} positives, {len(negatives)} negatives, held out by group\n")
    print("| features | train | held out | precision | recall | F1 | ROC AUC | train s | model bytes |")
    print("|---|---|---|---|---|---|---|---|---|")
    models, recalls = {}, {}
    for i, (label, params) in enumerate(settings.items()):
        started = time.perf_counter()
        result = train(docs, params)
        seconds = time.perf_counter() - started
        out = models_dir / f"m{i}"
        metadata = save(result, out, f"bench{i}", 1, [], hashes)
        models[label] = out
        f = result.figures
        print(
            f"| {label} | {len(result.train)} | {len(result.validation)} | {f['precision']:.3f} | "
            f"{f['recall']:.3f} | {f['f1']:.3f} | {f['roc_auc']:.4f} | {seconds:.1f} | "
            f"{metadata['model_bytes']:,} |"
        )
        classifier = Classifier(out)
        recalls[label] = {kind: classifier.score(texts) for kind, texts in held_out.items()}
        kinds = {
            "Wikipedia": lambda d: d.id.startswith("wiki:"),
            "Diet": lambda d: d.id.startswith("kokkai:"),
            "law": lambda d: d.id.startswith("law:"),
            "blog": lambda d: d.id.startswith("feed:"),
        }
        scores = dict(zip((d.id for d in result.validation), result.validation_scores))
        parts = []
        for kind, test in kinds.items():
            chosen = [d for d in result.validation if test(d)]
            if chosen:
                right = sum((scores[d.id] >= 0.5) == d.positive for d in chosen)
                parts.append(f"{kind} {right}/{len(chosen)}")
        recalls[label]["held-out accuracy by kind"] = ", ".join(parts)
    print(
        "\nScored as positive (>= 0.5), documents no model saw, and accuracy by kind on the held-out split:\n"
    )
    for label, by_kind in recalls.items():
        figures = [
            f"{kind} {float((s >= 0.5).mean()):.3f} of {len(s)} (median {float(np.median(s)):.3f})"
            for kind, s in by_kind.items()
            if not isinstance(s, str)
        ]
        print(f"- {label}: " + "; ".join(figures) + f"; held out: {by_kind['held-out accuracy by kind']}")
    return models


def write_shard(run_dir: str, texts: list[tuple[str, str]]) -> object:
    from pipeline.stage import ShardSpec

    rows = [
        new_row(
            doc_id=doc_id(source, f"bench-{i}"),
            source=source,
            source_uri=f"https://example.jp/{i}",
            locator="{}",
            license="NOASSERTION",
            legal_basis=["JP-Copyright-Art30-4"],
            osaid_class="public",
            redistribution="locator_only",
            optout="{}",
            pipeline_version="bench",
            config_sha256="bench",
        )
        for i, (source, _) in enumerate(texts)
    ]
    import pyarrow as pa

    table = pa.table(
        {
            "doc_id": [r["doc_id"] for r in rows],
            "source": [s for s, _ in texts],
            "url": [None] * len(texts),
            "text": [t for _, t in texts],
        }
    )
    atomic_write_parquet(docs_path(run_dir, "dedup", "part-00000"), table)
    write_manifest(manifest_path(run_dir, "dedup", "part-00000"), manifest_table(rows))
    atomic_write_json(stage_stats_path(run_dir, "dedup"), {})
    return ShardSpec(
        0,
        {
            "docs": docs_path(run_dir, "dedup", "part-00000"),
            "manifest": manifest_path(run_dir, "dedup", "part-00000"),
        },
    )


def configured(path: Path) -> dict:
    meta = json.loads((path / "metadata.json").read_text())
    return {
        "name": meta["name"],
        "version": meta["version"],
        "model": str(path),
        "sha256": meta["model_sha256"],
    }


def speed(shared: Path, models: dict[str, Path], limit: int | None) -> None:
    from pipeline.config import load_config
    from pipeline.stage import RunContext
    from pipeline.stages.quality import QualityStage

    wiki = [
        json.loads(line)["context"].split(" [SEP] ", 1)[1]
        for line in (shared / qd.WIKI).open(encoding="utf-8")
    ]
    speeches = [json.loads(line)["speech"] for line in (shared / qd.KOKKAI).open(encoding="utf-8")]
    blogs = [r["text"] for r in qd.blog_entries(shared)]
    texts = [("local", t) for t in wiki] + [("kokkai", t) for t in speeches] + [("local", t) for t in blogs]
    texts = texts[:limit] if limit else texts
    chars = sum(len(t) for _, t in texts)
    char_models = [p for label, p in models.items() if label.startswith("char")]
    configs = {
        "hiragana only": [],
        "1 classifier (wikilike, char)": [configured(DEFAULT_MODEL)],
        "3 char classifiers": [configured(DEFAULT_MODEL)] + [configured(p) for p in char_models[:2]],
    }
    sudachi = [p for label, p in models.items() if label.startswith("sudachi")]
    if sudachi:
        configs["1 sudachi classifier"] = [configured(sudachi[0])]
    print(f"\n## Speed: one process, {len(texts):,} real documents, {chars / 1e6:.1f} M characters\n")
    print("| configuration | docs/s/core | M chars/s/core | CPU s |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as run_dir:
        spec = write_shard(run_dir, texts)
        for label, entries in configs.items():
            config = load_config(None, ["quality.classifiers=" + json.dumps(entries)])
            stage = QualityStage(RunContext(run_dir, config, config.sha256(), "bench"))
            stage.setup()  # models load once per worker: not counted
            started = time.process_time()
            result = stage.process(spec)
            cpu = time.process_time() - started
            assert result.kept.num_rows + len(result.rejected) == len(texts)
            print(f"| {label} | {len(texts) / cpu:,.0f} | {chars / cpu / 1e6:.2f} | {cpu:.2f} |")
        classifier = Classifier(DEFAULT_MODEL)
        started = time.process_time()
        classifier.score([t for _, t in texts])
        cpu = time.process_time() - started
        print(
            f"| Classifier.score alone (wikilike) | {len(texts) / cpu:,.0f} | "
            f"{chars / cpu / 1e6:.2f} | {cpu:.2f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--skip-sudachi", action="store_true")
    parser.add_argument("--docs", type=int, help="score only the first N documents")
    args = parser.parse_args()
    shared = Path(args.shared)
    with tempfile.TemporaryDirectory() as models_dir:
        models = validation(shared, args.skip_sudachi, Path(models_dir))
        speed(shared, models, args.docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
