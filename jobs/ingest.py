"""Ingest: read a source, validate every row, write raw.interactions / raw.items / raw.quarantine.

Sources are read at the edge into "raw" frames of strings (so a bad value is kept, not lost to a
cast); `clean` is the pure part that parses, validates and routes each row either to its table or
to quarantine with a reason. Re-running a `ds` replaces that partition: idempotent.

    spark-submit jobs/ingest.py --lake L --ds D --source movielens --path DIR
"""

from __future__ import annotations

import argparse
import logging
import sys

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from contract.args import positive_int
from contract.tables import RAW_INTERACTIONS, RAW_ITEMS, RAW_QUARANTINE, RAW_TAGS
from jobs.core.delta import write_partition
from jobs.core.item_text import ranked_tags, with_text
from jobs.core.step import run_spark_step, step_parser
from jobs.sources import RawSource, read_source, synthetic

log = logging.getLogger(__name__)



# ---------------------------------------------------------------------------------------------
# Pure transformations


def _parse_timestamp(column: F.Column, timestamp_format: str) -> F.Column:
    text = F.trim(column)
    if timestamp_format == "epoch_s":
        return F.timestamp_seconds(text.try_cast("long"))
    if timestamp_format == "epoch_ms":
        return F.timestamp_millis(text.try_cast("long"))
    if timestamp_format == "iso":
        return F.try_to_timestamp(text)
    return F.try_to_timestamp(text, F.lit(timestamp_format))


def _record(df: DataFrame) -> F.Column:
    return F.to_json(F.struct(*[F.col(c) for c in df.columns]))


def _quarantined(df: DataFrame, source_table: str) -> DataFrame:
    return (df.where(F.col("reason").isNotNull())
            .select(F.lit(source_table).alias("source_table"), "reason", "record"))


