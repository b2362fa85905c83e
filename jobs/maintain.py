"""Maintain the lake's tables: compact the run date's partition, delete files no version needs.

Every step replaces its `ds` partition in one Delta commit, in as many small files as the job had
tasks, and a run killed before its commit leaves Parquet files that no Delta version refers to.
For every contract table in the lake, OPTIMIZE rewrites the `ds` partition's small files into
few (the same rows: readers see no change, only fewer files), then VACUUM deletes every file
that no version within the retention needs, a killed run's orphans included. The retention,
default 168 hours, is how far back time travel (`VERSION AS OF`) keeps working; it also spares a
write still in flight, whose files are orphans only until it commits.

    spark-submit jobs/maintain.py --lake L --ds D [--retention-hours 168]
"""

from __future__ import annotations

import argparse
import logging
import sys

from pyspark.sql import SparkSession

from contract.tables import Table
from jobs.core.step import run_spark_step, step_parser
from jobs.ops.sql import existing_tables

log = logging.getLogger(__name__)

# Delta's own default (delta.deletedFileRetentionDuration): a shorter one fails Delta's safety
# check unless spark.databricks.delta.retentionDurationCheck.enabled=false.
DEFAULT_RETENTION_HOURS = 168.0

# VACUUM lists a table's directories in as many Spark tasks as this setting says, Spark's default
# 10,000: on 2 local cores that is about a minute per table however small, and a nightly run over
# 15 tables spent a quarter of an hour on it. A table has one directory per ds, so a few tasks per
# core is plenty; a value passed with --conf still wins.
LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
LISTING_TASKS_PER_CORE = 4


def maintain_table(spark: SparkSession, lake: str, table: Table, ds: str,
                   retention_hours: float) -> dict:
    """OPTIMIZE the `ds` partition of `table`, then VACUUM it; the files compacted."""
    from delta.tables import DeltaTable

    delta = DeltaTable.forPath(spark, table.path(lake))
    metrics = delta.optimize().where(f"ds = '{ds}'").executeCompaction().first()["metrics"]
    delta.vacuum(retention_hours)
    return {"files_removed": metrics["numFilesRemoved"], "files_added": metrics["numFilesAdded"]}


def limit_listing_parallelism(spark: SparkSession) -> None:
    if not spark.sparkContext.getConf().contains(LISTING_PARALLELISM):
        spark.conf.set(LISTING_PARALLELISM,
                       str(LISTING_TASKS_PER_CORE * spark.sparkContext.defaultParallelism))


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    limit_listing_parallelism(spark)
    done = {}
    for table in existing_tables(args.lake):
        done[table.name] = maintain_table(spark, args.lake, table, args.ds, args.retention_hours)
        log.info("maintain %s ds=%s: %d files compacted into %d; vacuumed past %g hours",
                 table.name, args.ds, done[table.name]["files_removed"],
                 done[table.name]["files_added"], args.retention_hours)
    return done


def retention_hours(value: str) -> float:
    hours = float(value)
    if hours < 0:
        raise argparse.ArgumentTypeError(f"expected hours >= 0, got {value}")
    return hours


def add_step_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--retention-hours", type=retention_hours,
                        default=DEFAULT_RETENTION_HOURS,
                        help="VACUUM keeps the files every version of the last this many hours "
                             "needs, so time travel reaches that far back (default: "
                             "%(default)g, a week; Delta refuses less unless "
                             "spark.databricks.delta.retentionDurationCheck.enabled=false).")


def build_parser() -> argparse.ArgumentParser:
    return step_parser("recs maintain",
                       "Compact the run date's partition of every lake table (OPTIMIZE) and "
                       "delete files no version within the retention needs, orphans of killed "
                       "runs included (VACUUM).", add_step_arguments)


def main(argv: list[str] | None = None) -> dict:
    return run_spark_step(build_parser(), run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
