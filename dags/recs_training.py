"""Weekly model training: fine-tune the teacher, distil the student, publish it if it is better.

**ds.** `CronTriggerTimetable("0 4 * * 0", timezone="UTC")`: Sundays 04:00 UTC, `{{ ds }}` is
that Sunday, and the jobs read the `features.*` partition the nightly run of the same day wrote
at 02:00 (the gate fails the run, naming the table, when it is not there yet).

**Where it runs.** `recs train-teacher` and `recs distill` are plain commands (torch, no Spark).
By default they run on the worker that picks them up, in the default pool: locally that is this
machine's CPU. To route them to GPU workers, set, where the DAG files are parsed,
`RECS_TRAINING_POOL` (e.g. `gpu`, a pool with one slot per GPU) and `RECS_TRAINING_QUEUE`
(e.g. `gpu`, a Celery queue only GPU workers listen on). docs/AIRFLOW.md shows the
KubernetesPodOperator variant, which runs the same commands in a GPU pod.

**Output.** Each run trains model version `<ds>-<HHMMSS of the logical date>` under
`<lake>/models/`; `publish` (a Spark step) records in recs.model_registry whether it becomes the
current model (not if its validation NDCG@10 is worse than the current one's). The publish task's
outlet `MODEL_ASSET` records an asset event per decision; the nightly DAG's `score` task lists
the asset as an inlet and always scores with the current model. Re-running a run whose teacher
was already written fails on purpose (an artifact is never overwritten): trigger a new run.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, CronTriggerTimetable, chain
from recs_common import DEFAULT_ARGS, LAKE, MODEL_ASSET, quality_gate, spark_step

from contract.layout import VERSION_TIME_FORMAT
from jobs.core.pipeline import steps

# Pools and queues are fixed when the file is parsed (they are not templated), hence environment
# variables rather than Airflow Variables.
POOL = os.environ.get("RECS_TRAINING_POOL") or "default_pool"
QUEUE = os.environ.get("RECS_TRAINING_QUEUE") or "default"
# One model version per run, in contract.layout's format; the same on every retry of a task.
VERSION = "{{ ds }}-{{ logical_date.strftime('%s') }}" % VERSION_TIME_FORMAT
TEACHER_DIR = f"{LAKE}/models/{VERSION}/teacher"
# The training steps and their order come from jobs.core.pipeline; these are their arguments.
STEP_FLAGS = {
    "train-teacher": [f"--version '{VERSION}'"],
    "distill": [f"--teacher-dir '{TEACHER_DIR}'"],
    "publish": ["--model-version", VERSION],
}
TIMEOUTS = {"train-teacher": timedelta(hours=6), "distill": timedelta(hours=3),
            "publish": timedelta(minutes=30)}


def training_command(command: str, *flags: str) -> str:
    return " ".join([f"recs {command} --lake '{LAKE}' --ds '{{{{ ds }}}}'", *flags])


with DAG(
    dag_id="recs_training",
    description="teacher fine-tune -> distil -> publish gate, weekly; GPU by configuration",
    doc_md=__doc__,
    schedule=CronTriggerTimetable("0 4 * * 0", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    dagrun_timeout=timedelta(hours=12),
    tags=["recs", "training", "gpu"],
) as dag:
    tasks = [quality_gate("build-training-set")]
    for step in steps(schedule="training"):
        if step.engine == "torch":
            tasks.append(BashOperator(task_id=step.task_id,
                                      bash_command=training_command(step.name,
                                                                    *STEP_FLAGS[step.name]),
                                      pool=POOL, queue=QUEUE,
                                      execution_timeout=TIMEOUTS[step.name]))
        else:
            tasks.append(spark_step(step.name, STEP_FLAGS[step.name], timeout=TIMEOUTS[step.name],
                                    outlets=[MODEL_ASSET]))
    chain(*tasks)
