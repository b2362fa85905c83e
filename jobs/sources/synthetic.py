"""Synthetic catalogue and interaction log with tastes planted where a model can find them.

What is planted, so that a model that learns shows it against popularity:
- Each item has one or two genres, and its title and description use that genre's vocabulary:
  text alone says what an item is about, including items nobody has touched yet.
- Each user prefers two or three genres and picks mostly from them.
- Franchises: after part k of a series, users often watch part k+1 next (a sequential habit).
- Items are released over time, so the newest items reach users only late in their histories:
  a chronological holdout contains items with few or no training interactions.

Deterministic for a seed. Pure numpy/pandas: no Spark, so it is cheap to test. Users advance
together, one event per step, and each draw is a binary search, not a pass over the catalogue:
1M users x 100k items x 20M events take about 80 s and 2 GiB (bench/nightly.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

GENRE_VOCABULARY = {
    "Sci-Fi": ["space", "robot", "alien", "galaxy", "starship", "android", "colony", "quantum"],
    "Western": ["outlaw", "sheriff", "saloon", "frontier", "cattle", "canyon", "bounty", "rail"],
    "Romance": ["love", "wedding", "heart", "letters", "summer", "kiss", "promise", "paris"],
    "Horror": ["haunted", "curse", "blood", "night", "crypt", "shadow", "scream", "ritual"],
    "Comedy": ["roommates", "prank", "vacation", "awkward", "party", "mixup", "road", "office"],
    "Crime": ["heist", "detective", "mob", "alibi", "witness", "vault", "undercover", "case"],
    "War": ["battalion", "trench", "front", "siege", "soldier", "medal", "beachhead", "convoy"],
    "Animation": ["puppy", "dragon", "toy", "island", "magic", "kingdom", "friendship", "fox"],
    "Documentary": ["history", "ocean", "climate", "archive", "expedition", "nature", "portrait", "truth"],
    "Musical": ["song", "stage", "dance", "rhythm", "chorus", "broadway", "melody", "band"],
    "Sports": ["champion", "league", "coach", "stadium", "rookie", "final", "marathon", "boxing"],
    "Fantasy": ["wizard", "quest", "sword", "elven", "prophecy", "realm", "sorcery", "crown"],
}
GENRES = list(GENRE_VOCABULARY)
FILLER = ["the", "a", "story", "of", "one", "last", "great", "secret", "return", "journey",
          "tale", "people", "city", "time", "old", "new", "world", "day"]
TITLE_ADJECTIVES = ["Silent", "Last", "Golden", "Broken", "Hidden", "Wild", "Crimson", "Endless",
                    "Lonely", "Brave", "Distant", "Final", "Burning", "Little", "Iron", "Velvet"]


@dataclass(frozen=True)
class SyntheticSpec:
    num_users: int = 600
    num_items: int = 2000
    mean_interactions_per_user: int = 40
    days: int = 365
    franchise_fraction: float = 0.15
    sequel_probability: float = 0.6
    taste_probability: float = 0.85
    seed: int = 7


def _items(spec: SyntheticSpec, rng: np.random.Generator) -> pd.DataFrame:
    n = spec.num_items
    primary = rng.integers(0, len(GENRES), n)
    has_second = rng.random(n) < 0.35
    second = (primary + rng.integers(1, len(GENRES), n)) % len(GENRES)
    # Zipf-like appeal: a few hits, a long tail.
    appeal = 1.0 / np.power(rng.permutation(n) + 1.0, 0.8)
    # Releases spread over the window; 20% are "new" and arrive in its last tenth.
    release_day = rng.uniform(0, spec.days * 0.9, n)
    newest = rng.random(n) < 0.2
    release_day[newest] = rng.uniform(spec.days * 0.9, spec.days, newest.sum())

    franchise = np.full(n, -1)
    part = np.zeros(n, dtype=int)
    titles, descriptions, genres = [], [], []
    item = 0
    franchise_id = 0
    order = np.arange(n)
    while item < n:
        if rng.random() < spec.franchise_fraction and item + 1 < n:
            length = int(min(rng.integers(2, 5), n - item))
            base = order[item]
            for k in range(length):
                idx = order[item + k]
                franchise[idx] = franchise_id
                part[idx] = k + 1
                primary[idx] = primary[base]
                has_second[idx] = has_second[base]
                second[idx] = second[base]
                release_day[idx] = release_day[base] + k * spec.days * 0.05
            franchise_id += 1
            item += length
        else:
            item += 1
    release_day = np.minimum(release_day, spec.days - 1)

    franchise_names = {}
    for i in range(n):
        item_genres = [GENRES[primary[i]]] + ([GENRES[second[i]]] if has_second[i] else [])
        vocab = GENRE_VOCABULARY[item_genres[0]]
        if franchise[i] >= 0:
            if franchise[i] not in franchise_names:
                franchise_names[franchise[i]] = (
                    f"{rng.choice(TITLE_ADJECTIVES)} {rng.choice(vocab).title()}")
            title = f"{franchise_names[franchise[i]]} Part {part[i]}"
        else:
            title = f"The {rng.choice(TITLE_ADJECTIVES)} {rng.choice(vocab).title()}"
        words = []
        for genre in item_genres:
            words += list(rng.choice(GENRE_VOCABULARY[genre], 4, replace=False))
        words += list(rng.choice(FILLER, 4))
        rng.shuffle(words)
        titles.append(title)
        descriptions.append(" ".join(words))
        genres.append(item_genres)

    return pd.DataFrame({
        "item_id": np.arange(1, n + 1, dtype=np.int64),
        "title": titles,
        "genres": genres,
        "description": descriptions,
        "primary_genre": primary,
        "second_genre": np.where(has_second, second, -1),
        "franchise": franchise,
        "part": part,
        "appeal": appeal,
        "release_day": release_day,
    })


class _GenreSampler:
    """Draws items with probability proportional to appeal among those released by a given day,
    optionally weighted by a user's genre taste, for many users at once in O(log items) each.

    An item's taste weight is appeal x (taste[primary] + taste[second]), so a taste draw is a
    mixture over genres: pick genre g with weight taste[g] x (appeal released in g by then), then
    an item of g by appeal. Each genre's items (and, last, the whole catalogue) are kept sorted by
    release day with cumulative appeal, so "released by day d" is a prefix found by binary search.
    """

    def __init__(self, items: pd.DataFrame):
        primary = items["primary_genre"].to_numpy()
        second = items["second_genre"].to_numpy()
        release = items["release_day"].to_numpy()
        appeal = items["appeal"].to_numpy()
        members = [np.flatnonzero((primary == g) | (second == g)) for g in range(len(GENRES))]
        members.append(np.arange(len(items)))
        self.order, self.release, self.cumulative = [], [], []
        for idx in members:
            idx = idx[np.argsort(release[idx], kind="stable")]
            self.order.append(idx)
            self.release.append(release[idx])
            # Led by 0, so the mass of the first k items is cumulative[k], also for k = 0.
            self.cumulative.append(np.concatenate([[0.0], np.cumsum(appeal[idx])]))

    def released(self, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(items released by `day` per list, their total appeal per list): users x lists."""
        counts = np.stack([np.searchsorted(r, day, side="right") for r in self.release], axis=1)
        mass = np.stack([c[k] for k, c in zip(counts.T, self.cumulative)], axis=1)
        return counts, mass

    def draw(self, rng: np.random.Generator, day: np.ndarray, taste: np.ndarray | None
             ) -> np.ndarray:
        """One item per user: by appeal, or by appeal x genre taste where `taste` is given (users
        with no released item in their genres fall back to appeal alone, as the loop did)."""
        counts, mass = self.released(day)
        everything = len(self.order) - 1
        chosen_list = np.full(len(day), everything)
        if taste is not None:
            weight = taste * mass[:, :everything]
            total = weight.sum(axis=1)
            has = total > 0
            cumulative = np.cumsum(weight[has], axis=1)
            u = rng.random(has.sum()) * total[has]
            chosen_list[has] = np.minimum((cumulative <= u[:, None]).sum(axis=1), everything - 1)
        picks = np.empty(len(day), dtype=np.int64)
        u = rng.random(len(day))
        rows = np.arange(len(day))
        for g in np.unique(chosen_list):
            who = rows[chosen_list == g]
            k = counts[who, g]
            idx = np.searchsorted(self.cumulative[g][1:], u[who] * mass[who, g], side="right")
            picks[who] = self.order[g][np.minimum(idx, k - 1)]
        return picks


