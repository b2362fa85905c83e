"""Synthetic catalogue and interaction log with tastes planted where a model can find them.

What is planted, so that a model that learns shows it against popularity:
- Each item has one or two genres, and its title and description use that genre's vocabulary:
  text alone says what an item is about, including items nobody has touched yet.
- Each user prefers two or three genres and picks mostly from them.
- Franchises: after part k of a series, users often watch part k+1 next (a sequential habit).
- Items are released over time, so the newest items reach users only late in their histories:
  a chronological holdout contains items with few or no training interactions.

Deterministic for a seed. Pure numpy/pandas: no Spark, so it is cheap to test.
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


def _user_sequence(items: pd.DataFrame, spec: SyntheticSpec, rng: np.random.Generator,
                   by_franchise_part: dict, start_day: float, length: int,
                   taste: np.ndarray) -> tuple[list[int], list[float]]:
    n = len(items)
    primary = items["primary_genre"].to_numpy()
    second = items["second_genre"].to_numpy()
    genre_match = taste[primary] + np.where(second >= 0, taste[np.maximum(second, 0)], 0.0)
    appeal = items["appeal"].to_numpy()
    release = items["release_day"].to_numpy()
    franchise = items["franchise"].to_numpy()
    part = items["part"].to_numpy()

    seen = np.zeros(n, dtype=bool)
    chosen, days = [], []
    day = start_day
    for _ in range(length):
        day = min(day + rng.exponential(spec.days * 0.6 / max(length, 1)), spec.days - 1e-3)
        available = (release <= day) & ~seen
        if not available.any():
            break
        pick = -1
        if chosen and franchise[chosen[-1]] >= 0 and rng.random() < spec.sequel_probability:
            sequel = by_franchise_part.get((franchise[chosen[-1]], part[chosen[-1]] + 1))
            if sequel is not None and available[sequel]:
                pick = sequel
        if pick < 0:
            weight = appeal * available
            if rng.random() < spec.taste_probability:
                weight = weight * genre_match
            if weight.sum() <= 0:
                weight = appeal * available
            pick = int(rng.choice(n, p=weight / weight.sum()))
        seen[pick] = True
        chosen.append(pick)
        days.append(day)
    return chosen, days


def generate(spec: SyntheticSpec, ds: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (items, interactions) in ingest's raw form; every event is before `ds`."""
    rng = np.random.default_rng(spec.seed)
    items = _items(spec, rng)
    by_franchise_part = {(f, p): i for i, (f, p) in
                         enumerate(zip(items["franchise"], items["part"])) if f >= 0}
    end = dt.datetime.combine(dt.date.fromisoformat(ds), dt.time(), tzinfo=dt.timezone.utc)
    origin = end.timestamp() - spec.days * 86400

    rows = []
    for user in range(1, spec.num_users + 1):
        taste = np.zeros(len(GENRES))
        favourites = rng.choice(len(GENRES), rng.integers(2, 4), replace=False)
        taste[favourites] = rng.dirichlet(np.ones(len(favourites))) + 0.2
        length = max(5, int(rng.poisson(spec.mean_interactions_per_user)))
        start_day = rng.uniform(0, spec.days * 0.3)
        chosen, days = _user_sequence(items, spec, rng, by_franchise_part, start_day, length, taste)
        for idx, day in zip(chosen, days):
            liked = taste[items["primary_genre"].iat[idx]] > 0
            rating = float(np.clip(rng.normal(4.0 if liked else 3.0, 0.8), 1, 5).round())
            rows.append((user, int(items["item_id"].iat[idx]), int(origin + day * 86400), rating))

    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"])
    catalogue = items[["item_id", "title", "genres", "description"]].copy()
    return catalogue, interactions


def read_synthetic(spark, spec: SyntheticSpec, ds: str):
    """The generated data as a `RawSource` of strings, like every other source."""
    from jobs.sources.base import RawSource

    items, interactions = generate(spec, ds)
    interactions = interactions.astype({"user_id": str, "item_id": str, "timestamp": str,
                                        "rating": str})
    items = items.assign(item_id=items["item_id"].astype(str))
    return RawSource(
        interactions=spark.createDataFrame(
            interactions, "user_id string, item_id string, timestamp string, rating string"),
        items=spark.createDataFrame(
            items, "item_id string, title string, genres array<string>, description string"),
        tags=None, timestamp_format="epoch_s", rating_range=(1.0, 5.0))
