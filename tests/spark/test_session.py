"""The SparkSession every step gets (jobs/core/spark.py)."""


def test_python_workers_get_no_maven_jar_on_their_import_path(spark):
    # Delta's jars come from spark.jars.packages, which spark-submit also adds to the Python
    # includes; on a worker's sys.path each costs every task a re-read of its directory.
    def shipped_jars(_):
        import sys

        yield [p for p in sys.path if p.endswith(".jar") and "userFiles-" in p]

    assert spark.sparkContext._conf.get("spark.jars.packages", "").startswith("io.delta:")
    assert spark.sparkContext.parallelize([0], 1).mapPartitions(shipped_jars).collect() == [[]]
