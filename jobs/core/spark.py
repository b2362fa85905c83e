"""The one place that builds a SparkSession.

Three ways in, one session shape:
- `recs <step>` / `python jobs/<step>.py`: we start the JVM ourselves, `local[*]` unless
  `--master` says otherwise, and Delta's jars come from Maven through `spark.jars.packages`.
- `spark-submit jobs/<step>.py`: spark-submit already started the JVM with its own master and
  `--packages`; we attach to it (see `delta_submit_args` for what to pass), and on a local
  master give it the SQL settings of LOCAL_DEFAULTS it was not given.
- tests: the same builder, UI off, few shuffle partitions.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

DELTA_PACKAGE = "io.delta:delta-spark_2.13:4.3.1"
DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

# Defaults sized for this project's data on a laptop-class machine; every one can be overridden
# with `--conf` on spark-submit or RECS_SPARK_CONF="k=v,k=v".
LOCAL_DEFAULTS = {
    # AQE coalesces small shuffles, so this is an upper bound, not a fixed fan-out.
    "spark.sql.shuffle.partitions": "16",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Delta's default of 50 partitions for reading its log is for big tables; ours are small.
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    "spark.driver.memory": "4g",
    "spark.ui.showConsoleProgress": "false",
}
# SQL and Delta settings apply to a running session; the rest are fixed when the JVM starts.
RUNTIME_SETTABLE = ("spark.sql.", "spark.databricks.delta.")


def delta_submit_args(python: str | None = None) -> list[str]:
    """Arguments `spark-submit` needs to run one of our jobs with Delta."""
    args = ["--packages", DELTA_PACKAGE]
    conf = {**DELTA_CONF, "spark.sql.session.timeZone": "UTC",
            "spark.pyspark.python": python or sys.executable}
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    return args


def extra_conf_from_env() -> dict[str, str]:
    raw = os.environ.get("RECS_SPARK_CONF", "").strip()
    pairs = [item.split("=", 1) for item in raw.split(",") if item.strip()]
    bad = [p for p in pairs if len(p) != 2]
    if bad:
        raise ValueError(f"RECS_SPARK_CONF must be 'key=value,key=value', got {raw!r}")
    return {k.strip(): v.strip() for k, v in pairs}


def apply_local_sql_defaults(spark) -> None:
    """LOCAL_DEFAULTS that can change in a running session, unless spark-submit set them.

    A local spark-submit (Airflow's spark_default on one machine, `recs backfill`) would otherwise
    run with cluster-sized defaults, e.g. 200 shuffle partitions and 50 for every Delta log read,
    which cost tens of seconds per job on this project's data.
    """
    submitted = spark.sparkContext.getConf()
    for key, value in LOCAL_DEFAULTS.items():
        if key.startswith(RUNTIME_SETTABLE) and not submitted.contains(key):
            spark.conf.set(key, value)


def started_by_spark_submit() -> bool:
    # spark-submit launches the Python driver with the gateway port of its already running JVM.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(app_name: str = "recs", master: str | None = None, ui: bool | None = None):
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    # Python workers must use the interpreter that has our packages, not whatever `python3` is.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    builder = SparkSession.builder.appName(app_name)
    if started_by_spark_submit():
        if master:
            log.warning("--master %s ignored: spark-submit already chose the master", master)
        for key, value in DELTA_CONF.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        if spark.sparkContext.master.startswith("local"):
            apply_local_sql_defaults(spark)
    else:
        builder = builder.master(master or os.environ.get("RECS_SPARK_MASTER", "local[*]"))
        conf = {**LOCAL_DEFAULTS, **DELTA_CONF}
        if ui is None:
            ui = os.environ.get("RECS_SPARK_UI", "1") != "0"
        conf["spark.ui.enabled"] = "true" if ui else "false"
        conf.update(extra_conf_from_env())
        for key, value in conf.items():
            builder = builder.config(key, value)
        spark = configure_spark_with_delta_pip(builder).getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("RECS_SPARK_LOG_LEVEL", "WARN"))
    keep_jars_off_python_path(spark.sparkContext)
    return spark


def keep_jars_off_python_path(context) -> None:
    """Stop shipping Maven jars to Python workers as Python code.

    spark-submit adds every jar that `--packages` (or spark.jars.packages) resolves to the
    Python includes too, for packages that carry Python inside a jar. Delta's Python is the pip
    package, so its 33 jars are of no use there, and each Python task starts with
    `importlib.invalidate_caches()`, which re-reads the directory of every zip on the worker's
    sys.path: 0.26 s per task with those jars (hadoop-client-runtime alone has 19,636 entries)
    against 0.02 s without, measured on 2 cores. A 100M-pair `recs score` runs 100 Python tasks.
    Zips (`--py-files`, the `recs package` archive) stay. The list is pyspark's own
    (`SparkContext._python_includes`, read when each Python function is wrapped); a test checks
    that the workers' sys.path holds no jar."""
    includes = getattr(context, "_python_includes", None)
    if includes:
        context._python_includes = [p for p in includes if not p.lower().endswith(".jar")]
