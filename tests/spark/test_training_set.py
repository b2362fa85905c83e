import datetime as dt
import shutil

import pytest
from pyspark.sql import functions as F

from contract.tables import FEATURES_EXAMPLES, FEATURES_TEST, FEATURES_TRAIN, FEATURES_USER_HISTORY
from jobs import build_training_set as bts
from jobs import ingest
from jobs.core.delta import read_partition

DS = "2026-11-22"


def events(spark, rows):
    return spark.createDataFrame(
        [(u, i, dt.datetime(2026, 1, 1) + dt.timedelta(seconds=s), None) for u, i, s in rows],
        "user_id long, item_id long, event_ts timestamp, rating double")


def test_split_follows_the_protocol_on_a_hand_made_user(spark):
    # User 1: 10 interactions, ties broken by item id: (1@800) precedes (9@800).
    user_1 = [(1, 20, 100), (1, 21, 200), (1, 22, 300), (1, 23, 400), (1, 24, 500),
              (1, 25, 600), (1, 26, 700), (1, 9, 800), (1, 1, 800), (1, 4, 900)]
    user_2 = [(2, 20, 100), (2, 21, 200), (2, 22, 300), (2, 23, 400)]  # < 5: all train
    user_3 = [(3, 20, 100), (3, 21, 200), (3, 22, 300), (3, 23, 400), (3, 24, 400)]
    train, test = bts.split_train_test(events(spark, user_1 + user_2 + user_3), 0.2)

    assert sorted((r.user_id, r.item_id) for r in test.collect()) == [(1, 4), (1, 9), (3, 24)]
    assert train.count() == 10 + 4 + 5 - 3


def test_nightly_mode_uses_everything_strictly_before_the_run_date(spark):
    df = spark.createDataFrame(
        [(1, 1, dt.datetime(2026, 11, 21, 23, 59, 59)), (1, 2, dt.datetime(2026, 11, 22, 0, 0)),
         (1, 3, dt.datetime(2026, 11, 23, 8, 0))], "user_id long, item_id long, event_ts timestamp")
    train, test = bts.split_train_test(bts.before_run_date(df, DS), None)
    assert [r.item_id for r in train.collect()] == [1]
    assert test.count() == 0


@pytest.fixture(scope="module")
def synthetic_lake(spark, tmp_path_factory):
    lake = str(tmp_path_factory.mktemp("synthetic") / "lake")
    ingest.run(spark, ingest.build_parser().parse_args(
        ["--lake", lake, "--ds", DS, "--synthetic-users", "40", "--synthetic-items", "120",
         "--synthetic-interactions", "15"]))
    bts.run(spark, bts.build_parser().parse_args(
        ["--lake", lake, "--ds", DS, "--holdout-fraction", "0.2", "--history-length", "5",
         "--negatives", "3"]))
    return lake


def test_no_leakage(spark, synthetic_lake):
    lake = synthetic_lake
    examples = read_partition(spark, lake, FEATURES_EXAMPLES, DS)
    train = read_partition(spark, lake, FEATURES_TRAIN, DS)
    test = read_partition(spark, lake, FEATURES_TEST, DS)
    histories = read_partition(spark, lake, FEATURES_USER_HISTORY, DS)
    # Seeded generator and sampler: 656 events, 115 held out; 501 groups of 1 + 3 negatives.
    assert (test.count(), examples.count()) == (115, 2004)

    # Every history item was interacted with strictly before its target.
    history = examples.select("user_id", "target_ts", F.explode("history_item_ids").alias("item_id"))
    timed = history.join(train.select("user_id", "item_id", "event_ts"), ["user_id", "item_id"])
    assert timed.count() == history.count()
    assert timed.where(F.col("event_ts") >= F.col("target_ts")).count() == 0

    # No test interaction appears in any feature: not as a positive nor as a history item.
    # (A sampled negative may coincide with a test item: avoiding that would consult the test set.)
    test_pairs = test.select("user_id", "item_id")
    positives = examples.where("label = 1")
    assert positives.join(test_pairs, ["user_id", "item_id"]).count() == 0
    assert history.join(test_pairs, ["user_id", "item_id"]).count() == 0
    served = histories.select("user_id", F.explode("history_item_ids").alias("item_id"))
    assert served.join(test_pairs, ["user_id", "item_id"]).count() == 0
    assert train.join(test_pairs, ["user_id", "item_id"]).count() == 0


def test_negatives_are_never_train_positives_and_groups_are_complete(spark, synthetic_lake):
    examples = read_partition(spark, synthetic_lake, FEATURES_EXAMPLES, DS)
    train = read_partition(spark, synthetic_lake, FEATURES_TRAIN, DS)
    negatives = examples.where("label = 0").select("user_id", "item_id")
    assert negatives.join(train.select("user_id", "item_id"), ["user_id", "item_id"]).count() == 0
    sizes = {(r.label, r["count"]) for r in
             examples.groupBy("example_group").agg(F.sum("label").alias("label"),
                                                   F.count(F.lit(1)).alias("count")).collect()}
    assert sizes == {(1, 4)}
    texts = examples.where(F.size("history_texts") != F.size("history_item_ids"))
    assert texts.count() == 0


def test_training_set_is_deterministic_for_a_seed(spark, synthetic_lake, tmp_path):
    again = str(tmp_path / "again")
    # The raw tables as ingest committed them: with their versions and raw.ingest_runs.
    shutil.copytree(f"{synthetic_lake}/raw", f"{again}/raw")
    bts.run(spark, bts.build_parser().parse_args(
        ["--lake", again, "--ds", DS, "--holdout-fraction", "0.2", "--history-length", "5",
         "--negatives", "3"]))
    first = read_partition(spark, synthetic_lake, FEATURES_EXAMPLES, DS)
    second = read_partition(spark, again, FEATURES_EXAMPLES, DS)
    assert first.count() == second.count()
    assert first.exceptAll(second).count() == 0


@pytest.mark.shared
def test_ml_latest_small_counts(spark, lake, ml_latest_small):
    argv = ["--lake", lake, "--ds", DS, "--source", "movielens", "--path", ml_latest_small]
    first = ingest.run(spark, ingest.build_parser().parse_args(argv))
    again = ingest.run(spark, ingest.build_parser().parse_args(argv))
    assert first["raw.interactions"] == again["raw.interactions"] == 100_836
    assert first["raw.items"] == again["raw.items"] == 9_742

    counts = bts.run(spark, bts.build_parser().parse_args(
        ["--lake", lake, "--ds", DS, "--holdout-fraction", "0.2"]))
    assert counts["features.train_interactions"] == 80_896
    assert counts["features.test_interactions"] == 19_940
