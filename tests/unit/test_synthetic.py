"""The synthetic source: its vectorised draws follow the planted rules exactly."""

import itertools

import numpy as np
import pandas as pd

from jobs.sources import synthetic

DS = "2026-03-01"


def test_taste_draws_follow_appeal_times_genre_match_among_released_items():
    # Four items: genres (primary, second), appeal and release day chosen by hand.
    items = pd.DataFrame({"primary_genre": [0, 1, 2, 0], "second_genre": [-1, 2, -1, 1],
                          "appeal": [1.0, 2.0, 4.0, 3.0], "release_day": [0.0, 1.0, 2.0, 9.0]})
    taste = np.zeros(len(synthetic.GENRES))
    taste[[0, 2]] = [0.5, 1.5]
    draws = 200_000
    picks = synthetic._GenreSampler(items).draw(
        np.random.default_rng(0), np.full(draws, 5.0), np.tile(taste, (draws, 1)))
    # Item 3 is not out on day 5; the others weigh appeal x (taste[primary] + taste[second]).
    expected = np.array([1.0 * 0.5, 2.0 * (0 + 1.5), 4.0 * 1.5, 0.0])
    observed = np.bincount(picks, minlength=4) / draws
    assert np.abs(observed - expected / expected.sum()).max() < 0.005


def test_appeal_draws_ignore_taste_and_unreleased_items():
    items = pd.DataFrame({"primary_genre": [0, 1, 2], "second_genre": [-1, -1, -1],
                          "appeal": [1.0, 3.0, 5.0], "release_day": [0.0, 0.0, 9.0]})
    picks = synthetic._GenreSampler(items).draw(np.random.default_rng(1), np.full(100_000, 1.0),
                                                None)
    assert np.abs(np.bincount(picks, minlength=3) / 100_000 - [0.25, 0.75, 0.0]).max() < 0.005


def _events(**spec):
    spec = synthetic.SyntheticSpec(num_users=300, num_items=500, **spec)
    _, events = synthetic.generate(spec, DS)
    items = synthetic._items(spec, np.random.default_rng(spec.seed))
    return spec, items, events.merge(items, on="item_id").sort_values(["user_id", "timestamp"])


def test_events_are_deterministic_unique_per_user_and_after_release_before_ds():
    spec, _, events = _events()
    again = synthetic.generate(spec, DS)[1]
    pd.testing.assert_frame_equal(synthetic.generate(spec, DS)[1], again)
    assert not events.duplicated(["user_id", "item_id"]).any()
    end = pd.Timestamp(DS, tz="UTC").timestamp()
    origin = end - spec.days * 86400
    assert (events["timestamp"] < end).all()
    assert (events["timestamp"] >= origin + events["release_day"] * 86400 - 1).all()
    assert events.groupby("user_id").size().min() >= 1


def test_with_certain_sequels_a_released_unseen_next_part_always_comes_next():
    spec, items, events = _events(sequel_probability=1.0)
    next_part = {(f, p): i for i, f, p in zip(items["item_id"], items["franchise"], items["part"])}
    release = dict(zip(items["item_id"], items["release_day"]))
    origin = pd.Timestamp(DS, tz="UTC").timestamp() - spec.days * 86400
    checked = 0
    for _, user in events.groupby("user_id"):
        rows = list(user.itertuples())
        for before, after in itertools.pairwise(rows):
            sequel = next_part.get((before.franchise, before.part + 1))
            if before.franchise < 0 or sequel is None:
                continue
            day = (after.timestamp - origin) / 86400
            if release[sequel] <= day and sequel not in {r.item_id for r in rows[:rows.index(after)]}:
                assert after.item_id == sequel
                checked += 1
    assert checked > 50


def test_users_pick_mostly_from_a_few_genres_and_rate_them_higher():
    _, _, events = _events()
    top3 = events.groupby(["user_id", "primary_genre"]).size().groupby(level=0).apply(
        lambda n: n.nlargest(3).sum() / n.sum())
    assert top3.mean() > 0.6  # 12 genres: uniform picks would put about 0.25 in the top three
    share_by_genre = events.groupby(["user_id", "primary_genre"])["rating"].transform("size")
    favourite = share_by_genre >= events.groupby("user_id")["rating"].transform("size") * 0.15
    assert events.loc[favourite, "rating"].mean() > events.loc[~favourite, "rating"].mean() + 0.3
