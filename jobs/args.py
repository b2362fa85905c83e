"""Command-line arguments every job shares, validated once."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os

from jobs.tables import LAKE_DEFAULT


def run_date(value: str) -> str:
    """`--ds`: a real calendar date written YYYY-MM-DD, nothing else."""
    try:
        parsed = dt.date.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.isoformat() != value:
        raise argparse.ArgumentTypeError(f"--ds must be a real date written YYYY-MM-DD, got {value!r}")
    return value


def positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return number


def fraction(value: str) -> float:
    number = float(value)
    if not 0.0 < number < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction strictly between 0 and 1, got {value}")
    return number


def holdout_fraction(value: str) -> float | None:
    """`--holdout-fraction`: a fraction for evaluation mode, or 0 for nightly mode (no holdout).

    0 exists so that a scheduler can pass the flag on every run and choose the mode by value.
    """
    return None if float(value) == 0 else fraction(value)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lake", default=os.environ.get("RECS_LAKE", LAKE_DEFAULT),
        help="Root directory of the Delta lake (default: $RECS_LAKE or %(default)s).")
    parser.add_argument(
        "--ds", type=run_date, default=dt.datetime.now(dt.timezone.utc).date().isoformat(),
        help="Run date YYYY-MM-DD: the partition this run reads and replaces (default: today, UTC).")
    parser.add_argument(
        "--master", default=None,
        help="Spark master, e.g. local[2] or spark://host:7077 (default: local[*]; ignored under "
             "spark-submit, which sets its own).")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="Log level of our own messages (default: %(default)s).")


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # py4j logs every gateway round trip at INFO.
    logging.getLogger("py4j").setLevel(logging.WARNING)


def step_parser(prog: str, description: str, add_step_arguments) -> argparse.ArgumentParser:
    """The parser of one Spark step: the common flags, then the step's own."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_common_args(parser)
    add_step_arguments(parser)
    return parser


def run_spark_step(parser: argparse.ArgumentParser, run, argv: list[str] | None):
    """`main(argv)` of every Spark step: parse, log, one SparkSession, run."""
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    from jobs.spark import get_spark

    return run(get_spark(parser.prog.replace(" ", "-"), args.master), args)
