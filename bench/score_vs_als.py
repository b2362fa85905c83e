"""Nightly scoring vs Spark ALS `recommendForAllUsers`, same data, same machine, same K.

    python bench/score_vs_als.py --lake L --ds D --model-version V [--k 100]

Needs a lake where `recs build-training-set` and `recs distill` have run for D. One Spark session
(local[*]) times, in order:
- ALS (implicit, the reference settings of ../shared/EVALUATION.md): fit, then
  `recommendForAllUsers(K)` into Spark's `noop` sink (scoring alone) and into a Delta table
  (what a job keeps); ALS scores every user x every item it has factors for. Then what our job
  writes, from ALS: `transform` of every candidate pair into Delta, and top-K from it.
- ours, twice (the first run pays for starting Python workers and warming the JVM, as every
  spark-submit does; the second is warm like the ALS timings): `generate-candidates` + `score`
  exactly as they run nightly, Delta writes of all scores and top-K included; then the scoring
  UDF alone (pairs generated, scored and ranked inside it) into `noop`.
- the student and the teacher on this CPU outside Spark.
Prints markdown tables for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from pyspark.sql import functions as F

from contract.layout import artifact_dir
from contract.tables import FEATURES_ITEMS, FEATURES_TRAIN, FEATURES_USER_HISTORY, RECS_SCORES
from jobs import generate_candidates, score
from jobs.core.delta import read_partition
from jobs.core.registry import student_dir
from jobs.core.spark import get_spark


def timed(fn):
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def als_timings(train, candidates, k: int, out: str) -> dict:
    from pyspark.ml.recommendation import ALS

    prefs = (train.groupBy("user_id", "item_id").agg(F.count(F.lit(1)).cast("float").alias("pref"))
             .select(F.col("user_id").cast("int"), F.col("item_id").cast("int"), "pref"))
    model, fit_s = timed(lambda: ALS(rank=128, regParam=0.1, alpha=40.0, maxIter=15,
                                     implicitPrefs=True, userCol="user_id", itemCol="item_id",
                                     ratingCol="pref", seed=42).fit(prefs))
    pairs = model.userFactors.count() * model.itemFactors.count()
    _, noop_s = timed(lambda: model.recommendForAllUsers(k).write.format("noop")
                      .mode("overwrite").save())
    _, delta_s = timed(lambda: model.recommendForAllUsers(k).write.format("delta")
                       .mode("overwrite").save(f"{out}/als_top_k"))

    # What recs.scores holds, from ALS: a score for every candidate pair, then the top K of each
    # user from those scores, both written.
    def every_pair() -> None:
        pairs = candidates.select(F.col("user_id").cast("int"), F.col("item_id").cast("int"))
        (model.transform(pairs).withColumnRenamed("prediction", "score").write.format("delta")
         .mode("overwrite").save(f"{out}/als_scores"))
        scores = train.sparkSession.read.format("delta").load(f"{out}/als_scores")
        (score.top_k(scores.withColumn("model_version", F.lit("als")), k).write.format("delta")
         .mode("overwrite").save(f"{out}/als_scores_top_k"))

    _, every_pair_s = timed(every_pair)
    return {"pairs": pairs, "fit_s": fit_s, "noop_s": noop_s, "delta_s": delta_s,
            "candidates": candidates.count(), "every_pair_s": every_pair_s}


def our_timings(spark, lake: str, ds: str, version: str, k: int) -> dict:
    from udfs.scoring import SharedState

    gen_args = generate_candidates.build_parser().parse_args(["--lake", lake, "--ds", ds])
    score_args = score.build_parser().parse_args(
        ["--lake", lake, "--ds", ds, "--model-version", version, "--k", str(k)])
    runs = []
    for _ in ("cold", "warm"):
        _, gen_s = timed(lambda: generate_candidates.run(spark, gen_args))
        _, score_s = timed(lambda: score.run(spark, score_args))
        runs.append((gen_s, score_s))
    pairs = read_partition(spark, lake, RECS_SCORES, ds).count()
    state, state_s = timed(lambda: score.scoring_state(spark, lake, ds, student_dir(lake, version)))
    shared = SharedState(spark.sparkContext, state)
    users = generate_candidates.with_seen(read_partition(spark, lake, FEATURES_USER_HISTORY, ds),
                                          read_partition(spark, lake, FEATURES_TRAIN, ds))
    _, udf_s = timed(lambda: score.score_unseen(users, shared, k, version)
                     .write.format("noop").mode("overwrite").save())
    shared.destroy()
    return {"pairs": pairs, "runs": runs, "udf_s": udf_s, "state": state, "state_s": state_s}


def teacher_timings(teacher_dir: Path, lake: str, ds: str, samples: int = 256) -> dict:
    """The teacher on CPU: a pair scored from its item's text, and item vectors per second."""
    import torch

    from models.artifact import load_teacher
    from models.data import load_catalogue, tokenize
    from models.scoring import token_batch

    teacher, tokenizer, _ = load_teacher(teacher_dir)
    catalogue = load_catalogue(lake, ds)
    rows = np.random.default_rng(0).choice(len(catalogue.item_ids), samples)
    tokens = tokenize(tokenizer, [catalogue.texts[r] for r in rows], teacher.cfg.max_item_tokens)
    users = torch.nn.functional.normalize(torch.randn(samples, teacher.cfg.dim), dim=-1)
    with torch.inference_mode():
        started = time.perf_counter()
        for start in range(0, samples, 32):
            batch = np.arange(start, min(start + 32, samples))
            ids = torch.as_tensor(catalogue.item_ids[rows[batch]])
            vecs = teacher.items(*token_batch(tokens, batch, torch.device("cpu")),
                                 teacher.items.id_rows(ids))
            teacher.score_pairs(users[batch], vecs)
        secs = time.perf_counter() - started
    # Every pair costs one BERT pass over its item's text unless item vectors are cached; with
    # a cache, a run costs one pass per catalogue item.
    return {"per_second": samples / secs, "catalogue": len(catalogue.item_ids)}


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
    items = read_partition(spark, args.lake, FEATURES_ITEMS, args.ds).select("item_id")
    n_items = items.count()
    # Every pair score.run scores: each user's unseen items, as generate-candidates makes them.
    every_pair = generate_candidates.all_unseen_pairs(
        train.select("user_id").distinct(), items,
        train.select("user_id", "item_id").distinct(), spark.sparkContext.defaultParallelism)
    als = als_timings(train, every_pair, args.k, str(Path(args.lake) / "bench"))
    ours = our_timings(spark, args.lake, args.ds, args.model_version, args.k)
    (cold_gen, cold_score), (gen_s, score_s) = ours["runs"]

    rows = [
        (f"ALS `recommendForAllUsers({args.k})` into `noop`", als["pairs"], als["noop_s"]),
        (f"ALS `recommendForAllUsers({args.k})` into Delta", als["pairs"], als["delta_s"]),
        (f"ALS fit + `recommendForAllUsers({args.k})` into Delta", als["pairs"],
         als["fit_s"] + als["delta_s"]),
        ("ALS `transform` of every candidate pair + top-K, both into Delta", als["candidates"],
         als["every_pair_s"]),
        ("our scoring UDF alone, scores into `noop`", ours["pairs"], ours["udf_s"]),
        (f"`recs score` (all scores + top-{args.k} to Delta), warm", ours["pairs"], score_s),
        ("`recs score`, cold (first run in the JVM)", ours["pairs"], cold_score),
        ("`recs generate-candidates` + `recs score`, warm", ours["pairs"], gen_s + score_s),
        ("`recs generate-candidates` + `recs score`, cold", ours["pairs"], cold_gen + cold_score),
    ]
    print(f"\n{n_users} users x {n_items} items, K={args.k}, "
          f"{spark.sparkContext.defaultParallelism} cores\n")
    print("| what | pairs | seconds | pairs/s |\n|---|---|---|---|")
    for what, pairs, secs in rows:
        print(f"| {what} | {pairs:,} | {secs:.1f} | {pairs / secs:,.0f} |")
    rate = {what: pairs / secs for what, pairs, secs in rows}
    als_rec, als_rec_delta, als_nightly, als_every_pair, udf, job, _, nightly = (
        rate[row[0]] for row in rows[:8])
    print("\nratios (ours / ALS, pairs/s):")
    print(f"- scoring alone, UDF vs recommendForAllUsers into noop: {udf / als_rec:.2f}")
    print(f"- same output (every pair's score + top-K into Delta), score job vs ALS transform: "
          f"{job / als_every_pair:.2f}")
    print(f"- score job (writes every pair) vs recommendForAllUsers into Delta (writes top-K "
          f"only): {job / als_rec_delta:.2f}")
    print(f"- nightly, candidates + score vs ALS fit + recommendForAllUsers into Delta: "
          f"{nightly / als_nightly:.2f}")

    state = ours["state"]
    rng = np.random.default_rng(0)
    users = rng.choice(state.user_ids, args.pairs)
    items = rng.choice(state.item_ids, args.pairs)
    _, student_s = timed(lambda: state.score_pairs(users, items))
    print(f"\nstudent: {args.pairs / student_s:,.0f} pairs/s with this run's vectors; building "
          f"them (every item's text and every user's history through its towers) took "
          f"{ours['state_s']:.1f} s")
    teacher_dir = artifact_dir(args.lake, args.model_version, "teacher")
    if (teacher_dir / "model.safetensors").is_file():
        teacher = teacher_timings(teacher_dir, args.lake, args.ds)
        print(f"teacher: {teacher['per_second']:,.0f} pairs/s when each pair encodes its item's "
              f"text; caching item vectors instead costs {teacher['catalogue']:,} BERT passes "
              f"= {teacher['catalogue'] / teacher['per_second']:.0f} s per run")


if __name__ == "__main__":
    main()
