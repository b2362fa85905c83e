"""Score every candidate pair with the student inside Spark; write recs.scores and recs.top_k.

    spark-submit jobs/score.py --lake L --ds D [--model-version V] [--k 100] [--no-explain]
        [--candidates-table] [--top-k-only]

Without a first stage (recs.candidates holds no `first_stage` rows for `ds`: generate-candidates
found users x items under its --max-pairs), the candidates are every unseen pair, and this job
makes them itself: blocks of users with their seen items go through an Arrow UDF that scores
each block against the whole item matrix (one float32 matrix product), masks the seen items and
puts out every unseen pair's score for recs.scores. No pair is written before it is scored.
recs.top_k comes from a second pass of the same blocks that keeps each user's k best by a
partial sort, explaining them as it goes: it repeats the matrix products, which cost little,
rather than keeping every pair's row to filter (caching them measured slower: materialising a
row costs more than computing its score), and no Window sorts every pair. With
a first stage (or `--candidates-table`), it scores the rows of recs.candidates and ranks them
with a Window, as a first stage is a few hundred pairs per user.

Both tables are replaced for `ds` in one Delta commit each (`replaceWhere`): a re-run replaces
the partition, other dates are untouched, and a run that dies leaves the previous partition
readable. Scores never travel to the driver, and only top-k rows are explained
(recs.top_k.because), so explanations cost K rows per user, not a pass over every candidate.
Workers need numpy, not torch: the student becomes float32 arrays here, on the driver
(`build_state`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from contract.args import positive_int
from contract.delta_reader import count_rows
from contract.tables import (
    FEATURES_ITEMS,
    FEATURES_TRAIN,
    FEATURES_USER_HISTORY,
    RECS_CANDIDATES,
    RECS_SCORES,
    RECS_TOP_K,
)
from jobs.core.delta import read_partition, read_table, require_rows, write_partition
from jobs.core.registry import resolve_model_version, student_dir
from jobs.core.step import run_spark_step, step_parser
from jobs.generate_candidates import pair_partitions, with_seen
from udfs.scoring import (
    BEST_UNSEEN_SCHEMA,
    UNSEEN_SCORES_SCHEMA,
    ScoringState,
    SharedState,
    best_unseen_blocks,
    explanation_udf,
    pair_score_udf,
    unseen_scores_blocks,
)

log = logging.getLogger(__name__)


def build_state(student, catalogue_ids: np.ndarray, item_vecs, user_ids: np.ndarray,
                history_rows: np.ndarray) -> ScoringState:
    """The student as float32 arrays for one run: the item vectors of the catalogue (sorted by
    id), every user's vector from their history rows, each catalogue row's popularity
    correction, and the user tower's parameters that explanations need. Workers score and
    explain from these with numpy alone."""
    import torch

    users = student.user_vectors(item_vecs, history_rows).numpy()
    order = np.argsort(user_ids)
    tower = student.users
    with torch.no_grad():
        penalty = student.popularity_penalty(torch.as_tensor(catalogue_ids)).numpy()
    return ScoringState(
        user_ids=user_ids[order], user_vecs=users[order], item_ids=catalogue_ids,
        item_vecs=item_vecs.numpy(), item_penalty=penalty.astype(np.float32),
        history_rows=history_rows[order, : student.cfg.max_history].astype(np.int32),
        recency=tower.recency.detach().numpy(), out_weight=tower.out.weight.detach().numpy(),
        out_bias=tower.out.bias.detach().numpy(), temperature=student.cfg.temperature)


def scoring_state(spark: SparkSession, lake: str, ds: str, model_dir: Path) -> ScoringState:
    """This run's item and user vectors from the student, built once on the driver."""
    from contract.delta_reader import padded_lists
    from models.data import Catalogue, artifact_token_ids
    from models.student import load_student

    student, _ = load_student(model_dir)
    items = (read_partition(spark, lake, FEATURES_ITEMS, ds).select("item_id", "text")
             .orderBy("item_id").toArrow())
    catalogue = Catalogue(items["item_id"].to_numpy().astype(np.int64),
                          [t or "" for t in items["text"].to_pylist()])
    tokens = artifact_token_ids(model_dir, catalogue.texts, student.cfg.max_item_tokens)
    histories = (read_partition(spark, lake, FEATURES_USER_HISTORY, ds)
                 .select("user_id", "history_item_ids").toArrow())
    history_rows = catalogue.rows(padded_lists(histories["history_item_ids"],
                                               student.cfg.max_history), "history items")
    return build_state(student, catalogue.item_ids,
                       student.item_vectors(tokens, catalogue.item_ids),
                       histories["user_id"].to_numpy().astype(np.int64), history_rows)


def first_stage_candidates(spark: SparkSession, args: argparse.Namespace) -> DataFrame | None:
    """The pairs recs.candidates holds for ds when they are a first stage's (or whatever they
    are, with --candidates-table); None when the candidates are every unseen pair."""
    if not args.candidates_table:
        # Parquet footers first: the nightly all-pairs case (no rows for ds) costs no Spark job.
        if not count_rows(args.lake, RECS_CANDIDATES, args.ds):
            return None
        table = read_table(spark, args.lake, RECS_CANDIDATES)
        if table.where((F.col("ds") == args.ds)
                       & (F.col("source") != "all")).limit(1).count() == 0:
            return None
    candidates = read_partition(spark, args.lake, RECS_CANDIDATES, args.ds)
    require_rows(candidates, RECS_CANDIDATES, args.ds)
    return candidates


