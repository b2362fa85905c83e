"""Evaluate: every model on the same split with the one protocol, into recs.eval_metrics.

`../shared/EVALUATION.md`: rank the whole catalogue minus the user's train items; NDCG@10,
Recall@20 (over min(k, |test|)), coverage@10, mean over users with test interactions. The
per-user formulas are `models.metrics`, the same code the JVM-free teacher evaluation uses.

Baselines computed here, in the same run on the same split: popularity, Spark ALS (implicit, the
reference settings) and EASE (lambda chosen on the validation split carved from train), which rank
only items seen in train, as the reference table does; and TF-IDF of the item text, which ranks
the whole catalogue.

    spark-submit jobs/evaluate.py --lake L --ds D
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from contract.args import positive_int
from contract.layout import artifact_dir, report_dir
from contract.tables import (
    FEATURES_TEST,
    FEATURES_TRAIN,
    RAW_ITEMS,
    RECS_EVAL_METRICS,
    RECS_SCORES,
    RECS_TOP_K,
)
from jobs.core.delta import read_partition, require_rows, write_partition
from jobs.core.step import run_spark_step, step_parser
from models import metrics
from models.safe_weights import WEIGHTS
from udfs.ranking_metrics import user_metrics_udf

log = logging.getLogger(__name__)

# popularity, ALS and EASE rank only items seen in train, as the reference table does; tfidf ranks
# the whole catalogue from point-in-time item text (the cold-start reference).
BASELINES = ("popularity", "als", "ease", "tfidf")
RANKED_DEPTH = 20  # Recall@20 is the deepest metric of the protocol
MAX_INT_ID = 2**31 - 1


@dataclass(frozen=True)
class AlsParams:
    """The reference settings of `../shared/EVALUATION.md`."""

    rank: int = 128
    reg_param: float = 0.1
    alpha: float = 40.0
    max_iter: int = 15
    seed: int = 42


# ---------------------------------------------------------------------------------------------
# Pure transformations: (user_id, rank, item_id, score) lists and their metrics


def _top_unseen(scored: DataFrame, train: DataFrame, k: int) -> DataFrame:
    """Keep each user's k best (user_id, item_id, score) rows that are not train items."""
    unseen = scored.join(train.select("user_id", "item_id"), ["user_id", "item_id"], "left_anti")
    best_first = Window.partitionBy("user_id").orderBy(F.desc("score"), "item_id")
    return (unseen.withColumn("rank", F.row_number().over(best_first))
            .where(F.col("rank") <= k).select("user_id", "rank", "item_id", "score"))


def _deepest_history(train: DataFrame) -> int:
    return train.groupBy("user_id").count().agg(F.max("count")).first()[0]


def popularity_top_k(train: DataFrame, users: DataFrame, k: int) -> DataFrame:
    # A user can own at most `deepest` of the popular items, so k + deepest always leaves k.
    pool = (train.groupBy("item_id").agg(F.count(F.lit(1)).cast("double").alias("score"))
            .orderBy(F.desc("score"), "item_id").limit(k + _deepest_history(train)))
    return _top_unseen(users.crossJoin(F.broadcast(pool)), train, k)


def als_top_k(train: DataFrame, k: int, params: AlsParams) -> DataFrame:
    from pyspark.ml.recommendation import ALS

    bounds = train.agg(F.max("user_id"), F.max("item_id"), F.min("user_id"), F.min("item_id")).first()
    if max(bounds[0], bounds[1]) > MAX_INT_ID or min(bounds[2], bounds[3]) < 0:
        raise ValueError("Spark ALS needs ids in [0, 2^31): re-key users/items before ingest")
    # Implicit feedback: each interaction is one unit of preference, whatever its rating.
    prefs = (train.groupBy("user_id", "item_id").agg(F.count(F.lit(1)).cast("float").alias("pref"))
             .select(F.col("user_id").cast("int"), F.col("item_id").cast("int"), "pref"))
    model = ALS(rank=params.rank, regParam=params.reg_param, alpha=params.alpha,
                maxIter=params.max_iter, implicitPrefs=True, userCol="user_id",
                itemCol="item_id", ratingCol="pref", seed=params.seed,
                coldStartStrategy="drop").fit(prefs)
    recs = (model.recommendForAllUsers(k + _deepest_history(train))
            .select(F.col("user_id").cast("long"), F.explode("recommendations").alias("r"))
            .select("user_id", F.col("r.item_id").cast("long").alias("item_id"),
                    F.col("r.rating").cast("double").alias("score")))
    return _top_unseen(recs, train, k)


