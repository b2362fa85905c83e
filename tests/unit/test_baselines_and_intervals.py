"""The EASE and TF-IDF baselines and the bootstrap intervals every evaluated figure carries."""

import numpy as np
import pytest

from models import metrics
from models.baselines import Ease, choose_ease_lambda, tfidf_rankings
from models.data import Groups, RankingTask

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


# 6 users x 5 items; every item has a user.
INTERACTIONS = np.array([[1, 1, 0, 0, 0],
                         [1, 0, 1, 0, 0],
                         [0, 1, 1, 1, 0],
                         [0, 0, 1, 1, 1],
                         [1, 0, 0, 1, 1],
                         [0, 1, 0, 0, 1]])


def pairs(matrix: np.ndarray, user_ids=None) -> tuple[np.ndarray, np.ndarray]:
    users, rows = np.nonzero(matrix)
    return (users if user_ids is None else np.asarray(user_ids)[users]), rows


# All six users: items <= users, one eigh of X^T X. Users 0, 2 and 3 (still every item): fewer
# users than items, the eigh of X X^T and Woodbury. Both must give the closed form.
@pytest.mark.parametrize("users, woodbury", [([0, 1, 2, 3, 4, 5], False), ([0, 2, 3], True)])
def test_ease_weights_are_the_closed_form(users, woodbury):
    x = INTERACTIONS[users].astype(np.float64)
    lam = 2.0
    p = np.linalg.inv(x.T @ x + lam * np.eye(5))
    expected = np.eye(5) - p / np.diag(p)  # column j divided by P_jj

    ease = Ease(*pairs(x), n_items=5)
    weights = ease.weights(lam)

    assert ease._woodbury is woodbury
    assert list(ease.items) == [0, 1, 2, 3, 4]
    assert np.allclose(np.diag(weights), 0.0)
    assert np.allclose(weights, expected)
    assert np.allclose(ease.scores(ease.x, lam), x @ expected)  # scored without forming B


def test_ease_ranks_only_train_items_never_the_users_own():
    # A 7-item catalogue: items 5 and 6 have no train interaction, so EASE cannot score them.
    ease = Ease(*pairs(INTERACTIONS, user_ids=[10, 11, 12, 13, 14, 15]), n_items=7)
    task = RankingTask(user_ids=np.array([10, 99]), history=np.full((2, 1), -1),
                       exclude=[np.array([0, 1]), np.array([], dtype=np.int64)],
                       relevant=[np.array([2]), np.array([2])])

    ranked = ease.rankings(task, lam=1.0, k=10)

    assert sorted(ranked[10]) == [2, 3, 4]  # the unseen items and the user's train items are out
    assert sorted(ranked[99]) == [0, 1, 2, 3, 4]  # a user without interactions still gets a list


def test_lambda_is_the_grid_value_with_the_best_validation_ndcg():
    # Item 4's one user also has item 0. For a user of item 0, a light ridge (lambda 0.1) ranks
    # item 4 first (it is explained by item 0 alone); a heavy one (100) shrinks B towards the
    # co-occurrence counts (B ~ X^T X / lambda), where 1, 3 and 4 each meet item 0 once and
    # item 1, met by more users, comes first and item 4 third.
    fit = [[0, 0, 0, 1, 0], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0], [0, 1, 1, 0, 0], [1, 1, 0, 1, 1]]
    user_ids, rows = pairs(np.array(fit))
    for target, best in ((4, 0.1), (1, 100.0)):
        # User 9 has item 0 in train, then `target`, the validation target (left out of the fit).
        valid = Groups(user_ids=np.array([9]), positive=np.array([target]),
                       negatives=np.array([[-1]]), history=np.array([[0]]),
                       target_ts=np.array([0]))
        task = RankingTask(user_ids=np.array([9]), history=np.array([[0]]),
                           exclude=[np.array([0])], relevant=[np.array([target])])

        chosen, ndcg = choose_ease_lambda(np.r_[user_ids, 9, 9], np.r_[rows, 0, target], 5,
                                          valid, task, grid=(0.1, 100.0))

        assert chosen == best
        # First place scores NDCG 1, third place 1 / log2(4).
        assert ndcg == pytest.approx({best: 1.0, ({0.1, 100.0} - {best}).pop(): 0.5})


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
