"""Baselines computed without a training loop, as numpy: a TF-IDF text ranker. JVM-free;
`jobs/evaluate.py` runs them in the same evaluation as the models.

TF-IDF (the cold-start reference of ../shared/EVALUATION.md): each item is the L2-normalised
TF-IDF vector of its point-in-time text (title, genres, tags); a user is the mean of their last
20 train items' vectors; score = user . item. It ranks items nobody has interacted with from
their text alone, which is what a cold-start path must beat.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from models.data import RankingTask

TFIDF_HISTORY = 20


def tfidf_vectors(texts: Sequence[str]) -> sp.csr_matrix:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(sublinear_tf=True).fit_transform(list(texts)).tocsr()


def mean_history_vectors(items: sp.csr_matrix, history: np.ndarray) -> sp.csr_matrix:
    """history [U, L] catalogue rows, most recent first, -1 padded -> the mean item vector."""
    users = np.repeat(np.arange(len(history)), history.shape[1])
    rows = history.ravel()
    keep = rows >= 0
    pick = sp.csr_matrix((np.ones(int(keep.sum())), (users[keep], rows[keep])),
                         shape=(len(history), items.shape[0]))
    counts = np.maximum(np.asarray(pick.sum(1)).ravel(), 1.0)
    return sp.diags(1.0 / counts) @ pick @ items


def top_rows(scores: np.ndarray, exclude: Sequence[np.ndarray], k: int) -> np.ndarray:
    """The k best columns of each row of `scores`, best first, never one of `exclude[row]`."""
    scores = scores.copy()
    for row, cols in enumerate(exclude):
        scores[row, cols] = -np.inf
    k = min(k, scores.shape[1])
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, best, 1), axis=1, kind="stable")
    return np.take_along_axis(best, order, 1)


def tfidf_rankings(texts: Sequence[str], task: RankingTask, cold_rows: np.ndarray, k: int = 20,
                   batch: int = 1024) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """(user -> top-k catalogue rows of the whole catalogue minus their train items,
    user -> top-k of the cold rows only)."""
    items = tfidf_vectors(texts)
    users = mean_history_vectors(items, task.history[:, :TFIDF_HISTORY])
    cold_items = items[cold_rows]
    full, cold = {}, {}
    for start in range(0, len(task.user_ids), batch):
        chunk = slice(start, start + batch)
        scores = (users[chunk] @ items.T).toarray()
        for user, rows in zip(task.user_ids[chunk], top_rows(scores, task.exclude[chunk], k)):
            full[int(user)] = rows.tolist()
        if len(cold_rows):
            cold_scores = (users[chunk] @ cold_items.T).toarray()
            no_exclusion = [np.empty(0, dtype=np.int64)] * cold_scores.shape[0]
            for user, rows in zip(task.user_ids[chunk], top_rows(cold_scores, no_exclusion, k)):
                cold[int(user)] = cold_rows[rows].tolist()
    return full, cold