def ranked_lists(top_k: DataFrame, depth: int = RANKED_DEPTH) -> DataFrame:
    """(user_id, rank, item_id) rows -> (user_id, ranked: item ids best first, top `depth`)."""
    return (top_k.where(F.col("rank") <= depth)
            .groupBy("user_id")
            .agg(F.sort_array(F.collect_list(F.struct("rank", "item_id"))).alias("r"))
            .select("user_id", F.transform("r", lambda x: x["item_id"]).alias("ranked")))


def _user_values(ranked: DataFrame, relevant: DataFrame) -> pd.DataFrame:
    """Per user of `relevant` (user_id, relevant): ndcg@10, recall@20 and hits in the top 20 of
    their list in `ranked` (a user without a list scores zero). Collected: one row per user."""
    user_metrics = user_metrics_udf()
    return (relevant.join(ranked, "user_id", "left")
            .select("user_id", F.coalesce("ranked", F.array().cast("array<long>")).alias("ranked"),
                    "relevant")
            .select("user_id", F.size("relevant").alias("held_out"),
                    user_metrics("ranked", "relevant").alias("m"))
            .select("user_id", "held_out", "m.ndcg", "m.recall", "m.hits")
            .toPandas())


def ranking_metrics(top_k: DataFrame, test: DataFrame, catalogue_size: int,
                    train: DataFrame | None = None, cold_scores: DataFrame | None = None
                    ) -> dict[str, float]:
    """Protocol means over users with test interactions, each with its bootstrap interval
    (`<metric>:ci95`, see models.metrics.summarize); a user with no list scores zero.

    With `train`, also the cold-start figures: cold_recall@20 (recall@20 restricted to test items
    without train interactions, over the users that have such items) and cold_top20_share (the
    share of those cold test interactions in the top 20). With `cold_scores` too ((user_id,
    item_id, score) of the cold items), cold_only_recall@20: recall@20 when ranking only cold
    items, which only models that read item text can do.
    """
    relevant = test.groupBy("user_id").agg(F.collect_set("item_id").alias("relevant"))
    ranked = ranked_lists(top_k)
    users = _user_values(ranked, relevant)
    per_user = {"ndcg@10": users["ndcg"], "recall@20": users["recall"]}
    cold_hits = []
    if train is not None:
        cold_relevant = (test.join(train.select("item_id").distinct(), "item_id", "left_anti")
                         .groupBy("user_id").agg(F.collect_set("item_id").alias("relevant")))
        cold = _user_values(ranked, cold_relevant)
        per_user["cold_recall@20"] = cold["recall"]
        cold_hits = list(zip(cold["hits"], cold["held_out"]))
        if cold_scores is not None:
            best_first = Window.partitionBy("user_id").orderBy(F.desc("score"), "item_id")
            cold_ranked = ranked_lists(cold_scores.withColumn("rank",
                                                              F.row_number().over(best_first)))
            per_user["cold_only_recall@20"] = _user_values(cold_ranked, cold_relevant)["recall"]
    top_10_items = (top_k.where(F.col("rank") <= 10).join(relevant.select("user_id"), "user_id")
                    .select("item_id").distinct().count())
    return {**metrics.summarize({k: v.tolist() for k, v in per_user.items()}, cold_hits),
            "coverage@10": top_10_items / catalogue_size,
            "evaluated_users": float(len(users))}


def cold_item_scores(scores: DataFrame, train: DataFrame, items: DataFrame) -> DataFrame:
    """The rows of `scores` whose item has no train interaction."""
    cold = items.select("item_id").join(train.select("item_id").distinct(), "item_id", "left_anti")
    return scores.join(F.broadcast(cold), "item_id")


COLUMNS = ["model_version", "model", "metric", "value", "ci_low", "ci_high", "note"]
ABSENT = "absent"  # the metric of the one row an unmeasured model gets, its note says why


def metric_rows(model_version: str, model: str, values: dict, note: str | None = None
                ) -> list[tuple]:
    """One row per metric, its bootstrap interval beside it (null for counts and coverage), each
    with `note` (e.g. the settings a baseline chose on validation)."""
    rows = []
    for metric, value in values.items():
        if metric.endswith(metrics.INTERVAL):
            continue
        low, high = values.get(metric + metrics.INTERVAL, (None, None))
        rows.append((model_version, model, metric, float(value), low, high, note))
    return rows


