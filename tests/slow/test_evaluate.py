"""Evaluate end to end on planted tastes: in-process Spark, but ALS makes it minutes."""

import pandas as pd

from contract.tables import RECS_EVAL_METRICS
from jobs import build_training_set, evaluate, ingest
from jobs.core.delta import read_partition
from models import popularity_bias

DS = "2026-11-22"


def test_synthetic_tastes_are_learnable_and_metrics_are_written(spark, tmp_path):
    """ALS beats popularity on the embedded data: the planted tastes are there to be learnt."""
    lake = str(tmp_path / "lake")
    ingest.run(spark, ingest.build_parser().parse_args(
        ["--lake", lake, "--ds", DS, "--synthetic-users", "150", "--synthetic-items", "200",
         "--synthetic-interactions", "25"]))
    build_training_set.run(spark, build_training_set.build_parser().parse_args(
        ["--lake", lake, "--ds", DS, "--holdout-fraction", "0.2"]))

    rows = evaluate.run(spark, evaluate.build_parser().parse_args(
        ["--lake", lake, "--ds", DS, "--als-rank", "16"]))

    frame = pd.DataFrame(rows, columns=evaluate.COLUMNS)
    ndcg = frame[frame.metric == "ndcg@10"].set_index("model")
    assert ndcg.at["als", "value"] > 1.3 * ndcg.at["popularity", "value"]
    # The planted tastes are in the item text too: the text baseline beats popularity.
    assert ndcg.at["tfidf", "value"] > ndcg.at["popularity", "value"]
    # So is EASE, and its lambda, chosen on the validation split, is recorded with the grid.
    assert ndcg.at["ease", "value"] > 1.3 * ndcg.at["popularity", "value"]
    ease_notes = set(frame[frame.model == "ease"].note)
    assert len(ease_notes) == 1 and ease_notes.pop().startswith("lambda ")
    # Every mean carries its bootstrap interval.
    assert ((ndcg.ci_low <= ndcg.value) & (ndcg.value <= ndcg.ci_high)).all()
    assert sorted(ndcg.index) == ["als", "ease", "popularity", "tfidf"]
    for model in ("als", "ease", "popularity", "tfidf"):
        assert {"ndcg@10", "recall@20", "coverage@10", "evaluated_users", "cold_recall@20",
                *popularity_bias.METRICS} <= set(frame[frame.model == model].metric)
    # The popularity baseline gives everyone the same few items: the most concentrated lists.
    gini = frame[frame.metric == "gini@10"].set_index("model").value
    assert gini.idxmax() == "popularity"
    # No recs.top_k, no teacher, no distillation ablation and no student artifact for the
    # debiasing curve here: each gets one `absent` row (with a note) instead of being dropped.
    absent = frame[frame.metric == evaluate.ABSENT]
    assert sorted(absent.model) == ["student", "student-no-teacher", "student@beta", "teacher"]
    assert absent.note.str.len().gt(0).all()
    written = read_partition(spark, lake, RECS_EVAL_METRICS, DS).count()
    assert written == len(rows)