def _interactions(items: pd.DataFrame, spec: SyntheticSpec, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(user index, item index, day, liked) of every event, users in order, each in time order.

    All users advance one event at a time together. Per user and step, as a loop over users
    would: the next day; the next part of the franchise just watched, with sequel_probability,
    if it is out and unseen; else an item by appeal, weighted by taste with taste_probability,
    among released items not yet seen (a seen draw is redrawn, which conditions on unseen
    exactly). A user stops at its length, or when nothing released is left unseen.
    """
    users, n = spec.num_users, len(items)
    genres = len(GENRES)
    favourites_count = rng.integers(2, 4, users)
    ranking = np.argsort(rng.random((users, genres)), axis=1)
    favourite = np.zeros((users, genres), dtype=bool)
    np.put_along_axis(favourite, ranking[:, :3], (np.arange(3) < favourites_count[:, None]), axis=1)
    shares = np.where(favourite, rng.exponential(size=(users, genres)), 0.0)
    taste = np.where(favourite, shares / shares.sum(axis=1, keepdims=True) + 0.2, 0.0)
    length = np.maximum(5, rng.poisson(spec.mean_interactions_per_user, users))
    day = rng.uniform(0, spec.days * 0.3, users)

    primary = items["primary_genre"].to_numpy()
    release = items["release_day"].to_numpy()
    sequel = np.full(n, -1)
    parts = items.loc[items["franchise"] >= 0, ["franchise", "part"]]
    by_part = {(f, p): i for i, f, p in zip(parts.index, parts["franchise"], parts["part"])}
    for i, f, p in zip(parts.index, parts["franchise"], parts["part"]):
        sequel[i] = by_part.get((f, p + 1), -1)
    sampler = _GenreSampler(items)

    history = np.full((users, int(length.max())), -1, dtype=np.int64)
    days = np.zeros(history.shape)
    active = np.ones(users, dtype=bool)
    for step in range(history.shape[1]):
        active &= length > step
        who = np.flatnonzero(active)
        if who.size == 0:
            break
        day[who] = np.minimum(day[who] + rng.exponential(spec.days * 0.6 / length[who]),
                              spec.days - 1e-3)
        released = np.searchsorted(sampler.release[-1], day[who], side="right")
        exhausted = released <= step
        active[who[exhausted]] = False
        who = who[~exhausted]
        past = history[who, :step]

        pick = np.full(who.size, -1)
        if step > 0:
            after = sequel[history[who, step - 1]]
            follow = (after >= 0) & (rng.random(who.size) < spec.sequel_probability)
            follow &= release[np.maximum(after, 0)] <= day[who]
            follow &= ~(past == after[:, None]).any(axis=1)
            pick[follow] = after[follow]
        by_taste = rng.random(who.size) < spec.taste_probability
        pending = np.flatnonzero(pick < 0)
        for _ in range(50):
            if pending.size == 0:
                break
            drawn = np.empty(pending.size, dtype=np.int64)
            tasteful = by_taste[pending]
            for mask, weights in ((tasteful, taste[who[pending[tasteful]]]), (~tasteful, None)):
                if mask.any():
                    drawn[mask] = sampler.draw(rng, day[who[pending[mask]]], weights)
            fresh = ~(past[pending] == drawn[:, None]).any(axis=1)
            pick[pending[fresh]] = drawn[fresh]
            pending = pending[~fresh]
        # Nearly everything released is seen: draw these few exactly, over the whole catalogue.
        for j in pending:
            weight = items["appeal"].to_numpy() * (release <= day[who[j]])
            weight[past[j][past[j] >= 0]] = 0
            if by_taste[j]:
                second = items["second_genre"].to_numpy()
                genre_match = taste[who[j], primary] + np.where(
                    second >= 0, taste[who[j], np.maximum(second, 0)], 0.0)
                if (weight * genre_match).sum() > 0:
                    weight = weight * genre_match
            pick[j] = rng.choice(n, p=weight / weight.sum())
        history[who, step] = pick
        days[who, step] = day[who]

    user_index, position = np.nonzero(history >= 0)
    item_index = history[user_index, position]
    liked = taste[user_index, primary[item_index]] > 0
    return user_index, item_index, days[user_index, position], liked


def generate(spec: SyntheticSpec, ds: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (items, interactions) in ingest's raw form; every event is before `ds`."""
    rng = np.random.default_rng(spec.seed)
    items = _items(spec, rng)
    end = dt.datetime.combine(dt.date.fromisoformat(ds), dt.time(), tzinfo=dt.timezone.utc)
    origin = end.timestamp() - spec.days * 86400

    user_index, item_index, days, liked = _interactions(items, spec, rng)
    rating = np.clip(rng.normal(np.where(liked, 4.0, 3.0), 0.8), 1, 5).round()
    interactions = pd.DataFrame({
        "user_id": user_index.astype(np.int64) + 1,
        "item_id": items["item_id"].to_numpy()[item_index],
        "timestamp": (origin + days * 86400).astype(np.int64),
        "rating": rating,
    })
    catalogue = items[["item_id", "title", "genres", "description"]].copy()
    return catalogue, interactions


def read_synthetic(spark, spec: SyntheticSpec, ds: str):
    """The generated data as a `RawSource` of strings, like every other source."""
    from pyspark.sql import functions as F

    from jobs.sources.base import RawSource

    items, interactions = generate(spec, ds)
    items = items.assign(item_id=items["item_id"].astype(str))
    # Numbers cross to the JVM as Arrow columns and become strings there: tens of millions of
    # Python str objects would cost gigabytes of driver memory.
    events = spark.createDataFrame(
        interactions, "user_id long, item_id long, timestamp long, rating double")
    return RawSource(
        interactions=events.select(*(F.col(c).cast("string").alias(c) for c in events.columns)),
        items=spark.createDataFrame(
            items, "item_id string, title string, genres array<string>, description string"),
        tags=None, timestamp_format="epoch_s", rating_range=(1.0, 5.0))
