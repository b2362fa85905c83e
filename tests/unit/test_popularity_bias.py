"""Popularity-bias figures (models/popularity_bias.py) on a 5-item catalogue, computed by hand."""

import math

import pytest

from models import metrics
from models.popularity_bias import bias_values, tail_items

# Train interactions per item: 10 in total over n = 5 items, 30 and 50 cold.
# Ascending: 30: 0, 50: 0, 40: 1, 10: 3, 20: 6.
POPULARITY = {10: 3, 20: 6, 30: 0, 40: 1, 50: 0}
# Percentiles (share strictly less popular): 20: 4/5, 10: 3/5, 40: 2/5, 30 and 50: 0.
# Head: ceil(0.2 * 5) = 1 item, 20; tail: 10, 30, 40, 50.
# Self-information: -log2((pop + 1) / (10 + 5)): 20: log2(15/7), 10: log2(15/4), 40: log2(15/2),
# 30 and 50: log2(15).
RANKINGS = {1: [20, 10, 40], 2: [20, 10], 3: [30, 40, 10], 4: [50, 30]}
# User 4 has no test items: not evaluated, so item 50 gets no slot.
RELEVANT = {1: [40, 30], 2: [10], 3: [20], 4: []}


@pytest.fixture(scope="module")
def got():
    return bias_values(RANKINGS, RELEVANT, POPULARITY)


def test_gini_counts_every_catalogue_item_including_unrecommended_ones(got):
    # Slots: 10: 3, 20: 2, 40: 2, 30: 1, 50: 0 -> ascending x = 0, 1, 2, 2, 3, sum 8.
    # sum (2i - 6) x_i = -4*0 - 2*1 + 0*2 + 2*2 + 4*3 = 14; 14 / (5 * 8) = 0.35.
    # (Leaving item 50 out would give 6 / 32 = 0.1875.)
    assert got["gini@10"] == pytest.approx(0.35)
    assert "gini@10" + metrics.INTERVAL not in got  # one figure for all the lists


def test_popularity_percentile_is_the_mean_over_users_of_each_list_mean(got):
    # User 1: (4/5 + 3/5 + 2/5) / 3 = 0.6; user 2: (4/5 + 3/5) / 2 = 0.7;
    # user 3: (0 + 2/5 + 3/5) / 3 = 1/3. Mean: (0.6 + 0.7 + 1/3) / 3.
    assert got["popularity_percentile@10"] == pytest.approx((0.6 + 0.7 + 1 / 3) / 3)
    low, high = got["popularity_percentile@10" + metrics.INTERVAL]
    assert 1 / 3 <= low <= got["popularity_percentile@10"] <= high <= 0.7


def test_tail_share_counts_slots_outside_the_most_popular_fifth(got):
    # Tail = {10, 30, 40, 50}. User 1: 2/3; user 2: 1/2; user 3: 3/3.
    assert got["tail_share@10"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # Ties at the head boundary go to the smaller item id: 1 is head, 2 (as popular) is tail.
    assert tail_items({1: 2, 2: 2, 3: 0, 4: 0, 5: 0}) == {2, 3, 4, 5}


def test_novelty_is_mean_self_information_with_add_one_smoothing(got):
    user_1 = (math.log2(15 / 7) + math.log2(15 / 4) + math.log2(15 / 2)) / 3
    user_2 = (math.log2(15 / 7) + math.log2(15 / 4)) / 2
    user_3 = (math.log2(15) + math.log2(15 / 2) + math.log2(15 / 4)) / 3  # 30 is cold: finite
    assert got["novelty@10"] == pytest.approx((user_1 + user_2 + user_3) / 3)


def test_tail_ndcg_counts_only_tail_test_items_over_users_that_have_them(got):
    # Tail test items: user 1 {30, 40}, 40 third: (1/log2(4)) / (1 + 1/log2(3));
    # user 2 {10}, second: 1/log2(3). User 3's only test item, 20, is head: not evaluated.
    user_1 = (1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert got["tail_ndcg@10"] == pytest.approx((user_1 + 1 / math.log2(3)) / 2)


def test_tail_recall_counts_only_tail_test_items_over_users_that_have_them(got):
    # User 1: 40 of {30, 40} -> 1/2; user 2: 10 of {10} -> 1. (User 3 would add a 0.)
    assert got["tail_recall@20"] == pytest.approx(0.75)


def test_a_popularity_ranking_is_more_biased_than_a_tail_ranking():
    popular = bias_values({u: [20, 10] for u in (1, 2, 3)}, RELEVANT, POPULARITY)
    tail_heavy = bias_values({u: [30, 50, 40] for u in (1, 2, 3)}, RELEVANT, POPULARITY)

    # Gini: slots 0, 0, 0, 3, 3 -> (6 + 12) / 30 = 0.6 against 0, 0, 3, 3, 3 -> 18 / 45 = 0.4.
    assert (popular["gini@10"], tail_heavy["gini@10"]) == pytest.approx((0.6, 0.4))
    # Percentile: (4/5 + 3/5) / 2 = 0.7 against (0 + 0 + 2/5) / 3.
    assert (popular["popularity_percentile@10"], tail_heavy["popularity_percentile@10"]) == \
        pytest.approx((0.7, 2 / 15))
    # Tail share: only 20 is head, so 1/2 against 1.
    assert (popular["tail_share@10"], tail_heavy["tail_share@10"]) == pytest.approx((0.5, 1.0))
    assert popular["novelty@10"] < tail_heavy["novelty@10"]
