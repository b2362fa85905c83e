"""Popularity-bias figures of ranked lists, as pure functions (plain Python and numpy).

How much a model piles its recommendations on items that are already popular, measured on the
protocol's evaluated users (those with test items). An item's popularity is its number of train
interactions, 0 for a cold item; `popularity` always covers the whole catalogue, n items.

- gini@10: Gini index of the number of top-10 slots each catalogue item gets, unrecommended
  items (zeros) included: sum_i (2i - n - 1) x_i / (n sum x) over the counts sorted ascending,
  i = 1..n. 0 = every item gets as many slots; (n - 1) / n, its maximum, = one item gets them
  all. One figure for all the lists, no interval (like coverage@10).
- popularity_percentile@10: per user, the mean popularity percentile of their top-10 items; an
  item's percentile is the share of catalogue items strictly less popular than it (0 = tied with
  the least popular, near 1 = the most popular).
- tail_share@10: per user, the share of their top-10 slots given to tail items. The head is the
  ceil(20% of n) most popular items (ties broken by item id ascending), the tail the rest.
- novelty@10: per user, the mean self-information -log2 p_i of their top-10 items, with
  p_i = (train interactions of i + 1) / (train interactions in total + n): add-one smoothing,
  so a cold item's novelty is finite (the largest).
- tail_ndcg@10, tail_recall@20: NDCG@10 and Recall@20 of the full ranking counting only the
  user's tail test items as relevant, over the users that have any (as cold_recall@20 does for
  cold items).

Per-user figures are averaged over the users with at least one recommendation, each with its 95%
bootstrap interval under `<metric>:ci95` (models.metrics.summarize).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np

from models import metrics

TOP = 10  # the list the slot-based figures look at, the protocol's NDCG@10 list
HEAD_SHARE = 0.2  # the head: the 20% most popular items; the tail: the other 80%
METRICS = ("gini@10", "popularity_percentile@10", "tail_share@10", "novelty@10",
           "tail_ndcg@10", "tail_recall@20")


def gini_index(counts: Sequence[float]) -> float:
    """Gini index of non-negative `counts`, one per catalogue item (NaN when all are zero)."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = len(x), x.sum()
    if not total:
        return float("nan")
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def slot_counts(top_lists: Iterable[Sequence], catalogue: Iterable) -> list[int]:
    """How many of the lists' slots each catalogue item gets (0 for an item never listed)."""
    counts = Counter(item for top in top_lists for item in top)
    return [counts[item] for item in catalogue]


def popularity_percentiles(popularity: Mapping) -> dict:
    """item -> share of catalogue items strictly less popular than it."""
    ordered = sorted(popularity.values())
    return {item: bisect_left(ordered, p) / len(ordered) for item, p in popularity.items()}


def tail_items(popularity: Mapping) -> set:
    """The catalogue minus its ceil(20%) most popular items (ties: the smaller item id first)."""
    most_popular_first = sorted(popularity, key=lambda item: (-popularity[item], item))
    return set(most_popular_first[math.ceil(HEAD_SHARE * len(most_popular_first)):])


def self_information(popularity: Mapping) -> dict:
    """item -> -log2 of its add-one smoothed share of train interactions."""
    denominator = sum(popularity.values()) + len(popularity)
    return {item: -math.log2((p + 1) / denominator) for item, p in popularity.items()}


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values)


def bias_values(rankings: Mapping[object, Sequence], relevant: Mapping[object, Collection],
                popularity: Mapping) -> dict:
    """The figures of the module docstring over the users with relevant (test) items.

    `rankings`: user -> ranked items (at least the top 20, the user's train items excluded);
    `relevant`: user -> test items; `popularity`: item -> train interactions, every catalogue item.
    """
    users = [u for u, items in relevant.items() if items]
    tops = {u: list(rankings[u][:TOP]) for u in users}
    unknown = {item for top in tops.values() for item in top} - popularity.keys()
    if unknown:
        raise ValueError(f"{len(unknown)} recommended items are not in the catalogue, "
                         f"e.g. {sorted(unknown)[:5]}")
    listed = [u for u in users if tops[u]]
    percentile, information = popularity_percentiles(popularity), self_information(popularity)
    tail = tail_items(popularity)
    tail_relevant = {u: set(relevant[u]) & tail for u in users}
    tail_users = [u for u in users if tail_relevant[u]]
    per_user = {
        "popularity_percentile@10": [_mean(percentile[i] for i in tops[u]) for u in listed],
        "tail_share@10": [_mean(i in tail for i in tops[u]) for u in listed],
        "novelty@10": [_mean(information[i] for i in tops[u]) for u in listed],
        "tail_ndcg@10": [metrics.ndcg_at_k(rankings[u], tail_relevant[u], 10) for u in tail_users],
        "tail_recall@20": [metrics.recall_at_k(rankings[u], tail_relevant[u], 20)
                           for u in tail_users],
    }
    return {"gini@10": gini_index(slot_counts(tops.values(), popularity)),
            **metrics.summarize(per_user)}
