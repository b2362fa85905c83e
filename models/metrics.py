"""Ranking metrics of the offline evaluation protocol (../shared/EVALUATION.md), as pure functions.

Plain Python over sequences of item ids, no numpy or torch, so the Spark evaluate job can call
them from a UDF and every model is measured by the same code.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence


def ndcg_at_k(ranked: Sequence, relevant: Collection, k: int = 10) -> float:
    """Binary-relevance NDCG@k; the ideal DCG places min(k, |relevant|) hits at the top."""
    if not relevant:
        raise ValueError("ndcg_at_k needs at least one relevant item")
    dcg = sum(1.0 / math.log2(rank + 2) for rank, item in enumerate(ranked[:k]) if item in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(k, len(relevant))))
    return dcg / ideal


def recall_at_k(ranked: Sequence, relevant: Collection, k: int = 20) -> float:
    """Hits in the top k over min(k, |relevant|), so a perfect list scores 1 for any |relevant|."""
    if not relevant:
        raise ValueError("recall_at_k needs at least one relevant item")
    hits = sum(1 for item in ranked[:k] if item in relevant)
    return hits / min(k, len(relevant))


def coverage_at_k(rankings: Iterable[Sequence], catalogue_size: int, k: int = 10) -> float:
    """Distinct items over all top-k lists divided by the catalogue size."""
    if catalogue_size <= 0:
        raise ValueError("catalogue_size must be positive")
    distinct = set()
    for ranked in rankings:
        distinct.update(ranked[:k])
    return len(distinct) / catalogue_size


INTERVAL = ":ci95"  # key suffix of a metric's 95% bootstrap interval (lo, hi) over users
RESAMPLES = 1000


def bootstrap_interval(rows, statistic=None, resamples: int = RESAMPLES, seed: int = 0
                       ) -> tuple[float, float]:
    """95% percentile bootstrap interval of `statistic` (default: the mean) over users.

    `rows` holds one value per user, or one row of values per user when `statistic` combines
    columns (e.g. a ratio of sums). Users are resampled with replacement, `resamples` times.
    """
    import numpy as np

    rows = np.asarray(rows, dtype=np.float64)
    if len(rows) == 0:
        return float("nan"), float("nan")
    statistic = statistic or (lambda r: r.mean())
    draws = np.random.default_rng(seed).integers(0, len(rows), size=(resamples, len(rows)))
    stats = np.fromiter((statistic(rows[d]) for d in draws), dtype=np.float64, count=resamples)
    return float(np.quantile(stats, 0.025)), float(np.quantile(stats, 0.975))


def share(hits_and_totals) -> float:
    """sum(hits) / sum(totals) of [n, 2] rows: e.g. cold test interactions reaching the top 20."""
    total = hits_and_totals[:, 1].sum()
    return float(hits_and_totals[:, 0].sum() / total) if total else float("nan")


def summarize(per_user: Mapping[str, Sequence[float]], cold_hits: Sequence[tuple[float, float]] = ()
              ) -> dict:
    """Means of per-user metric values with their bootstrap intervals, plus the share of cold
    test interactions found in the full top 20 (`cold_hits`: per cold user, (found, held out))."""
    out: dict = {}
    for metric, values in per_user.items():
        values = list(values)
        out[metric] = sum(values) / len(values) if values else float("nan")
        out[metric + INTERVAL] = bootstrap_interval(values)
    if cold_hits:
        import numpy as np

        rows = np.asarray(cold_hits, dtype=np.float64)
        out["cold_top20_share"] = share(rows)
        out["cold_top20_share" + INTERVAL] = bootstrap_interval(rows, share)
    return out


def per_user_values(
    rankings: Mapping[object, Sequence],
    relevant: Mapping[object, Collection],
    cold_items: Collection = (),
    cold_rankings: Mapping[object, Sequence] | None = None,
) -> dict[str, dict[object, float]]:
    """metric -> {user: value} over the users that have relevant (test) items.

    `rankings` maps user -> ranked item ids (at least the top 20, the user's train items already
    excluded). `cold_items` are items without train interactions: cold_recall@20 is recall@20
    restricted to each user's cold test items in the full ranking, over the users that have any,
    and cold_in_top20 / cold_held_out count them. `cold_rankings` (user -> cold items only,
    ranked) gives cold_only_recall@20, the protocol's cold-start metric.
    """
    users = [u for u, items in relevant.items() if items]
    missing = [u for u in users if u not in rankings]
    if missing:
        raise ValueError(f"{len(missing)} evaluated users have no ranking, e.g. {missing[:5]}")
    if not users:
        raise ValueError("no user has relevant items")
    cold = set(cold_items)
    cold_relevant = {u: set(relevant[u]) & cold for u in users}
    cold_users = [u for u in users if cold_relevant[u]]
    out = {
        "ndcg@10": {u: ndcg_at_k(rankings[u], set(relevant[u]), 10) for u in users},
        "recall@20": {u: recall_at_k(rankings[u], set(relevant[u]), 20) for u in users},
        "cold_recall@20": {u: recall_at_k(rankings[u], cold_relevant[u], 20) for u in cold_users},
        "cold_in_top20": {u: float(sum(1 for i in rankings[u][:20] if i in cold_relevant[u]))
                          for u in cold_users},
        "cold_held_out": {u: float(len(cold_relevant[u])) for u in cold_users},
    }
    if cold_rankings is not None:
        out["cold_only_recall@20"] = {
            u: recall_at_k(cold_rankings.get(u, []), cold_relevant[u], 20) for u in cold_users}
    return out


def evaluate(
    rankings: Mapping[object, Sequence],
    relevant: Mapping[object, Collection],
    catalogue_size: int,
    cold_items: Collection = (),
    cold_rankings: Mapping[object, Sequence] | None = None,
) -> dict:
    """Protocol means over the users that have relevant (test) items, each with its 95%
    bootstrap interval under the key `<metric>:ci95` (see per_user_values for the metrics),
    plus cold_top20_share, the share of all cold test interactions found in the full top 20.
    """
    values = per_user_values(rankings, relevant, cold_items, cold_rankings)
    hits, held_out = values.pop("cold_in_top20"), values.pop("cold_held_out")
    users = list(values["ndcg@10"])
    return {
        **summarize({k: list(v.values()) for k, v in values.items()},
                    [(hits[u], held_out[u]) for u in hits]),
        "coverage@10": coverage_at_k((rankings[u] for u in users), catalogue_size, 10),
        "evaluated_users": len(users),
        "cold_users": len(hits),
        "cold_test_interactions": int(sum(held_out.values())),
    }


def paired_difference(a: Mapping[object, float], b: Mapping[object, float]) -> dict:
    """Mean of a - b over the users both measured, with its 95% paired bootstrap interval:
    the same resampled users on both sides, so what the users share cancels out."""
    users = sorted(set(a) & set(b))
    diffs = [a[u] - b[u] for u in users]
    low, high = bootstrap_interval(diffs)
    return {"difference": sum(diffs) / len(diffs) if diffs else float("nan"),
            "ci_low": low, "ci_high": high, "users": len(users)}


def format_difference(d: Mapping[str, float]) -> str:
    """A paired_difference as text: '+0.0111 [+0.0011, +0.0217] over 610 users'."""
    return (f"{d['difference']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] "
            f"over {d['users']} users")
