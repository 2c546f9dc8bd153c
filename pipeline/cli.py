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
    audit.add_argument("--format", choices=["md", "json"], default="md")

    sub.add_parser("stages", help="list the stages in order")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "stages":
        from pipeline.stages import STAGE_ORDER

        print("\n".join(STAGE_ORDER))
        return EXIT_OK
    if args.command == "audit":
        return cmd_audit(args)
    return cmd_run(args)


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
    from manifests.audit import audit_run, render

    if not os.path.isdir(args.run_dir) and "://" not in args.run_dir:
        print(f"error: {args.run_dir}: no such run directory", file=sys.stderr)
        return EXIT_USAGE
    report = audit_run(args.run_dir)
    print(render(report, args.format))
    return EXIT_OK if report.ok else EXIT_VIOLATIONS


if __name__ == "__main__":
    sys.exit(main())
