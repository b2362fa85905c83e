"""`recs score` against its physical limit: writing the same rows with a free score.

    python bench/write_limit.py --lake L --ds D [--model-version V] [--k 100] [--no-explain]
        [--repeats 2] [--master local[*]] [--raw-pairs-per-partition 2000000,8000000]

Scoring can go no faster than writing the recs.scores rows once. In one Spark session, turn
about:
- the raw write: every pair `recs score` scores (each user of features.user_history x each item
  of features.items they did not interact with in train, made as generate-candidates makes them)
  with score = rand() and the model version, written as recs.scores is written (one replaceWhere
  commit of partition `ds`, write_partition), to a scratch table `<lake>/bench/write_limit`,
  once per task size of `--raw-pairs-per-partition`: the limit is the fastest of them;
- `score.run`, exactly what `recs score` runs: the state built from the student, every pair's
  score and the top K written, explanations unless --no-explain.
`--repeats` times each (the first pays for warming the JVM and starting Python workers); prints
the best time of each as pairs/s and `recs score`'s rate as a share of the raw write's (the
target: >= 0.7). It needs a lake where build-training-set ran for `ds` and a student (the
published one, or --model-version); it rewrites that lake's recs.scores and recs.top_k for `ds`,
so run it on a copy of a lake that serves.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from pyspark.sql import functions as F

from contract.tables import FEATURES_ITEMS, FEATURES_TRAIN, FEATURES_USER_HISTORY, RECS_SCORES
from jobs import score
from jobs.core.delta import read_partition, write_partition
from jobs.core.registry import resolve_model_version
from jobs.core.spark import get_spark
from jobs.generate_candidates import all_unseen_pairs, pair_partitions

SCRATCH = replace(RECS_SCORES, name="bench.write_limit", writer="bench/write_limit.py")


def raw_rows(spark, lake: str, ds: str, version: str, pairs_per_partition: int):
    """recs.scores' rows for `ds`, every unseen pair, with rand() for a score."""
    users = read_partition(spark, lake, FEATURES_USER_HISTORY, ds).select("user_id")
    items = read_partition(spark, lake, FEATURES_ITEMS, ds).select("item_id")
    seen = read_partition(spark, lake, FEATURES_TRAIN, ds).select("user_id", "item_id").distinct()
    partitions = pair_partitions(users.count() * items.count(),
                                 spark.sparkContext.defaultParallelism, pairs_per_partition)
    return all_unseen_pairs(users, items, seen, partitions).select(
        "user_id", "item_id", F.rand(0).alias("score"), F.lit(version).alias("model_version"))


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lake", required=True)
    p.add_argument("--ds", required=True)
    p.add_argument("--model-version", default=None, help="default: the published one")
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--no-explain", action="store_true")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--master", default=None, help="default: local[*]")
    p.add_argument("--raw-pairs-per-partition", default="2000000,8000000",
                   help="the raw write is timed at each of these task sizes and the limit is "
                        "its best, so that no partitioning of recs score's own makes the limit "
                        "look slower than it is (default: %(default)s)")
    args = p.parse_args(argv)

    spark = get_spark("bench-write-limit", args.master, ui=False)
    version = resolve_model_version(spark, args.lake, args.model_version)
    score_args = score.build_parser().parse_args(
        ["--lake", args.lake, "--ds", args.ds, "--model-version", version, "--k", str(args.k),
         *(["--no-explain"] if args.no_explain else [])])
    sizes = [int(float(s)) for s in args.raw_pairs_per_partition.split(",")]
    raw_s, score_s = {size: [] for size in sizes}, []
    for _ in range(args.repeats):
        for size in sizes:
            raw_s[size].append(timed(lambda: write_partition(
                raw_rows(spark, args.lake, args.ds, version, size), args.lake, SCRATCH, args.ds)))
        score_s.append(timed(lambda: score.run(spark, score_args)))
    pairs = read_partition(spark, args.lake, RECS_SCORES, args.ds).count()
    assert read_partition(spark, args.lake, SCRATCH, args.ds).count() == pairs, "not the same rows"

    best_raw = min(min(times) for times in raw_s.values())
    raw_rate, score_rate = pairs / best_raw, pairs / min(score_s)
    explain = "without" if args.no_explain else "with"
    raw_repeats = "; ".join(f"raw write at {size:,} pairs per task "
                            f"{', '.join(f'{s:.1f}' for s in times)}"
                            for size, times in raw_s.items())
    print(f"\n{pairs:,} pairs (ds {args.ds}, model {version}, K={args.k}, {explain} explanations), "
          f"{spark.sparkContext.defaultParallelism} cores; seconds of each repeat: {raw_repeats}; "
          f"recs score {', '.join(f'{s:.1f}' for s in score_s)}\n")
    print("| what | pairs | best seconds | pairs/s |\n|---|---|---|---|")
    print(f"| raw write: the same rows, score = rand(), into Delta (best task size) | {pairs:,} | "
          f"{best_raw:.1f} | {raw_rate:,.0f} |")
    print(f"| `recs score` (score.run) | {pairs:,} | {min(score_s):.1f} | {score_rate:,.0f} |")
    print(f"| **recs score / raw write** | | | **{score_rate / raw_rate:.2f}** |")
    return {"pairs": pairs, "raw_s": raw_s, "score_s": score_s, "ratio": score_rate / raw_rate}


if __name__ == "__main__":
    main()