def score_pairs(candidates: DataFrame, score_udf, model_version: str) -> DataFrame:
    return candidates.select("user_id", "item_id",
                             score_udf("user_id", "item_id").alias("score"),
                             F.lit(model_version).alias("model_version"))


def top_k(scores: DataFrame, k: int, explain_udf=None) -> DataFrame:
    """Each user's k best rows, with the history items behind each (null without explain_udf)."""
    best_first = Window.partitionBy("user_id").orderBy(F.desc("score"), "item_id")
    because = explain_udf("user_id", "item_id") if explain_udf else F.lit(None)
    return (scores.withColumn("rank", F.row_number().over(best_first))
            .where(F.col("rank") <= k)
            .select("user_id", "rank", "item_id", "score", "model_version",
                    because.alias("because")))


def score_unseen(users_with_seen: DataFrame, shared, model_version: str) -> DataFrame:
    """Every pair of a user of `users_with_seen` (user_id, seen) and a catalogue item they have
    not seen, scored in the UDF."""
    return (users_with_seen.mapInArrow(unseen_scores_blocks(shared), UNSEEN_SCORES_SCHEMA)
            .withColumn("model_version", F.lit(model_version)))


def best_unseen(users_with_seen: DataFrame, shared, k: int, model_version: str,
                explain: bool) -> DataFrame:
    """recs.top_k's rows: each user's k best unseen items, ranked 1..k by score, then item id
    (as top_k's Window), found and explained (when `explain`) in the UDF."""
    return (users_with_seen.mapInArrow(best_unseen_blocks(shared, k, explain), BEST_UNSEEN_SCHEMA)
            .withColumn("model_version", F.lit(model_version)))


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    version = resolve_model_version(spark, args.lake, args.model_version)
    candidates = first_stage_candidates(spark, args)
    state = scoring_state(spark, args.lake, args.ds, student_dir(args.lake, version))
    shared = SharedState(spark.sparkContext, state)
    try:
        if candidates is None:
            log.info("score ds=%s: every unseen pair of %d users x %d items, generated in the UDF",
                     args.ds, len(state.user_ids), len(state.item_ids))
            users = read_partition(spark, args.lake, FEATURES_USER_HISTORY, args.ds)
            train = read_partition(spark, args.lake, FEATURES_TRAIN, args.ds)
            partitions = pair_partitions(len(state.user_ids) * len(state.item_ids),
                                         spark.sparkContext.defaultParallelism)
            # Both passes read the users and their seen items: kept, as they are small.
            blocks = with_seen(users, train).repartition(partitions).persist()
            try:
                scores = score_unseen(blocks, shared, version)
                best = best_unseen(blocks, shared, args.k, version, args.explain)
                write_scores(scores, args)
                write_partition(best, args.lake, RECS_TOP_K, args.ds)
            finally:
                blocks.unpersist()
        else:
            scores = score_pairs(candidates, pair_score_udf(shared), version)
            write_scores(scores, args)
            if not args.top_k_only:
                # Ranked from what was written rather than scoring every pair a second time.
                scores = read_partition(spark, args.lake, RECS_SCORES, args.ds)
            explain_udf = explanation_udf(shared) if args.explain else None
            write_partition(top_k(scores, args.k, explain_udf), args.lake, RECS_TOP_K, args.ds)
    finally:
        shared.destroy()
    # From Parquet footers: counting the partitions in Spark would cost seconds, and even Delta's
    # commit metrics through DeltaTable.history cost 0.25 s, 3% of a run on ml-latest-small.
    counts = {t.name: count_rows(args.lake, t, args.ds) or 0 for t in (RECS_SCORES, RECS_TOP_K)}
    log.info("score ds=%s model %s: %s", args.ds, version, counts)
    return counts


def write_scores(scores: DataFrame, args: argparse.Namespace) -> None:
    """recs.scores for ds: every scored pair, or with --top-k-only no row at all, so that no
    earlier run's scores for ds are left beside this run's top_k."""
    if args.top_k_only:
        scores = scores.limit(0)
    write_partition(scores, args.lake, RECS_SCORES, args.ds)


def add_step_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-version", default=None,
                        help="Model to score with (default: the current published model of "
                             "recs.model_registry).")
    parser.add_argument("--k", type=positive_int, default=100,
                        help="Items kept per user in recs.top_k (default: %(default)s).")
    parser.add_argument("--no-explain", dest="explain", action="store_false",
                        help="Leave recs.top_k.because null instead of naming the history items "
                             "behind each recommendation (to measure what explaining costs).")
    parser.add_argument("--candidates-table", action="store_true",
                        help="Score the rows of recs.candidates for ds even when they are every "
                             "unseen pair (written by generate-candidates --write-all-pairs), "
                             "instead of generating those pairs inside the UDF: slower, for "
                             "comparing the two paths or scoring a hand-made candidate set.")
    parser.add_argument("--top-k-only", action="store_true",
                        help="Write recs.top_k only and leave the ds partition of recs.scores "
                             "empty: for catalogues where every pair's row is more than anyone "
                             "will read (1B pairs are about 10 GB of Parquet). What needs every "
                             "score then lacks it: evaluate's cold-only ranking, and the score "
                             "gate, which requires recs.scores rows.")


def build_parser() -> argparse.ArgumentParser:
    return step_parser("recs score", "Score every unseen pair (or a first stage's recs.candidates) "
                       "with the student in Arrow UDFs into recs.scores and recs.top_k for one "
                       "run date.", add_step_arguments)


def main(argv: list[str] | None = None) -> dict:
    return run_spark_step(build_parser(), run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