def absent_row(model_version: str, model: str, why: str) -> tuple:
    """A model that should have been measured but could not be: recorded, never silently dropped."""
    log.warning("%s not evaluated: %s", model, why)
    return (model_version, model, ABSENT, float("nan"), None, None, why)


# ---------------------------------------------------------------------------------------------
# Report (I/O edge)


REFERENCE = {"popularity": (0.087, 0.097), "als": (0.110, 0.146), "ease": (0.130, 0.166)}


def write_report(rows: list[tuple], lake: str, ds: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(rows, columns=COLUMNS)
    absent = frame[frame["metric"] == ABSENT]
    gains = frame[frame["model"] == GAIN]
    frame = frame[frame["model"] != GAIN]
    table = metric_table(frame)
    low, high = (metric_table(frame, column) for column in ("ci_low", "ci_high"))
    folder = report_dir(lake, ds)
    folder.mkdir(parents=True, exist_ok=True)

    shown = ["ndcg@10", "recall@20"]
    order = table["ndcg@10"].sort_values().index
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.6 * len(order)))
    # Error bars: each figure's 95% bootstrap interval over users.
    errors = [[(table - low).loc[order, m].fillna(0), (high - table).loc[order, m].fillna(0)]
              for m in shown]
    table.loc[order, shown].plot.barh(ax=ax, xerr=errors, capsize=3)
    for model, (ndcg, _) in REFERENCE.items():
        ax.axvline(ndcg, color="grey", linestyle=":", linewidth=1)
        ax.text(ndcg, len(order) - 0.5, f"ref {model}", rotation=90, fontsize=7, va="top")
    ax.set_title(f"Offline evaluation, ds={ds}\n(bars: 95% bootstrap intervals; dotted: "
                 "reference NDCG@10)", fontsize=9)
    ax.set_xlabel("value")
    fig.tight_layout()
    chart = folder / "evaluation.png"
    fig.savefig(chart, dpi=120)
    plt.close(fig)

    def cell(model: str, metric: str) -> str:
        value, lo, hi = table.at[model, metric], low.at[model, metric], high.at[model, metric]
        if pd.isna(value):
            return ""
        return f"{value:.4f}" + ("" if pd.isna(lo) else f" [{lo:.4f}, {hi:.4f}]")

    lines = [f"# Evaluation, ds={ds}", "",
             "Protocol: `../shared/EVALUATION.md` (whole catalogue minus the user's train items). "
             "Brackets: 95% bootstrap interval over users (1,000 resamples).",
             "", "| model | " + " | ".join(table.columns) + " |",
             "|---|" + "---|" * len(table.columns)]
    for model in table.index:
        lines.append(f"| {model} | " + " | ".join(cell(model, m) for m in table.columns) + " |")
    lines += ["", "Reference on ml-latest-small (NDCG@10 / Recall@20): "
              + ", ".join(f"{m} {n:.3f} / {r:.3f}" for m, (n, r) in REFERENCE.items()),
              ""]
    chosen = frame[(frame["metric"] != ABSENT) & frame["note"].notna()].drop_duplicates("model")
    for r in chosen.itertuples():
        lines += [f"Settings of **{r.model}**: {r.note}", ""]
    lines += [f"Not evaluated: **{r.model}**: {r.note}" for r in absent.itertuples()]
    if len(gains):
        lines += ["", "What distillation adds (served student minus the same student trained "
                  "without the teacher, same users; 95% paired bootstrap interval):", ""]
        lines += [f"- {r.metric}: {r.value:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}]"
                  for r in gains.itertuples()]
    lines += ["", "![chart](evaluation.png)", ""]
    report = folder / "evaluation.md"
    report.write_text("\n".join(lines))
    return str(report)


def metric_table(frame: pd.DataFrame, column: str = "value") -> pd.DataFrame:
    """model x metric of `column` (value, ci_low or ci_high), measured rows only."""
    return (frame[frame["metric"] != ABSENT]
            .pivot(index="model", columns="metric", values=column))



# ---------------------------------------------------------------------------------------------
# Job


