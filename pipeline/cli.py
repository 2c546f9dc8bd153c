"""`python -m pipeline`: the command-line contract of DESIGN.md.

Exit codes: 0 success; 1 the audit found violations; 2 bad usage, bad config or a missing
input (one line on stderr, nothing written); 3 a stage failed (what failed and how to resume).
"""

from __future__ import annotations

import argparse
import os
import sys

EXIT_OK, EXIT_VIOLATIONS, EXIT_USAGE, EXIT_STAGE_FAILED = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run stages over a run directory")
    run.add_argument(
        "--stage",
        action="append",
        dest="stages",
        metavar="NAME",
        help="run only this stage (repeatable); default: every stage in order",
    )
    run.add_argument("--config", help="YAML config file (default: configs/default.yaml)")
    run.add_argument(
        "--set",
        action="append",
        dest="overrides",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key by dotted path; the value is parsed as YAML",
    )
    run.add_argument(
        "--run-dir", help="output directory, local or fsspec URL (default: runs/<config>-<hash>)"
    )
    run.add_argument(
        "--ray-address",
        default=os.environ.get("RAY_ADDRESS"),
        help="join this Ray cluster (default: $RAY_ADDRESS, else start a local Ray)",
    )

    audit = sub.add_parser("audit", help="check a finished run's provenance")
    audit.add_argument("run_dir", metavar="RUN_DIR")
    audit.add_argument(
        "--format", choices=["md", "json", "html"], default="md", help="the report printed on stdout"
    )
    audit.add_argument(
        "--out",
        metavar="DIR",
        help="where the reports (audit.md/json/html) and the data card go (default: RUN_DIR/audit)",
    )
    audit.add_argument(
        "--policy", metavar="FILE", help="audit policy YAML (default: configs/audit_policy.yaml)"
    )
    audit.add_argument(
        "--verify-sample",
        type=int,
        default=0,
        metavar="N",
        help="fetch N included documents again from their sources and compare their bytes",
    )
    audit.add_argument("--seed", type=int, default=0, help="seed of the --verify-sample choice (default 0)")

    sub.add_parser("stages", help="list the stages in order")

    stats = sub.add_parser("stats", help="summarise a run for researchers: tokens, rejects, distributions")
    stats.add_argument("run_dir", metavar="RUN_DIR", help="run directory, local or fsspec URL")
    stats.add_argument("--html", metavar="OUT", help="also write a single-file HTML report with the plots")

    curve = sub.add_parser(
        "minhash-curve", help="probability that two documents become dedup candidates, by Jaccard"
    )
    curve.add_argument("--bands", type=int, help="also show these bands ...")
    curve.add_argument("--rows", type=int, help="... and rows per band")
    curve.add_argument("--jaccard", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9, 0.95])

    from pipeline.stages.quality_cli import add_parsers as add_classifier_parsers

    add_classifier_parsers(sub)  # train-classifier, score-classifier

    from pipeline.tokenizer_training import add_parser as add_tokenizer_parser

    add_tokenizer_parser(sub)  # train-tokenizer

    from pipeline.takedown import add_parser as add_takedown_parser

    add_takedown_parser(sub)  # takedown
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "stages":
        from pipeline.stages import STAGE_ORDER

        print("\n".join(STAGE_ORDER))
        return EXIT_OK
    if args.command == "audit":
        return cmd_audit(args)
    if args.command == "stats":
        return cmd_stats(args)
    if args.command == "minhash-curve":
        return cmd_minhash_curve(args)
    if args.command in ("train-classifier", "score-classifier"):
        from pipeline.stages.quality_cli import cmd_score, cmd_train

        return cmd_train(args) if args.command == "train-classifier" else cmd_score(args)
    if args.command == "takedown":
        from pipeline.takedown import cmd_takedown

        return cmd_takedown(args)
    if args.command == "train-tokenizer":
        from pipeline.tokenizer_training import cmd_train_tokenizer

        return cmd_train_tokenizer(args)
    return cmd_run(args)


