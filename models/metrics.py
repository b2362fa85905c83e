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


def evaluate(
    rankings: Mapping[object, Sequence],
    relevant: Mapping[object, Collection],
    catalogue_size: int,
    cold_items: Collection = (),
) -> dict[str, float]:
    """Protocol means over the users that have relevant (test) items.

    `rankings` maps user -> ranked item ids (at least the top 20, the user's train items already
    excluded). `cold_items` are items without train interactions; cold recall@20 is recall@20
    restricted to each user's cold test items, averaged over the users that have any, so it
    shows whether text alone can surface items no collaborative signal knows.
    """
    users = [u for u, items in relevant.items() if items]
    missing = [u for u in users if u not in rankings]
    if missing:
        raise ValueError(f"{len(missing)} evaluated users have no ranking, e.g. {missing[:5]}")
    if not users:
        raise ValueError("no user has relevant items")
    cold = set(cold_items)
    ndcg = [ndcg_at_k(rankings[u], set(relevant[u]), 10) for u in users]
    recall = [recall_at_k(rankings[u], set(relevant[u]), 20) for u in users]
    cold_relevant = {u: set(relevant[u]) & cold for u in users}
    cold_users = [u for u in users if cold_relevant[u]]
    cold_recall = [recall_at_k(rankings[u], cold_relevant[u], 20) for u in cold_users]
    return {
        "ndcg@10": sum(ndcg) / len(ndcg),
        "recall@20": sum(recall) / len(recall),
        "coverage@10": coverage_at_k((rankings[u] for u in users), catalogue_size, 10),
        "cold_recall@20": sum(cold_recall) / len(cold_recall) if cold_recall else float("nan"),
        "evaluated_users": len(users),
        "cold_users": len(cold_users),
        "cold_test_interactions": sum(len(c) for c in cold_relevant.values()),
    }