def clean_items(raw_items: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(valid items without text yet, quarantine rows)."""
    parsed = raw_items.select(
        F.trim(F.col("item_id")).try_cast("long").alias("item_id"),
        F.coalesce(F.trim("title"), F.lit("")).alias("title"),
        F.coalesce("genres", F.array().cast("array<string>")).alias("genres"),
        F.col("description"),
        _record(raw_items).alias("record"),
    )
    # Keep one row per id deterministically (the smallest record) so re-runs pick the same one.
    first = Window.partitionBy("item_id").orderBy("record")
    routed = parsed.withColumn(
        "reason",
        F.when(F.col("item_id").isNull(), "invalid_item_id")
         .when(F.row_number().over(first) > 1, "duplicate"))
    return routed.where(F.col("reason").isNull()).drop("reason", "record"), _quarantined(routed, "items")


def clean_tags(raw_tags: DataFrame, items: DataFrame, timestamp_format: str
               ) -> tuple[DataFrame, DataFrame]:
    """(valid tag events: user_id, item_id, tag, event_ts; quarantine rows)."""
    parsed = raw_tags.select(
        F.trim(F.col("user_id")).try_cast("long").alias("user_id"),
        F.trim(F.col("item_id")).try_cast("long").alias("item_id"),
        F.lower(F.trim("tag")).alias("tag"),
        _parse_timestamp(F.col("timestamp"), timestamp_format).alias("event_ts"),
        _record(raw_tags).alias("record"),
    )
    known = items.select("item_id", F.lit(True).alias("known"))
    routed = parsed.join(known, "item_id", "left").withColumn(
        "reason",
        F.when(F.col("user_id").isNull(), "invalid_user_id")
         .when(F.col("item_id").isNull(), "invalid_item_id")
         .when(F.col("event_ts").isNull(), "invalid_timestamp")
         .when(F.col("tag").isNull() | (F.col("tag") == ""), "invalid_tag")
         .when(F.col("known").isNull(), "unknown_item"))
    valid = routed.where(F.col("reason").isNull()).select("user_id", "item_id", "tag", "event_ts")
    return valid, _quarantined(routed, "tags")


def clean_interactions(raw: DataFrame, items: DataFrame, timestamp_format: str,
                       rating_range: tuple[float, float] | None) -> tuple[DataFrame, DataFrame]:
    """(valid interactions, quarantine rows). The first failing check names the reason."""
    parsed = raw.select(
        F.trim(F.col("user_id")).try_cast("long").alias("user_id"),
        F.trim(F.col("item_id")).try_cast("long").alias("item_id"),
        _parse_timestamp(F.col("timestamp"), timestamp_format).alias("event_ts"),
        F.col("rating").alias("rating_text"),
        F.trim(F.col("rating")).try_cast("double").alias("rating"),
        _record(raw).alias("record"),
    )
    known = items.select("item_id", F.lit(True).alias("known"))
    parsed = parsed.join(known, "item_id", "left")
    rating = F.col("rating")
    out_of_range = (F.lit(False) if rating_range is None
                    else (rating < rating_range[0]) | (rating > rating_range[1]))
    reason = (F.when(F.col("user_id").isNull(), "invalid_user_id")
              .when(F.col("item_id").isNull(), "invalid_item_id")
              .when(F.col("event_ts").isNull(), "invalid_timestamp")
              .when(F.col("rating_text").isNotNull() & rating.isNull(), "invalid_rating")
              .when(rating.isNotNull() & out_of_range, "rating_out_of_range")
              .when(F.col("known").isNull(), "unknown_item"))
    routed = parsed.withColumn("reason", reason)
    same_event = Window.partitionBy("user_id", "item_id", "event_ts", "rating").orderBy("record")
    valid = routed.where(F.col("reason").isNull()).withColumn(
        "reason", F.when(F.row_number().over(same_event) > 1, "duplicate"))
    clean = valid.where(F.col("reason").isNull()).select("user_id", "item_id", "event_ts", "rating")
    quarantine = _quarantined(routed, "interactions").unionByName(_quarantined(valid, "interactions"))
    return clean, quarantine


def clean(source: RawSource) -> tuple[DataFrame, DataFrame, DataFrame, DataFrame]:
    """(interactions, items, tag events, quarantine) ready to write.

    raw.items.text holds every valid tag, whenever written; models read features.items, where
    build-training-set keeps only the tags that existed at the run's cut-off.
    """
    items, items_quarantine = clean_items(source.items)
    quarantine = items_quarantine
    tags = None
    if source.tags is not None:
        tags, tags_quarantine = clean_tags(source.tags, items, source.timestamp_format)
        quarantine = quarantine.unionByName(tags_quarantine)
    items_with_text = with_text(items, None if tags is None else ranked_tags(tags))
    interactions, interactions_quarantine = clean_interactions(
        source.interactions, items_with_text, source.timestamp_format, source.rating_range)
    if tags is None:
        tags = items.sparkSession.createDataFrame(
            [], "user_id long, item_id long, tag string, event_ts timestamp")
    return (interactions, items_with_text, tags,
            quarantine.unionByName(interactions_quarantine))


# ---------------------------------------------------------------------------------------------
# Job


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    source = read_source(spark, args)
    interactions, items, tags, quarantine = clean(source)
    write_partition(items, args.lake, RAW_ITEMS, args.ds)
    write_partition(tags, args.lake, RAW_TAGS, args.ds)
    write_partition(interactions, args.lake, RAW_INTERACTIONS, args.ds)
    write_partition(quarantine, args.lake, RAW_QUARANTINE, args.ds)
    return summarize(spark, args.lake, args.ds)


def summarize(spark: SparkSession, lake: str, ds: str) -> dict:
    from jobs.core.delta import read_partition

    counts = {t.name: read_partition(spark, lake, t, ds).count()
              for t in (RAW_INTERACTIONS, RAW_ITEMS, RAW_TAGS)}
    reasons = (read_partition(spark, lake, RAW_QUARANTINE, ds)
               .groupBy("source_table", "reason").count().orderBy("source_table", "reason")
               .collect())
    counts["quarantine"] = {f"{r['source_table']}.{r['reason']}": r["count"] for r in reasons}
    log.info("ingest ds=%s: %s", ds, counts)
    for key, count in counts["quarantine"].items():
        log.warning("quarantined %d %s rows (reason %s)", count, *key.split("."))
    return counts


def add_step_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", choices=["synthetic", "movielens", "csv", "parquet"],
                        default="synthetic",
                        help="Where interactions and items come from (default: %(default)s, "
                             "generated offline; movielens detects latest/1M/100K from the files).")
    parser.add_argument("--path", help="MovieLens directory, or the interactions file/directory "
                                       "for csv/parquet.")
    parser.add_argument("--items-path", help="csv/parquet: the items file/directory.")
    parser.add_argument("--user-col", default="user_id", help="csv/parquet: user id column.")
    parser.add_argument("--item-col", default="item_id", help="csv/parquet: item id column in "
                                                              "the interactions.")
    parser.add_argument("--timestamp-col", default="timestamp",
                        help="csv/parquet: event time column.")
    parser.add_argument("--timestamp-format", default="epoch_s",
                        help="csv/parquet: epoch_s, epoch_ms, iso, or a Spark datetime pattern "
                             "such as 'yyyy-MM-dd HH:mm:ss' (default: %(default)s; timestamp-typed "
                             "parquet columns need none).")
    parser.add_argument("--rating-col", default=None,
                        help="csv/parquet: optional rating column.")
    parser.add_argument("--rating-range", type=float, nargs=2, metavar=("MIN", "MAX"),
                        help="csv/parquet: ratings outside [MIN, MAX] are quarantined.")
    parser.add_argument("--item-id-col", default="item_id", help="csv/parquet: items id column.")
    parser.add_argument("--item-title-col", default="title", help="csv/parquet: items title column.")
    parser.add_argument("--item-text-cols", default="",
                        help="csv/parquet: comma-separated extra text columns of the items, "
                             "appended to the item text in this order.")
    parser.add_argument("--item-genres-col", default=None,
                        help="csv/parquet: optional '|'-separated genres column of the items.")
    defaults = synthetic.SyntheticSpec()
    parser.add_argument("--synthetic-users", type=positive_int, default=defaults.num_users,
                        help="synthetic: number of users (default: %(default)s).")
    parser.add_argument("--synthetic-items", type=positive_int, default=defaults.num_items,
                        help="synthetic: catalogue size (default: %(default)s).")
    parser.add_argument("--synthetic-interactions", type=positive_int,
                        default=defaults.mean_interactions_per_user,
                        help="synthetic: mean interactions per user (default: %(default)s).")
    parser.add_argument("--synthetic-seed", type=int, default=synthetic.SyntheticSpec.seed,
                        help="synthetic: random seed (default: %(default)s).")


def build_parser() -> argparse.ArgumentParser:
    return step_parser("recs ingest", "Validate a source into raw.interactions, raw.items and "
                       "raw.quarantine for one run date.", add_step_arguments)


def main(argv: list[str] | None = None) -> dict:
    return run_spark_step(build_parser(), run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
