"""tests/slow: real spark-submit and Airflow processes, minutes each.

`make test` runs test_dags.py and test_backfill.py in a pytest process of their own (see the
Makefile): Airflow reads AIRFLOW_HOME once per process, and their spark-submits get SMALL_SPARK.
"""

# Settings for seconds-long jobs on tiny data, as RECS_SPARK_CONF (which `recs backfill` and the
# DAGs pass to every spark-submit). Under spark-submit the jobs get Spark's cluster-sized defaults
# (200 shuffle partitions, 50 to read a Delta log); and a JVM that lives half a minute spends
# less CPU with the quick JIT tier alone (measured here: 50 s -> 29 s for one ingest).
SMALL_SPARK = ("spark.ui.enabled=false,spark.sql.shuffle.partitions=2,"
               "spark.databricks.delta.snapshotPartitions=1,"
               "spark.driver.extraJavaOptions=-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
