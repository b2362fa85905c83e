"""Training examples, one user at a time, inside Spark's Python workers (`applyInPandas`).

Per user: each train interaction with history becomes a group of one positive and sampled
negatives sharing that history. Called from jobs/build_training_set.py; pure numpy/pandas, so
the logic is tested without Spark.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

MIN_INTERACTIONS_TO_EVALUATE = 5


@dataclass(frozen=True)
class ExampleSpec:
    history_length: int = 20
    negatives: int = 4
    valid_fraction: float = 0.1
    seed: int = 13


EXAMPLE_IDS_SCHEMA = ("user_id long, position long, item_id long, label int, target_seconds long, "
                      "split string, history_item_ids array<long>")


def _negative_sampler(positives: set, popular_ids: np.ndarray, popular_cdf: np.ndarray, k: int):
    """Draws k distinct popularity-weighted items outside `positives` per call.

    Rejection sampling is cheap while positives are a small share of the popular items; when
    they are most of them (heavy users, small catalogues) rejections would dominate, so the
    draw is made from the renormalised complement instead.
    """
    allowed = ~np.isin(popular_ids, list(positives))
    if allowed.sum() * 2 < len(popular_ids):
        weights = np.diff(np.concatenate([[0.0], popular_cdf]))[allowed]
        ids = popular_ids[allowed]
        size = min(k, len(ids))
        return lambda rng: (rng.choice(ids, size, replace=False, p=weights / weights.sum()).tolist()
                            if size else [])

    def reject(rng: np.random.Generator) -> list[int]:
        chosen: list[int] = []
        while len(chosen) < k:
            draws = popular_ids[np.searchsorted(popular_cdf, rng.random(k * 2), side="right")]
            for item in draws.tolist():
                if item not in positives and item not in chosen and len(chosen) < k:
                    chosen.append(item)
        return chosen

    return reject


def sample_user_examples(user_id: int, item_ids: np.ndarray, seconds: np.ndarray,
                         popular_ids: np.ndarray, popular_cdf: np.ndarray,
                         spec: ExampleSpec) -> pd.DataFrame:
    """Examples for one user's train interactions, already sorted by (time, item).

    A target's history is every item strictly earlier than it (ties in time are not history,
    they are the same moment), most recent first, cut to `history_length`. Negatives are drawn
    by popularity, never one of the user's train positives, without repeats within a group.
    The generator is seeded by (seed, user) so the output does not depend on partitioning.
    """
    rng = np.random.default_rng([spec.seed, int(user_id)])
    n = len(item_ids)
    sampler = _negative_sampler(set(item_ids.tolist()), popular_ids, popular_cdf, spec.negatives)
    first_at_same_time = np.searchsorted(seconds, seconds, side="left")
    n_valid = max(1, int(np.floor(spec.valid_fraction * n))) if n >= MIN_INTERACTIONS_TO_EVALUATE else 0
    rows = []
    for position in range(n):
        end = first_at_same_time[position]
        if end == 0:
            continue
        history = item_ids[max(0, end - spec.history_length):end][::-1]
        split = "valid" if position >= n - n_valid else "train"
        rows.append((position, item_ids[position], 1, seconds[position], split, history))
        rows += [(position, item, 0, seconds[position], split, history)
                 for item in sampler(rng)]
    return pd.DataFrame(rows, columns=["position", "item_id", "label", "target_seconds", "split",
                                       "history_item_ids"])


def per_user_examples(popular_ids: np.ndarray, popular_cdf: np.ndarray, spec: ExampleSpec
                      ) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The `applyInPandas` function: one user's (user_id, item_id, seconds) rows -> examples."""

    def per_user(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.sort_values(["seconds", "item_id"], kind="stable")
        user_id = int(frame["user_id"].iat[0])
        out = sample_user_examples(user_id, frame["item_id"].to_numpy(np.int64),
                                   frame["seconds"].to_numpy(np.int64), popular_ids,
                                   popular_cdf, spec)
        out.insert(0, "user_id", user_id)
        return out

    return per_user
