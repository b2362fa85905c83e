"""Build the training set: split, per-target histories, sampled negatives, user histories.

Evaluation mode (`--holdout-fraction F`) splits each user's interactions chronologically as
`../shared/EVALUATION.md` says; nightly mode (no holdout)
trains on every interaction before `ds`. Either way only interactions strictly before the start
of `ds` (UTC) are used, so a backfill for an old date sees only what existed then.

    spark-submit jobs/build_training_set.py --lake L --ds D [--holdout-fraction 0.2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys

import numpy as np
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from contract.args import fraction, holdout_fraction, positive_int
from contract.tables import (
    FEATURES_EXAMPLES,
    FEATURES_ITEMS,
    FEATURES_TEST,
    FEATURES_TRAIN,
    FEATURES_USER_HISTORY,
    RAW_INTERACTIONS,
    RAW_ITEMS,
    RAW_TAGS,
)
from jobs.core.delta import read_ingested, read_partition, require_rows, write_partition
from jobs.core.item_text import ranked_tags, with_text
from jobs.core.lake_mode import require_mode
from jobs.core.step import run_spark_step, step_parser
from udfs.training_examples import (
    EXAMPLE_IDS_SCHEMA,
    MIN_INTERACTIONS_TO_EVALUATE,
    ExampleSpec,
    examples_in_batches,
)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Pure transformations


def before_run_date(interactions: DataFrame, ds: str) -> DataFrame:
    start = dt.datetime.combine(dt.date.fromisoformat(ds), dt.time())
    return interactions.where(F.col("event_ts") < F.lit(start))


def tail_split(interactions: DataFrame, holdout_fraction: float,
               min_interactions: int = MIN_INTERACTIONS_TO_EVALUATE) -> DataFrame:
    """Add `is_tail`: per user, sorted by (event_ts, item_id), the last max(1, floor(f * n))
    interactions, for users with at least `min_interactions`; everything else is head."""
    by_user = Window.partitionBy("user_id")
    in_order = by_user.orderBy("event_ts", "item_id")
    n = F.count(F.lit(1)).over(by_user)
    tail_size = F.greatest(F.lit(1), F.floor(n * F.lit(holdout_fraction)))
    return interactions.withColumn(
        "is_tail", (n >= min_interactions) & (F.row_number().over(in_order) > n - tail_size))


def split_train_test(interactions: DataFrame, holdout_fraction: float | None
                     ) -> tuple[DataFrame, DataFrame]:
    if holdout_fraction is None:
        return interactions, interactions.limit(0)
    marked = tail_split(interactions, holdout_fraction)
    return (marked.where(~F.col("is_tail")).drop("is_tail"),
            marked.where(F.col("is_tail")).drop("is_tail"))


def point_in_time_items(items: DataFrame, tag_events: DataFrame, train: DataFrame, ds: str,
                        evaluation: bool) -> DataFrame:
    """features.items: every raw item, its text composed from the tags that existed at the cut-off.

    Nightly mode: tags written before `ds`. Evaluation mode: also no later than their author's
    last train interaction, so nothing from a user's held-out period reaches any item's text
    (an author with no train interaction contributes no tag).
    """
    tags = before_run_date(tag_events, ds)
    if evaluation:
        last_train = train.groupBy("user_id").agg(F.max("event_ts").alias("last_train_ts"))
        tags = tags.join(last_train, "user_id").where(F.col("event_ts") <= F.col("last_train_ts"))
    # Lakes ingested before raw.items had a description column read as if it were null.
    description = (F.col("description") if "description" in items.columns
                   else F.lit(None).cast("string").alias("description"))
    return with_text(items.select("item_id", "title", "genres", description), ranked_tags(tags))


def user_histories(train: DataFrame, items: DataFrame, history_length: int) -> DataFrame:
    recent_first = F.sort_array(
        F.collect_list(F.struct("event_ts", "item_id", "text")), asc=False)
    return (train.join(items.select("item_id", "text"), "item_id")
            .groupBy("user_id")
            .agg(F.slice(recent_first, 1, history_length).alias("recent"),
                 F.count(F.lit(1)).alias("num_train_interactions"))
            .select("user_id",
                    F.transform("recent", lambda r: r["item_id"]).alias("history_item_ids"),
                    F.transform("recent", lambda r: r["text"]).alias("history_texts"),
                    "num_train_interactions"))


def training_examples(train: DataFrame, items: DataFrame, spec: ExampleSpec) -> DataFrame:
    popularity = (train.groupBy("item_id").count().orderBy("item_id").toPandas())
    popular_ids = popularity["item_id"].to_numpy(np.int64)
    cdf = np.cumsum(popularity["count"].to_numpy(np.float64))
    popular_cdf = cdf / cdf[-1]
    popular_cdf[-1] = np.nextafter(1.0, 0.0)  # keeps searchsorted inside the array for u < 1

    ids = (train.select("user_id", "item_id", F.unix_seconds("event_ts").alias("seconds"))
           .repartition("user_id").sortWithinPartitions("user_id", "seconds", "item_id")
           .mapInArrow(examples_in_batches(popular_ids, popular_cdf, spec), EXAMPLE_IDS_SCHEMA))
    texts = items.select("item_id", "text")
    # Histories are windows over the user's own train items, so each user's (item -> text) map
    # is all a history needs: a join of train interactions, not of every history slot (20 per
    # example: 400M rows at 20M interactions), and no second evaluation of the Python UDF above
    # (`ids` is read once). Texts stay in Spark rather than on the Python workers: the
    # catalogue can be larger than a worker should hold, and this join broadcasts (id, text).
    user_texts = (train.select("user_id", "item_id").distinct()
                  .join(F.broadcast(texts), "item_id")
                  .groupBy("user_id")
                  .agg(F.map_from_entries(F.collect_list(F.struct("item_id", "text")))
                       .alias("texts")))
    return (ids.join(user_texts, "user_id")
            .join(F.broadcast(texts.withColumnRenamed("text", "item_text")), "item_id")
            .select(F.xxhash64("user_id", "position").alias("example_group"),
                    "user_id", "item_id", "label",
                    F.timestamp_seconds("target_seconds").alias("target_ts"),
                    "split", "history_item_ids",
                    F.transform("history_item_ids", lambda i: F.try_element_at("texts", i))
                    .alias("history_texts"),
                    "item_text"))


# ---------------------------------------------------------------------------------------------
# Job


def require_lake_mode(args: argparse.Namespace) -> None:
    """Refuse an evaluation run over a serving lake and a nightly run over an evaluation lake
    (jobs/core/lake_mode.py), unless --allow-mixed-modes."""
    if not args.allow_mixed_modes:
        require_mode(args.lake, evaluation=args.holdout_fraction is not None)


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    require_lake_mode(args)
    # One read of the three: all as one ingest of ds wrote them, even if another commits now.
    interactions, raw_items, tag_events = read_ingested(
        spark, args.lake, args.ds, (RAW_INTERACTIONS, RAW_ITEMS, RAW_TAGS))
    require_rows(interactions, RAW_INTERACTIONS, args.ds)
    interactions = before_run_date(interactions, args.ds)
    train, test = split_train_test(interactions, args.holdout_fraction)
    spec = ExampleSpec(history_length=args.history_length, negatives=args.negatives,
                       valid_fraction=args.valid_fraction, seed=args.seed)

    write_partition(train, args.lake, FEATURES_TRAIN, args.ds)
    write_partition(test, args.lake, FEATURES_TEST, args.ds)
    # Downstream features read the written train partition, not the split plan again.
    train = read_partition(spark, args.lake, FEATURES_TRAIN, args.ds)
    write_partition(point_in_time_items(raw_items, tag_events, train, args.ds,
                                        evaluation=args.holdout_fraction is not None),
                    args.lake, FEATURES_ITEMS, args.ds)
    # Every text below (histories, examples) is the point-in-time one.
    items = read_partition(spark, args.lake, FEATURES_ITEMS, args.ds)
    write_partition(user_histories(train, items, args.history_length), args.lake,
                    FEATURES_USER_HISTORY, args.ds)
    write_partition(training_examples(train, items, spec), args.lake, FEATURES_EXAMPLES, args.ds)

    counts = {t.name: read_partition(spark, args.lake, t, args.ds).count()
              for t in (FEATURES_ITEMS, FEATURES_TRAIN, FEATURES_TEST, FEATURES_EXAMPLES,
                        FEATURES_USER_HISTORY)}
    log.info("build-training-set ds=%s: %s", args.ds, counts)
    return counts


def add_step_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--holdout-fraction", type=holdout_fraction, default=None, metavar="F",
                        help="Evaluation mode: hold out each user's last max(1, floor(F*n)) "
                             "interactions (users with >= 5) as test, e.g. 0.2. Omit it, or "
                             "give 0, for nightly mode: train on every interaction before --ds.")
    parser.add_argument("--allow-mixed-modes", action="store_true",
                        help="Write this mode's output even into a lake holding the other "
                             "mode's: by default an evaluation run refuses a lake that serves "
                             "nightly output (it would replace what serving readers read) and a "
                             "nightly run refuses an evaluation lake.")
    parser.add_argument("--history-length", type=positive_int, default=ExampleSpec.history_length,
                        help="Most recent items kept as history (default: %(default)s).")
    parser.add_argument("--negatives", type=positive_int, default=ExampleSpec.negatives,
                        help="Sampled negatives per positive (default: %(default)s).")
    parser.add_argument("--valid-fraction", type=fraction, default=ExampleSpec.valid_fraction,
                        help="Each user's latest train targets marked split=valid for early "
                             "stopping (default: %(default)s).")
    parser.add_argument("--seed", type=int, default=ExampleSpec.seed,
                        help="Seed of negative sampling (default: %(default)s).")


def build_parser() -> argparse.ArgumentParser:
    return step_parser("recs build-training-set",
                       "Split interactions, build leak-free histories and sampled negatives "
                       "into features.* for one run date.", add_step_arguments)


def main(argv: list[str] | None = None) -> dict:
    return run_spark_step(build_parser(), run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
