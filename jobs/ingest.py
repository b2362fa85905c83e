"""Ingest: read a source, validate every row, write raw.interactions / raw.items / raw.quarantine.

Sources are read at the edge into "raw" frames of strings (so a bad value is kept, not lost to a
cast); `clean` is the pure part that parses, validates and routes each row either to its table or
to quarantine with a reason. Re-running a `ds` replaces that partition: idempotent. A run is
all-or-nothing for every reader of the raw tables, through its commit marker raw.ingest_runs
(`run`, `contract/ingest_runs.py`).

Every input row lands in its table or in raw.quarantine under the first check it failed
(`contract/tables.py` lists them in order): unreadable rows (invalid_encoding, malformed_row),
bad ids, unparseable or out-of-window times (--min-event-ts/--max-event-ts), bad or non-finite
ratings, unknown items, repeats. Of the item rows sharing an id, the one whose record (the row as
read, JSON) sorts first is kept; a later one is a `duplicate` when its values equal the kept
row's, else a `conflicting_duplicate`. An input whose every interaction is quarantined fails
before anything is written, unless --allow-all-quarantined.

    spark-submit jobs/ingest.py --lake L --ds D --source movielens --path DIR
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import uuid
from collections.abc import Callable

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from contract.args import positive_int, utc_time
from contract.ingest_runs import INGESTED, KEPT_IN, row_accounting_problems
from contract.tables import (
    RAW_INGEST_RUNS,
    RAW_INTERACTIONS,
    RAW_ITEMS,
    RAW_QUARANTINE,
    RAW_TAGS,
    Table,
)
from jobs.core.delta import (
    ensure_table,
    ingest_run,
    latest_version,
    spark_schema,
    write_partition,
)
from jobs.core.item_text import ranked_tags, with_text
from jobs.core.step import run_spark_step, step_parser
from jobs.sources import InputError, RawSource, read_source, synthetic
from jobs.sources.base import READ_CHECKS, READ_PROBLEM, READ_RECORD

log = logging.getLogger(__name__)



# ---------------------------------------------------------------------------------------------
# Pure transformations


# Microseconds in one unit of each epoch timestamp format.
EPOCH_UNITS = {"epoch_s": 1_000_000, "epoch_ms": 1_000}
UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _micros(moment: dt.datetime) -> int:
    return (moment - UNIX_EPOCH) // dt.timedelta(microseconds=1)


def _parse_timestamp(column: F.Column, timestamp_format: str,
                     event_window: tuple[dt.datetime, dt.datetime]) -> tuple[F.Column, F.Column]:
    """(event_ts, reason): invalid_timestamp when the text is no time in `timestamp_format`,
    timestamp_out_of_range when it is one outside `event_window` (both ends included)."""
    text = F.trim(column)
    low, high = (_micros(moment) for moment in event_window)
    if timestamp_format in EPOCH_UNITS:
        parsed = text.try_cast("long")
        unit = EPOCH_UNITS[timestamp_format]
        # Compared as numbers before any conversion, which a far-future number (epoch
        # milliseconds read as seconds, say) would overflow, failing the whole job.
        inside = parsed.between(-(-low // unit), high // unit)
        event_ts = F.when(inside, F.timestamp_micros(parsed * unit))
    else:
        parsed = (F.try_to_timestamp(text) if timestamp_format == "iso"
                  else F.try_to_timestamp(text, F.lit(timestamp_format)))
        inside = F.unix_micros(parsed).between(low, high)
        event_ts = F.when(inside, parsed)
    reason = F.when(parsed.isNull(), "invalid_timestamp").when(~inside, "timestamp_out_of_range")
    return event_ts, reason


def _read_check(df: DataFrame, column: str) -> F.Column:
    """A READ_CHECKS column of `df`, null for sources that have none."""
    return F.col(column) if column in df.columns else F.lit(None).cast("string")


def _record(df: DataFrame) -> F.Column:
    """The row as read, as JSON: the reader's record of a row it could not read, else its fields."""
    fields = [F.col(c) for c in df.columns if c not in READ_CHECKS]
    return F.coalesce(_read_check(df, READ_RECORD), F.to_json(F.struct(*fields)))


def _quarantined(df: DataFrame, source_table: str) -> DataFrame:
    return (df.where(F.col("reason").isNotNull())
            .select(F.lit(source_table).alias("source_table"), "reason", "record"))