def run(spark: SparkSession, args: argparse.Namespace) -> list[tuple]:
    train = read_partition(spark, args.lake, FEATURES_TRAIN, args.ds)
    test = read_partition(spark, args.lake, FEATURES_TEST, args.ds)
    require_rows(test, FEATURES_TEST, args.ds)
    items = read_partition(spark, args.lake, RAW_ITEMS, args.ds)
    catalogue_size = items.count()
    users = test.select("user_id").distinct()
    served = _served_top_k(spark, args.lake, args.ds)
    model_version = args.model_version or (served.first()["model_version"] if served else "none")

    rows = []
    if served is not None:
        # What nightly scoring wrote is what is measured: recs.top_k of the served student.
        # Cold-only ranking reads the student's scores of the cold items in recs.scores.
        scores = read_partition(spark, args.lake, RECS_SCORES, args.ds).where(
            F.col("model_version") == model_version)
        values = ranking_metrics(served, test, catalogue_size, train,
                                 cold_item_scores(scores, train, items))
        log.info("student (recs.top_k): %s", values)
        rows += metric_rows(model_version, "student", values)
    else:
        rows.append(absent_row(model_version, "student",
                               f"recs.top_k has no rows for ds={args.ds}: run `recs score` first"))
    rows += distillation_rows(args, model_version)
    teacher_dir = artifact_dir(args.lake, model_version, "teacher")
    if args.teacher and not (teacher_dir / WEIGHTS).is_file():
        rows.append(absent_row(model_version, "teacher", f"no teacher artifact at {teacher_dir} "
                               "(pass --no-teacher to skip it on purpose)"))
    elif args.teacher:
        from models.evaluate_teacher import evaluate_artifact
        from models.runtime import resolve_device

        values = evaluate_artifact(teacher_dir, args.lake, args.ds, resolve_device("auto"))
        rows += metric_rows(model_version, "teacher", protocol_figures(values))
    baselines = {"popularity": lambda: popularity_top_k(train, users, RANKED_DEPTH),
                 "als": lambda: als_top_k(train, RANKED_DEPTH, AlsParams(rank=args.als_rank))}
    for name in args.baselines:
        note = None
        if name == "tfidf":
            values = protocol_figures(tfidf_figures(args.lake, args.ds))
        elif name == "ease":
            values, note = ease_figures(args.lake, args.ds)
            values = protocol_figures(values)
        else:
            values = ranking_metrics(baselines[name](), test, catalogue_size, train)
        log.info("%s: %s%s", name, values, f" ({note})" if note else "")
        rows += metric_rows(model_version, name, values, note)

    metrics_df = spark.createDataFrame(rows, "model_version string, model string, metric string, "
                                             "value double, ci_low double, ci_high double, note string")
    write_partition(metrics_df, args.lake, RECS_EVAL_METRICS, args.ds)
    report = write_report(rows, args.lake, args.ds)
    print(metric_table(pd.DataFrame(rows, columns=COLUMNS)).round(4).to_string())
    print(f"report: {report}")
    return rows


GAIN = "distillation_gain"  # the model name of the paired (student - student-no-teacher) rows


def distillation_rows(args: argparse.Namespace, model_version: str) -> list[tuple]:
    """The no-teacher student's figures and the served student's paired gain over it.

    Evaluation runs train that ablation (`recs distill --no-teacher-ablation`, which `recs run`
    passes with --holdout-fraction); where it is missing the rows say so.
    """
    ablation = artifact_dir(args.lake, model_version, "student-no-teacher")
    if not (ablation / WEIGHTS).is_file():
        return [absent_row(model_version, "student-no-teacher",
                           f"no ablation artifact at {ablation}: run `recs distill "
                           "--no-teacher-ablation` to measure what the teacher adds")]
    from models.evaluate_student import distillation_gain

    rows = []
    for metric, gain in distillation_gain(args.lake, args.ds, model_version).items():
        rows.append((model_version, "student-no-teacher", metric, gain["no_teacher"],
                     *gain["no_teacher_ci"], None))
        rows.append((model_version, GAIN, metric, gain["difference"], gain["ci_low"],
                     gain["ci_high"], f"served student minus student-no-teacher, paired "
                     f"bootstrap over {gain['users']} users"))
        log.info("distillation gain in %s: %+.4f [%+.4f, %+.4f]", metric, gain["difference"],
                 gain["ci_low"], gain["ci_high"])
    return rows


