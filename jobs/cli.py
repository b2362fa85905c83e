"""`recs`: one command for every step, and `recs run` for all of them in order.

Each Spark step is also a plain file for spark-submit (`spark-submit jobs/ingest.py ...`); this
module only dispatches to the same `main(argv)` / `run(spark, args)` those files expose.
"""

from __future__ import annotations

import argparse
import sys

from jobs import build_training_set, evaluate, ingest
from jobs.args import add_common_args, setup_logging
from jobs.tables import ALL_TABLES

# In pipeline order. Each module has main(argv), build_parser(), add_step_arguments(), run().
SPARK_STEPS = {
    "ingest": ingest,
    "build-training-set": build_training_set,
    "evaluate": evaluate,
}


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recs run",
        description="Run every step in order for one run date in one Spark session, then list "
                    "the tables written. Takes the flags of every step.")
    add_common_args(parser)
    for name, module in SPARK_STEPS.items():
        module.add_step_arguments(parser.add_argument_group(f"{name} step"))
    return parser


def run_all(argv: list[str]) -> dict:
    args = run_parser().parse_args(argv)
    setup_logging(args.log_level)
    from jobs.lake import read_partition
    from jobs.spark import get_spark

    spark = get_spark("recs-run", args.master)
    results = {}
    for name, module in SPARK_STEPS.items():
        if name == "evaluate" and args.holdout_fraction is None:
            print("nightly mode (no --holdout-fraction): nothing held out, evaluation skipped")
            continue
        results[name] = module.run(spark, args)

    print(f"\nTables for ds={args.ds} (lake {args.lake}):")
    for table in ALL_TABLES:
        try:
            rows = read_partition(spark, args.lake, table, args.ds).count()
        except FileNotFoundError:
            continue
        print(f"  {table.name:<30} {rows:>9,} rows  {table.path(args.lake)}")
    quarantine = results["ingest"]["quarantine"]
    print("  quarantine reasons: " + (", ".join(f"{k}={v}" for k, v in quarantine.items())
                                      or "none"))
    return results


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    steps = [*SPARK_STEPS, "run"]
    usage = ("recs <step> [--lake L] [--ds YYYY-MM-DD] [...]\n\nsteps, in pipeline order:\n  "
             + "\n  ".join(steps) + "\n\n`recs <step> --help` explains each step's flags.")
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: " + usage)
        return
    step, rest = argv[0], argv[1:]
    if step == "run":
        run_all(rest)
    elif step in SPARK_STEPS:
        SPARK_STEPS[step].main(rest)
    else:
        print(f"recs: unknown step {step!r}\nusage: {usage}", file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