def clean_items(raw_items: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(valid items without text yet, quarantine rows).

    Of the rows with one item id, the one whose record (the row as read, JSON) sorts first is
    kept, so a re-run keeps the same one; each other is a `duplicate` when its title, genres and
    description equal the kept row's, else a `conflicting_duplicate`.
    """
    parsed = raw_items.select(
        F.trim(F.col("item_id")).try_cast("long").alias("item_id"),
        F.coalesce(F.trim("title"), F.lit("")).alias("title"),
        F.coalesce("genres", F.array().cast("array<string>")).alias("genres"),
        F.col("description"),
        _record(raw_items).alias("record"),
        _read_check(raw_items, READ_PROBLEM).alias("reason"),
    )
    checked = parsed.withColumn("reason", F.coalesce(
        "reason", F.when(F.col("item_id").isNull(), "invalid_item_id")))
    # Rows that passed so far share a window per id (reason null); the others are left as they are.
    same_id = Window.partitionBy("item_id", "reason").orderBy("record")
    values = F.struct("title", "genres", "description")
    repeat = F.row_number().over(same_id) > 1
    routed = checked.withColumn("reason", F.coalesce("reason", F.when(
        repeat & values.eqNullSafe(F.first(values).over(same_id)), "duplicate")
        .when(repeat, "conflicting_duplicate")))
    return routed.where(F.col("reason").isNull()).drop("reason", "record"), _quarantined(routed, "items")


def clean_tags(raw_tags: DataFrame, items: DataFrame, timestamp_format: str,
               event_window: tuple[dt.datetime, dt.datetime]) -> tuple[DataFrame, DataFrame]:
    """(valid tag events: user_id, item_id, tag, event_ts; quarantine rows)."""
    event_ts, timestamp_problem = _parse_timestamp(F.col("timestamp"), timestamp_format,
                                                   event_window)
    parsed = raw_tags.select(
        F.trim(F.col("user_id")).try_cast("long").alias("user_id"),
        F.trim(F.col("item_id")).try_cast("long").alias("item_id"),
        F.lower(F.trim("tag")).alias("tag"),
        event_ts.alias("event_ts"),
        timestamp_problem.alias("timestamp_problem"),
        _record(raw_tags).alias("record"),
        _read_check(raw_tags, READ_PROBLEM).alias("read_problem"),
    )
    known = items.select("item_id", F.lit(True).alias("known"))
    routed = parsed.join(known, "item_id", "left").withColumn("reason", F.coalesce(
        "read_problem",
        F.when(F.col("user_id").isNull(), "invalid_user_id")
         .when(F.col("item_id").isNull(), "invalid_item_id")
         .when(F.col("timestamp_problem").isNotNull(), F.col("timestamp_problem"))
         .when(F.col("tag").isNull() | (F.col("tag") == ""), "invalid_tag")
         .when(F.col("known").isNull(), "unknown_item")))
    valid = routed.where(F.col("reason").isNull()).select("user_id", "item_id", "tag", "event_ts")
    return valid, _quarantined(routed, "tags")


def clean_interactions(raw: DataFrame, items: DataFrame, timestamp_format: str,
                       rating_range: tuple[float, float] | None,
                       event_window: tuple[dt.datetime, dt.datetime]
                       ) -> tuple[DataFrame, DataFrame]:
    """(valid interactions, quarantine rows). The first failing check names the reason."""
    event_ts, timestamp_problem = _parse_timestamp(F.col("timestamp"), timestamp_format,
                                                   event_window)
    parsed = raw.select(
        F.trim(F.col("user_id")).try_cast("long").alias("user_id"),
        F.trim(F.col("item_id")).try_cast("long").alias("item_id"),
        event_ts.alias("event_ts"),
        timestamp_problem.alias("timestamp_problem"),
        F.col("rating").alias("rating_text"),
        F.trim(F.col("rating")).try_cast("double").alias("rating"),
        _record(raw).alias("record"),
        _read_check(raw, READ_PROBLEM).alias("read_problem"),
    )
    known = items.select("item_id", F.lit(True).alias("known"))
    parsed = parsed.join(known, "item_id", "left")
    rating = F.col("rating")
    # NaN and the infinities parse as doubles (so do overflows such as 1e400) and would pass a
    # range check when there is none.
    non_finite = F.isnan(rating) | (F.abs(rating) == float("inf"))
    out_of_range = (F.lit(False) if rating_range is None
                    else (rating < rating_range[0]) | (rating > rating_range[1]))
    reason = F.coalesce(
        "read_problem",
        F.when(F.col("user_id").isNull(), "invalid_user_id")
         .when(F.col("item_id").isNull(), "invalid_item_id")
         .when(F.col("timestamp_problem").isNotNull(), F.col("timestamp_problem"))
         .when(F.col("rating_text").isNotNull() & rating.isNull(), "invalid_rating")
         .when(rating.isNotNull() & non_finite, "non_finite_rating")
         .when(rating.isNotNull() & out_of_range, "rating_out_of_range")
         .when(F.col("known").isNull(), "unknown_item"))
    routed = parsed.withColumn("reason", reason)
    same_event = Window.partitionBy("user_id", "item_id", "event_ts", "rating").orderBy("record")
    valid = routed.where(F.col("reason").isNull()).withColumn(
        "reason", F.when(F.row_number().over(same_event) > 1, "duplicate"))
    clean = valid.where(F.col("reason").isNull()).select("user_id", "item_id", "event_ts", "rating")
    quarantine = _quarantined(routed, "interactions").unionByName(_quarantined(valid, "interactions"))
    return clean, quarantine


def clean(source: RawSource, event_window: tuple[dt.datetime, dt.datetime]
          ) -> tuple[DataFrame, DataFrame, DataFrame, DataFrame]:
    """(interactions, items, tag events, quarantine) ready to write; events outside
    `event_window` are quarantined.

    raw.items.text holds every valid tag, whenever written; models read features.items, where
    build-training-set keeps only the tags that existed at the run's cut-off.
    """
    items, items_quarantine = clean_items(source.items)
    quarantine = items_quarantine
    tags = None
    if source.tags is not None:
        tags, tags_quarantine = clean_tags(source.tags, items, source.timestamp_format,
                                           event_window)
        quarantine = quarantine.unionByName(tags_quarantine)
    items_with_text = with_text(items, None if tags is None else ranked_tags(tags))
    interactions, interactions_quarantine = clean_interactions(
        source.interactions, items_with_text, source.timestamp_format, source.rating_range,
        event_window)
    if tags is None:
        tags = items.sparkSession.createDataFrame(
            [], "user_id long, item_id long, tag string, event_ts timestamp")
    return (interactions, items_with_text, tags,
            quarantine.unionByName(interactions_quarantine))


def event_window(args: argparse.Namespace) -> tuple[dt.datetime, dt.datetime]:
    """--min-event-ts to --max-event-ts; by default 1970-01-01 to ds + 1 day (00:00 UTC), the
    nightly's ds plus the hours it runs after midnight, with room to spare."""
    low = args.min_event_ts or UNIX_EPOCH
    high = args.max_event_ts or (dt.datetime.fromisoformat(args.ds).replace(tzinfo=dt.timezone.utc)
                                 + dt.timedelta(days=1))
    if low > high:
        raise InputError(f"--min-event-ts {low.isoformat()} is after --max-event-ts "
                         f"{high.isoformat()}: every event would be quarantined")
    return low, high


def require_kept_interactions(interactions: DataFrame, quarantine: DataFrame,
                              allow_all_quarantined: bool) -> None:
    """Fail before anything is written when validation kept no interaction: a wrong flag
    (`--timestamp-format`, a column) or a broken export far more often than a real input."""
    if allow_all_quarantined or not interactions.isEmpty():
        return
    reasons = (quarantine.where(F.col("source_table") == "interactions").groupBy("reason").count()
               .orderBy(F.desc("count"), "reason").collect())
    raise InputError("ingest quarantined every interactions row ("
                     + ", ".join(f"{r['reason']}: {r['count']}" for r in reasons)
                     + "); nothing written. Pass --allow-all-quarantined to write them anyway.")


# ---------------------------------------------------------------------------------------------
# Job


def run(spark: SparkSession, args: argparse.Namespace,
        after_commit: Callable[[str], None] = lambda table_name: None) -> dict:
    """Ingest one `ds`, all or nothing: every row is evaluated and counted before the first
    commit, and readers see the run only once its last commit, its raw.ingest_runs row, is made.
    `after_commit(table name)` runs after each commit: tests stop a run there."""
    source = read_source(spark, args)
    interactions, items, tags, quarantine = clean(source, event_window(args))
    # Kept, so that the counts evaluate each row once and the checks and writes reuse them.
    staged = {table: df.persist() for table, df in ((RAW_ITEMS, items), (RAW_TAGS, tags),
                                                    (RAW_INTERACTIONS, interactions),
                                                    (RAW_QUARANTINE, quarantine))}
    try:
        rows, reasons, input_rows = staged_counts(source, staged)
        require_kept_interactions(staged[RAW_INTERACTIONS], staged[RAW_QUARANTINE],
                                  args.allow_all_quarantined)
        commit(spark, args, staged, rows, input_rows, after_commit)
    finally:
        for df in staged.values():
            df.unpersist()
    return summarize(args.ds, rows, reasons)


def staged_counts(source: RawSource, staged: dict[Table, DataFrame]
                  ) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """(rows per raw table, quarantined rows per "source_table.reason", rows read per source
    table), counted before anything is written, so that a row Spark cannot evaluate (under a
    --timestamp-format it cannot parse, say) fails the run with nothing committed. Fails too when
    a source table's rows read are not its rows kept plus its rows quarantined."""
    rows = {table.name: df.count() for table, df in staged.items()}
    reasons, quarantined = {}, {}
    for r in (staged[RAW_QUARANTINE].groupBy("source_table", "reason").count()
              .orderBy("source_table", "reason").collect()):
        reasons[f"{r['source_table']}.{r['reason']}"] = r["count"]
        quarantined[r["source_table"]] = quarantined.get(r["source_table"], 0) + r["count"]
    read = {"interactions": source.interactions, "items": source.items, "tags": source.tags}
    input_rows = {name: 0 if df is None else df.count() for name, df in read.items()}
    kept = {name: rows[table.name] for name, table in KEPT_IN.items()}
    lost = row_accounting_problems(input_rows, kept, quarantined)
    if lost:
        raise RuntimeError("ingest does not account for every row it read; nothing written:\n  "
                           + "\n  ".join(lost))
    return rows, reasons, input_rows


def commit(spark: SparkSession, args: argparse.Namespace, staged: dict[Table, DataFrame],
           rows: dict[str, int], input_rows: dict[str, int],
           after_commit: Callable[[str], None]) -> None:
    """Replace `ds` in each raw table, then write its raw.ingest_runs row recording the versions
    written (`contract/ingest_runs.py`)."""
    run_id = uuid.uuid4().hex
    # The marker table exists before any raw write, so that readers never take a lake this run
    # stopped in for one that predates the marker.
    ensure_table(spark, args.lake, RAW_INGEST_RUNS)
    previous = ingest_run(spark, args.lake, args.ds)
    if previous is not None:
        # Before the first write: readers keep to the previous run's versions until this commits.
        write_run(spark, args, {**previous.asDict(), "pending_run_id": run_id,
                                "pending_since": dt.datetime.now(dt.timezone.utc)})
        after_commit(RAW_INGEST_RUNS.name)
    tables = []
    for table in INGESTED:
        write_partition(staged[table], args.lake, table, args.ds)
        tables.append((table.name, latest_version(spark, args.lake, table), rows[table.name]))
        after_commit(table.name)
    write_run(spark, args, {"run_id": run_id, "source": args.source,
                            "committed_at": dt.datetime.now(dt.timezone.utc), "tables": tables,
                            "input_rows": sorted(input_rows.items()), "pending_run_id": None,
                            "pending_since": None})
    after_commit(RAW_INGEST_RUNS.name)


def write_run(spark: SparkSession, args: argparse.Namespace, run: dict) -> None:
    """Replace raw.ingest_runs' row for `ds` with `run` (every column but ds)."""
    schema = T.StructType([f for f in spark_schema(RAW_INGEST_RUNS).fields if f.name != "ds"])
    write_partition(spark.createDataFrame([tuple(run[f.name] for f in schema.fields)], schema),
                    args.lake, RAW_INGEST_RUNS, args.ds)


def summarize(ds: str, rows: dict[str, int], reasons: dict[str, int]) -> dict:
    """What readers now see of `ds` (the counts the run committed): rows per raw table,
    quarantined rows per "source_table.reason"."""
    counts = {t.name: rows[t.name] for t in (RAW_INTERACTIONS, RAW_ITEMS, RAW_TAGS)}
    counts["quarantine"] = reasons
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
    parser.add_argument("--min-event-ts", type=utc_time, default=None,
                        help="Interactions and tags dated before this (YYYY-MM-DD or ISO 8601, "
                             "UTC unless it has an offset) are quarantined as "
                             "timestamp_out_of_range (default: 1970-01-01).")
    parser.add_argument("--max-event-ts", type=utc_time, default=None,
                        help="Interactions and tags dated after this are quarantined as "
                             "timestamp_out_of_range (default: ds + 1 day, 00:00 UTC; a backfill "
                             "of an old ds from a log that has grown since quarantines the "
                             "events after it).")
    parser.add_argument("--allow-all-quarantined", action="store_true",
                        help="Write the run even when every interactions row is quarantined "
                             "(otherwise ingest fails before writing anything).")
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
