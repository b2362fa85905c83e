"""Delta I/O at the edge: create tables from their definitions, replace one `ds`, read one `ds`."""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.tables import Table, spark_schema

log = logging.getLogger(__name__)


def ensure_table(spark: SparkSession, lake: str, table: Table) -> None:
    from delta.tables import DeltaTable

    (DeltaTable.createIfNotExists(spark)
     .location(table.path(lake))
     .addColumns(spark_schema(table))
     .partitionedBy(*table.partition_by)
     .comment(table.doc)
     .execute())


def conform(df: DataFrame, table: Table) -> DataFrame:
    """Select and cast exactly the table's columns, failing on any that are missing."""
    missing = [c for c in table.column_names if c not in df.columns]
    if missing:
        raise ValueError(f"cannot write {table.name}: missing columns {missing}")
    schema = spark_schema(table)
    return df.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def write_partition(df: DataFrame, lake: str, table: Table, ds: str) -> None:
    """Replace the `ds` partition of `table` with `df` in one Delta commit.

    One commit means readers see either the previous partition or the new one, never a mix, and
    a run that dies before the commit leaves the previous version in place.
    """
    ensure_table(df.sparkSession, lake, table)
    out = conform(df.withColumn("ds", F.lit(ds)), table)
    (out.write.format("delta")
     .mode("overwrite")
     .option("replaceWhere", f"ds = '{ds}'")
     .save(table.path(lake)))
    log.info("wrote %s ds=%s -> %s", table.name, ds, table.path(lake))


def read_partition(spark: SparkSession, lake: str, table: Table, ds: str) -> DataFrame:
    from delta.tables import DeltaTable

    path = table.path(lake)
    if not DeltaTable.isDeltaTable(spark, path):
        raise FileNotFoundError(f"{table.name} does not exist at {path}: run `recs {table.writer}` "
                                f"for ds={ds} first")
    return spark.read.format("delta").load(path).where(F.col("ds") == ds).drop("ds")


def require_rows(df: DataFrame, table: Table, ds: str) -> None:
    if df.limit(1).count() == 0:
        raise ValueError(f"{table.name} has no rows for ds={ds}: run `recs {table.writer}` "
                         f"for ds={ds} first")
