"""What every Spark step shares: the common flags, logging, and `main(argv)` -> one SparkSession -> `run`."""

from __future__ import annotations

import argparse
import datetime as dt
import logging

from contract.args import add_lake_arg, run_date


def add_common_args(parser: argparse.ArgumentParser) -> None:
    add_lake_arg(parser)
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
    from jobs.core.spark import get_spark

    return run(get_spark(parser.prog.replace(" ", "-"), args.master), args)
