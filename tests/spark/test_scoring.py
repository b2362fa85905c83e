
import numpy as np
import pytest

from contract.tables import RECS_CANDIDATES, RECS_MODEL_REGISTRY, RECS_SCORES, RECS_TOP_K
from jobs import build_training_set, generate_candidates, score
from jobs.core import registry
from jobs.core.delta import read_partition
from tests.conftest import make_student, same_rows, small_scoring_lake
from udfs.scoring import ScoringState

DS = "2026-11-22"


@pytest.fixture(scope="module")
def scored_lake(spark, tmp_path_factory):
    lake = small_scoring_lake(spark, str(tmp_path_factory.mktemp("scoring") / "lake"), DS,
                              users=12, items=30)
    make_student(lake, "v1", known_items=list(range(1, 21)), seed=1)
    generate_candidates.run(spark, generate_candidates.build_parser().parse_args(
        ["--lake", lake, "--ds", DS]))
    score.run(spark, score.build_parser().parse_args(
        ["--lake", lake, "--ds", DS, "--model-version", "v1", "--k", "3"]))
    return lake


def test_candidates_are_every_unseen_item(spark, scored_lake):
    candidates = read_partition(spark, scored_lake, RECS_CANDIDATES, DS)
    train = read_partition(spark, scored_lake, build_training_set.FEATURES_TRAIN, DS)
    users = train.select("user_id").distinct().count()
    assert candidates.count() == users * 30 - train.select("user_id", "item_id").distinct().count()
    assert candidates.join(train, ["user_id", "item_id"]).count() == 0


def test_udf_scores_equal_the_student_called_directly(spark, scored_lake):
    state = score.scoring_state(spark, scored_lake, DS, registry.student_dir(scored_lake, "v1"))
    rows = read_partition(spark, scored_lake, RECS_SCORES, DS).toPandas()
    users, items = rows["user_id"].to_numpy(), rows["item_id"].to_numpy()
    u = state.user_vecs[np.searchsorted(state.user_ids, users)]
    i = state.item_vecs[np.searchsorted(state.item_ids, items)]
    direct = ((u * i).sum(-1) / state.student.cfg.temperature).numpy()
    np.testing.assert_allclose(rows["score"].to_numpy(), direct, rtol=1e-6, atol=1e-6)
    assert set(rows["model_version"]) == {"v1"}


def test_top_k_is_the_best_k_scores_per_user(spark, scored_lake):
    scores = read_partition(spark, scored_lake, RECS_SCORES, DS).toPandas()
    top = read_partition(spark, scored_lake, RECS_TOP_K, DS).toPandas()
    expected = (scores.sort_values(["user_id", "score", "item_id"], ascending=[True, False, True])
                .groupby("user_id").head(3))
    assert sorted(zip(top.user_id, top.item_id)) == sorted(zip(expected.user_id, expected.item_id))
    assert set(top["rank"]) == {1, 2, 3}


def test_rescoring_a_ds_leaves_identical_tables_and_other_dates_alone(spark, scored_lake):
    before = read_partition(spark, scored_lake, RECS_SCORES, DS).toPandas()
    score.run(spark, score.build_parser().parse_args(
        ["--lake", scored_lake, "--ds", DS, "--model-version", "v1", "--k", "3"]))
    after = read_partition(spark, scored_lake, RECS_SCORES, DS).toPandas()
    assert same_rows(before, after)
    total = spark.read.format("delta").load(RECS_SCORES.path(scored_lake)).count()
    assert total == len(after)


def test_scoring_state_round_trips_through_its_broadcast_payload(spark, scored_lake):
    state = score.scoring_state(spark, scored_lake, DS, registry.student_dir(scored_lake, "v1"))
    again = ScoringState.from_payload(state.to_payload())
    users, items = state.user_ids[[0, 1]], state.item_ids[[5, 7]]
    np.testing.assert_array_equal(again.score_pairs(users, items), state.score_pairs(users, items))


def test_publish_gate_keeps_the_old_model_when_the_new_one_is_worse(spark, tmp_path):
    lake = str(tmp_path / "lake")
    make_student(lake, "good", [1], seed=1, valid_ndcg=0.20)
    make_student(lake, "worse", [1], seed=2, valid_ndcg=0.15)
    make_student(lake, "close", [1], seed=3, valid_ndcg=0.195)

    assert registry.publish(spark, lake, "2026-11-20", "good", 0.01)["decision"] == "published"
    rejected = registry.publish(spark, lake, "2026-11-21", "worse", 0.01)
    assert rejected["decision"] == "rejected" and "current model keeps serving" in rejected["reason"]
    assert registry.resolve_model_version(spark, lake, None) == "good"
    assert registry.publish(spark, lake, "2026-11-22", "close", 0.01)["decision"] == "published"
    assert registry.resolve_model_version(spark, lake, None) == "close"
    assert read_partition(spark, lake, RECS_MODEL_REGISTRY, "2026-11-21").count() == 1


def test_first_stage_keeps_unseen_top_items_when_all_pairs_are_too_many(spark, scored_lake):
    args = generate_candidates.build_parser().parse_args(
        ["--lake", scored_lake, "--ds", "2026-11-22", "--max-pairs", "10", "--first-stage-n", "4",
         "--popular-n", "2", "--model-version", "v1"])
    generate_candidates.run(spark, args)
    candidates = read_partition(spark, scored_lake, RECS_CANDIDATES, DS)
    train = read_partition(spark, scored_lake, build_training_set.FEATURES_TRAIN, DS)
    per_user = {r["count"] for r in candidates.groupBy("user_id").count().collect()}
    assert max(per_user) <= 6 and min(per_user) >= 4
    assert candidates.join(train, ["user_id", "item_id"]).count() == 0
    assert {r.source for r in candidates.select("source").distinct().collect()} == {"first_stage"}


def test_a_failed_scoring_run_leaves_the_previous_partition_readable(spark, scored_lake):
    from jobs.core.delta import write_partition

    before = read_partition(spark, scored_lake, RECS_SCORES, DS).toPandas()
    candidates = read_partition(spark, scored_lake, RECS_CANDIDATES, DS)
    # An item with no vector makes the UDF raise part-way through writing the new partition.
    poisoned = candidates.unionByName(spark.createDataFrame(
        [(1, 999_999, "all")], "user_id long, item_id long, source string"))
    write_partition(poisoned, scored_lake, RECS_CANDIDATES, DS)
    try:
        with pytest.raises(Exception, match="have no vector"):
            score.run(spark, score.build_parser().parse_args(
                ["--lake", scored_lake, "--ds", DS, "--model-version", "v1", "--k", "3"]))
        after = read_partition(spark, scored_lake, RECS_SCORES, DS).toPandas()
        assert same_rows(before, after)
    finally:
        write_partition(candidates.where("item_id != 999999"), scored_lake, RECS_CANDIDATES, DS)
