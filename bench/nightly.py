"""The nightly DAG's steps at a size that needs a cluster: wall time and peak memory per step, and
the first stage's recall against exhaustive scoring.

    python bench/nightly.py --lake /tmp/nightly --student-dir L/models/V/student \\
        [--users 1000000] [--items 100000] [--interactions 20] [--first-stage-n 100]
        [--popular-n 10] [--k 20] [--recall-users 1000] [--max-pairs N] [--from-step STEP]

The steps are the nightly ones of `jobs.core.pipeline` (ingest of the synthetic source,
build-training-set, generate-candidates, score; evaluate is for evaluation runs) and then
maintain, each a `spark-submit` job on `local[*]` as the DAG submits it, each followed by its
quality gate (`jobs.ops.quality`, as the DAG's check_ tasks run it). Users x items is far above
generate-candidates' --max-pairs, so it runs the first stage: each user's --first-stage-n best
unseen items by the student's towers plus --popular-n popular ones, which score ranks to --k.
While a step runs, its process tree is sampled for peak resident memory (bench/scale.py).

The student (`--student-dir`, e.g. the demo's) is copied in as model version "nightly-bench". At
the end, for --recall-users random users, the exhaustive ranking (every unseen catalogue item
scored by the same student state) is compared with what the pipeline kept: the share of each
user's exhaustive top --first-stage-n that reached recs.candidates, and of the exhaustive top --k
that recs.top_k holds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from scale import MIB, run_sampled  # bench/scale.py: this script's directory is on sys.path

from contract.layout import artifact_dir
from contract.tables import FEATURES_TRAIN, RECS_CANDIDATES, RECS_TOP_K
from jobs.core.pipeline import steps
from jobs.core.spark import delta_submit_args
from jobs.ops.quality import DEFAULT_MAX_QUARANTINE_FRACTION, check_step

VERSION = "nightly-bench"
DS = "2026-01-01"


def step_flags(step: str, args: argparse.Namespace) -> list[str]:
    return {
        "ingest": ["--synthetic-users", str(args.users), "--synthetic-items", str(args.items),
                   "--synthetic-interactions", str(args.interactions)],
        "generate-candidates": ["--model-version", VERSION, "--first-stage-n",
                                str(args.first_stage_n), "--popular-n", str(args.popular_n),
                                *(["--max-pairs", str(args.max_pairs)] if args.max_pairs else [])],
        "score": ["--model-version", VERSION, "--k", str(args.k)],
    }.get(step, [])


def first_stage_recall(lake: str, student: Path, n: int, k: int, sample: int, seed: int = 0
                       ) -> tuple[float, float, int]:
    """(mean share of the exhaustive top n in recs.candidates, of the exhaustive top k in
    recs.top_k, users checked) over `sample` random users."""
    import deltalake
    import pyarrow as pa

    from jobs.core.spark import get_spark
    from jobs.score import scoring_state

    spark = get_spark("bench-nightly-recall", ui=False)
    state = scoring_state(spark, lake, DS, student)
    spark.stop()
    users = np.sort(np.random.default_rng(seed).choice(state.user_ids, sample, replace=False))

    def partition(table, columns):
        return deltalake.DeltaTable(table.path(lake)).to_pandas(
            columns=columns, filters=[("ds", "=", DS), ("user_id", "in", users.tolist())])

    train = partition(FEATURES_TRAIN, ["user_id", "item_id"])
    seen = train.groupby("user_id")["item_id"].agg(list).reindex(users)
    seen = pa.array([s if isinstance(s, list) else [] for s in seen], pa.list_(pa.int64()))
    candidates = partition(RECS_CANDIDATES, ["user_id", "item_id"]).groupby("user_id")["item_id"]
    top_k = partition(RECS_TOP_K, ["user_id", "item_id"]).groupby("user_id")["item_id"]
    kept_candidates = {u: set(items) for u, items in candidates}
    kept_top = {u: set(items) for u, items in top_k}
    recall_n, recall_k = [], []
    for block, scores in state.unseen_blocks(users, seen):
        best = np.argsort(-scores, axis=1, kind="stable")[:, :n]
        for user, rows in zip(users[block], best):
            exhaustive = state.item_ids[rows]
            recall_n.append(len(kept_candidates.get(user, set()) & set(exhaustive)) / n)
            recall_k.append(len(kept_top.get(user, set()) & set(exhaustive[:k])) / k)
    return float(np.mean(recall_n)), float(np.mean(recall_k)), len(users)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lake", required=True)
    p.add_argument("--student-dir", type=Path, required=True)
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--interactions", type=int, default=20, help="mean per user")
    p.add_argument("--first-stage-n", type=int, default=100)
    p.add_argument("--popular-n", type=int, default=10)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--max-pairs", type=int, default=None,
                   help="generate-candidates --max-pairs (default: its own); below users x items "
                        "to run the first stage on a small set")
    p.add_argument("--recall-users", type=int, default=1000)
    p.add_argument("--driver-memory", default="12g")
    p.add_argument("--from-step", default="ingest",
                   help="resume at this step over a lake whose earlier steps ran")
    args = p.parse_args()

    target = artifact_dir(args.lake, VERSION, "student")
    if not target.exists():
        shutil.copytree(args.student_dir, target)
    python = sys.executable
    env = {**os.environ, "PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python}
    spark_submit = str(Path(python).parent / "spark-submit")
    logs = Path(args.lake) / "bench-logs"
    logs.mkdir(parents=True, exist_ok=True)
    jobs_dir = Path(__file__).resolve().parents[1] / "jobs"

    rows = []
    names = [s.name for s in steps(engine="spark", schedule="nightly") if not s.evaluation_only]
    names.append("maintain")
    for step in names[names.index(args.from_step):]:
        command = [spark_submit, "--master", "local[*]", "--driver-memory", args.driver_memory,
                   *delta_submit_args(python), "--conf", "spark.ui.enabled=false",
                   str(jobs_dir / f"{step.replace('-', '_')}.py"), "--lake", args.lake,
                   "--ds", DS, *step_flags(step, args)]
        seconds, peaks = run_sampled(command, env, logs / f"{step}.log")
        started = time.perf_counter()
        check_step(args.lake, DS, step, DEFAULT_MAX_QUARANTINE_FRACTION)
        gate = time.perf_counter() - started
        rows.append((step, seconds, gate, peaks))
        print(f"{step}: {seconds:.1f} s, gate {gate:.1f} s, "
              + ", ".join(f"{k} {v / MIB:,.0f} MiB" for k, v in sorted(peaks.items())),
              flush=True)

    recall_n, recall_k, checked = first_stage_recall(
        args.lake, target, args.first_stage_n, args.k, args.recall_users)
    print(f"\n{args.users:,} users x {args.items:,} items, about {args.interactions} "
          f"interactions per user; first stage {args.first_stage_n} + {args.popular_n} popular, "
          f"k {args.k}\n\n| step | seconds | gate seconds | JVM peak MiB | Python driver peak MiB "
          "| Python worker peak MiB |\n|---|---|---|---|---|---|")
    for step, seconds, gate, peaks in rows:
        print(f"| {step} | {seconds:.1f} | {gate:.1f} | {peaks.get('jvm', 0) / MIB:,.0f} | "
              f"{peaks.get('python driver', 0) / MIB:,.0f} | "
              f"{peaks.get('python worker', 0) / MIB:,.0f} |")
    print(f"| total | {sum(r[1] + r[2] for r in rows):.1f} | | | | |\n\n"
          f"Recall against exhaustive scoring, {checked:,} random users: top {args.first_stage_n} "
          f"in recs.candidates {recall_n:.4f}; top {args.k} in recs.top_k {recall_k:.4f}")


if __name__ == "__main__":
    main()
