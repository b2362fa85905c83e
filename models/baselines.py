"""Baselines computed without a training loop, as numpy: EASE and a TF-IDF text ranker.
JVM-free; `jobs/evaluate.py` runs them in the same evaluation as the models.

EASE (Steck, WWW 2019, the item-item reference of ../shared/EVALUATION.md): with X the binary
users x items train matrix and P = (X^T X + lambda I)^-1, the item-item weights are
B = I - P / diag(P) (column j divided by P_jj, so the diagonal is zero) and a user's scores are
x_u B. It ranks only items with a train interaction. Lambda is chosen on the validation split
carved from train (each user's last train interactions), never on the test split.

TF-IDF (the cold-start reference of ../shared/EVALUATION.md): each item is the L2-normalised
TF-IDF vector of its point-in-time text (title, genres, tags); a user is the mean of their last
20 train items' vectors; score = user . item. It ranks items nobody has interacted with from
their text alone, which is what a cold-start path must beat.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from models import metrics
from models.data import Groups, RankingTask

TFIDF_HISTORY = 20
EASE_LAMBDAS = (100.0, 250.0, 500.0, 1000.0, 2000.0)


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
                   batch: int = 1024, cold_exclude: Sequence[np.ndarray] | None = None
                   ) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """(user -> top-k catalogue rows of the whole catalogue minus their train items,
    user -> top-k of the cold rows only, never those at the user's `cold_exclude` positions of
    `cold_rows`)."""
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
            held = ([np.empty(0, dtype=np.int64)] * cold_scores.shape[0] if cold_exclude is None
                    else cold_exclude[chunk])
            for user, rows in zip(task.user_ids[chunk], top_rows(cold_scores, held, k)):
                cold[int(user)] = cold_rows[rows].tolist()
    return full, cold


# ---------------------------------------------------------------------------------------------
# EASE


class Ease:
    """EASE fitted on (user id, catalogue row) interactions, for any lambda, over the items those
    interactions reach (`items`, catalogue rows).

    Every lambda comes from one symmetric eigendecomposition, then only matrix products, and no
    items x items inverse is formed to score: x B = x - (x P) / diag(P). The decomposition is of
    the smaller Gram matrix: of G = X^T X when there are no more items than users (P = V diag(1 /
    (w + lambda)) V^T), else of K = X X^T, through Woodbury: P = (I - X^T Q diag(1 / (s +
    lambda)) Q^T X) / lambda with K = Q diag(s) Q^T. Measured on ml-latest-small's train split
    (610 users x 8,246 items, two CPU cores shared with another job): one 8,246^2 inverse took
    43 s with np.linalg.inv (float32) and 29 s as a Cholesky inverse (LAPACK potrf + potri), per
    lambda; np.linalg.eigh of G 201 s, once; the eigh of K (610^2) and each lambda's products
    about a second.
    """

    def __init__(self, user_ids: np.ndarray, rows: np.ndarray, n_items: int):
        if not len(user_ids):
            raise ValueError("EASE needs at least one interaction")
        self.users, user_rows = np.unique(user_ids, return_inverse=True)
        # Binary [users, catalogue]: the conversion sums a repeated pair, which counts once.
        self.x = sp.csr_matrix((np.ones(len(rows)), (user_rows, rows)),
                               shape=(len(self.users), n_items))
        self.x.data[:] = 1.0
        self.items = np.flatnonzero(np.diff(self.x.tocsc().indptr))  # with an interaction
        x = self.x[:, self.items]
        self._woodbury = x.shape[1] > x.shape[0]
        if self._woodbury:
            self._eigen, q = np.linalg.eigh((x @ x.T).toarray())
            self._factor = np.asarray(x.T @ q)  # X^T Q [items, users]
        else:
            self._eigen, self._factor = np.linalg.eigh((x.T @ x).toarray())  # V [items, items]

    def _inverse_terms(self, lam: float) -> tuple[float, np.ndarray]:
        """(c, g) with P = c I + F diag(g) F^T, F the stored factor."""
        if self._woodbury:
            return 1.0 / lam, -1.0 / (lam * (self._eigen + lam))
        return 0.0, 1.0 / (self._eigen + lam)

    def weights(self, lam: float) -> np.ndarray:
        """B [items, items] over `items`: the closed form, which scoring never builds."""
        c, g = self._inverse_terms(lam)
        p = (self._factor * g) @ self._factor.T + c * np.eye(len(self.items))
        b = -p / np.diag(p)
        np.fill_diagonal(b, 0.0)
        return b

    def scores(self, x: sp.csr_matrix, lam: float) -> np.ndarray:
        """x B for binary rows over the catalogue [U, catalogue] -> [U, len(items)]."""
        c, g = self._inverse_terms(lam)
        x = x[:, self.items]
        dense = x.toarray()
        xp = c * dense + (np.asarray(x @ self._factor) * g) @ self._factor.T
        diag_p = c + np.einsum("ij,j,ij->i", self._factor, g, self._factor)
        return dense - xp / diag_p

    def rankings(self, task: RankingTask, lam: float, k: int = 20, batch: int = 1024
                 ) -> dict[int, list[int]]:
        """user -> top-k catalogue rows for `task`'s users, scored from their interactions in the
        fit (a user without any gets zeros), among `items` only, never one of task.exclude."""
        pos = np.searchsorted(self.users, task.user_ids).clip(max=len(self.users) - 1)
        found = self.users[pos] == task.user_ids
        history = (sp.diags(found.astype(np.float64)) @ self.x[pos]).tocsr()
        out = {}
        for start in range(0, len(task.user_ids), batch):
            chunk = slice(start, start + batch)
            scores = np.full((len(task.user_ids[chunk]), self.x.shape[1]), -np.inf)
            scores[:, self.items] = self.scores(history[chunk], lam)
            best = top_rows(scores, task.exclude[chunk], k)
            # With fewer than k to rank, the list ends before unseen or excluded items.
            seen = np.isfinite(np.take_along_axis(scores, best, 1))
            for user, rows, keep, exclude in zip(task.user_ids[chunk], best, seen,
                                                 task.exclude[chunk]):
                out[int(user)] = rows[keep & ~np.isin(rows, exclude)].tolist()
        return out


def validation_ease(user_ids: np.ndarray, rows: np.ndarray, n_items: int, valid: Groups) -> Ease:
    """EASE fitted on the (user id, catalogue row) train interactions minus the validation
    targets (the positives of `valid`): what may rank models.data.validation_task."""
    users = np.unique(np.concatenate([user_ids, valid.user_ids]))
    held_out = np.searchsorted(users, valid.user_ids) * n_items + valid.positive
    keep = ~np.isin(np.searchsorted(users, user_ids) * n_items + rows, held_out)
    return Ease(user_ids[keep], rows[keep], n_items)


def choose_ease_lambda(user_ids: np.ndarray, rows: np.ndarray, n_items: int, valid: Groups,
                       task: RankingTask, grid: Sequence[float] = EASE_LAMBDAS
                       ) -> tuple[float, dict[float, float]]:
    """(the lambda of `grid` with the best validation NDCG@10, each lambda's NDCG@10).

    EASE is fitted once (validation_ease) and ranks for `task` (models.data.validation_task) from
    what each user has in that fit. The test split is never read.
    """
    ease = validation_ease(user_ids, rows, n_items, valid)
    relevant = {int(u): r.tolist() for u, r in zip(task.user_ids, task.relevant)}
    if not any(relevant.values()):
        raise ValueError("no validation targets to choose EASE's lambda on")
    ndcg = {float(lam): metrics.evaluate(ease.rankings(task, lam), relevant, n_items)["ndcg@10"]
            for lam in grid}
    return max(ndcg, key=ndcg.get), ndcg
