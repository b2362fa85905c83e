"""Evaluate: every model on the same split with the one protocol, into recs.eval_metrics.

`../shared/EVALUATION.md`: rank the whole catalogue minus the user's train items; NDCG@10,
Recall@20 (over min(k, |test|)), coverage@10, mean over users with test interactions. The
per-user formulas are `models.metrics`, the same code the JVM-free teacher evaluation uses.
Every model also gets the popularity-bias figures of `models.popularity_bias` (Gini index,
popularity percentile, tail share, novelty, tail NDCG/Recall), computed on the driver by that one
function from each model's top-20 lists. The served student's artifact is also ranked JVM-free at
every strength of its popularity correction (models/debias.py): the trade-off curve of NDCG@10
against tail share@10, rows `student@beta=<b>` and debiasing.png beside the report.

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
from collections.abc import Mapping
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
from models import metrics, popularity_bias
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
                    train: DataFrame | None = None, cold_scores: DataFrame | None = None,
                    popularity: Mapping[int, int] | None = None) -> dict[str, float]:
    """Protocol means over users with test interactions, each with its bootstrap interval
    (`<metric>:ci95`, see models.metrics.summarize); a user with no list scores zero.

    With `train`, also the cold-start figures: cold_recall@20 (recall@20 restricted to test items
    without train interactions, over the users that have such items) and cold_top20_share (the
    share of those cold test interactions in the top 20). With `cold_scores` too ((user_id,
    item_id, score) of the cold items), cold_only_recall@20: recall@20 when ranking only cold
    items, which only models that read item text can do. With `popularity` (item_popularity),
    the popularity-bias figures (models.popularity_bias) of the lists, collected to the driver.
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
    figures = {**metrics.summarize({k: v.tolist() for k, v in per_user.items()}, cold_hits),
               "coverage@10": top_10_items / catalogue_size,
               "evaluated_users": float(len(users))}
    if popularity is not None:
        figures.update(popularity_bias.bias_values(*_collected_lists(ranked, relevant), popularity))
    return figures


def _collected_lists(ranked: DataFrame, relevant: DataFrame) -> tuple[dict, dict]:
    """(user -> top-20 item ids, user -> test item ids) of every user of `relevant`, on the
    driver: one short list per evaluated user (empty for a user without one)."""
    rows = relevant.join(ranked, "user_id", "left").collect()
    return {r.user_id: r.ranked or [] for r in rows}, {r.user_id: r.relevant for r in rows}


def item_popularity(train: DataFrame, items: DataFrame) -> dict[int, int]:
    """item id -> train interactions of every catalogue item (0 for a cold item), on the driver."""
    counts = train.groupBy("item_id").agg(F.count(F.lit(1)).alias("interactions"))
    rows = (items.select("item_id").join(counts, "item_id", "left")
            .select("item_id", F.coalesce("interactions", F.lit(0))).collect())
    return dict(rows)


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
# The report's second table: how the lists spread over the catalogue.
BIAS_COLUMNS = ("coverage@10", *popularity_bias.METRICS)


