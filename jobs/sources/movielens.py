"""MovieLens in its three layouts: latest / latest-small (CSV), 1M (`::`-separated), 100K."""

from __future__ import annotations

import logging
import os

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.sources.base import (
    InputError,
    RawSource,
    read_checks,
    read_headed_csv,
    read_headless,
    split_genres,
)

log = logging.getLogger(__name__)

ML_100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                  "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                  "Romance", "Sci-Fi", "Thriller", "War", "Western"]



def detect_movielens_variant(path: str) -> str:
    if not os.path.isdir(path):
        raise InputError(f"MovieLens directory not found: {path}")
    present = set(os.listdir(path))
    for variant, needed in (("latest", {"ratings.csv", "movies.csv"}),
                            ("1m", {"ratings.dat", "movies.dat"}),
                            ("100k", {"u.data", "u.item"})):
        if needed <= present:
            return variant
    raise InputError(f"{path} is not a MovieLens directory: expected ratings.csv + movies.csv "
                     "(latest), ratings.dat + movies.dat (1M) or u.data + u.item (100K)")


def read_movielens(spark: SparkSession, path: str) -> RawSource:
    variant = detect_movielens_variant(path)
    log.info("MovieLens variant %s at %s", variant, path)
    join = os.path.join
    if variant == "latest":
        ratings = read_headed_csv(spark, join(path, "ratings.csv"),
                                   ["userId", "movieId", "rating", "timestamp"])
        movies = read_headed_csv(spark, join(path, "movies.csv"), ["movieId", "title", "genres"])
        tags = None
        if os.path.exists(join(path, "tags.csv")):
            tags = read_headed_csv(spark, join(path, "tags.csv"),
                                   ["userId", "movieId", "tag", "timestamp"])
            tags = tags.select(F.col("userId").alias("user_id"), F.col("movieId").alias("item_id"),
                               "tag", "timestamp", *read_checks(tags))
        return RawSource(
            interactions=ratings.select(F.col("userId").alias("user_id"),
                                        F.col("movieId").alias("item_id"), "timestamp", "rating",
                                        *read_checks(ratings)),
            items=movies.select(F.col("movieId").alias("item_id"), "title",
                                split_genres("genres").alias("genres"),
                                F.lit(None).cast("string").alias("description"),
                                *read_checks(movies)),
            tags=tags, timestamp_format="epoch_s", rating_range=(0.5, 5.0))
    if variant == "1m":
        latin1 = "ISO-8859-1"
        ratings = read_headless(spark, join(path, "ratings.dat"), "::",
                                 ["user_id", "item_id", "rating", "timestamp"], latin1)
        movies = read_headless(spark, join(path, "movies.dat"), "::",
                                ["item_id", "title", "genres"], latin1)
        return RawSource(
            interactions=ratings.select("user_id", "item_id", "timestamp", "rating",
                                        *read_checks(ratings)),
            items=movies.select("item_id", "title", split_genres("genres").alias("genres"),
                                F.lit(None).cast("string").alias("description"),
                                *read_checks(movies)),
            tags=None, timestamp_format="epoch_s", rating_range=(1.0, 5.0))
    latin1 = "ISO-8859-1"
    ratings = read_headless(spark, join(path, "u.data"), "\t",
                             ["user_id", "item_id", "rating", "timestamp"])
    flags = [f"g{i}" for i in range(len(ML_100K_GENRES))]
    movies = read_headless(spark, join(path, "u.item"), "|",
                            ["item_id", "title", "release", "video_release", "url", *flags], latin1)
    genres = F.filter(F.array(*[F.when(F.col(f) == "1", F.lit(g)) for f, g in
                                zip(flags, ML_100K_GENRES)]), lambda g: g.isNotNull())
    return RawSource(
        interactions=ratings.select("user_id", "item_id", "timestamp", "rating",
                                    *read_checks(ratings)),
        items=movies.select("item_id", "title", genres.alias("genres"),
                            F.lit(None).cast("string").alias("description"),
                            *read_checks(movies)),
        tags=None, timestamp_format="epoch_s", rating_range=(1.0, 5.0))
