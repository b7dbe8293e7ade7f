"""The ``gde-ref`` command: one entry point with a subcommand per job."""
import argparse
import json
import sys


def _bench(args):
    from gde_ref.bench import format_table, run_bench
    if not args.json:
        print("benchmarking (about a minute)...", file=sys.stderr)
    result = run_bench(seconds=args.seconds, tasks=tuple(args.tasks.split(",")))
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


def _datasets(args):
    from gde_ref.data.datasets import format_datasets, list_datasets
    rows = list_datasets()
    print(json.dumps(rows, indent=2) if args.json else format_datasets(rows))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="gde-ref", description="Guided Decoupled Exploration (GDE), "
                                     "reference implementation in NumPy and Numba.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bench = sub.add_parser("bench", help="measure update-step throughput and action latency on this machine")
    bench.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    bench.add_argument("--seconds", type=float, default=2.0, help="time spent on each measurement (default 2)")
    bench.add_argument("--tasks", default="hopper,halfcheetah", help="comma-separated: hopper, halfcheetah")
    bench.set_defaults(run=_bench)
    datasets = sub.add_parser("datasets", help="list the local offline datasets (Minari) with transitions, episodes "
                              "and behaviour normalized score")
    datasets.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    datasets.set_defaults(run=_datasets)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        from gde_ref.bench import TASK_DIMS
        unknown = [t for t in args.tasks.split(",") if t not in TASK_DIMS]
        if unknown:
            parser.error(f"unknown task(s) {unknown} for --tasks; choose from {sorted(TASK_DIMS)}")
        if args.seconds <= 0:
            parser.error("--seconds must be > 0")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
