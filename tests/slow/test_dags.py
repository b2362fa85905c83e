"""The Airflow DAGs: they load, their graphs and policies, and real runs on tiny synthetic data.

Airflow always runs against its own AIRFLOW_HOME in a tmp dir (SQLite, `airflow db migrate`),
never ~/airflow: the in-process DagBag sets it before Airflow is first imported, and the runs
use the `airflow` CLI in subprocesses with the same environment.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs import ingest
from jobs.core import pipeline
from jobs.core.spark import DELTA_PACKAGE
from jobs.ops import backfill
from jobs.sources import synthetic
from tests.conftest import REPO, make_student, mark_ingested
from tests.slow.conftest import SMALL_SPARK

BIN = Path(sys.executable).parent
PUBLISHED_DS, DS, NEXT_DS = "2026-11-19", "2026-11-20", "2026-11-21"
TINY = {"synthetic_users": 20, "synthetic_items": 60, "synthetic_interactions": 8}
RUN_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow_home")
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": "local[2]"}),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYSPARK_PYTHON": sys.executable,
        "RECS_SPARK_CONF": SMALL_SPARK,
    }


def airflow(env, *args, timeout=120, check=True):
    done = subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


@pytest.fixture(scope="module")
def dagbag(airflow_env):
    # Airflow reads AIRFLOW_HOME once, when first imported: set it before that import.
    saved = {k: os.environ.get(k) for k in airflow_env}
    os.environ.update(airflow_env)
    try:
        from airflow.dag_processing.dagbag import BundleDagBag

        yield BundleDagBag(dag_folder=REPO / "dags", bundle_path=REPO / "dags",
                           bundle_name="dags-folder")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def edges(dag):
    return {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}


def test_dag_folder_loads_without_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {"recs_nightly", "recs_training"}


def chain_of(*task_ids):
    return set(zip(task_ids, task_ids[1:]))


def test_nightly_graph(dagbag):
    assert edges(dagbag.dags["recs_nightly"]) == chain_of(
        "ingest", "check_ingest", "build_training_set", "check_build_training_set",
        "generate_candidates", "score", "check_score",
        "is_evaluation_run", "evaluate", "check_evaluate", "maintain")
    dag = dagbag.dags["recs_nightly"]
    # maintain runs after a skipped evaluate, never after a failure.
    assert dag.task_dict["maintain"].trigger_rule == "none_failed"
    assert dag.task_dict["is_evaluation_run"].ignore_downstream_trigger_rules is False


def test_training_graph(dagbag):
    dag = dagbag.dags["recs_training"]
    assert edges(dag) == chain_of("check_build_training_set", "train_teacher", "distill",
                                  "publish")
    version = "--version '{{ ds }}-{{ logical_date.strftime('%H%M%S') }}'"
    assert dag.task_dict["train_teacher"].bash_command.endswith(version)
    assert dag.task_dict["distill"].bash_command.endswith(
        "/models/{{ ds }}-{{ logical_date.strftime('%H%M%S') }}/teacher'")
    assert dag.task_dict["publish"].application_args[-2:] == [
        "--model-version", "{{ ds }}-{{ logical_date.strftime('%H%M%S') }}"]
    for task_id in ("train_teacher", "distill"):
        task = dag.task_dict[task_id]
        assert task.bash_command.startswith(f"recs {task_id.replace('_', '-')} --lake '")
        assert "--ds '{{ ds }}'" in task.bash_command
        assert (task.pool, task.queue) == ("default_pool", "default")


def test_published_model_asset_links_training_to_scoring(dagbag):
    published = dagbag.dags["recs_training"].task_dict["publish"].outlets
    consumed = dagbag.dags["recs_nightly"].task_dict["score"].inlets
    assert [a.name for a in published] == [a.name for a in consumed] == ["recs_published_model"]


def test_every_task_retries_with_backoff_and_has_a_timeout(dagbag):
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            assert task.retries >= 2, (dag.dag_id, task.task_id)
            assert task.retry_exponential_backoff, (dag.dag_id, task.task_id)
            assert task.execution_timeout is not None, (dag.dag_id, task.task_id)


def test_schedules_make_ds_the_day_the_run_starts(dagbag):
    for dag_id, cron in (("recs_nightly", "0 2 * * *"), ("recs_training", "0 4 * * 0")):
        dag = dagbag.dags[dag_id]
        timetable = dag.timetable
        assert type(timetable).__name__ == "CronTriggerTimetable", dag_id
        assert (timetable.expression, str(timetable.timezone)) == (cron, "UTC")
        assert dag.catchup is False and dag.max_active_runs == 1 and "recs" in dag.tags


def test_nightly_spark_steps_are_the_backfill_defaults_in_pipeline_order(dagbag):
    dag = dagbag.dags["recs_nightly"]
    spark_tasks = [t for t in dag.topological_sort() if t.task_type == "SparkSubmitOperator"]
    steps = [t.task_id.replace("_", "-") for t in spark_tasks]
    assert steps == [*backfill.DEFAULT_STEPS, "maintain"]
    steps = steps[:-1]
    known = pipeline.step_names(engine="spark")
    assert steps == sorted(steps, key=known.index), "nightly steps out of pipeline order"
    for task in spark_tasks:
        script = task.application.split("}}/")[-1]
        assert (REPO / "jobs" / script).is_file(), script
        assert task.application_args[:4] == ["--lake", task.application_args[1], "--ds",
                                             "{{ ds }}"]
        assert "recs_lake" in task.application_args[1]
        assert task._conn_id == "spark_default"
        assert task.packages == DELTA_PACKAGE
        assert "PYSPARK_PYTHON" in task.env_vars


def test_ingest_params_default_to_the_job_defaults(dagbag):
    params = dagbag.dags["recs_nightly"].params
    defaults = ingest.build_parser().parse_args([])
    assert params["source"] == defaults.source
    for name in TINY:
        assert params[name] == getattr(defaults, name), name


def test_dag_files_import_nothing_heavy_and_route_training_by_env(airflow_env):
    probe = ("import json, sys\n"
             "from pathlib import Path\n"
             "from airflow.dag_processing.dagbag import BundleDagBag\n"
             "dags = Path(sys.argv[1])\n"
             "bag = BundleDagBag(dag_folder=dags, bundle_path=dags, bundle_name='dags-folder')\n"
             "teacher = bag.dags['recs_training'].task_dict['train_teacher']\n"
             "print(json.dumps({'heavy': [m for m in ('pyspark', 'torch', 'deltalake', 'pandas')"
             " if m in sys.modules], 'pool': teacher.pool, 'queue': teacher.queue}))\n")
    env = {**airflow_env, "RECS_TRAINING_POOL": "gpu", "RECS_TRAINING_QUEUE": "gpu"}
    done = subprocess.run([sys.executable, "-c", probe, str(REPO / "dags")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "heavy": [], "pool": "gpu", "queue": "gpu"}


# ---------------------------------------------------------------------------------------------
# Against a metadata DB


@pytest.fixture(scope="module")
def airflow_db(airflow_env):
    airflow(airflow_env, "db", "migrate")
    airflow(airflow_env, "dags", "reserialize")
    return airflow_env


def rendered(env, dag_id, task_id, logical_date):
    return airflow(env, "tasks", "render", dag_id, task_id, logical_date).stdout


def test_templates_render_with_the_run_date_and_variables(airflow_db):
    env = {**airflow_db, "AIRFLOW_VAR_RECS_LAKE": "/data/lake"}
    ingest_args = rendered(env, "recs_nightly", "ingest", f"{DS}T02:00:00+00:00")
    assert f"['--lake', '/data/lake', '--ds', '{DS}', '--source', 'synthetic'," in ingest_args
    assert f"'PYSPARK_PYTHON': '{BIN}/python" in ingest_args
    version = f"{DS}-040000"
    assert (f"recs distill --lake '/data/lake' --ds '{DS}' "
            f"--teacher-dir '/data/lake/models/{version}/teacher'"
            in rendered(env, "recs_training", "distill", f"{DS}T04:00:00+00:00"))
    assert (f"'--model-version', '{version}']"
            in rendered(env, "recs_training", "publish", f"{DS}T04:00:00+00:00"))


def test_airflow_backfill_maps_dates_to_ds(airflow_db):
    """The documented command: the runs of ds D1..D2 are those at 02:00 UTC of each day."""
    done = airflow(airflow_db, "backfill", "create", "--dag-id", "recs_nightly", "--dry-run",
                   "--from-date", DS, "--to-date", f"{NEXT_DS}T02:00:00+00:00",
                   "--reprocess-behavior", "completed")
    assert f"{DS} 02:00:00+00:00" in done.stdout and f"{NEXT_DS} 02:00:00+00:00" in done.stdout
    assert "2026-11-22" not in done.stdout.split("Runs to be attempted")[-1]


def publish_tiny_model(spark, lake):
    """What the training DAG leaves behind, made tiny: a published student knowing every item."""
    from jobs.core import registry

    make_student(lake, "v1", known_items=list(range(1, TINY["synthetic_items"] + 1)), seed=1)
    registry.publish(spark, lake, PUBLISHED_DS, "v1", tolerance=0.0)


@pytest.fixture(scope="module")
def nightly_run(airflow_db, spark, tmp_path_factory):
    """One real `airflow dags test` of recs_nightly for DS: (env, result, seconds)."""
    lake = str(tmp_path_factory.mktemp("nightly") / "lake")
    publish_tiny_model(spark, lake)
    env = {**airflow_db, "AIRFLOW_VAR_RECS_LAKE": lake}
    start = time.monotonic()
    done = airflow(env, "dags", "test", "recs_nightly", f"{DS}T02:00:00+00:00",
                   "-c", json.dumps(TINY), timeout=RUN_TIMEOUT_S, check=False)
    seconds = time.monotonic() - start
    print(f"\nairflow dags test recs_nightly {DS}: {seconds:.0f} s")
    return env, done, seconds


def table_path(lake, table):
    return os.path.join(lake, *table.split("."))


def partition_rows(lake, table, ds):
    import deltalake

    frame = deltalake.DeltaTable(table_path(lake, table)).to_pandas()
    return frame[frame["ds"] == ds].drop(columns="ds").reset_index(drop=True)


def canonical(frame):
    """Comparable whatever the file order, array columns included."""
    text = frame.astype(str)
    return text.sort_values(list(text.columns)).reset_index(drop=True)


NIGHTLY_OUTPUTS = ("raw.interactions", "raw.items", "features.train_interactions",
                   "features.training_examples", "features.user_history", "recs.scores",
                   "recs.top_k")


@pytest.mark.slow
def test_nightly_run_submits_real_spark_jobs_and_fills_every_table(nightly_run):
    env, done, _ = nightly_run
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert output.count("Spark-Submit cmd: spark-submit --master local[2]") == 5
    assert f"--ds {DS}" in output
    lake = env["AIRFLOW_VAR_RECS_LAKE"]
    for table in NIGHTLY_OUTPUTS:
        assert len(partition_rows(lake, table, DS)) > 0, table
    # What the seeded generator makes for DS, all of it training data in nightly mode.
    _, events = synthetic.generate(synthetic.SyntheticSpec(
        num_users=TINY["synthetic_users"], num_items=TINY["synthetic_items"],
        mean_interactions_per_user=TINY["synthetic_interactions"]), DS)
    assert len(partition_rows(lake, "raw.interactions", DS)) == len(events)
    assert len(partition_rows(lake, "raw.items", DS)) == TINY["synthetic_items"]
    assert len(partition_rows(lake, "features.train_interactions", DS)) == len(events)
    assert len(partition_rows(lake, "features.user_history", DS)) == TINY["synthetic_users"]
    # Users x items fit under --max-pairs: score generated and scored every unseen pair itself,
    # none written to recs.candidates; each user's top k (100) is its best min(100, unseen).
    assert len(partition_rows(lake, "recs.candidates", DS)) == 0
    seen = partition_rows(lake, "features.train_interactions", DS)
    unseen = TINY["synthetic_items"] - seen.drop_duplicates(["user_id", "item_id"]).groupby(
        "user_id").size()
    assert len(partition_rows(lake, "recs.scores", DS)) == unseen.sum()
    top_k = partition_rows(lake, "recs.top_k", DS)
    assert top_k["user_id"].nunique() == TINY["synthetic_users"]
    assert top_k.groupby("user_id").size().to_dict() == unseen.clip(upper=100).to_dict()
    assert set(top_k["model_version"]) == {"v1"}
    # The run ended with maintain: every table it wrote was vacuumed last.
    import deltalake

    for table in NIGHTLY_OUTPUTS:
        history = deltalake.DeltaTable(table_path(lake, table)).history()
        assert [c["operation"] for c in history[:2]] == ["VACUUM END", "VACUUM START"], table


@pytest.mark.slow
def test_gate_fails_the_run_naming_table_and_count_and_keeps_previous_ds(nightly_run):
    """Bad input over the threshold, injected as what ingest would have written for NEXT_DS:
    ingest is marked successful without running, and the real gate task judges its tables."""
    import deltalake
    import pyarrow as pa

    env, first, _ = nightly_run
    assert first.returncode == 0, "needs the successful run of the previous ds"
    lake = env["AIRFLOW_VAR_RECS_LAKE"]
    before = {t: canonical(partition_rows(lake, t, DS)) for t in NIGHTLY_OUTPUTS}
    for table in ("raw.interactions", "raw.items"):
        rows = deltalake.DeltaTable(table_path(lake, table)).to_pyarrow_table(
            filters=[("ds", "=", DS)])
        deltalake.write_deltalake(table_path(lake, table),
                                  rows.set_column(rows.schema.get_field_index("ds"),
                                                  rows.schema.field("ds"),
                                                  pa.array([NEXT_DS] * len(rows))),
                                  mode="append")
    good = len(before["raw.interactions"])
    quarantine = deltalake.DeltaTable(table_path(lake, "raw.quarantine"))
    bad = pa.Table.from_pylist(
        [{"source_table": "interactions", "reason": "invalid_timestamp", "record": "{}",
          "ds": NEXT_DS}] * good, schema=quarantine.to_pyarrow_dataset().schema)
    deltalake.write_deltalake(table_path(lake, "raw.quarantine"), bad, mode="append")
    mark_ingested(lake, NEXT_DS)  # and committed, as ingest's last commit would

    done = airflow(env, "dags", "test", "recs_nightly", f"{NEXT_DS}T02:00:00+00:00",
                   "--mark-success-pattern", "^ingest$",
                   "-c", json.dumps({"max_quarantine_fraction": 0.1}),
                   timeout=RUN_TIMEOUT_S, check=False)
    output = done.stdout + done.stderr

    assert done.returncode != 0
    assert (f"raw.interactions: {good} of {2 * good} rows quarantined for ds={NEXT_DS} (50.0%), "
            "above the allowed 10.0%") in output
    assert "Spark-Submit cmd" not in output, "no step may run after a failed gate"
    for table, rows in before.items():
        assert canonical(partition_rows(lake, table, DS)).equals(rows), table
        if not table.startswith("raw."):
            assert len(partition_rows(lake, table, NEXT_DS)) == 0, table


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RECS_TEST_AIRFLOW_BACKFILL") != "1",
                    reason="runs a scheduler and an API server for minutes; "
                           "set RECS_TEST_AIRFLOW_BACKFILL=1 to include it")
def test_airflow_backfill_create_runs_every_date(airflow_env, spark, tmp_path):
    publish_tiny_model(spark, str(tmp_path / "lake"))
    env = {**airflow_env, "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
           "AIRFLOW_VAR_RECS_LAKE": str(tmp_path / "lake"),
           "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": "8794",
           "AIRFLOW__API__BASE_URL": "http://localhost:8794",
           "AIRFLOW__CORE__PARALLELISM": "1",
           # No scheduled run of today competing with the backfill for the two cores.
           "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
    airflow(env, "db", "migrate")
    airflow(env, "dags", "reserialize")
    airflow(env, "dags", "unpause", "recs_nightly")
    servers = [subprocess.Popen([str(BIN / "airflow"), *cmd], env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for cmd in (["api-server", "--apps", "execution"], ["scheduler"])]
    try:
        airflow(env, "backfill", "create", "--dag-id", "recs_nightly", "--from-date", DS,
                "--to-date", f"{NEXT_DS}T02:00:00+00:00", "--max-active-runs", "1",
                "--dag-run-conf", json.dumps(TINY))
        deadline = time.monotonic() + 2 * RUN_TIMEOUT_S
        while time.monotonic() < deadline:
            runs = json.loads(airflow(env, "dags", "list-runs", "recs_nightly", "-o", "json")
                              .stdout.strip().splitlines()[-1])
            if runs and all(r["state"] in ("success", "failed") for r in runs):
                break
            time.sleep(10)
    finally:
        for server in servers:
            os.killpg(server.pid, signal.SIGKILL)
    assert sorted((r["logical_date"][:10], r["state"]) for r in runs) == [
        (DS, "success"), (NEXT_DS, "success")]
    for ds in (DS, NEXT_DS):
        assert len(partition_rows(env["AIRFLOW_VAR_RECS_LAKE"], "recs.top_k", ds)) > 0