def write_report(rows: list[tuple], lake: str, ds: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models import explanation_fidelity as fidelity

    frame = pd.DataFrame(rows, columns=COLUMNS)
    absent = frame[frame["metric"] == ABSENT]
    gains = frame[frame["model"] == GAIN]
    frame = frame[frame["model"] != GAIN]
    explained = frame["metric"].str.startswith(fidelity.PREFIX)
    explanations, frame = frame[explained], frame[~explained]
    on_curve = frame["model"].str.startswith(CURVE)
    curve, frame = frame[on_curve], frame[~on_curve]
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

    def markdown(columns: list[str]) -> list[str]:
        measured = [m for m in table.index if table.loc[m, columns].notna().any()]
        return (["| model | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
                + [f"| {m} | " + " | ".join(cell(m, c) for c in columns) + " |" for m in measured])

    bias = [m for m in BIAS_COLUMNS if m in table.columns]
    lines = [f"# Evaluation, ds={ds}", "",
             "Protocol: `../shared/EVALUATION.md` (whole catalogue minus the user's train items). "
             "Brackets: 95% bootstrap interval over users (1,000 resamples).",
             "", *markdown([m for m in table.columns if m not in bias])]
    if bias:
        lines += ["", "Popularity bias (definitions in `models/popularity_bias.py`; popularity: "
                  "train interactions; tail: the 80% least-popular items):", "", *markdown(bias)]
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
    if len(explanations):
        lines += ["", "Explanations of the served student (`recs.top_k.because`): removing the top "
                  "named history item, on a sample of rows (models/explanation_fidelity.py; 95% "
                  "bootstrap interval over rows):", ""]
        lines += [f"- {r.metric}: " + (f"{r.value:.4f} [{r.ci_low:.4f}, {r.ci_high:.4f}] "
                                       f"(target >= {fidelity.TARGETS[r.metric]})"
                                       if r.metric in fidelity.TARGETS else f"{r.value:,.0f}")
                  for r in explanations.itertuples()]
    if len(curve):
        lines += debias_report(curve, table, folder)
    lines += ["", "![chart](evaluation.png)", ""]
    report = folder / "evaluation.md"
    report.write_text("\n".join(lines))
    return str(report)


def metric_table(frame: pd.DataFrame, column: str = "value") -> pd.DataFrame:
    """model x metric of `column` (value, ci_low or ci_high), measured rows only."""
    return (frame[frame["metric"] != ABSENT]
            .pivot(index="model", columns="metric", values=column))


def debias_report(curve: pd.DataFrame, table: pd.DataFrame, folder) -> list[str]:
    """The popularity correction's trade-off curve (debias_rows) as debiasing.png, NDCG@10
    against tail share@10 with ALS and EASE marked and the served beta ringed; its report lines."""
    import matplotlib.pyplot as plt

    from models import debias

    axes = ("tail_share@10", "ndcg@10")
    points = {column: curve.pivot(index="model", columns="metric", values=column)
              for column in ("value", "ci_low", "ci_high")}
    betas = pd.Series({m: float(m.removeprefix(CURVE)) for m in points["value"].index}).sort_values()
    value = points["value"].loc[betas.index]
    served = set(curve.loc[curve["note"] == SERVED, "model"])
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.plot(value[axes[0]], value[axes[1]], marker="o", label="student, by beta")
    for model, beta in betas.items():
        ax.annotate(f"{beta:g}", (value.at[model, axes[0]], value.at[model, axes[1]]),
                    textcoords="offset points", xytext=(4, 4), fontsize=7)
    for model in served:
        ax.scatter(value.at[model, axes[0]], value.at[model, axes[1]], s=160, facecolors="none",
                   edgecolors="red", label=f"served (beta {betas[model]:g})", zorder=3)
    for model, marker, color in (("als", "s", "tab:green"), ("ease", "D", "tab:orange")):
        if model in table.index and table.loc[model, list(axes)].notna().all():
            ax.scatter(table.at[model, axes[0]], table.at[model, axes[1]], marker=marker,
                       color=color, label=model, zorder=3)
    # The target region: NDCG@10 within 2% of beta 0's (KEEP, auto's own floor) at twice or more
    # of its tail share.
    plain = value.loc[betas.index[0]]
    ax.axhline(debias.KEEP * plain[axes[1]], color="grey", linestyle=":", linewidth=1,
               label=f"{debias.KEEP:g} x beta 0's NDCG@10; 2 x its tail share")
    ax.axvline(2 * plain[axes[0]], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("tail share@10 (top-10 slots on the 80% least-popular items)")
    ax.set_ylabel("NDCG@10")
    ax.set_title("Popularity debiasing: score - beta x log(1 + train interactions)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "debiasing.png", dpi=120)
    plt.close(fig)

    def cell(model: str, metric: str) -> str:
        lo, hi = points["ci_low"].at[model, metric], points["ci_high"].at[model, metric]
        return f"{value.at[model, metric]:.4f} [{lo:.4f}, {hi:.4f}]"

    return ["", "Popularity debiasing (`models/debias.py`): the served student re-ranked on this "
            "split with score - beta x log(1 + train interactions). Its beta is chosen on the "
            "validation split (`recs distill --popularity-beta auto`); this curve only reports.",
            "", "| beta | ndcg@10 | tail_share@10 |", "|---|---|---|",
            *[f"| {beta:g}{' (served)' if model in served else ''} | {cell(model, axes[1])} | "
              f"{cell(model, axes[0])} |" for model, beta in betas.items()],
            "", "![debiasing](debiasing.png)"]



# ---------------------------------------------------------------------------------------------
# Job


def run(spark: SparkSession, args: argparse.Namespace) -> list[tuple]:
    train = read_partition(spark, args.lake, FEATURES_TRAIN, args.ds)
    test = read_partition(spark, args.lake, FEATURES_TEST, args.ds)
    require_rows(test, FEATURES_TEST, args.ds)
    items = read_partition(spark, args.lake, RAW_ITEMS, args.ds)
    catalogue_size = items.count()
    popularity = item_popularity(train, items)
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
                                 cold_item_scores(scores, train, items), popularity)
        log.info("student (recs.top_k): %s", values)
        rows += metric_rows(model_version, "student", values)
        rows += explanation_rows(args.lake, args.ds, model_version)
    else:
        rows.append(absent_row(model_version, "student",
                               f"recs.top_k has no rows for ds={args.ds}: run `recs score` first"))
    rows += distillation_rows(args, model_version)
    rows += debias_rows(args.lake, args.ds, model_version)
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
            values = ranking_metrics(baselines[name](), test, catalogue_size, train,
                                     popularity=popularity)
        log.info("%s: %s%s", name, values, f" ({note})" if note else "")
        rows += metric_rows(model_version, name, values, note)

    metrics_df = spark.createDataFrame(rows, "model_version string, model string, metric string, "
                                             "value double, ci_low double, ci_high double, note string")
    write_partition(metrics_df, args.lake, RECS_EVAL_METRICS, args.ds)
    report = write_report(rows, args.lake, args.ds)
    print(metric_table(pd.DataFrame(rows, columns=COLUMNS)).round(4).to_string())
    print(f"report: {report}")
    return rows


def explanation_rows(lake: str, ds: str, model_version: str) -> list[tuple]:
    """How faithful recs.top_k.because is (models.explanation_fidelity), as the served student's
    rows; an `absent` row when the partition has no explanations to measure."""
    from models.explanation_fidelity import explanation_fidelity

    values = explanation_fidelity(lake, ds, model_version)
    if values is None:
        return [absent_row(model_version, "student", f"recs.top_k ds={ds} has no explanations "
                           "(scored before they existed, or with --no-explain): their fidelity "
                           "is not measured")]
    log.info("explanation fidelity: %s", values)
    return metric_rows(model_version, "student", values)


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


CURVE = "student@beta="  # model name prefix of the debiasing curve's rows: student@beta=0.1
SERVED = "the served student's popularity_beta"  # the note on the served point's rows


def debias_rows(lake: str, ds: str, model_version: str) -> list[tuple]:
    """The popularity correction's trade-off on this split (models.evaluate_student.debias_curve):
    the served student artifact ranked at each beta, as models `student@beta=<b>` with ndcg@10
    and tail_share@10, the served beta's rows noted SERVED."""
    model_dir = artifact_dir(lake, model_version, "student")
    if not (model_dir / WEIGHTS).is_file():
        return [absent_row(model_version, CURVE.removesuffix("="), f"no student artifact at "
                           f"{model_dir}: the debiasing curve ranks with it")]
    from models.evaluate_student import debias_curve

    served, curve = debias_curve(model_dir, lake, ds)
    log.info("debiasing curve (served beta %g): %s", served, curve)
    return [row for beta, values in curve.items()
            for row in metric_rows(model_version, f"{CURVE}{beta:g}", values,
                                   SERVED if beta == served else None)]


def protocol_figures(values: dict) -> dict:
    """The figures every model reports (and their intervals), from a JVM-free evaluation."""
    keep = ("ndcg@10", "recall@20", "coverage@10", "cold_recall@20", "cold_top20_share",
            "cold_only_recall@20", "evaluated_users", *popularity_bias.METRICS)
    return {k: v for k, v in values.items() if k.removesuffix(metrics.INTERVAL) in keep}


def _protocol_task(lake: str, ds: str):
    """(catalogue, the protocol's ranking task, cold catalogue rows, train interactions of every
    catalogue row) from the JVM-free readers, for the baselines ranked on the driver."""
    import numpy as np

    from contract.delta_reader import read_partition as read_arrow
    from models.data import evaluation_task, load_catalogue, train_popularity

    catalogue = load_catalogue(lake, ds)
    task = evaluation_task(lake, ds, catalogue, read_arrow(lake, FEATURES_TEST, ds,
                                                           ["user_id", "item_id"]))
    popularity = train_popularity(lake, ds, catalogue)
    return catalogue, task, np.flatnonzero(popularity == 0), popularity


def _driver_figures(catalogue, task, cold_rows, popularity, full: dict, cold: dict | None = None
                    ) -> dict:
    relevant = {int(u): r.tolist() for u, r in zip(task.user_ids, task.relevant)}
    return {**metrics.evaluate(full, relevant, len(catalogue.item_ids), cold_rows.tolist(), cold),
            **popularity_bias.bias_values(full, relevant, dict(enumerate(popularity.tolist())))}


def tfidf_figures(lake: str, ds: str) -> dict:
    """The TF-IDF text baseline, ranked on the driver from the JVM-free readers."""
    from models.baselines import tfidf_rankings

    catalogue, task, cold_rows, popularity = _protocol_task(lake, ds)
    full, cold = tfidf_rankings(catalogue.texts, task, cold_rows)
    return _driver_figures(catalogue, task, cold_rows, popularity, full, cold)


def ease_figures(lake: str, ds: str) -> tuple[dict, str]:
    """(the EASE baseline's figures, a note with the lambda and the validation NDCG@10 of every
    lambda of the grid), ranked on the driver from the JVM-free readers.

    Lambda is chosen on the validation split of features.training_examples (each user's last
    train interactions), then EASE is refitted on every train interaction to rank the test users.
    """
    from models.baselines import Ease, choose_ease_lambda
    from models.data import read_examples, train_interactions, validation_task

    catalogue, task, cold_rows, popularity = _protocol_task(lake, ds)
    user_ids, rows = train_interactions(lake, ds, catalogue)
    n_items = len(catalogue.item_ids)
    train_groups, valid_groups = read_examples(lake, ds, catalogue)
    lam, grid = choose_ease_lambda(user_ids, rows, n_items, valid_groups,
                                   validation_task(train_groups, valid_groups))
    full = Ease(user_ids, rows, n_items).rankings(task, lam)
    note = (f"lambda {lam:g} chosen on validation NDCG@10: "
            + ", ".join(f"{k:g}: {v:.4f}" for k, v in grid.items()))
    return _driver_figures(catalogue, task, cold_rows, popularity, full), note


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
