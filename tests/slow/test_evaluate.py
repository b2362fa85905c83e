"""Evaluate end to end on planted tastes: in-process Spark, but ALS makes it minutes."""

from contract.tables import FEATURES_TEST, FEATURES_TRAIN, RECS_EVAL_METRICS
from jobs import build_training_set, evaluate, ingest
from jobs.core.delta import read_partition

DS = "2026-11-22"


def test_synthetic_tastes_are_learnable_and_metrics_are_written(spark, tmp_path):
    """ALS beats popularity on the embedded data: the planted tastes are there to be learnt."""
    lake = str(tmp_path / "lake")
    ingest.run(spark, ingest.build_parser().parse_args(
        ["--lake", lake, "--ds", DS, "--synthetic-users", "150", "--synthetic-items", "200",
         "--synthetic-interactions", "25"]))
    train, test = build_training_set.split_train_test(
        build_training_set.before_run_date(
            read_partition(spark, lake, ingest.RAW_INTERACTIONS, DS), DS), 0.2)
    from jobs.core.delta import write_partition

    write_partition(train, lake, FEATURES_TRAIN, DS)
    write_partition(test, lake, FEATURES_TEST, DS)

    rows = evaluate.run(spark, evaluate.build_parser().parse_args(
        ["--lake", lake, "--ds", DS, "--als-rank", "16"]))

    ndcg = {model: value for _, model, metric, value, _ in rows if metric == "ndcg@10"}
    assert ndcg["als"] > 1.3 * ndcg["popularity"]
    # Five metrics for each baseline; no recs.top_k and no teacher here, so the student and the
    # teacher each get one `absent` row (with a note) instead of being dropped.
    assert sorted((model, metric) for _, model, metric, _, _ in rows) == sorted(
        [(model, metric) for model in ("als", "popularity")
         for metric in ("ndcg@10", "recall@20", "coverage@10", "evaluated_users",
                        "cold_recall@20")]
        + [("student", evaluate.ABSENT), ("teacher", evaluate.ABSENT)])
    written = read_partition(spark, lake, RECS_EVAL_METRICS, DS).count()
    assert written == len(rows) == 12
