"""What every source reader shares: the `RawSource` it returns, its errors, and checked file reads.

A source is read into frames of strings (so a bad value is kept for quarantine, not lost to a
cast); `jobs/ingest.py` parses and validates them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


class InputError(ValueError):
    """The source cannot be ingested at all (missing file, empty file, missing column)."""


@dataclass(frozen=True)
class RawSource:
    """A source read into strings. interactions: user_id, item_id, timestamp, rating.
    items: item_id, title, genres (array<string>), description. tags (optional): user_id,
    item_id, tag, timestamp (who tagged what when, so models can use a tag only once it exists)."""

    interactions: DataFrame
    items: DataFrame
    tags: DataFrame | None
    timestamp_format: str  # epoch_s | epoch_ms | iso | a Spark datetime pattern
    rating_range: tuple[float, float] | None


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def require_file(path: str) -> None:
    if not is_local(path):
        return
    local = path.removeprefix("file://")
    if not os.path.exists(local):
        raise InputError(f"input not found: {local}")
    if os.path.isfile(local) and os.path.getsize(local) == 0:
        raise InputError(f"input is empty: {local}")


def require_rows(df: DataFrame, path: str) -> DataFrame:
    if df.limit(1).count() == 0:
        raise InputError(f"input has no rows: {path}")
    return df


def require_columns(df: DataFrame, path: str, required: list[str]) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{path} lacks required column(s) {', '.join(missing)}; "
                         f"it has {', '.join(df.columns) or 'none'}")


def read_headed_csv(spark: SparkSession, path: str, required: list[str]) -> DataFrame:
    require_file(path)
    df = spark.read.option("header", True).option("escape", '"').csv(path)
    require_columns(df, path, required)
    return require_rows(df, path)


def read_headless(spark: SparkSession, path: str, sep: str, names: list[str],
                   encoding: str = "UTF-8") -> DataFrame:
    require_file(path)
    df = (spark.read.option("sep", sep).option("encoding", encoding)
          .option("quote", "\u0000").csv(path))
    if len(df.columns) < len(names):
        raise InputError(f"{path} has {len(df.columns)} columns, expected at least {len(names)} "
                         f"({', '.join(names)})")
    df = df.select([F.col(f"_c{i}").alias(name) for i, name in enumerate(names)])
    return require_rows(df, path)


def split_genres(column: str) -> F.Column:
    genres = F.split(F.col(column), r"\|")
    return F.filter(genres, lambda g: (g != "") & (g != "(no genres listed)"))
