import math

import pytest

from jobs import evaluate
from models import metrics

DS = "2026-11-22"


def test_metrics_follow_the_protocol_on_literal_lists(spark):
    top_k = spark.createDataFrame(
        [(1, 1, 5, 0.9), (1, 2, 3, 0.8), (1, 3, 9, 0.7), (3, 1, 5, 0.5)],
        "user_id long, rank int, item_id long, score double")
    # User 2 has test items but no list: it counts, with zeros. User 3 has no test: not evaluated.
    test = spark.createDataFrame([(1, 3), (1, 7), (2, 4)], "user_id long, item_id long")

    got = evaluate.ranking_metrics(top_k, test, catalogue_size=10)

    user_1_ndcg = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert got["ndcg@10"] == pytest.approx(user_1_ndcg / 2)
    assert got["recall@20"] == pytest.approx(0.5 / 2)
    assert got["coverage@10"] == pytest.approx(3 / 10)  # items 5, 3, 9 of evaluated users only
    assert got["evaluated_users"] == 2
    assert "cold_recall@20" not in got


def test_cold_recall_counts_only_items_without_train_interactions(spark):
    top_k = spark.createDataFrame([(1, 1, 7, 0.9), (1, 2, 3, 0.8), (2, 1, 8, 0.5)],
                                  "user_id long, rank int, item_id long, score double")
    test = spark.createDataFrame([(1, 3), (1, 7), (1, 9), (2, 4)], "user_id long, item_id long")
    train = spark.createDataFrame([(5, 3), (5, 4)], "user_id long, item_id long")

    got = evaluate.ranking_metrics(top_k, test, catalogue_size=10, train=train)

    # Cold test items: user 1 -> {7, 9}, 7 found: 1/2. User 2's item 4 has train data: not counted.
    assert got["cold_recall@20"] == pytest.approx(0.5)


def test_bias_figures_are_computed_from_every_evaluated_users_list(spark):
    items = spark.createDataFrame([(i,) for i in (10, 20, 30, 40, 50)], "item_id long")
    train = spark.createDataFrame([(1, 20), (2, 20), (3, 20), (1, 10), (2, 10), (3, 40)],
                                  "user_id long, item_id long")
    top_k = spark.createDataFrame([(1, 1, 30, 0.9), (1, 2, 40, 0.8), (3, 1, 50, 0.5)],
                                  "user_id long, rank int, item_id long, score double")
    # User 2 has a (tail) test item but no list; user 3 has a list but no test items.
    test = spark.createDataFrame([(1, 30), (2, 10)], "user_id long, item_id long")

    popularity = evaluate.item_popularity(train, items)
    got = evaluate.ranking_metrics(top_k, test, catalogue_size=5, train=train,
                                   popularity=popularity)

    assert popularity == {10: 2, 20: 3, 30: 0, 40: 1, 50: 0}  # 30 and 50: no train rows
    # Slots of evaluated users only: 30 and 40 once -> ascending 0, 0, 0, 1, 1:
    # (2 * 1 + 4 * 1) / (5 * 2) = 0.6 (item 50 of user 3 would make it 0.4).
    assert got["gini@10"] == pytest.approx(0.6)
    # Head: item 20 alone; user 1's 30 and 40 are tail. User 2 has no slots to share.
    assert got["tail_share@10"] == 1.0
    # Tail test items: user 1's 30 found first (1), user 2's 10 without a list (0).
    assert got["tail_recall@20"] == pytest.approx(0.5)
    assert got["tail_recall@20" + metrics.INTERVAL] == pytest.approx((0.0, 1.0))


def test_popularity_never_recommends_train_items(spark):
    train = spark.createDataFrame(
        [(1, 10), (2, 10), (3, 10), (1, 20), (2, 20), (3, 30)], "user_id long, item_id long")
    users = spark.createDataFrame([(1,), (3,)], "user_id long")

    top = evaluate.popularity_top_k(train, users, k=2).orderBy("user_id", "rank").collect()

    assert [(r.user_id, r.rank, r.item_id) for r in top] == [(1, 1, 30), (3, 1, 20)]
