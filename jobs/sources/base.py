"""What every source reader shares: the `RawSource` it returns, its errors, and checked file reads.

A source is read into frames of strings (so a bad value is kept for quarantine, not lost to a
cast); `jobs/ingest.py` parses and validates them.
"""

from __future__ import annotations

import operator
import os
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType


class InputError(ValueError):
    """The source cannot be ingested at all (missing file, empty file, missing column)."""


@dataclass(frozen=True)
class RawSource:
    """A source read into strings. interactions: user_id, item_id, timestamp, rating.
    items: item_id, title, genres (array<string>), description. tags (optional): user_id,
    item_id, tag, timestamp (who tagged what when, so models can use a tag only once it exists).
    CSV sources also carry READ_CHECKS: what was wrong with a row before its values were read."""

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


def require_columns(columns: list[str], path: str, required: list[str]) -> None:
    missing = [c for c in required if c not in columns]
    if missing:
        raise InputError(f"{path} lacks required column(s) {', '.join(missing)}; "
                         f"it has {', '.join(columns) or 'none'}")


# What a CSV reader found wrong with a row before any value was looked at: the quarantine reason
# (invalid_encoding, malformed_row) and the row as read, for raw.quarantine.record. Null on rows
# read cleanly; absent from sources that cannot have such rows (parquet, synthetic).
READ_PROBLEM, READ_RECORD = "_read_problem", "_read_record"
READ_CHECKS = (READ_PROBLEM, READ_RECORD)
_CORRUPT = "_corrupt_record"
_LATIN1 = "ISO-8859-1"


def read_checks(df: DataFrame) -> list[str]:
    """The read-check columns `df` carries, for a reader's select to pass them through."""
    return [c for c in READ_CHECKS if c in df.columns]


def read_headed_csv(spark: SparkSession, path: str, required: list[str]) -> DataFrame:
    """An RFC 4180 CSV with a header: quoted fields may hold the separator, `""` and newlines."""
    require_file(path)
    reader = (spark.read.option("quote", '"').option("escape", '"').option("multiLine", True)
              .option("encoding", _LATIN1))
    names = [_utf8_name(c) for c in reader.option("header", True).csv(path).columns]
    require_columns(names, path, required)
    df = _checked_csv(reader.option("header", True), path, names, utf8=True)
    return require_rows(df, path)


def read_headless(spark: SparkSession, path: str, sep: str, names: list[str],
                  encoding: str = "UTF-8") -> DataFrame:
    """A separated file without header or quoting (MovieLens 1M and 100K)."""
    require_file(path)
    utf8 = encoding.upper().replace("-", "") == "UTF8"
    reader = (spark.read.option("sep", sep).option("quote", "\u0000")
              .option("encoding", _LATIN1 if utf8 else encoding))
    found = len(reader.csv(path).columns)
    if found < len(names):
        raise InputError(f"{path} has {found} columns, expected at least {len(names)} "
                         f"({', '.join(names)})")
    return require_rows(_checked_csv(reader, path, names, utf8), path)


def _utf8_name(latin1: str) -> str:
    # Files saved by spreadsheet tools often start with a UTF-8 byte-order mark: it belongs to
    # no column name.
    return latin1.encode("latin-1").decode("utf-8", errors="replace").removeprefix("\ufeff")


def _checked_csv(reader, path: str, names: list[str], utf8: bool) -> DataFrame:
    """`names` as strings plus READ_PROBLEM and READ_RECORD.

    A row with more or fewer fields than `names` is malformed_row (Spark's PERMISSIVE mode hands
    its text over in the corrupt-record column). A UTF-8 file is read as Latin-1, which maps
    every byte to one character, so invalid UTF-8 survives the read as the bytes it was and is
    found here (invalid_encoding, with those bytes in base64) instead of turning into U+FFFD.
    """
    columns = [*names, _CORRUPT]
    df = (reader.option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", _CORRUPT)
          .schema(StructType([StructField(c, StringType()) for c in columns])).csv(path))
    malformed = F.col(_CORRUPT).isNotNull()
    if not utf8:
        return df.select(*names, F.when(malformed, "malformed_row").alias(READ_PROBLEM),
                         F.when(malformed, F.to_json(F.struct(F.col(_CORRUPT).alias("line"))))
                         .alias(READ_RECORD))
    as_read = {c: F.encode(F.col(c), _LATIN1) for c in columns}  # the file's own bytes
    text = {c: F.make_valid_utf8(b.cast("string")) for c, b in as_read.items()}
    invalid = {c: F.coalesce(~F.is_valid_utf8(b.cast("string")), F.lit(False))
               for c, b in as_read.items()}
    undecodable = F.map_filter(  # field (or "line") -> its bytes in base64, invalid ones only
        F.create_map(*[part for c in columns for part in
                       (F.lit("line" if c == _CORRUPT else c),
                        F.when(invalid[c], F.base64(as_read[c])))]),
        lambda _, value: value.isNotNull())
    any_invalid = reduce(operator.or_, invalid.values())
    line = text[_CORRUPT].alias("line")
    problem = F.when(any_invalid, "invalid_encoding").when(malformed, "malformed_row")
    record = (F.when(any_invalid, F.to_json(F.struct(
                  F.struct(*[text[n].alias(n) for n in names]).alias("fields"), line,
                  undecodable.alias("base64"))))
              .when(malformed, F.to_json(F.struct(line))))
    return df.select(*[text[n].alias(n) for n in names], problem.alias(READ_PROBLEM),
                     record.alias(READ_RECORD))


def split_genres(column: str) -> F.Column:
    genres = F.split(F.col(column), r"\|")
    return F.filter(genres, lambda g: (g != "") & (g != "(no genres listed)"))
