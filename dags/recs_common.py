"""What the recs DAGs share: settings, retry policy, how a Spark step is submitted, the gates.

Parsed with every DAG file, so it imports nothing heavy: `jobs.core.spark` and `jobs.ops.quality` are
plain Python at import time (no pyspark, no deltalake until a gate runs). `.airflowignore` keeps
the DAG processor from looking for DAGs in it.

Settings are Airflow Variables, read when a task runs, so one deployment can point the same DAG
files elsewhere without editing them (`AIRFLOW_VAR_RECS_LAKE=/data/lake` sets one from the
environment). The defaults suit `make airflow` on this checkout.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Asset, task

from jobs.core.pipeline import BY_NAME
from jobs.core.spark import delta_submit_args, extra_conf_from_env
from jobs.ops.quality import DEFAULT_MAX_QUARANTINE_FRACTION, GATES

PROJECT = Path(__file__).resolve().parents[1]

LAKE = "{{ var.value.get('recs_lake', '%s') }}" % (PROJECT / "lake")
JOBS_DIR = "{{ var.value.get('recs_jobs_dir', '%s') }}" % (PROJECT / "jobs")
# The interpreter of Spark's Python workers; the default is the one parsing this file, i.e. the
# project's virtual environment under `make airflow`.
PYSPARK_PYTHON = "{{ var.value.get('recs_pyspark_python', '%s') }}" % sys.executable

# The published model: recs_training's publish task records a decision in recs.model_registry
# (the table says which version is current); the nightly's score task lists this asset as an
# inlet, so Airflow shows the lineage from training to recommendations.
MODEL_ASSET = Asset(name="recs_published_model", uri="recs://model_registry/current",
                    group="model")

# Transient failures (a lost executor, a full disk that gets cleaned, a preempted node) are worth
# retrying, spaced out so whatever broke has time to recover; bad data is not (see quality_gate).
DEFAULT_ARGS = {
    "owner": "recs",
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
    "execution_timeout": timedelta(hours=1),
}


def task_id(step: str) -> str:
    """A pipeline step's task id; `maintain`, no pipeline step, is named the same way."""
    return BY_NAME[step].task_id if step in BY_NAME else step.replace("-", "_")


def spark_step(step: str, flags: list[str] | tuple[str, ...] = (),
               timeout: timedelta = timedelta(hours=2), **kwargs) -> SparkSubmitOperator:
    """spark-submit `jobs/<step>.py --lake L --ds {{ ds }} [flags]` with Delta.

    The master comes from the `spark_default` connection, so the same DAG runs against
    local[*], a standalone master, YARN or Kubernetes by changing only the connection.
    """
    options = delta_submit_args(PYSPARK_PYTHON)
    pairs = list(zip(options[::2], options[1::2]))
    packages = ",".join(value for flag, value in pairs if flag == "--packages")
    conf = dict(value.split("=", 1) for flag, value in pairs if flag == "--conf")
    # RECS_SPARK_CONF is read when this file is parsed: the keys of `conf` are fixed then.
    conf.update(extra_conf_from_env())
    return SparkSubmitOperator(
        task_id=task_id(step),
        conn_id="spark_default",
        application=f"{JOBS_DIR}/{task_id(step)}.py",
        name=f"recs-{step}",
        packages=packages,
        conf=conf,
        application_args=["--lake", LAKE, "--ds", "{{ ds }}", *flags],
        env_vars={"PYSPARK_PYTHON": PYSPARK_PYTHON},
        execution_timeout=timeout,
        **kwargs,
    )


def quality_gate(step: str):
    """The task that runs `jobs.ops.quality.GATES[step]` for the run's ds, or None without a gate."""
    if step not in GATES:
        return None

    needs = GATES[step]
    doc = (f"Quality gate after {step}: {', '.join(needs.require)} must have rows for ds"
           + (", and the quarantine fraction must be within `max_quarantine_fraction`."
              if needs.check_quarantine else "."))

    @task(task_id=f"check_{task_id(step)}", execution_timeout=timedelta(minutes=10), doc_md=doc)
    def gate(lake: str, ds: str | None = None, params: dict | None = None) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        from jobs.ops.quality import QualityError, check_step

        limit = (params or {}).get("max_quarantine_fraction", DEFAULT_MAX_QUARANTINE_FRACTION)
        try:
            check_step(lake, ds, step, float(limit))
        except QualityError as error:
            # Retrying cannot fix the data: fail now, and keep the retries for infrastructure.
            raise AirflowFailException(str(error)) from None

    return gate(lake=LAKE)
