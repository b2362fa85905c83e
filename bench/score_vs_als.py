"""Nightly scoring vs Spark ALS `recommendForAllUsers`, same data, same machine, same K.

    python bench/score_vs_als.py --lake L --ds D --model-version V [--k 100]

Needs a lake where `recs build-training-set` and `recs distill` have run for D. Times:
- ALS (implicit, the reference settings) `recommendForAllUsers(K)`, fitted untimed, output
  forced through Spark's `noop` sink: every user x every item is scored.
- our jobs: `generate-candidates` + `score` as they run nightly (Delta writes included), and the
  UDF alone (candidates -> scores into `noop`), to separate scoring from writing.
- the student vs the teacher scoring pairs on this CPU outside Spark, vectors computed once.
Prints a markdown table for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from pyspark.sql import functions as F

from jobs import generate_candidates, score
from jobs.lake import read_partition
from jobs.registry import models_root, student_dir
from jobs.spark import get_spark
from jobs.tables import FEATURES_TRAIN, RAW_ITEMS, RECS_CANDIDATES, RECS_SCORES


def timed(fn):
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lake", required=True)
    p.add_argument("--ds", required=True)
    p.add_argument("--model-version", required=True)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--pairs", type=int, default=1_000_000, help="pairs for the CPU model comparison")
    args = p.parse_args()

    spark = get_spark("bench-score-vs-als", ui=False)
    train = read_partition(spark, args.lake, FEATURES_TRAIN, args.ds).cache()
    n_users = train.select("user_id").distinct().count()
    n_items = read_partition(spark, args.lake, RAW_ITEMS, args.ds).count()
    rows = []

    from pyspark.ml.recommendation import ALS

    prefs = (train.groupBy("user_id", "item_id").agg(F.count(F.lit(1)).cast("float").alias("pref"))
             .select(F.col("user_id").cast("int"), F.col("item_id").cast("int"), "pref"))
    model, fit_s = timed(lambda: ALS(rank=128, regParam=0.1, alpha=40.0, maxIter=15,
                                     implicitPrefs=True, userCol="user_id", itemCol="item_id",
                                     ratingCol="pref", seed=42).fit(prefs))
    als_items = model.itemFactors.count()
    _, als_s = timed(lambda: model.recommendForAllUsers(args.k).write.format("noop")
                     .mode("overwrite").save())
    als_pairs = n_users * als_items
    rows.append(("ALS recommendForAllUsers(%d) (fit %.0f s untimed)" % (args.k, fit_s),
                 als_pairs, als_s))

    gen_args = generate_candidates.build_parser().parse_args(
        ["--lake", args.lake, "--ds", args.ds])
    _, gen_s = timed(lambda: generate_candidates.run(spark, gen_args))
    candidates = read_partition(spark, args.lake, RECS_CANDIDATES, args.ds).count()
    score_args = score.build_parser().parse_args(
        ["--lake", args.lake, "--ds", args.ds, "--model-version", args.model_version,
         "--k", str(args.k)])
    _, score_s = timed(lambda: score.run(spark, score_args))
    rows.append(("recs score job (scores + top_k written to Delta)", candidates, score_s))
    rows.append(("recs generate-candidates + score jobs", candidates, gen_s + score_s))

    from udfs.scoring import SharedState, pair_score_udf

    state = score.scoring_state(spark, args.lake, args.ds, student_dir(args.lake, args.model_version))
    shared = SharedState(spark.sparkContext, state)
    cands = read_partition(spark, args.lake, RECS_CANDIDATES, args.ds)
    _, udf_s = timed(lambda: score.score_pairs(cands, pair_score_udf(shared), args.model_version)
                     .write.format("noop").mode("overwrite").save())
    shared.destroy()
    rows.append(("scoring UDF alone (scores into noop)", candidates, udf_s))

    print(f"\n{n_users} users x {n_items} items, K={args.k}, {spark.sparkContext.defaultParallelism} cores\n")
    print("| what | pairs | seconds | pairs/s |\n|---|---|---|---|")
    for what, pairs, secs in rows:
        print(f"| {what} | {pairs:,} | {secs:.1f} | {pairs / secs:,.0f} |")
    ratio = (candidates / (gen_s + score_s)) / (als_pairs / als_s)
    print(f"\nratio (candidates + score jobs vs ALS, pairs/s): {ratio:.2f}")

    # Student vs teacher on this CPU: both with vectors computed once, then pairs.
    rng = np.random.default_rng(0)
    users = rng.choice(state.user_ids, args.pairs)
    items = rng.choice(state.item_ids, args.pairs)
    _, student_s = timed(lambda: state.score_pairs(users, items))
    teacher_dir = models_root(args.lake) / args.model_version / "teacher"
    print(f"student: {args.pairs / student_s:,.0f} pairs/s (vectors cached)")
    if (teacher_dir / "model.safetensors").is_file():
        teacher_pairs_per_s(teacher_dir, args.lake, args.ds)


def teacher_pairs_per_s(teacher_dir, lake: str, ds: str, pairs: int = 256) -> None:
    """The teacher scoring pairs the naive way: each pair's item text through BERT."""
    import torch

    from models.artifact import load_teacher
    from models.data import load_catalogue, tokenize
    from models.scoring import token_batch

    teacher, tokenizer, _ = load_teacher(teacher_dir)
    catalogue = load_catalogue(lake, ds)
    rows = np.random.default_rng(0).choice(len(catalogue.item_ids), pairs)
    tokens = tokenize(tokenizer, [catalogue.texts[r] for r in rows], teacher.cfg.max_item_tokens)
    users = torch.nn.functional.normalize(torch.randn(pairs, teacher.cfg.dim), dim=-1)
    with torch.inference_mode():
        started = time.perf_counter()
        for start in range(0, pairs, 32):
            batch = np.arange(start, min(start + 32, pairs))
            ids = torch.as_tensor(catalogue.item_ids[rows[batch]])
            vecs = teacher.items(*token_batch(tokens, batch, torch.device("cpu")),
                                 teacher.items.id_rows(ids))
            teacher.score_pairs(users[batch], vecs)
        secs = time.perf_counter() - started
    print(f"teacher: {pairs / secs:,.0f} pairs/s (item text encoded per pair)")


if __name__ == "__main__":
    main()
