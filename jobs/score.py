"""Score every candidate pair with the student inside Spark; write recs.scores and recs.top_k.

    spark-submit jobs/score.py --lake L --ds D [--model-version V] [--k 100] [--no-explain]

Both tables are replaced for `ds` in one Delta commit each (`replaceWhere`): a re-run replaces
the partition, other dates are untouched, and a run that dies leaves the previous partition
readable. Scores never travel to the driver; top-k is ranked from the written scores, and only
its rows are explained (recs.top_k.because), so explanations cost K rows per user, not a pass
over every candidate.
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
from contract.tables import (
    FEATURES_ITEMS,
    FEATURES_USER_HISTORY,
    RECS_CANDIDATES,
    RECS_SCORES,
    RECS_TOP_K,
)
from jobs.core.delta import read_partition, require_rows, write_partition
from jobs.core.registry import resolve_model_version, student_dir
from jobs.core.step import run_spark_step, step_parser

log = logging.getLogger(__name__)


def scoring_state(spark: SparkSession, lake: str, ds: str, model_dir: Path):
    """The student plus this run's item and user vectors, built once on the driver."""
    from transformers import AutoTokenizer

    from contract.delta_reader import padded_lists
    from models.data import Catalogue
    from models.student import load_student
    from udfs.scoring import build_state

    student, _ = load_student(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), use_fast=True)
    items = (read_partition(spark, lake, FEATURES_ITEMS, ds).select("item_id", "text")
             .orderBy("item_id").toArrow())
    catalogue = Catalogue(items["item_id"].to_numpy().astype(np.int64),
                          [t or "" for t in items["text"].to_pylist()])
    tokens = tokenizer(catalogue.texts, truncation=True, max_length=student.cfg.max_item_tokens,
                       padding="max_length", return_tensors="np")["input_ids"].astype(np.int64)
    histories = (read_partition(spark, lake, FEATURES_USER_HISTORY, ds)
                 .select("user_id", "history_item_ids").toArrow())
    history_rows = catalogue.rows(padded_lists(histories["history_item_ids"],
                                               student.cfg.max_history), "history items")
    return build_state(student, catalogue.item_ids, tokens,
                       histories["user_id"].to_numpy().astype(np.int64), history_rows)


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


def run(spark: SparkSession, args: argparse.Namespace) -> dict:
    from udfs.scoring import SharedState, explanation_udf, pair_score_udf

    version = resolve_model_version(spark, args.lake, args.model_version)
    candidates = read_partition(spark, args.lake, RECS_CANDIDATES, args.ds)
    require_rows(candidates, RECS_CANDIDATES, args.ds)
    state = scoring_state(spark, args.lake, args.ds, student_dir(args.lake, version))
    shared = SharedState(spark.sparkContext, state)
    try:
        write_partition(score_pairs(candidates, pair_score_udf(shared), version),
                        args.lake, RECS_SCORES, args.ds)
        scores = read_partition(spark, args.lake, RECS_SCORES, args.ds)
        explain = explanation_udf(shared) if args.explain else None
        write_partition(top_k(scores, args.k, explain), args.lake, RECS_TOP_K, args.ds)
    finally:
        shared.destroy()
    counts = {t.name: read_partition(spark, args.lake, t, args.ds).count()
              for t in (RECS_SCORES, RECS_TOP_K)}
    log.info("score ds=%s model %s: %s", args.ds, version, counts)
    return counts


def add_step_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-version", default=None,
                        help="Model to score with (default: the current published model of "
                             "recs.model_registry).")
    parser.add_argument("--k", type=positive_int, default=100,
                        help="Items kept per user in recs.top_k (default: %(default)s).")
    parser.add_argument("--no-explain", dest="explain", action="store_false",
                        help="Leave recs.top_k.because null instead of naming the history items "
                             "behind each recommendation (to measure what explaining costs).")


def build_parser() -> argparse.ArgumentParser:
    return step_parser("recs score", "Score recs.candidates with the student in a pandas UDF "
                       "into recs.scores and recs.top_k for one run date.", add_step_arguments)


def main(argv: list[str] | None = None) -> dict:
    return run_spark_step(build_parser(), run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
