"""The scoring job as a cluster runs it, and as a cluster loses it.

- On `local-cluster[2,1,2048]`: a driver plus two executor JVMs with their own Python workers,
  the project's code shipped only as the `recs package` archive (`--py-files`). Every Python
  process runs with `-S`, so the checkout's editable install is invisible to them: an import of
  `jobs`, `models` or `udfs` that the archive did not provide fails the job.
- Killed with SIGKILL (driver, JVM and Python workers at once) after the new partition's first
  data file is on disk but before its commit: the previous partition stays as it was.
"""

import os
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
from delta.tables import DeltaTable

from contract.tables import RECS_CANDIDATES, RECS_SCORES, RECS_TOP_K
from jobs import generate_candidates, score
from jobs.core.delta import read_partition, write_partition
from jobs.core.spark import delta_submit_args
from jobs.ops import package
from tests.conftest import REPO, make_student, same_rows, small_scoring_lake

pytestmark = pytest.mark.slow

DS = "2026-11-22"
SPARK_SUBMIT = Path(sys.executable).parent / "spark-submit"
SUBMIT_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def lake_with_candidates(spark, tmp_path_factory):
    lake = small_scoring_lake(spark, str(tmp_path_factory.mktemp("cluster") / "lake"), DS,
                              users=40, items=80)
    make_student(lake, "v1", known_items=list(range(1, 61)), seed=1)
    make_student(lake, "v2", known_items=list(range(1, 61)), seed=2)
    # Every unseen pair written too: the kill test below scores them through the table.
    generate_candidates.run(spark, generate_candidates.build_parser().parse_args(
        ["--lake", lake, "--ds", DS, "--write-all-pairs"]))
    return lake


@pytest.fixture(scope="module")
def isolated_python(tmp_path_factory):
    """An interpreter with the venv's third-party packages but not this project (no .pth run)."""
    folder = tmp_path_factory.mktemp("python")
    wrapper = folder / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper), sysconfig.get_paths()["purelib"]


def submit(python: str, pythonpath: str, master: str, argv: list[str], log: Path,
           extra: list[str] = (), **popen) -> subprocess.Popen:
    command = [str(SPARK_SUBMIT), "--master", master, *delta_submit_args(python),
               "--conf", "spark.ui.enabled=false", *extra, str(REPO / "jobs" / "score.py"), *argv]
    env = {**os.environ, "PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python,
           "PYTHONPATH": pythonpath}
    # To a file, not a pipe: a pipe nobody reads while we poll would fill up and stall the job.
    with log.open("w") as out:
        return subprocess.Popen(command, env=env, cwd=log.parent, stdout=out,
                                stderr=subprocess.STDOUT, **popen)


def test_score_job_runs_on_a_local_cluster_with_code_from_a_py_files_archive(
        spark, lake_with_candidates, isolated_python, tmp_path):
    lake = lake_with_candidates
    python, site_packages = isolated_python
    archive = package.build_archive(tmp_path / "recs_jobs.zip")
    job = submit(python, site_packages, "local-cluster[2,1,2048]",
                 ["--lake", lake, "--ds", DS, "--model-version", "v1", "--k", "5"],
                 tmp_path / "submit.log",
                 ["--py-files", str(archive), "--conf", "spark.executor.memory=1g"])
    assert job.wait(timeout=SUBMIT_TIMEOUT_S) == 0, (tmp_path / "submit.log").read_text()[-5000:]

    candidates = read_partition(spark, lake, RECS_CANDIDATES, DS)
    scores = read_partition(spark, lake, RECS_SCORES, DS)
    assert scores.count() == candidates.count()
    assert scores.join(candidates, ["user_id", "item_id"]).count() == candidates.count()
    assert {r.model_version for r in scores.select("model_version").distinct().collect()} == {"v1"}
    top = read_partition(spark, lake, RECS_TOP_K, DS)
    assert top.count() == 5 * candidates.select("user_id").distinct().count()


def data_files(table_dir: Path) -> set[str]:
    return {p.name for p in (table_dir / f"ds={DS}").glob("part-*.parquet")}


def test_a_scoring_run_killed_mid_write_leaves_the_previous_partition_intact(
        spark, lake_with_candidates, tmp_path):
    lake = lake_with_candidates
    score.run(spark, score.build_parser().parse_args(
        ["--lake", lake, "--ds", DS, "--model-version", "v1", "--k", "5"]))
    table_dir = Path(RECS_SCORES.path(lake))
    before = read_partition(spark, lake, RECS_SCORES, DS).toPandas()
    version_before = DeltaTable.forPath(spark, str(table_dir)).history(1).first().version
    files_before = data_files(table_dir)

    # Twenty candidate files scored through the table (--candidates-table), each its own task on
    # one core: the new partition is written file by file, so the kill lands between its first
    # data file and its commit.
    candidates = read_partition(spark, lake, RECS_CANDIDATES, DS)
    write_partition(candidates.repartition(20), lake, RECS_CANDIDATES, DS)
    job = submit(sys.executable, os.environ.get("PYTHONPATH", ""), "local[1]",
                 ["--lake", lake, "--ds", DS, "--model-version", "v2", "--candidates-table"],
                 tmp_path / "submit.log",
                 ["--conf", "spark.sql.files.openCostInBytes=1073741824"],
                 start_new_session=True)
    try:
        deadline = time.monotonic() + SUBMIT_TIMEOUT_S
        while not (data_files(table_dir) - files_before):
            assert job.poll() is None, ("the job ended before writing: "
                                        + (tmp_path / "submit.log").read_text()[-3000:])
            assert time.monotonic() < deadline, "no new data file appeared"
            time.sleep(0.02)
        os.killpg(job.pid, signal.SIGKILL)  # the JVM, the Python driver and the workers
    finally:
        job.wait(timeout=60)
    assert job.returncode == -signal.SIGKILL

    assert data_files(table_dir) - files_before, "the killed run wrote nothing: not mid-write"
    assert DeltaTable.forPath(spark, str(table_dir)).history(1).first().version == version_before
    after = read_partition(spark, lake, RECS_SCORES, DS).toPandas()
    assert set(after["model_version"]) == {"v1"}
    assert same_rows(before, after)
