"""The TF-IDF baseline and the bootstrap intervals every evaluated figure carries."""

import numpy as np
import pytest

from models import metrics
from models.baselines import tfidf_rankings
from models.data import RankingTask

TEXTS = ["space robots war", "space ships war", "love story paris", "paris romance love",
         "robots in space"]


def test_tfidf_ranks_by_the_text_of_the_users_history():
    # User 7 watched item 0 (space robots war); item 4 has no train interaction (cold).
    task = RankingTask(user_ids=np.array([7]), history=np.array([[0, -1]]),
                       exclude=[np.array([0])], relevant=[np.array([4])])

    full, cold = tfidf_rankings(TEXTS, task, cold_rows=np.array([2, 4]), k=3)

    assert full[7][0] in (1, 4) and 0 not in full[7]  # space items first, never a train item
    assert set(full[7][:2]) == {1, 4}
    assert cold == {7: [4, 2]}  # only cold items, the space one first


def test_an_interval_brackets_the_mean_and_collapses_on_constant_values():
    assert metrics.bootstrap_interval([0.25] * 50) == (0.25, 0.25)
    low, high = metrics.bootstrap_interval([0.0, 1.0] * 200)
    assert low < 0.5 < high and high - low < 0.15


def test_cold_figures_on_a_hand_computed_example():
    rankings = {1: [3, 5, 9], 2: [4, 8]}
    relevant = {1: [3, 9], 2: [8]}
    cold_rankings = {1: [7, 9], 2: [8, 7]}

    got = metrics.evaluate(rankings, relevant, catalogue_size=10, cold_items=[7, 8, 9],
                           cold_rankings=cold_rankings)

    # User 1: cold test item 9 is third in the full list and second among cold items;
    # user 2: cold test item 8 is second and first. Both are found in every top 20.
    assert got["cold_recall@20"] == 1.0
    assert got["cold_top20_share"] == 1.0
    assert got["cold_only_recall@20"] == 1.0
    assert got["ndcg@10"] == pytest.approx(
        ((1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3)) + (1 / np.log2(3))) / 2)
    assert got["ndcg@10" + metrics.INTERVAL][0] <= got["ndcg@10"] <= got["ndcg@10" + metrics.INTERVAL][1]
    assert got["cold_users"] == 2 and got["cold_test_interactions"] == 2
