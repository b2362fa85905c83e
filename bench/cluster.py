"""`recs score` on a cluster of separate executor JVMs: the same recs.top_k as `local[*]`, and
the work spread across executors.

    python bench/cluster.py --lake L --ds D [--model-version V] \\
        [--master 'local-cluster[2,1,4096]'] [--executor-memory 3g]

Spark's `local-cluster[N,cores,MiB]` master starts a standalone master and N worker JVMs on this
machine, each with its own executor: the job's tasks, their Python workers and the broadcast
scoring state cross process boundaries as they would between machines, and the project's code
travels as `spark-submit --py-files` (the archive `recs package` builds). `recs score` runs twice
as a spark-submit job, first under `local[*]`, then under `--master`, with Spark's event log on;
recs.top_k of `ds` is read after each (by deltalake, no JVM) and compared row for row, and the
event log of the cluster run says how many tasks and task-seconds each executor had. It rewrites
the lake's recs.scores and recs.top_k for `ds`: use a copy of a lake that serves, e.g. the one
bench/scale.py leaves.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

from scale import run_sampled  # bench/scale.py: this script's directory is on sys.path

from contract.tables import RECS_TOP_K
from jobs import score
from jobs.core.spark import delta_submit_args
from jobs.ops.package import build_archive

SCORE_TOLERANCE = 1e-5


def top_k_rows(lake: str, ds: str):
    import deltalake

    frame = deltalake.DeltaTable(RECS_TOP_K.path(lake)).to_pandas(
        columns=["user_id", "rank", "item_id", "score"], filters=[("ds", "=", ds)])
    return frame.sort_values(["user_id", "rank"]).reset_index(drop=True)


def spark_submit(master: str, flags: list[str], score_args: list[str], log: Path) -> float:
    python = sys.executable
    command = [str(Path(python).parent / "spark-submit"), "--master", master, *flags,
               *delta_submit_args(python), "--conf", "spark.ui.enabled=false",
               score.__file__, *score_args]
    env = {**os.environ, "PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python}
    seconds, _ = run_sampled(command, env, log)
    return seconds


def tasks_per_executor(event_dir: Path) -> tuple[Counter, Counter]:
    """(tasks, task seconds) per executor id, from the event log in `event_dir` (Spark 4 rolls
    it into a directory of event files)."""
    tasks, seconds = Counter(), Counter()
    for log in sorted(event_dir.rglob("events_*")):
        with log.open() as events:
            for line in events:
                event = json.loads(line)
                if event["Event"] == "SparkListenerTaskEnd":
                    info = event["Task Info"]
                    tasks[info["Executor ID"]] += 1
                    seconds[info["Executor ID"]] += (info["Finish Time"]
                                                     - info["Launch Time"]) / 1000
    return tasks, seconds


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lake", required=True)
    p.add_argument("--ds", required=True)
    p.add_argument("--model-version", default=None, help="default: the published one")
    p.add_argument("--master", default="local-cluster[2,1,4096]")
    p.add_argument("--executor-memory", default="3g",
                   help="per executor; at most the MiB each local-cluster worker offers")
    args = p.parse_args(argv)

    score_args = ["--lake", args.lake, "--ds", args.ds,
                  *(["--model-version", args.model_version] if args.model_version else [])]
    work = Path(tempfile.mkdtemp(prefix="recs-cluster-"))
    archive = build_archive(work / "recs_jobs.zip")
    events = work / "events"
    events.mkdir()

    local_s = spark_submit("local[*]", [], score_args, work / "local.log")
    local = top_k_rows(args.lake, args.ds)
    cluster_s = spark_submit(
        # --conf, not --executor-memory: spark-submit ignores that flag for local-cluster masters.
        args.master, ["--py-files", str(archive),
                      "--conf", f"spark.executor.memory={args.executor_memory}",
                      "--conf", "spark.eventLog.enabled=true",
                      "--conf", f"spark.eventLog.dir=file://{events}",
                      "--conf", "spark.eventLog.compress=false"],
        score_args, work / "cluster.log")
    cluster = top_k_rows(args.lake, args.ds)

    local.to_parquet(work / "top_k_local.parquet")
    cluster.to_parquet(work / "top_k_cluster.parquet")
    # The same ranking to float tolerance: at every (user, rank) the two scores agree. Items may
    # trade places only where their scores tie within it: the users in each Arrow block differ
    # between the runs, and with them the float32 rounding of the block's matrix product.
    at_rank = local.merge(cluster, on=["user_id", "rank"], suffixes=("_local", "_cluster"))
    gap = (at_rank["score_local"] - at_rank["score_cluster"]).abs()
    swapped = int((at_rank["item_id_local"] != at_rank["item_id_cluster"]).sum())
    same = (len(local) == len(cluster) == len(at_rank)
            and bool((gap <= SCORE_TOLERANCE * (1 + at_rank["score_local"].abs())).all()))
    tasks, seconds = tasks_per_executor(events)
    print(f"\nrecs score ds={args.ds}: local[*] {local_s:.1f} s, {args.master} {cluster_s:.1f} s "
          f"(spark-submit wall time, JVM starts included); logs in {work}")
    verdict = (f"the same ranking: at every (user, rank) the two scores agree within "
               f"{SCORE_TOLERANCE:g} (relative), largest gap {gap.max():.2e}; {swapped:,} rows "
               "hold another item of a score tied within it" if same else
               f"DIFFERENT: largest score gap at a (user, rank) {gap.max():.2e}; {swapped:,} rows "
               "hold another item")
    print(f"recs.top_k: {len(local):,} rows under local[*], {len(cluster):,} under the cluster; "
          f"{verdict}\n")
    print("| executor | tasks | task seconds |\n|---|---|---|")
    for executor in sorted(tasks):
        print(f"| {executor} | {tasks[executor]:,} | {seconds[executor]:,.1f} |")
    if not same:
        raise SystemExit("recs.top_k differs between local[*] and the cluster")


if __name__ == "__main__":
    main()