def protocol_figures(values: dict) -> dict:
    """The figures every model reports (and their intervals), from a JVM-free evaluation."""
    keep = ("ndcg@10", "recall@20", "coverage@10", "cold_recall@20", "cold_top20_share",
            "cold_only_recall@20", "evaluated_users")
    return {k: v for k, v in values.items() if k.removesuffix(metrics.INTERVAL) in keep}


def _protocol_task(lake: str, ds: str):
    """(catalogue, the protocol's ranking task, cold catalogue rows) from the JVM-free readers,
    for the baselines ranked on the driver."""
    import numpy as np

    from contract.delta_reader import read_partition as read_arrow
    from models.data import evaluation_task, load_catalogue, train_item_ids

    catalogue = load_catalogue(lake, ds)
    task = evaluation_task(lake, ds, catalogue, read_arrow(lake, FEATURES_TEST, ds,
                                                           ["user_id", "item_id"]))
    cold_rows = np.flatnonzero(~np.isin(catalogue.item_ids, train_item_ids(lake, ds)))
    return catalogue, task, cold_rows


def _driver_figures(catalogue, task, cold_rows, full: dict, cold: dict | None = None) -> dict:
    relevant = {int(u): r.tolist() for u, r in zip(task.user_ids, task.relevant)}
    return metrics.evaluate(full, relevant, len(catalogue.item_ids), cold_rows.tolist(), cold)


def tfidf_figures(lake: str, ds: str) -> dict:
    """The TF-IDF text baseline, ranked on the driver from the JVM-free readers."""
    from models.baselines import tfidf_rankings

    catalogue, task, cold_rows = _protocol_task(lake, ds)
    full, cold = tfidf_rankings(catalogue.texts, task, cold_rows)
    return _driver_figures(catalogue, task, cold_rows, full, cold)


def ease_figures(lake: str, ds: str) -> tuple[dict, str]:
    """(the EASE baseline's figures, a note with the lambda and the validation NDCG@10 of every
    lambda of the grid), ranked on the driver from the JVM-free readers.

    Lambda is chosen on the validation split of features.training_examples (each user's last
    train interactions), then EASE is refitted on every train interaction to rank the test users.
    """
    from models.baselines import Ease, choose_ease_lambda
    from models.data import read_examples, train_interactions, validation_task

    catalogue, task, cold_rows = _protocol_task(lake, ds)
    user_ids, rows = train_interactions(lake, ds, catalogue)
    n_items = len(catalogue.item_ids)
    train_groups, valid_groups = read_examples(lake, ds, catalogue)
    lam, grid = choose_ease_lambda(user_ids, rows, n_items, valid_groups,
                                   validation_task(train_groups, valid_groups))
    full = Ease(user_ids, rows, n_items).rankings(task, lam)
    note = (f"lambda {lam:g} chosen on validation NDCG@10: "
            + ", ".join(f"{k:g}: {v:.4f}" for k, v in grid.items()))
    return _driver_figures(catalogue, task, cold_rows, full), note


def _served_top_k(spark: SparkSession, lake: str, ds: str) -> DataFrame | None:
    try:
        top = read_partition(spark, lake, RECS_TOP_K, ds)
    except FileNotFoundError:
        return None
    return top if top.limit(1).count() else None


def add_step_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-teacher", dest="teacher", action="store_false",
                        help="Skip ranking the catalogue with the teacher (slow on CPU).")
    parser.add_argument("--baselines", nargs="*", choices=list(BASELINES), default=list(BASELINES),
                        help="Baselines to compute on the same split (default: all of them): "
                             "popularity, Spark ALS, EASE (item-item closed form, lambda chosen "
                             "on the validation split of train) and TF-IDF of the item text.")
    parser.add_argument("--als-rank", type=positive_int, default=AlsParams.rank,
                        help="ALS factors (default: %(default)s, the reference setting).")


def build_parser() -> argparse.ArgumentParser:
    parser = step_parser("recs evaluate",
                         "Evaluate models and baselines on the held-out split into "
                         "recs.eval_metrics and a report under <lake>/reports/<ds>/.",
                         add_step_arguments)
    parser.add_argument("--model-version", default=None,
                        help="Version recorded with this run's metrics (default: the one in "
                             "recs.top_k for ds, else 'none').")
    return parser


def main(argv: list[str] | None = None) -> list[tuple]:
    return run_spark_step(build_parser(), run, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
