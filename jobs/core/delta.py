"""Delta I/O through Spark, at the edge: create tables from their definitions, replace one `ds`,
read one `ds` (of a raw table, as its last committed ingest wrote it). The JVM-free twin of the
reader is `contract/delta_reader.py`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from contract.ingest_runs import INGESTED, PREDATES_MARKER, version_to_read
from contract.tables import RAW_INGEST_RUNS, Table

log = logging.getLogger(__name__)


def spark_type(type_name: str) -> T.DataType:
    scalars = {
        "string": T.StringType(),
        "long": T.LongType(),
        "int": T.IntegerType(),
        "double": T.DoubleType(),
        "float": T.FloatType(),
        "timestamp": T.TimestampType(),
    }
    if type_name.startswith("array<") and type_name.endswith(">"):
        return T.ArrayType(spark_type(type_name[len("array<"):-1]), containsNull=True)
    if type_name.startswith("struct<") and type_name.endswith(">"):
        # Fields of scalars or arrays, so a top-level comma always separates two fields.
        fields = [f.split(":", 1) for f in type_name[len("struct<"):-1].split(",")]
        return T.StructType([T.StructField(name.strip(), spark_type(t.strip()), True)
                             for name, t in fields])
    return scalars[type_name]


def spark_schema(table: Table) -> T.StructType:
    return T.StructType(
        [T.StructField(c.name, spark_type(c.type), c.nullable, {"comment": c.doc})
         for c in table.columns]
    )


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
     # The contract only grows: a column added to a table's definition is added to an existing
     # table by its next write (conform() has already limited the frame to contract columns).
     .option("mergeSchema", "true")
     .save(table.path(lake)))
    log.info("wrote %s ds=%s -> %s", table.name, ds, table.path(lake))


def read_table(spark: SparkSession, lake: str, table: Table, missing_ok: bool = False,
               version: int | None = None) -> DataFrame | None:
    """Every partition of `table` (at `version`, else the latest); None when it does not exist
    yet and `missing_ok`."""
    from delta.tables import DeltaTable

    path = table.path(lake)
    if not DeltaTable.isDeltaTable(spark, path):
        if missing_ok:
            return None
        raise FileNotFoundError(f"{table.name} does not exist at {path}: run `recs {table.writer}` "
                                "first")
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(path)


def latest_version(spark: SparkSession, lake: str, table: Table) -> int:
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, table.path(lake)).history(1).first()["version"]


def ingest_run(spark: SparkSession, lake: str, ds: str) -> Row | dict | None:
    """raw.ingest_runs' row for `ds`; None when there is none; PREDATES_MARKER when the lake has
    no raw.ingest_runs at all."""
    runs = read_table(spark, lake, RAW_INGEST_RUNS, missing_ok=True)
    return PREDATES_MARKER if runs is None else runs.where(F.col("ds") == ds).first()


def read_partition(spark: SparkSession, lake: str, table: Table, ds: str) -> DataFrame:
    """The rows of one `ds` partition of `table` (without the ds column); of a table ingest
    writes, as `read_ingested` reads them."""
    if table in INGESTED:
        return read_ingested(spark, lake, ds, (table,))[0]
    return _partition(spark, lake, table, ds)


def read_ingested(spark: SparkSession, lake: str, ds: str, tables: Sequence[Table]
                  ) -> list[DataFrame]:
    """The rows of `ds` in tables ingest writes (without the ds column) as the last ingest of
    `ds` that committed wrote them, all as one raw.ingest_runs row records, so that a reader of
    several sees one run (`contract/ingest_runs.py`); `NotCommitted` when none committed."""
    latest = {}
    for table in tables:
        _partition(spark, lake, table, ds)  # a table that does not exist fails here, named
        latest[table] = latest_version(spark, lake, table)  # before the row: see version_to_read
    run = ingest_run(spark, lake, ds)
    return [_partition(spark, lake, table, ds, version_to_read(run, table, ds, latest[table]))
            for table in tables]


def _partition(spark: SparkSession, lake: str, table: Table, ds: str, version: int | None = None
               ) -> DataFrame:
    try:
        rows = read_table(spark, lake, table, version=version)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e} (for ds={ds})") from None
    return rows.where(F.col("ds") == ds).drop("ds")


def require_rows(df: DataFrame, table: Table, ds: str) -> None:
    if df.limit(1).count() == 0:
        raise ValueError(f"{table.name} has no rows for ds={ds}: run `recs {table.writer}` "
                         f"for ds={ds} first")
