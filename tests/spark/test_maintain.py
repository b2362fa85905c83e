"""`recs maintain` on a table with what nightly runs leave: a partition written in many small
files, a replaced version that time travel still reads, and the Parquet files of killed runs."""

import os
import time
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq
from delta.tables import DeltaTable

from contract.tables import RECS_SCORES
from jobs import maintain
from jobs.core.delta import write_partition

DS, EARLIER_DS = "2026-11-22", "2026-11-21"
WEEK_AND_A_DAY_S = 8 * 24 * 3600


def scores(spark, model_version):
    rows = [(u, i, u + i / 10, model_version) for u in range(1, 4) for i in range(1, 5)]
    # Four tasks, four files: what a nightly step leaves in its partition.
    return spark.createDataFrame(
        rows, "user_id long, item_id long, score double, model_version string").repartition(4)


def partition_files(spark, path, ds, version=None):
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(path).where(f"ds = '{ds}'").inputFiles()


def rows(spark, path, ds, version=None):
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return sorted(tuple(r) for r in reader.load(path).where(f"ds = '{ds}'").drop("ds").collect())


def orphan(path, ds, name, age_s=0):
    """A Parquet file in the partition that no Delta commit refers to, as a killed run leaves."""
    file = os.path.join(path, f"ds={ds}", f"part-00000-{name}.c000.snappy.parquet")
    pq.write_table(pa.table({"user_id": [99], "item_id": [99]}), file)
    if age_s:
        os.utime(file, (time.time() - age_s, time.time() - age_s))
    return file


def test_maintain_compacts_the_day_and_vacuums_orphans_past_retention(spark, lake):
    path = RECS_SCORES.path(lake)
    write_partition(scores(spark, "v0"), lake, RECS_SCORES, EARLIER_DS)
    write_partition(scores(spark, "v1"), lake, RECS_SCORES, DS)
    replaced_version = DeltaTable.forPath(spark, path).history(1).first()["version"]
    write_partition(scores(spark, "v2"), lake, RECS_SCORES, DS)  # a re-run replaces DS
    earlier_files = partition_files(spark, path, EARLIER_DS)
    assert len(partition_files(spark, path, DS)) == len(earlier_files) == 4
    # Two killed runs: one died more than the retention ago, one is maybe still writing.
    stale = orphan(path, DS, "killed-last-week", age_s=WEEK_AND_A_DAY_S)
    in_flight = orphan(path, DS, "in-flight")

    done = maintain.run(spark, maintain.build_parser().parse_args(
        ["--lake", lake, "--ds", DS]))

    assert done == {"recs.scores": {"files_removed": 4, "files_added": 1}}
    # VACUUM listed the table in a few tasks per core, not Spark's default 10,000.
    assert spark.conf.get(maintain.LISTING_PARALLELISM) == str(
        maintain.LISTING_TASKS_PER_CORE * spark.sparkContext.defaultParallelism)
    assert not os.path.exists(stale)
    assert os.path.exists(in_flight)  # younger than the retention: never a reader's loss
    # The day's partition: the same rows, in one file; the other day's is left as it was.
    assert len(partition_files(spark, path, DS)) == 1
    assert rows(spark, path, DS) == sorted(tuple(r) for r in scores(spark, "v2").collect())
    assert partition_files(spark, path, EARLIER_DS) == earlier_files
    # A version within the retention still reads, from files VACUUM kept.
    assert len(partition_files(spark, path, DS, replaced_version)) == 4
    assert rows(spark, path, DS, replaced_version) == sorted(
        tuple(r) for r in scores(spark, "v1").collect())


def test_vacuum_past_a_zero_retention_leaves_only_the_current_version(spark, lake):
    """With no retention, every file the current version does not read is gone, orphans of
    killed runs whatever their age among them; the current version still reads."""
    path = RECS_SCORES.path(lake)
    write_partition(scores(spark, "v1"), lake, RECS_SCORES, DS)
    write_partition(scores(spark, "v2"), lake, RECS_SCORES, DS)
    killed = orphan(path, DS, "killed-just-now")
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    try:
        maintain.run(spark, maintain.build_parser().parse_args(
            ["--lake", lake, "--ds", DS, "--retention-hours", "0"]))
    finally:
        spark.conf.unset("spark.databricks.delta.retentionDurationCheck.enabled")

    on_disk = {os.path.join(folder, name) for folder, _, names in os.walk(path)
               for name in names if name.endswith(".parquet") and "_delta_log" not in folder}
    assert not os.path.exists(killed)
    assert on_disk == {urlparse(f).path for f in partition_files(spark, path, DS)}
    assert rows(spark, path, DS) == sorted(tuple(r) for r in scores(spark, "v2").collect())
