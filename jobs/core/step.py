"""What every Spark step shares: the common flags, logging, and `main(argv)` -> one SparkSession -> `run`.

`exit_on_error` is the one error boundary of every command (`recs <step>` and the job files run by
spark-submit): a failure ends as one line naming its cause, the traceback only at DEBUG.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
from collections.abc import Iterator

from contract.args import add_lake_arg, run_date

log = logging.getLogger(__name__)


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


def _one_line(message: str) -> str:
    # pyspark appends the JVM stack trace to some messages; a Python worker's error ends with the
    # line naming its exception.
    lines = [line.strip() for line in message.split("JVM stacktrace:")[0].splitlines()
             if line.strip()]
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        return lines[-1]
    return lines[0] if lines else ""


def root_cause(error: BaseException) -> str:
    """What went wrong, in one line.

    A JVM error (py4j's Py4JJavaError) wraps its cause in layers of "Job aborted", "Exception
    thrown in awaitResult", ...: the deepest cause that says something names the file and the
    problem (e.g. "file:/in.csv is not a Parquet file"). pyspark's own exceptions
    (AnalysisException, ParseException, ...) and ours carry it in their message.
    """
    java = getattr(error, "java_exception", None)
    if java is None:
        return _one_line(str(error)) or type(error).__name__
    said, cause = None, java
    while cause is not None:
        if _one_line(cause.getMessage() or ""):
            said = cause
        cause = cause.getCause()
    return _one_line(said.getMessage()) if said is not None else java.getClass().getName()


@contextlib.contextmanager
def exit_on_error(prog: str) -> Iterator[None]:
    """Turn any failure inside into `SystemExit("<prog>: error: <root cause>")` (exit status 1);
    the traceback, with the JVM's, is logged only at DEBUG. Usage errors (SystemExit) pass."""
    try:
        yield
    except Exception as error:
        log.debug("%s failed", prog, exc_info=True)
        raise SystemExit(f"{prog}: error: {root_cause(error)}") from None


def spark_session(app_name: str, master: str | None):
    """The step's SparkSession; below DEBUG, the failure of a job is left to `exit_on_error`.

    Spark logs every failed task's stack trace (Executor, TaskSetManager) and pyspark logs the
    query context of some errors, hundreds of lines around the one cause the boundary reports.
    """
    from jobs.core.spark import get_spark

    spark = get_spark(app_name, master)
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        from pyspark.logger import PySparkLogger

        log4j = spark._jvm.org.apache.logging.log4j
        for name in ("org.apache.spark.executor.Executor",
                     "org.apache.spark.scheduler.TaskSetManager"):
            log4j.core.config.Configurator.setLevel(name, log4j.Level.OFF)
        for name in ("DataFrameQueryContextLogger", "SQLQueryContextLogger"):
            PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)
    return spark


def run_spark_step(parser: argparse.ArgumentParser, run, argv: list[str] | None,
                   without_spark=None):
    """`main(argv)` of every Spark step: parse, log, one SparkSession, run; a failure exits with
    one line (`exit_on_error`). `without_spark(args)`, when given, runs first: a result other
    than None is the step's, and no SparkSession is started."""
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    with exit_on_error(parser.prog):
        done = without_spark(args) if without_spark else None
        if done is not None:
            return done
        return run(spark_session(parser.prog.replace(" ", "-"), args.master), args)
