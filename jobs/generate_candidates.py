"""Candidate pairs for scoring: all unseen items, or a first stage above a size limit.

    spark-submit jobs/generate_candidates.py --lake L --ds D [--max-pairs N] [--first-stage-n N]
        [--write-all-pairs]

"All pairs" means every catalogue item the user has not interacted with in train. While users x
items stays within `--max-pairs`, `recs score` generates and scores those pairs itself, in one
pass, so this step writes none of them: it empties the `ds` partition of recs.candidates (no
stale first stage of an earlier run can be scored), unless `--write-all-pairs` asks for them, to
inspect or to score through the table (`recs score --candidates-table`). When recs.candidates
exists and that partition holds no rows already, the step decides from Parquet footers and
starts no Spark at all. Above the limit, writing or scoring every pair stops being sensible, so
each user gets the top N items of the student's towers (blocked matrix products on the workers)
plus the most popular items, unseen ones only, and those are written for `recs score` to score.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from contract.args import positive_int
from contract.tables import FEATURES_TRAIN, FEATURES_USER_HISTORY, RAW_ITEMS, RECS_CANDIDATES
from jobs.core.delta import read_partition, require_rows, write_partition
from jobs.core.step import run_spark_step, step_parser
from udfs.scoring import BEST_UNSEEN_SCHEMA, SharedState, best_unseen_blocks

log = logging.getLogger(__name__)


# Pairs per task when candidates are generated and scored. A task's memory does not grow with
# it (the UDFs stream blocks of PAIRS_PER_BLOCK pairs), but each Python task costs about 0.1 s
# before it starts (the worker re-reads pyspark's zips from its import caches): at 2M pairs per
# task, 50 tasks per pass at 100M pairs, that was 6 of the 13 s of the scoring pass on 2 cores.
PAIRS_PER_PARTITION = 8_000_000


def pair_partitions(pairs: int, cores: int, per_partition: int = PAIRS_PER_PARTITION) -> int:
    """Enough partitions for `pairs`, a multiple of `cores` so no core idles on the last wave."""
    waves = -(-pairs // (per_partition * cores))
    return max(1, waves) * cores


def all_unseen_pairs(users: DataFrame, items: DataFrame, seen: DataFrame,
                     partitions: int) -> DataFrame:
    # The cross join streams the users side and keeps its partitioning; a few hundred user rows
    # would otherwise sit in one partition and put every pair on one core.
    return (users.repartition(partitions).crossJoin(F.broadcast(items))
            .join(seen, ["user_id", "item_id"], "left_anti")
            .withColumn("source", F.lit("all")))


def with_seen(users: DataFrame, train: DataFrame) -> DataFrame:
    """users (user_id) with the item ids each interacted with in train (`seen`, null for
    none): what the first stage and all-pairs scoring mask."""
    seen = train.groupBy("user_id").agg(F.collect_set("item_id").alias("seen"))
    return users.select("user_id").join(seen, "user_id", "left")


def popular_unseen(users: DataFrame, train: DataFrame, seen: DataFrame, n: int) -> DataFrame:
    deepest = train.groupBy("user_id").count().agg(F.max("count")).first()[0] or 0
    pool = (train.groupBy("item_id").count().orderBy(F.desc("count"), "item_id")
            .limit(n + deepest))
    ranked = (users.crossJoin(F.broadcast(pool)).join(seen, ["user_id", "item_id"], "left_anti")
              .withColumn("r", F.row_number().over(
                  Window.partitionBy("user_id").orderBy(F.desc("count"), "item_id"))))
    return ranked.where(F.col("r") <= n).select("user_id", "item_id")


def tower_top_n(users_with_seen: DataFrame, shared, n: int) -> DataFrame:
    """Each user's n best unseen items by the student (the served score, popularity correction
    included), users in blocks of a matrix product on the workers."""
    return (users_with_seen.mapInArrow(best_unseen_blocks(shared, n), BEST_UNSEEN_SCHEMA)
            .select("user_id", "item_id"))


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    users = read_partition(spark, args.lake, FEATURES_USER_HISTORY, args.ds).select("user_id")
    require_rows(users, FEATURES_USER_HISTORY, args.ds)
    items = read_partition(spark, args.lake, RAW_ITEMS, args.ds).select("item_id")
    train = read_partition(spark, args.lake, FEATURES_TRAIN, args.ds)
    seen = train.select("user_id", "item_id").distinct()
    n_users, n_items = users.count(), items.count()

    if n_users * n_items <= args.max_pairs:
        if args.write_all_pairs:
            partitions = pair_partitions(n_users * n_items, spark.sparkContext.defaultParallelism)
            pairs = all_unseen_pairs(users, items, seen, partitions)
        else:
            log.info("%d users x %d items <= --max-pairs %d: recs score generates and scores "
                     "every unseen pair itself; none written (--write-all-pairs writes them)",
                     n_users, n_items, args.max_pairs)
            pairs = spark.createDataFrame([], "user_id long, item_id long, source string")
        write_partition(pairs, args.lake, RECS_CANDIDATES, args.ds)
    else:
        from jobs.core.registry import resolve_model_version, student_dir
        from jobs.score import scoring_state

        version = resolve_model_version(spark, args.lake, args.model_version)
        log.info("%d users x %d items > --max-pairs %d: first stage with model %s",
                 n_users, n_items, args.max_pairs, version)
        shared = SharedState(spark.sparkContext,
                             scoring_state(spark, args.lake, args.ds, student_dir(args.lake, version)))
        try:
            candidates = (tower_top_n(with_seen(users, train), shared, args.first_stage_n)
                          .unionByName(popular_unseen(users, train, seen, args.popular_n))
                          .distinct().withColumn("source", F.lit("first_stage")))
            write_partition(candidates, args.lake, RECS_CANDIDATES, args.ds)
        finally:
            shared.destroy()
    written = read_partition(spark, args.lake, RECS_CANDIDATES, args.ds).count()
    log.info("generate-candidates ds=%s: %d pairs", args.ds, written)
    return {RECS_CANDIDATES.name: written}


def nothing_to_write(args: argparse.Namespace) -> dict | None:
    """The step's result when the lake's metadata alone settles it: users x items within
    --max-pairs (rows counted from Parquet footers, no Spark) and recs.candidates already there
    with no rows for ds to clear, so there is nothing to write. The SparkSession and its first
    Delta reads are then the whole cost of the step (20 of its 23 s at 100M pairs on 2 cores),
    so none is started. None: `run` decides in Spark (--write-all-pairs, a first stage, rows to
    clear, or a lake without recs.candidates, which `run` creates for SQL readers to find)."""
    from contract.delta_reader import count_rows

    if args.write_all_pairs:
        return None
    users = count_rows(args.lake, FEATURES_USER_HISTORY, args.ds)
    items = count_rows(args.lake, RAW_ITEMS, args.ds)
    if not users or not items or users * items > args.max_pairs:
        return None  # no users is `run`'s error to report
    if count_rows(args.lake, RECS_CANDIDATES, args.ds) != 0:
        return None
    log.info("%d users x %d items <= --max-pairs %d: recs score generates and scores every "
             "unseen pair itself; none written, and recs.candidates has no rows for ds=%s to "
             "clear (no Spark needed)", users, items, args.max_pairs, args.ds)
    return {RECS_CANDIDATES.name: 0}


def add_step_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-pairs", type=positive_int, default=200_000_000,
                        help="Above this many users x items, use the first stage instead of all "
                             "unseen pairs (default: %(default)s).")
    parser.add_argument("--write-all-pairs", action="store_true",
                        help="Within --max-pairs, write every unseen pair to recs.candidates "
                             "(source `all`) for inspection; by default none are written, as "
                             "`recs score` generates them inside its UDF.")
    parser.add_argument("--first-stage-n", type=positive_int, default=500,
                        help="First stage: items per user from the student's towers "
                             "(default: %(default)s).")
    parser.add_argument("--popular-n", type=positive_int, default=100,
                        help="First stage: most popular unseen items added per user "
                             "(default: %(default)s).")


def build_parser() -> argparse.ArgumentParser:
    parser = step_parser("recs generate-candidates",
                         "Write recs.candidates (user-item pairs to score: a first stage above "
                         "--max-pairs; below it, none unless --write-all-pairs) for one run date.",
                         add_step_arguments)
    parser.add_argument("--model-version", default=None,
                        help="First stage only: model whose towers rank items (default: current).")
    return parser


def main(argv: list[str] | None = None) -> dict:
    return run_spark_step(build_parser(), run, argv, without_spark=nothing_to_write)


if __name__ == "__main__":
    main(sys.argv[1:])
