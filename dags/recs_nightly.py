"""Nightly batch recommendations: every Spark step for one run date, each followed by its gate.

**ds.** The schedule is `CronTriggerTimetable("0 2 * * *", timezone="UTC")`: the run that starts
at 02:00 UTC on day D has logical date D 02:00, so `{{ ds }}` is D itself, and every job reads
only events strictly before D 00:00 UTC. A run therefore covers complete days, with two hours
for late events to land. (The Airflow 2 meaning of a cron schedule, "ds = the day before", is
CronDataIntervalTimetable; it would make ds lag a day behind our jobs' meaning of `--ds`.)
A backfill or manual run for date D produces exactly what the 02:00 run of D would.

**Steps.** One line each in `NIGHTLY_STEPS`; the gate after a step is `jobs.quality.GATES`.
ingest -> build-training-set -> generate-candidates -> score, scoring with the model that
recs.model_registry says is current (published by the recs_training DAG, whose asset `score`
lists as an inlet). `evaluate` is not nightly: it needs a held-out split, which nightly mode does
not build (`recs run` skips it the same way); it runs with `--holdout-fraction`, e.g. through
`recs backfill --steps ...,evaluate`. See docs/AIRFLOW.md.

**Params** (per run: `airflow dags trigger recs_nightly -c '{"source": "movielens", ...}'`)
choose the ingest source and the quarantine threshold. **Variables** (`recs_lake`,
`recs_jobs_dir`, `recs_pyspark_python`) and the `spark_default` connection say where things are.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, Param, chain

from jobs.quality import DEFAULT_MAX_QUARANTINE_FRACTION
from recs_common import DEFAULT_ARGS, MODEL_ASSET, quality_gate, spark_step

INGEST_FLAGS = [
    "--source", "{{ params.source }}",
    "--path", "{{ params.source_path }}",
    "--synthetic-users", "{{ params.synthetic_users }}",
    "--synthetic-items", "{{ params.synthetic_items }}",
    "--synthetic-interactions", "{{ params.synthetic_interactions }}",
]

# In pipeline order, one line per step: spark_step's arguments (flags beyond --lake/--ds, the
# timeout, any operator argument such as inlets).
NIGHTLY_STEPS = [
    {"step": "ingest", "flags": INGEST_FLAGS, "timeout": timedelta(hours=1)},
    {"step": "build-training-set", "timeout": timedelta(hours=2)},
    {"step": "generate-candidates", "timeout": timedelta(hours=1)},
    {"step": "score", "timeout": timedelta(hours=3), "inlets": [MODEL_ASSET]},
]

with DAG(
    dag_id="recs_nightly",
    description="ingest -> features -> candidates -> score, each gated, for ds = the run's day",
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
        "max_quarantine_fraction": Param(DEFAULT_MAX_QUARANTINE_FRACTION, type="number",
                                         minimum=0, maximum=1,
                                         description="Fail the run when a raw table loses more "
                                                     "than this share of its rows to quarantine."),
    },
) as dag:
    tasks = []
    for spec in NIGHTLY_STEPS:
        tasks.append(spark_step(**spec))
        gate = quality_gate(spec["step"])
        if gate is not None:
            tasks.append(gate)
    chain(*tasks)
