"""CSV or Parquet files with a column mapping given by flags (`--user-col`, `--item-col`, ...)."""

from __future__ import annotations

import argparse

from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.sources.base import (
    InputError,
    RawSource,
    read_checks,
    read_headed_csv,
    require_columns,
    require_file,
    require_rows,
    split_genres,
)


def read_tabular(spark: SparkSession, fmt: str, args: argparse.Namespace) -> RawSource:
    if not args.path or not args.items_path:
        raise InputError(f"--source {fmt} needs --path (interactions) and --items-path (items)")
    check_timestamp_format(spark, args.timestamp_format)

    def load(path: str, required: list[str]) -> DataFrame:
        if fmt == "csv":
            return read_headed_csv(spark, path, required)
        require_file(path)
        df = spark.read.parquet(path)
        require_columns(df.columns, path, required)
        return require_rows(df, path)

    interaction_cols = [args.user_col, args.item_col, args.timestamp_col]
    if args.rating_col:
        interaction_cols.append(args.rating_col)
    interactions = load(args.path, interaction_cols)
    text_cols = [c for c in (args.item_text_cols or "").split(",") if c]
    item_cols = [args.item_id_col, args.item_title_col, *text_cols]
    if args.item_genres_col:
        item_cols.append(args.item_genres_col)
    items = load(args.items_path, item_cols)

    timestamp_format = args.timestamp_format
    if dict(interactions.dtypes)[args.timestamp_col] in ("timestamp", "timestamp_ntz", "date"):
        timestamp_format = "iso"
    rating = (F.col(args.rating_col).cast("string") if args.rating_col
              else F.lit(None).cast("string"))
    description = (F.concat_ws(". ", *[F.col(c).cast("string") for c in text_cols])
                   if text_cols else F.lit(None).cast("string"))
    genres = (split_genres(args.item_genres_col) if args.item_genres_col
              else F.array().cast("array<string>"))
    rating_range = tuple(args.rating_range) if args.rating_range else None
    return RawSource(
        interactions=interactions.select(
            F.col(args.user_col).cast("string").alias("user_id"),
            F.col(args.item_col).cast("string").alias("item_id"),
            F.col(args.timestamp_col).cast("string").alias("timestamp"),
            rating.alias("rating"), *read_checks(interactions)),
        items=items.select(F.col(args.item_id_col).cast("string").alias("item_id"),
                           F.col(args.item_title_col).cast("string").alias("title"),
                           genres.alias("genres"), description.alias("description"),
                           *read_checks(items)),
        tags=None, timestamp_format=timestamp_format, rating_range=rating_range)


def check_timestamp_format(spark: SparkSession, timestamp_format: str) -> None:
    """Fail before anything is read when Spark rejects the pattern: otherwise the first action
    over the interactions fails with a multi-line Spark error naming neither flag nor value."""
    if timestamp_format in ("epoch_s", "epoch_ms", "iso"):
        return
    try:
        spark.range(1).select(F.try_to_timestamp(F.lit("1970-01-01"),
                                                 F.lit(timestamp_format))).collect()
    except PySparkException:
        raise InputError(f"--timestamp-format {timestamp_format!r} is neither epoch_s, epoch_ms, "
                         "iso nor a datetime pattern Spark accepts (https://spark.apache.org/docs/"
                         "latest/sql-ref-datetime-pattern.html)") from None
