"""Nightly batch recommendations: every Spark step for one run date, each followed by its gate.

**ds.** The schedule is `CronTriggerTimetable("0 2 * * *", timezone="UTC")`: the run that starts
at 02:00 UTC on day D has logical date D 02:00, so `{{ ds }}` is D itself, and every job reads
only events strictly before D 00:00 UTC. A run therefore covers complete days, with two hours
for late events to land. (The Airflow 2 meaning of a cron schedule, "ds = the day before", is
CronDataIntervalTimetable; it would make ds lag a day behind our jobs' meaning of `--ds`.)
A backfill or manual run for date D produces exactly what the 02:00 run of D would.

**Steps.** The nightly Spark steps of `jobs.core.pipeline.PIPELINE`, in its order, each with its
arguments in `STEP_OPTIONS`; the gate after a step is `jobs.ops.quality.GATES` (none after
generate-candidates: while users x items is within its --max-pairs it writes no pairs, and
score generates and scores every unseen pair in one pass; above it, score refuses an empty
first stage itself).
ingest -> build-training-set -> generate-candidates -> score -> evaluate, scoring with the model
that recs.model_registry says is current (published by the recs_training DAG, whose asset
`score` lists as an inlet; publishing, the "not worse than the current model" gate, happens
there, where model versions are born). Then `maintain` (jobs/maintain.py): it compacts the day's
partition of every table and vacuums files no version of the last week needs, a killed run's
orphans included; it runs whether or not evaluate was skipped, never after a failure.

**Evaluation runs.** `evaluate` follows ../shared/EVALUATION.md, so it needs each user's last
interactions held out of training: param `holdout_fraction` (0, the default, is nightly mode:
train on everything, and `is_evaluation_run` skips evaluate). A run with e.g. 0.2 builds the
protocol split and scores from the truncated histories: run it in an evaluation deployment (its
own `recs_lake`); build_training_set refuses one over a lake that serves recommendations, and a
nightly-mode run over an evaluation lake (jobs/core/lake_mode.py).

**Params** (per run: `airflow dags trigger recs_nightly -c '{"source": "movielens", ...}'`)
choose the ingest source, the quarantine threshold and the holdout. **Variables** (`recs_lake`,
`recs_jobs_dir`, `recs_pyspark_python`) and the `spark_default` connection say where things are.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, Param, chain, task
from recs_common import DEFAULT_ARGS, MODEL_ASSET, quality_gate, spark_step

from jobs.core.pipeline import steps
from jobs.ops.quality import DEFAULT_MAX_QUARANTINE_FRACTION

INGEST_FLAGS = [
    "--source", "{{ params.source }}",
    "--path", "{{ params.source_path }}",
    "--synthetic-users", "{{ params.synthetic_users }}",
    "--synthetic-items", "{{ params.synthetic_items }}",
    "--synthetic-interactions", "{{ params.synthetic_interactions }}",
]

# The steps and their order come from jobs.core.pipeline (the nightly Spark steps); this is
# each one's spark_step arguments beyond --lake/--ds: flags, timeout, operator arguments.
STEP_OPTIONS = {
    "ingest": {"flags": INGEST_FLAGS, "timeout": timedelta(hours=1)},
    "build-training-set": {"timeout": timedelta(hours=2),
                           "flags": ["--holdout-fraction", "{{ params.holdout_fraction }}"]},
    "generate-candidates": {"timeout": timedelta(hours=1)},
    "score": {"timeout": timedelta(hours=3), "inlets": [MODEL_ASSET]},
    "evaluate": {"timeout": timedelta(hours=2)},
}


# Skips only evaluate (and, by its trigger rule, its gate): maintain still runs after it.
@task.short_circuit(task_id="is_evaluation_run", execution_timeout=timedelta(minutes=5),
                    ignore_downstream_trigger_rules=False)
def is_evaluation_run(params: dict | None = None) -> bool:
    """Go on to evaluate only when this run held out a test split (params.holdout_fraction > 0)."""
    fraction = float((params or {}).get("holdout_fraction") or 0)
    if fraction == 0:
        print("nightly mode (holdout_fraction 0): nothing held out, evaluate skipped")
    return fraction > 0

with DAG(
    dag_id="recs_nightly",
    description="ingest -> features -> candidates -> score (-> evaluate), each gated, for ds = "
                "the run's day",
    doc_md=__doc__,
    schedule=CronTriggerTimetable("0 2 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    # Steps replace whole ds partitions of shared tables; one run at a time keeps runs (and the
    # machine's cores) from competing.
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    dagrun_timeout=timedelta(hours=8),
    tags=["recs", "spark", "nightly"],
    params={
        "source": Param("synthetic", enum=["synthetic", "movielens", "csv", "parquet"],
                        description="recs ingest --source."),
        "source_path": Param("", type="string",
                             description="recs ingest --path (MovieLens directory or file); "
                                         "unused for synthetic."),
        "synthetic_users": Param(600, type="integer", minimum=1,
                                 description="Synthetic source: number of users."),
        "synthetic_items": Param(2000, type="integer", minimum=1,
                                 description="Synthetic source: catalogue size."),
        "synthetic_interactions": Param(40, type="integer", minimum=1,
                                        description="Synthetic source: mean interactions per "
                                                    "user."),
        "holdout_fraction": Param(0, type="number", minimum=0, exclusiveMaximum=1,
                                  description="0: nightly mode. F > 0: evaluation run, holding "
                                              "out each user's last max(1, floor(F*n)) "
                                              "interactions (../shared/EVALUATION.md uses 0.2) "
                                              "and evaluating after scoring."),
        "max_quarantine_fraction": Param(DEFAULT_MAX_QUARANTINE_FRACTION, type="number",
                                         minimum=0, maximum=1,
                                         description="Fail the run when a raw table loses more "
                                                     "than this share of its rows to quarantine."),
    },
) as dag:
    tasks = []
    for step in steps(engine="spark", schedule="nightly"):
        if step.evaluation_only:
            tasks.append(is_evaluation_run())
        tasks += [spark_step(step.name, **STEP_OPTIONS[step.name]), quality_gate(step.name)]
    # none_failed: after a skipped evaluate too, but never after a failed step or gate.
    tasks.append(spark_step("maintain", timeout=timedelta(hours=1), trigger_rule="none_failed"))
    chain(*[t for t in tasks if t is not None])
