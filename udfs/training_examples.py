"""Training examples, one user at a time, inside Spark's Python workers (`mapInArrow`).

Per user: each train interaction with history becomes a group of one positive and sampled
negatives sharing that history. Called from jobs/build_training_set.py; pure numpy/pyarrow, so
the logic is tested without Spark.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

MIN_INTERACTIONS_TO_EVALUATE = 5


@dataclass(frozen=True)
class ExampleSpec:
    history_length: int = 20
    negatives: int = 4
    valid_fraction: float = 0.1
    seed: int = 13


EXAMPLE_IDS_SCHEMA = ("user_id long, position long, item_id long, label int, target_seconds long, "
                      "split string, history_item_ids array<long>")
EXAMPLE_IDS_COLUMNS = [field.split()[0] for field in EXAMPLE_IDS_SCHEMA.split(", ")]


def _negative_sampler(positives: set, popular_ids: np.ndarray, popular_cdf: np.ndarray, k: int):
    """Draws k distinct popularity-weighted items outside `positives` per call.

    Rejection sampling is cheap while positives are a small share of the popular items; when
    they are most of them (heavy users, small catalogues) rejections would dominate, so the
    draw is made from the renormalised complement instead.
    """
    # Positives can be most of the popular items only if they are over half as many: checking
    # that first skips a pass over the catalogue per user, which dominated at 100k items.
    allowed = (~np.isin(popular_ids, list(positives)) if len(positives) * 2 >= len(popular_ids)
               else None)
    if allowed is not None and allowed.sum() * 2 < len(popular_ids):
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
                         spec: ExampleSpec) -> dict[str, np.ndarray | list]:
    """Examples for one user's train interactions, already sorted by (time, item), as columns
    (EXAMPLE_IDS_SCHEMA's, but user_id).

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
    # One group per target: its positive, then its negatives.
    positions, items, labels, histories = [], [], [], []
    for position in range(n):
        end = first_at_same_time[position]
        if end == 0:
            continue
        history = item_ids[max(0, end - spec.history_length):end][::-1]
        group = [int(item_ids[position]), *sampler(rng)]
        positions += [position] * len(group)
        items += group
        labels += [1] + [0] * (len(group) - 1)
        histories += [history] * len(group)
    positions = np.array(positions, dtype=np.int64)
    return {
        "position": positions,
        "item_id": np.array(items, dtype=np.int64),
        "label": np.array(labels, dtype=np.int32),
        "target_seconds": seconds[positions],
        "split": np.where(positions >= n - n_valid, "valid", "train"),
        "history_item_ids": histories,
    }


def examples_in_batches(popular_ids: np.ndarray, popular_cdf: np.ndarray, spec: ExampleSpec
                        ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The `mapInArrow` function: a partition's (user_id, item_id, seconds) rows, clustered by
    user and sorted by (user, time, item), -> EXAMPLE_IDS_SCHEMA batches.

    Whole partitions rather than `applyInPandas` groups: per group, PySpark builds a pandas
    frame in and converts one out, which cost three times the sampling itself with ~20 rows a
    user (a million users: tens of minutes). A user's rows may straddle two input batches, so
    the last user of each batch waits for the next.
    """

    def examples(user_ids: np.ndarray, item_ids: np.ndarray, seconds: np.ndarray
                 ) -> pa.RecordBatch:
        starts = np.flatnonzero(np.r_[True, user_ids[1:] != user_ids[:-1]])
        ends = np.r_[starts[1:], len(user_ids)]
        parts = [sample_user_examples(user_ids[a], item_ids[a:b], seconds[a:b], popular_ids,
                                      popular_cdf, spec) for a, b in zip(starts, ends)]

        def column(name: str, dtype) -> np.ndarray:
            return np.concatenate([p[name] for p in parts]).astype(dtype)

        return pa.RecordBatch.from_arrays([
            pa.array(np.repeat(user_ids[starts], [len(p["position"]) for p in parts])),
            pa.array(column("position", np.int64)),
            pa.array(column("item_id", np.int64)),
            pa.array(column("label", np.int32)),
            pa.array(column("target_seconds", np.int64)),
            pa.array(column("split", object), pa.string()),
            pa.array([h for p in parts for h in p["history_item_ids"]], pa.list_(pa.int64())),
        ], names=EXAMPLE_IDS_COLUMNS)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        users = items = seconds = np.empty(0, np.int64)
        for batch in batches:
            users, items, seconds = (
                np.concatenate([held, batch.column(name).to_numpy().astype(np.int64)])
                for held, name in ((users, "user_id"), (items, "item_id"), (seconds, "seconds")))
            if (users[1:] < users[:-1]).any():
                raise ValueError("examples_in_batches needs a partition's rows sorted by user")
            if len(users) == 0:
                continue
            # The last user's rows may go on in the next batch: hold them back.
            last = int(np.searchsorted(users, users[-1], side="left"))
            if last > 0:
                yield examples(users[:last], items[:last], seconds[:last])
            users, items, seconds = users[last:], items[last:], seconds[last:]
        if len(users):
            yield examples(users, items, seconds)

    return run
