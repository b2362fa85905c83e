"""The Spark steps' files run unchanged as spark-submit applications."""

import os
import subprocess
import sys

from jobs.core.spark import delta_submit_args
from tests.conftest import REPO

DS = "2026-11-22"


def test_jobs_run_under_spark_submit(tmp_path):
    """The same files run as spark-submit applications (own JVM, own master)."""
    lake = str(tmp_path / "lake")
    spark_submit = os.path.join(os.path.dirname(sys.executable), "spark-submit")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    common = ["--master", "local[2]", "--conf", "spark.ui.enabled=false", *delta_submit_args()]
    for job, extra in (("ingest.py", ["--synthetic-users", "15", "--synthetic-items", "40",
                                      "--synthetic-interactions", "8"]),
                       ("build_training_set.py", ["--holdout-fraction", "0.2"])):
        done = subprocess.run([spark_submit, *common, str(REPO / "jobs" / job), "--lake", lake,
                               "--ds", DS, *extra],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]

    import deltalake

    def rows(table):
        frame = deltalake.DeltaTable(f"{lake}/{table}").to_pandas()
        assert set(frame["ds"]) == {DS}, table
        return frame

    # The generator, the split and the negative sampler are all seeded, so the counts are exact:
    # 128 events of 15 users; each user with >= 5 holds out max(1, floor(0.2 n)), 20 in all;
    # each of the 93 train interactions with an earlier one makes a group of 1 positive and 4
    # negatives.
    assert (len(rows("raw/interactions")), len(rows("raw/items"))) == (128, 40)
    assert len(rows("features/train_interactions")) == 108
    assert len(rows("features/test_interactions")) == 20
    examples = rows("features/training_examples")
    assert (len(examples), int(examples["label"].sum())) == (465, 93)
    assert examples["user_id"].nunique() == 15


def test_a_failing_step_prints_one_line_naming_the_cause(tmp_path):
    """All of stderr, the JVM's included: no stack trace, the cause last, at the default level."""
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("user_id,item_id,timestamp\n1,2,1700000000\n")
    recs = os.path.join(os.path.dirname(sys.executable), "recs")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "RECS_SPARK_UI": "0"}
    done = subprocess.run([recs, "ingest", "--lake", str(tmp_path / "lake"), "--ds", DS,
                           "--master", "local[1]", "--source", "parquet", "--path", str(ratings),
                           "--items-path", str(ratings)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("recs ingest: error: ") and f"{ratings} is not a Parquet file" in last
    assert "Traceback" not in done.stderr and "\tat org.apache" not in done.stderr, done.stderr