# Banding of the MinHash settings Japanese corpus builders use (docs/research/mission_anchors.md §3.5).
KNOWN_BANDINGS = {
    "Swallow (char 5-grams)": (40, 20),
    "LLM-jp v4 (Sudachi word 5-grams)": (20, 10),
    "FineWeb-2": (14, 8),
}


def cmd_minhash_curve(args: argparse.Namespace) -> int:
    from filters.minhash import candidate_probability

    settings = dict(KNOWN_BANDINGS)
    if (args.bands is None) != (args.rows is None):
        print("error: give both --bands and --rows", file=sys.stderr)
        return EXIT_USAGE
    if args.bands is not None:
        if args.bands < 1 or args.rows < 1:
            print("error: --bands and --rows must be at least 1", file=sys.stderr)
            return EXIT_USAGE
        settings[f"--bands {args.bands} --rows {args.rows}"] = (args.bands, args.rows)
    if any(not 0.0 <= j <= 1.0 for j in args.jaccard):
        print("error: --jaccard values must be between 0 and 1", file=sys.stderr)
        return EXIT_USAGE
    print("P(candidate) = 1 - (1 - J^rows)^bands")
    print("| setting | bands x rows | " + " | ".join(f"J={j:g}" for j in args.jaccard) + " |")
    print("|---|---|" + "---|" * len(args.jaccard))
    for name, (bands, rows) in settings.items():
        values = " | ".join(f"{candidate_probability(j, bands, rows):.4f}" for j in args.jaccard)
        print(f"| {name} | {bands} x {rows} | {values} |")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from pipeline.config import ConfigError, load_config
    from pipeline.errors import ClusterUnavailable, MissingInputError, ShardFailed
    from pipeline.runner import default_run_dir, ordered_stages, run

    try:
        config = load_config(args.config, args.overrides)
        stages = ordered_stages(args.stages)
        run_dir = args.run_dir or default_run_dir(args.config, config)
        print(f"run directory: {run_dir}", file=sys.stderr)
        run(config, run_dir, stages, ray_address=args.ray_address)
    except (ConfigError, MissingInputError, ClusterUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ShardFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(
            f"done shards are kept; rerun the same command (with --run-dir {run_dir}) to resume",
            file=sys.stderr,
        )
        return EXIT_STAGE_FAILED
    print(f"output: {run_dir} (audit it with: python -m pipeline audit {run_dir})", file=sys.stderr)
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from manifests.audit import AuditInputError, audit_run
    from manifests.audit_report import render, write_reports
    from manifests.audit_summary import summarize
    from manifests.datacard import write_datacard
    from pipeline.tokenizer_models import load_tokenizer

    if not os.path.isdir(args.run_dir) and "://" not in args.run_dir:
        print(f"error: {args.run_dir}: no such run directory", file=sys.stderr)
        return EXIT_USAGE
    if args.verify_sample < 0:
        print("error: --verify-sample must be 0 or more", file=sys.stderr)
        return EXIT_USAGE
    try:
        # The loader is passed in: manifests/ never imports pipeline/ (tests/test_architecture.py).
        report = audit_run(args.run_dir, args.policy, args.verify_sample, args.seed, load_tokenizer)
    except AuditInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    summary = summarize(args.run_dir)
    print(render(report, summary, args.format))
    # RUN_DIR/audit/ is outside the run-level hashes, so writing there never changes the run.
    out_dir = args.out or f"{args.run_dir.rstrip('/')}/audit"
    written = [*write_reports(report, summary, out_dir).values()]
    written += write_datacard(args.run_dir, out_dir, summary).values()
    print(f"reports and data card: {', '.join(written)}", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_VIOLATIONS


def cmd_stats(args: argparse.Namespace) -> int:
    from manifests.io import ManifestError
    from pipeline.run_statistics import RunStatsError, open_run
    from pipeline.run_statistics_report import html_report, text_summary

    try:
        stats = open_run(args.run_dir)
    except (RunStatsError, ManifestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(text_summary(stats), end="")
    if args.html:
        from manifests.io import atomic_write_bytes

        atomic_write_bytes(args.html, html_report(stats).encode("utf-8"))
        print(f"HTML report: {args.html}", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
