"""Publish gate: make a model version current only if it is not worse than the current one.

    spark-submit jobs/publish.py --lake L --ds D --model-version V [--tolerance 0.005]

Compares the candidate student's validation NDCG@10 with the current model's; the decision and
the figures go to recs.model_registry either way. A rejected model is reported (exit status 0:
the pipeline goes on, scoring with the model that was current before).
"""

from __future__ import annotations

import argparse
import logging
import sys

from pyspark.sql import SparkSession

from jobs.core import registry
from jobs.core.step import run_spark_step, step_parser

log = logging.getLogger(__name__)


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    decision = registry.publish(spark, args.lake, args.ds, args.model_version, args.tolerance)
    message = f"publish gate: {args.model_version} {decision['decision']}: {decision['reason']}"
    (log.info if decision["decision"] == "published" else log.warning)(message)
    print(message)
    return decision


def add_step_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tolerance", type=float, default=0.005,
                        help="A model whose validation NDCG@10 is below the current one's minus "
                             "this is rejected (default: %(default)s).")


def build_parser() -> argparse.ArgumentParser:
    parser = step_parser("recs publish", "Publish gate: record in recs.model_registry whether a "
                         "model version becomes the one nightly scoring uses.", add_step_arguments)
    parser.add_argument("--model-version", required=True,
                        help="Version under <lake>/models/ whose student to consider.")
    return parser


def main(argv: list[str] | None = None) -> dict:
    return run_spark_step(build_parser(), run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
