"""bench/cold_validation.py's pseudo-cold items on a literal fixture: once removed, no training
row may mention them, and nothing else may move."""

from __future__ import annotations

import json

import numpy as np

from bench.cold_validation import (
    as_of_years,
    cold_positions,
    load_figures,
    pooled,
    pseudo_cold,
    release_years,
    released_task,
    unreleased,
    with_earlier_run,
    without_items,
)
from models.data import Groups, RankingTask

GROUPS = Groups(
    user_ids=np.array([1, 1, 2, 2]),
    positive=np.array([3, 5, 4, 3]),
    negatives=np.array([[5, 0], [1, -1], [2, 3], [0, 1]]),
    history=np.array([[5, 2, 3, -1], [3, 5, 2, 1], [2, -1, -1, -1], [4, 5, 2, -1]]),
    target_ts=np.array([10, 20, 30, 40]))


def test_removed_items_leave_every_row_and_the_rest_keeps_its_order():
    drop = np.zeros(6, dtype=bool)
    drop[[3, 5]] = True
    out = without_items(GROUPS, drop, keep_targets=False)
    assert out.positive.tolist() == [4]  # groups whose positive is removed go
    assert out.history.tolist() == [[2, -1, -1, -1]]
    assert out.negatives.tolist() == [[2, -1]]
    kept = without_items(GROUPS, drop, keep_targets=True)  # validation: targets stay
    # histories keep their order (most recent first) with the removed items closed up
    assert kept.positive.tolist() == [3, 5, 4, 3]
    assert kept.history.tolist() == [[2, -1, -1, -1], [2, 1, -1, -1], [2, -1, -1, -1],
                                     [4, 2, -1, -1]]
    assert not np.isin(kept.history, [3, 5]).any() and not np.isin(kept.negatives, [3, 5]).any()


def test_pseudo_cold_items_are_rare_or_newest():
    valid = GROUPS.take(np.array([3]))  # item 3 again, at time 40
    train = GROUPS.take(np.array([0, 1, 2]))
    # positives: 3 (twice), 5, 4; all have 1 to 3 interactions
    assert pseudo_cold(train, valid, 6, 10, 0, "rare").tolist() == [3, 4, 5]
    # first seen: 3 at 10, 5 at 20, 4 at 30
    assert pseudo_cold(train, valid, 6, 2, 0, "newest").tolist() == [4, 5]


def test_draws_pool_into_one_figure_per_user():
    draws = {
        0: {"teacher": {"cold_only_recall@20": {1: 0.5, 2: 0.0}},
            "student": {"cold_only_recall@20": {1: 1.0, 2: 0.5}}},
        1: {"teacher": {"cold_only_recall@20": {1: 0.0, 3: 1.0}},
            "student": {"cold_only_recall@20": {1: 0.5, 3: 1.0}}},
    }
    got = pooled(draws)
    # user 1 has a pseudo-cold target in both draws: their mean; users 2 and 3 in one each
    assert got["teacher"]["cold_only_recall@20"] == {1: 0.25, 2: 0.0, 3: 1.0}
    assert got["student"]["cold_only_recall@20"] == {1: 0.75, 2: 0.5, 3: 1.0}


def test_a_saved_run_pairs_with_another_user_by_user():
    saved = {"teacher": {"ndcg@10": {7: 0.25, 12: 1.0}}}
    back = load_figures(json.loads(json.dumps(saved)))  # JSON turns the user ids into strings
    assert back == saved
    assert list(back["teacher"]["ndcg@10"]) == [7, 12]  # numbers again, so they pair


def test_an_earlier_runs_saved_draws_pool_with_this_runs_by_user():
    earlier = json.loads(json.dumps({"teacher": {"ndcg@10": {7: 0.25, 12: 1.0}}}))
    now = {"teacher": {"ndcg@10": {7: 0.75, 30: 0.5}}}
    got = with_earlier_run(now, earlier)
    assert got["teacher"]["ndcg@10"] == {7: 0.5, 30: 0.5, 12: 1.0}


def test_items_released_after_a_users_cut_off_are_held_back_for_that_user_only():
    years = release_years(["Toy Story (1995) Animation", "Heat (1995) (a.k.a. x) tag (2001)",
                           "Coco (2017) Animation", "No year here", "Up (2009)"])
    assert years[:3].tolist() == [1995.0, 1995.0, 2017.0] and np.isnan(years[3])
    micro = 1_000_000
    groups = Groups(
        user_ids=np.array([7, 7, 9, 11]), positive=np.array([0, 1, 1, 2]),
        negatives=np.full((4, 1), -1), history=np.full((4, 1), -1),
        # user 7: 1996-01-01 then 2000-03-01; user 9: 2010-06-01; user 11: not a validation user
        target_ts=np.array([820454400, 951868800, 1275350400, 1500000000]) * micro)
    as_of = as_of_years(groups, np.array([5, 7, 9]))  # user 5 has no train rows
    assert np.isnan(as_of[0]) and as_of[1:].tolist() == [2000.0, 2010.0]
    held = unreleased(years, as_of, slack=0)
    # a user without a clock and an item without a year are never held back
    assert [h.tolist() for h in held] == [[], [2, 4], [2]]
    assert [h.tolist() for h in unreleased(years, as_of, slack=9)] == [[], [2], []]
    task = RankingTask(np.array([5, 7, 9]), np.full((3, 1), -1),
                       [np.array([0]), np.array([0, 1]), np.array([], dtype=np.int64)],
                       [np.array([1])] * 3)
    assert [e.tolist() for e in released_task(task, held).exclude] == [[0], [0, 1, 2, 4], [2]]
    cold_rows = np.array([2, 3])
    assert [p.tolist() for p in cold_positions(cold_rows, held)] == [[], [0], [0]]
