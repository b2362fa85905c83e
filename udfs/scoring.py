"""Scoring inside Spark's Python workers: float32 arrays and numpy, no torch.

The driver builds a `ScoringState` for the run (`jobs/score.py`, `build_state`): the student's
item and user vectors for this run's catalogue and histories (the towers' outputs: computing them
per pair would repeat the same work millions of times), each catalogue row's popularity
correction (models/debias.py), the history rows the user vectors were built from, and the few
user-tower parameters that explanations need. Scoring a pair is then a lookup and a dot product,
so executors need numpy, not a torch install (`recs package` lists what they need; a test
imports the udfs with torch blocked and scores, ranks and explains through a payload).

The state is shipped as safetensors bytes through `SparkContext.broadcast` rather than
`--files`/`addFile`: it is built per run from this `ds`'s data, not a deployable file, and a
broadcast is fetched once per executor and cached there, whatever the number of tasks. A
module-level cache keyed by the run keeps the deserialised arrays for every later task of the
same Python worker.

Three ways in:
- blocks of users, each against the whole item matrix in one float32 matrix product, the users'
  seen items masked: `unseen_scores_blocks` puts out every unseen pair's score and
  `best_unseen_blocks` each user's k best, ranked by a partial sort and explained (`recs score`
  without a first stage: the pairs are made where they are scored, never written before, and no
  Window sorts them all; and the first stage of generate-candidates);
- given pairs (`pair_score_udf`, first-stage candidates): one gather and a row-wise dot product.
Explanations (`recs.top_k.because`), over the top-k rows only, split each score (before the
popularity correction) exactly over the history items (`contributions`, the numpy twin of
`Student.contributions`) and name the few that matter most (`explain_pairs`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from contract.tables import TOP_K_BECAUSE

EXPLAINED = 3  # history items named per recommended item
# Rows per step of explain_pairs: their [rows, L, D] history vectors stay in tens of MB, where a
# whole batch's would spend its time in memory traffic.
EXPLAIN_ROWS = 4096
# Pairs per matrix product: large enough that numpy's per-call overhead vanishes, small enough
# that a block's scores and masks (a few bytes per pair each) stay in tens of MB per task.
PAIRS_PER_BLOCK = 1 << 20
# What unseen_scores (every unseen pair) and best_unseen (each user's k best) yield.
UNSEEN_SCORES_SCHEMA = "user_id long, item_id long, score double"
BEST_UNSEEN_SCHEMA = f"user_id long, rank int, item_id long, score double, because {TOP_K_BECAUSE.type}"
BECAUSE = pa.list_(pa.struct([("item_id", pa.int64()), ("contribution", pa.float64())]))


@dataclass
class ScoringState:
    user_ids: np.ndarray  # [U] int64, sorted
    user_vecs: np.ndarray  # [U, D] float32
    item_ids: np.ndarray  # [I] int64, sorted: the catalogue
    item_vecs: np.ndarray  # [I, D] float32
    item_penalty: np.ndarray  # [I] float32: what the served score subtracts (models/debias.py)
    history_rows: np.ndarray  # [U, L] int32 catalogue rows, most recent first, -1 padded
    recency: np.ndarray  # [L] float32: the user tower's recency logits
    out_weight: np.ndarray  # [D, D] float32: the user tower's output layer, x @ W.T + b
    out_bias: np.ndarray  # [D] float32
    temperature: float

    def to_payload(self) -> bytes:
        """What the driver broadcasts: safetensors bytes, no pickled objects."""
        from safetensors.numpy import save

        arrays = {f.name: np.ascontiguousarray(getattr(self, f.name)) for f in fields(self)
                  if f.name != "temperature"}
        return save({**arrays, "temperature": np.array([self.temperature])})

    @staticmethod
    def from_payload(payload: bytes) -> ScoringState:
        from safetensors.numpy import load

        arrays = load(payload)
        return ScoringState(**{f.name: arrays[f.name] for f in fields(ScoringState)
                               if f.name != "temperature"},
                            temperature=float(arrays["temperature"][0]))

    def rows(self, ids: np.ndarray, sorted_ids: np.ndarray, what: str) -> np.ndarray:
        pos = np.searchsorted(sorted_ids, ids).clip(max=len(sorted_ids) - 1)
        missing = sorted_ids[pos] != ids
        if missing.any():
            raise ValueError(f"{int(missing.sum())} {what} have no vector in this run's state, "
                             f"e.g. {ids[missing][:5].tolist()}")
        return pos

    def score_pairs(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """The served score of each (user, item) pair: user . item / temperature - penalty."""
        users = self.user_vecs[self.rows(user_ids, self.user_ids, "users")]
        rows = self.rows(item_ids, self.item_ids, "items")
        raw = np.einsum("ij,ij->i", users, self.item_vecs[rows]) / self.temperature
        return (raw - self.item_penalty[rows]).astype(np.float64)

    def score_users(self, user_rows: np.ndarray) -> np.ndarray:
        """[B, I] float32: the served score of each of these users (rows of user_ids) against
        every catalogue item, in one matrix product."""
        scores = self.user_vecs[user_rows] @ self.item_vecs.T
        scores /= self.temperature
        scores -= self.item_penalty
        return scores

    def seen_cells(self, seen: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(position in `seen`, catalogue row) of every catalogue item in each user's list of
        `seen` (a list array, null for none), ordered by position."""
        lengths = pc.fill_null(pc.list_value_length(seen), 0).to_numpy()
        items = seen.flatten().to_numpy().astype(np.int64)
        at = np.repeat(np.arange(len(seen)), lengths)
        cols = np.searchsorted(self.item_ids, items).clip(max=len(self.item_ids) - 1)
        known = self.item_ids[cols] == items
        return at[known], cols[known]

    def unseen_blocks(self, user_ids: np.ndarray, seen: pa.Array
                      ) -> Iterator[tuple[slice, np.ndarray]]:
        """(slice of user_ids, [B, I] scores, the users' seen items at -inf) for consecutive
        blocks of about PAIRS_PER_BLOCK pairs."""
        user_rows = self.rows(user_ids, self.user_ids, "users")
        at, cols = self.seen_cells(seen)
        step = max(1, PAIRS_PER_BLOCK // max(1, len(self.item_ids)))
        for start in range(0, len(user_ids), step):
            block = slice(start, min(start + step, len(user_ids)))
            lo, hi = np.searchsorted(at, [block.start, block.stop])
            scores = self.score_users(user_rows[block])
            scores[at[lo:hi] - block.start, cols[lo:hi]] = -np.inf
            yield block, scores

    def unseen_scores(self, user_ids: np.ndarray, seen: pa.Array) -> Iterator[pa.RecordBatch]:
        """Every catalogue item not in the user's `seen` list, scored (UNSEEN_SCORES_SCHEMA)."""
        for block, scores in self.unseen_blocks(user_ids, seen):
            unseen = (scores != -np.inf).ravel()  # a served score is finite
            yield pa.RecordBatch.from_arrays(
                [pa.array(np.repeat(user_ids[block], len(self.item_ids))[unseen]),
                 pa.array(np.tile(self.item_ids, len(scores))[unseen]),
                 pa.array(scores.ravel()[unseen].astype(np.float64))],
                names=["user_id", "item_id", "score"])

    def best_unseen(self, user_ids: np.ndarray, seen: pa.Array, k: int, explain: bool = False
                    ) -> Iterator[pa.RecordBatch]:
        """Each user's k best items not in their `seen` list, ranked 1..k (best_first), each
        with its explanation (explain_pairs) when `explain`, else null (BEST_UNSEEN_SCHEMA).
        Explained here, in the pass that finds them, rather than by a UDF over its output: one
        Python stage instead of two."""
        for block, scores in self.unseen_blocks(user_ids, seen):
            rows, cols = best_first(scores, k)
            users, items = user_ids[block][rows], self.item_ids[cols]
            yield pa.RecordBatch.from_arrays(
                [pa.array(users),
                 pa.array((np.arange(len(rows)) - np.searchsorted(rows, rows) + 1)
                          .astype(np.int32)),
                 pa.array(items),
                 pa.array(scores[rows, cols].astype(np.float64)),
                 self.explain_pairs(users, items) if explain else pa.nulls(len(rows), BECAUSE)],
                names=["user_id", "rank", "item_id", "score", "because"])

    def weights(self, mask: np.ndarray) -> np.ndarray:
        """StudentUserTower.weights: softmax over the real items of the recency logits; 0 on
        padding, and everywhere for an empty history."""
        logits = np.where(mask, self.recency[: mask.shape[1]], -np.inf).astype(np.float32)
        top = logits.max(1, initial=-np.inf, keepdims=True)
        shifted = np.exp(logits - np.where(np.isfinite(top), top, 0))
        total = shifted.sum(1, keepdims=True)
        return np.divide(shifted, total, out=np.zeros_like(shifted), where=total > 0)

    def contributions(self, history: np.ndarray, mask: np.ndarray, items: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Student.contributions in numpy: the score of each (history, item) row split exactly
        over its history positions, ([B, L] per position, 0 on padding; [B] bias term); they
        add up to the score before the popularity correction.

        history [B, L, D] item vectors, mask [B, L], items [B, D]."""
        weights = self.weights(mask)
        unnormalised = np.einsum("bl,bld->bd", weights, history) @ self.out_weight.T + self.out_bias
        # F.normalize's floor, as the score divided by it.
        scale = np.maximum(np.linalg.norm(unnormalised, axis=-1), 1e-12) * self.temperature
        pulled = items @ self.out_weight  # W^T i: W h_j . i = h_j . W^T i, D^2 once per row
        per_position = weights * np.einsum("bld,bd->bl", history, pulled)
        return per_position / scale[:, None], (items @ self.out_bias) / scale

    def explain_pairs(self, user_ids: np.ndarray, item_ids: np.ndarray, top: int = EXPLAINED
                      ) -> pa.ListArray:
        """Per pair: the `top` history items the score owes most to, as list<struct<item_id,
        contribution>>, the contribution being the item's exact term of the score
        (contributions), largest first.

        A term is the item's weight times its alignment with the candidate. Part of it, the
        one along the user vector (the item's share of the profile times the score), every
        candidate with this score gets too, and removing a heavy recent item moves it little:
        ranking items by whole terms names the latest item whatever the candidate. So items are
        picked by the rest, their term for the part of the candidate the user vector does not
        already point at (w_j dscore/dw_j: dropping the item lowers this score to first order),
        among the items where it is positive; where none is (a one-item history: the user
        vector is that item), among all. Only items that raise the score are named."""
        users = self.rows(user_ids, self.user_ids, "users")
        items = self.rows(item_ids, self.item_ids, "items")
        # range(0, 0) is empty: one step of no rows then, so the result keeps its type.
        steps = [self.explain_rows(users[s:s + EXPLAIN_ROWS], items[s:s + EXPLAIN_ROWS], top)
                 for s in range(0, len(users), EXPLAIN_ROWS) or [0]]
        counts, ids, contributions = (np.concatenate(part) for part in zip(*steps))
        return pa.ListArray.from_arrays(
            np.r_[0, np.cumsum(counts)].astype(np.int32),
            pa.StructArray.from_arrays([pa.array(ids, pa.int64()), pa.array(contributions)],
                                       fields=list(BECAUSE.value_type)))

    def explain_rows(self, users: np.ndarray, item_rows: np.ndarray, top: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """explain_pairs for rows of user_ids and item_ids: (items named per pair, their ids,
        their contributions), flat."""
        history = self.history_rows[users].astype(np.int64)
        mask = history >= 0
        vecs = self.item_vecs[np.maximum(history, 0)]  # padding weighs 0: no zeroing needed
        items = self.item_vecs[item_rows]
        profile = self.user_vecs[users]
        aside = items - (items * profile).sum(-1, keepdims=True) * profile
        terms, _ = self.contributions(vecs, mask, items)
        specific, _ = self.contributions(vecs, mask, aside)
        # An item seen twice holds two positions: name it once, at its first, with both terms.
        first = self.first_positions(users)
        terms, specific = (merge_repeats(t, first) for t in (terms, specific))
        nameable = mask & (first == np.arange(history.shape[1])) & (terms > 0)
        pulling = nameable & (specific > 0)
        nameable &= pulling | ~pulling.any(1, keepdims=True)
        # The `top` most specific nameable positions, then those by their terms, largest first.
        most_specific = np.where(nameable, specific, -np.inf)
        picked = np.argsort(-most_specific, axis=1, kind="stable")[:, :top]
        picked_terms = np.where(np.take_along_axis(nameable, picked, 1),
                                np.take_along_axis(terms, picked, 1), -np.inf)
        order = np.argsort(-picked_terms, axis=1, kind="stable")
        best = np.take_along_axis(picked_terms, order, 1)
        named = best > -np.inf  # a prefix of each row, sorted descending
        chosen = np.take_along_axis(history, np.take_along_axis(picked, order, 1), 1)
        return named.sum(1), self.item_ids[chosen[named]], best[named].astype(np.float64)

    def first_positions(self, users: np.ndarray) -> np.ndarray:
        """[B, L]: for each history position of each user row (rows of user_ids), the first
        position of that history holding the same item. Computed once per distinct user."""
        distinct, of_row = np.unique(users, return_inverse=True)
        history = self.history_rows[distinct]
        same = history[:, :, None] == history[:, None, :]
        return same.argmax(-1)[of_row]  # argmax: the first of the ties


def merge_repeats(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """[B, L]: each position's value added onto its row's `first` position (scatter-add)."""
    rows, length = values.shape
    at = (np.arange(rows)[:, None] * length + first).ravel()
    merged = np.bincount(at, weights=values.ravel(), minlength=rows * length)
    return merged.reshape(rows, length).astype(values.dtype)


def best_first(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of each row's k largest finite scores, ordered by row, then score
    descending, then column: the catalogue is sorted by item id, so this is
    `ORDER BY score DESC, item_id` per user, ties at the k-th score included, exactly."""
    n = scores.shape[1]
    k = min(k, n)
    if k == 0 or len(scores) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    kth = np.partition(scores, n - k, axis=1)[:, n - k, None]  # each row's k-th largest
    keep = (scores >= kth) & (scores > -np.inf)
    tied = np.flatnonzero(keep.sum(1) > k)  # more than k reach the k-th: the smallest ids win
    if len(tied):
        above = scores[tied] > kth[tied]
        at = keep[tied] & ~above
        room = k - above.sum(1, keepdims=True)
        keep[tied] = above | (at & (np.cumsum(at, axis=1) <= room))
    rows, cols = np.nonzero(keep)
    order = np.lexsort((cols, -scores[rows, cols], rows))
    return rows[order], cols[order]


_STATE_CACHE: dict[str, ScoringState] = {}


class SharedState:
    """A broadcast payload plus a key naming it on workers (Broadcast has no public id there)."""

    def __init__(self, spark_context, state: ScoringState):
        import uuid

        self.key = uuid.uuid4().hex
        self.broadcast = spark_context.broadcast(state.to_payload())

    def get(self) -> ScoringState:
        state = _STATE_CACHE.get(self.key)
        if state is None:
            state = ScoringState.from_payload(self.broadcast.value)
            _STATE_CACHE.clear()  # one run's state at a time per worker
            _STATE_CACHE[self.key] = state
        return state

    def destroy(self) -> None:
        self.broadcast.destroy()


_BLAS_THREADS = {"set": 0}  # what this Python worker last limited numpy's BLAS to


def set_blas_threads() -> None:
    """numpy's BLAS threads = the CPUs Spark gave this task (spark.task.cpus), as many as it
    may use: by default each worker would start one per core of the machine, and its small
    matrix products (the explanations') then spend their time waiting on threads that other
    tasks' workers hold the cores of."""
    from pyspark import TaskContext
    from threadpoolctl import threadpool_limits

    context = TaskContext.get()
    cpus = int(context.cpus()) if context is not None else os.cpu_count() or 1
    if _BLAS_THREADS["set"] != cpus:
        threadpool_limits(cpus, user_api="blas")
        _BLAS_THREADS["set"] = cpus


def unseen_scores_blocks(shared: SharedState):
    """The `mapInArrow` function: (user_id, seen) batches -> every unseen pair, scored
    (ScoringState.unseen_scores; UNSEEN_SCORES_SCHEMA)."""

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        set_blas_threads()
        state = shared.get()
        for batch in batches:
            yield from state.unseen_scores(batch.column("user_id").to_numpy(),
                                           batch.column("seen"))

    return score


def best_unseen_blocks(shared: SharedState, k: int, explain: bool = False):
    """The `mapInArrow` function: (user_id, seen) batches -> each user's k best unseen items,
    ranked, explained when `explain` (ScoringState.best_unseen; BEST_UNSEEN_SCHEMA)."""

    def best(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        set_blas_threads()
        state = shared.get()
        for batch in batches:
            yield from state.best_unseen(batch.column("user_id").to_numpy(),
                                         batch.column("seen"), k, explain)

    return best


def pair_score_udf(shared: SharedState):
    """Arrow UDF: (user_id, item_id) -> the student's served score, for any number of pairs."""
    from pyspark.sql.functions import arrow_udf

    @arrow_udf("double")
    def score(batches: Iterator[tuple[pa.Array, pa.Array]]) -> Iterator[pa.Array]:
        set_blas_threads()
        state = shared.get()
        for users, items in batches:
            yield pa.array(state.score_pairs(users.to_numpy(), items.to_numpy()))

    return score


def explanation_udf(shared: SharedState):
    """Arrow UDF: (user_id, item_id) -> the history items that drove the score (explain_pairs).
    Arrow in and out: nested results built as arrays, never as a Python object per row."""
    from pyspark.sql.functions import arrow_udf

    @arrow_udf(TOP_K_BECAUSE.type)
    def because(batches: Iterator[tuple[pa.Array, pa.Array]]) -> Iterator[pa.Array]:
        set_blas_threads()
        state = shared.get()
        for users, items in batches:
            yield state.explain_pairs(users.to_numpy(), items.to_numpy())

    return because
