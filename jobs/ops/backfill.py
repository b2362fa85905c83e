"""`recs backfill --from D1 --to D2`: run the nightly's Spark steps for every date, by spark-submit.

For ad-hoc use on a laptop or an edge node; scheduled history goes through Airflow
(`airflow backfill create --dag-id recs_nightly`, see docs/AIRFLOW.md), which runs the same job
files with the same gates. Dates run oldest first and, within a date, the steps in pipeline order,
each followed by its quality gate (`jobs.ops.quality.GATES`). The first failure stops the backfill
and names the date and the step, so `--from <that date>` resumes it. Every job replaces exactly
its `ds` partition, so re-running a range leaves the same tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shlex
import shutil
import subprocess
import sys

from contract.args import add_lake_arg, run_date
from jobs.core.pipeline import BY_NAME, step_names, steps
from jobs.core.spark import delta_submit_args, extra_conf_from_env
from jobs.core.step import setup_logging
from jobs.ops.quality import (
    DEFAULT_MAX_QUARANTINE_FRACTION,
    QualityError,
    check_step,
    quarantine_limit,
)

log = logging.getLogger(__name__)

# What the nightly DAG runs (a test keeps the two equal); evaluate runs only in evaluation mode
# (--holdout-fraction F > 0), as in the DAG. publish decides about a model version, not a
# date's data, so it is not a per-date step.
DEFAULT_STEPS = tuple(step_names(engine="spark", schedule="nightly"))


def spark_steps() -> dict:
    """Name -> module of every Spark step, in pipeline order."""
    return {step.name: step.load() for step in steps(engine="spark")}


def dates(first: str, last: str) -> list[str]:
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(start + dt.timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


def step_flags(step: str, args: argparse.Namespace) -> list[str]:
    """The flags given for `step` (those that differ from its defaults), as it parses them."""
    own = argparse.ArgumentParser(add_help=False)
    spark_steps()[step].add_step_arguments(own)
    flags = []
    for action in own._actions:
        value = getattr(args, action.dest)
        if value == action.default:
            continue
        flag = action.option_strings[-1]
        if action.nargs == 0:
            flags.append(flag)
        else:
            values = value if isinstance(value, (list, tuple)) else [value]
            flags += [flag, *map(str, values)]
    return flags


def default_spark_submit() -> str:
    # The spark-submit beside this interpreter belongs to the pyspark our jobs were written for;
    # one on PATH wins so a cluster's own Spark distribution is used where there is one.
    return shutil.which("spark-submit") or os.path.join(os.path.dirname(sys.executable),
                                                        "spark-submit")


def submit_command(args: argparse.Namespace, step: str, ds: str, python: str) -> list[str]:
    extra_conf = [item for key, value in extra_conf_from_env().items()
                  for item in ("--conf", f"{key}={value}")]
    script = spark_steps()[step].__file__
    return [args.spark_submit, "--master", args.master, *delta_submit_args(python), *extra_conf,
            script, "--lake", args.lake, "--ds", ds, *step_flags(step, args)]


def run(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(ds, step) pairs completed, in order; raises SystemExit naming the failed date and step."""
    python = os.environ.get("PYSPARK_PYTHON", sys.executable)
    env = {**os.environ, "PYSPARK_PYTHON": python}
    done: list[tuple[str, str]] = []
    for ds in dates(args.from_date, args.to_date):
        for step in args.steps:
            if BY_NAME[step].evaluation_only and args.holdout_fraction is None:
                log.info("backfill ds=%s: nightly mode (no --holdout-fraction), %s skipped",
                         ds, step)
                continue
            command = submit_command(args, step, ds, python)
            if args.dry_run:
                print(shlex.join(command))
                continue
            log.info("backfill ds=%s step=%s: %s", ds, step, shlex.join(command))
            returncode = subprocess.run(command, env=env).returncode
            if returncode != 0:
                raise SystemExit(f"recs backfill: step {step} failed for ds={ds} (spark-submit "
                                 f"exit code {returncode}); {len(done)} earlier (ds, step) runs "
                                 f"completed; resume with --from {ds}")
            try:
                check_step(args.lake, ds, step, args.max_quarantine_fraction)
            except QualityError as error:
                raise SystemExit(f"recs backfill: the check after step {step} failed for "
                                 f"ds={ds}; resume with --from {ds} once fixed. {error}") from None
            done.append((ds, step))
    return done


def step_list(value: str) -> list[str]:
    known = list(spark_steps())
    chosen = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in known]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"--steps takes a comma-separated subset of "
                                         f"{','.join(known)}; got {value!r}")
    return [s for s in known if s in chosen]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recs backfill",
        description="Run Spark steps (by default those of the nightly DAG) with spark-submit "
                    "for every date from --from to --to (inclusive): dates oldest first, steps "
                    "in pipeline order, each followed by "
                    "its quality gate. Stops at the first failure, naming the date and the step. "
                    "Idempotent: a re-run replaces the same ds partitions with the same rows. "
                    "Also takes the flags of every step (below); each goes to the steps that "
                    "define it.",
        epilog="Extra Spark settings: RECS_SPARK_CONF=\"k=v,k=v\" becomes --conf k=v for every "
               "spark-submit. The Python of the Spark workers is $PYSPARK_PYTHON, else this "
               "interpreter.")
    parser.add_argument("--from", dest="from_date", type=run_date, required=True,
                        help="First run date YYYY-MM-DD.")
    parser.add_argument("--to", dest="to_date", type=run_date, required=True,
                        help="Last run date YYYY-MM-DD (inclusive).")
    parser.add_argument("--steps", type=step_list, default=list(DEFAULT_STEPS),
                        help="Comma-separated steps to run, always in pipeline order, any of "
                             + ",".join(spark_steps()) + " (default: the nightly's, "
                             + ",".join(DEFAULT_STEPS) + ").")
    add_lake_arg(parser)
    parser.add_argument("--master", default="local[*]",
                        help="Spark master passed to spark-submit (default: %(default)s).")
    parser.add_argument("--spark-submit", default=default_spark_submit(),
                        help="spark-submit executable (default: the one on PATH, else the one "
                             "beside this Python: %(default)s).")
    parser.add_argument("--max-quarantine-fraction", type=quarantine_limit,
                        default=DEFAULT_MAX_QUARANTINE_FRACTION, metavar="F",
                        help="The gate after ingest fails when quarantined / (ingested + "
                             "quarantined) rows of a raw table exceed F (default: %(default)s).")
    parser.add_argument("--dry-run", action="store_true",
                        help="Print the spark-submit commands, run nothing.")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="Log level of our own messages (default: %(default)s).")
    for name, module in spark_steps().items():
        module.add_step_arguments(parser.add_argument_group(f"{name} step"))
    return parser


def main(argv: list[str] | None = None) -> list[tuple[str, str]]:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.from_date > args.to_date:
        parser.error(f"--from {args.from_date} is after --to {args.to_date}")
    setup_logging(args.log_level)
    return run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
