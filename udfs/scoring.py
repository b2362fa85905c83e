"""Scoring inside Spark: the student's state broadcast once, loaded once per Python worker.

The driver builds a `ScoringState` for the run: the student's weights and config, plus the item
and user vectors the student computes once for this run's catalogue and histories (the towers'
outputs: computing them per pair would repeat the same work millions of times). It is shipped as
safetensors bytes through `SparkContext.broadcast` rather than `--files`/`addFile`: it is built
per run from this `ds`'s data, not a deployable file, and a broadcast is fetched once per executor
and cached there, whatever the number of tasks.

On the worker, an iterator pandas UDF deserialises it on its first batch (a module-level cache
keyed by the broadcast id keeps it for every later task in the same Python worker), sets torch's
threads to the task's CPUs, and scores each Arrow batch with one gather and one row-wise dot
product under `torch.inference_mode`, minus the item's popularity correction (models/debias.py).

Explanations (`recs.top_k.because`) come from the same state: each user's history rows are in it,
so a second UDF, run over the top-k rows only, splits each score (before the popularity
correction) exactly over the history items (`Student.contributions`) and names the few that
matter most (`ScoringState.explain_pairs`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from contract.tables import TOP_K_BECAUSE
from models.student import Student, student_from_state

EXPLAINED = 3  # history items named per recommended item


@dataclass
class ScoringState:
    student: Student
    user_ids: np.ndarray  # sorted int64
    user_vecs: torch.Tensor  # [U, D]
    item_ids: np.ndarray  # sorted int64
    item_vecs: torch.Tensor  # [I, D]
    history_rows: np.ndarray  # [U, L] int32 rows of item_ids, most recent first, -1 padded

    def __post_init__(self) -> None:
        # Once per state, not per pair: the per-pair path then only gathers by catalogue row.
        self.item_penalty = self.student.popularity_penalty(torch.as_tensor(self.item_ids))

    def to_payload(self) -> tuple[str, bytes]:
        """(config JSON, safetensors bytes): what the driver broadcasts. No pickled tensors."""
        from safetensors.torch import save

        tensors = {f"student.{k}": v.contiguous() for k, v in self.student.state_dict().items()}
        tensors.update(user_ids=torch.as_tensor(self.user_ids), user_vecs=self.user_vecs.contiguous(),
                       item_ids=torch.as_tensor(self.item_ids), item_vecs=self.item_vecs.contiguous(),
                       history_rows=torch.as_tensor(self.history_rows))
        return json.dumps({"student": self.student.cfg.to_json()}), save(tensors)

    @staticmethod
    def from_payload(payload: tuple[str, bytes]) -> ScoringState:
        from safetensors.torch import load

        config, blob = payload
        tensors = load(blob)
        weights = {k.removeprefix("student."): v for k, v in tensors.items() if k.startswith("student.")}
        student = student_from_state(json.loads(config), weights)
        return ScoringState(student, tensors["user_ids"].numpy(), tensors["user_vecs"],
                            tensors["item_ids"].numpy(), tensors["item_vecs"],
                            tensors["history_rows"].numpy())

    def rows(self, ids: np.ndarray, sorted_ids: np.ndarray, what: str) -> np.ndarray:
        pos = np.searchsorted(sorted_ids, ids).clip(max=len(sorted_ids) - 1)
        missing = sorted_ids[pos] != ids
        if missing.any():
            raise ValueError(f"{int(missing.sum())} {what} have no vector in this run's state, "
                             f"e.g. {ids[missing][:5].tolist()}")
        return pos

    @torch.inference_mode()
    def score_pairs(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        u = self.user_vecs[self.rows(user_ids, self.user_ids, "users")]
        rows = self.rows(item_ids, self.item_ids, "items")
        served = self.student.score_pairs(u, self.item_vecs[rows]) - self.item_penalty[rows]
        return served.numpy().astype(np.float64)

    @torch.inference_mode()
    def explain_pairs(self, user_ids: np.ndarray, item_ids: np.ndarray, top: int = EXPLAINED
                      ) -> pa.ListArray:
        """Per pair: the `top` history items the score owes most to, as list<struct<item_id,
        contribution>>, the contribution being the item's exact term of the score
        (Student.contributions), largest first.

        A term is the item's weight times its alignment with the candidate. Part of it, the
        one along the user vector (the item's share of the profile times the score), every
        candidate with this score gets too, and removing a heavy recent item moves it little:
        ranking items by whole terms names the latest item whatever the candidate. So items are
        picked by the rest, their term for the part of the candidate the user vector does not
        already point at (w_j dscore/dw_j: dropping the item lowers this score to first order),
        among the items where it is positive; where none is (a one-item history: the user
        vector is that item), among all. Only items that raise the score are named."""
        users = self.rows(user_ids, self.user_ids, "users")
        history = torch.as_tensor(self.history_rows[users]).long()
        mask = history >= 0
        vecs = self.item_vecs[history.clamp(min=0)]  # padding weighs 0: no zeroing needed
        items = self.item_vecs[self.rows(item_ids, self.item_ids, "items")]
        profile = self.user_vecs[users]
        aside = items - (items * profile).sum(-1, keepdim=True) * profile
        terms, _ = self.student.contributions(vecs, mask, items)
        specific, _ = self.student.contributions(vecs, mask, aside)
        # An item seen twice holds two positions: name it once, at its first, with both terms.
        first = self.first_positions(users)
        terms, specific = (torch.zeros_like(t).scatter_add_(1, first, t) for t in (terms, specific))
        nameable = mask & (first == torch.arange(history.shape[1])) & (terms > 0)
        pulling = nameable & (specific > 0)
        nameable &= pulling | ~pulling.any(1, keepdim=True)
        picked = specific.masked_fill(~nameable, float("-inf")).topk(min(top, history.shape[1]))
        best = (terms.gather(1, picked.indices)
                .masked_fill(~nameable.gather(1, picked.indices), float("-inf"))
                .sort(dim=1, descending=True))
        named = best.values > float("-inf")  # a prefix of each row, sorted descending
        chosen = history.gather(1, picked.indices.gather(1, best.indices))
        ids = self.item_ids[chosen[named].numpy()]
        contributions = best.values[named].double().numpy()
        return pa.ListArray.from_arrays(
            np.r_[0, np.cumsum(named.sum(1).numpy())].astype(np.int32),
            pa.StructArray.from_arrays([pa.array(ids), pa.array(contributions)],
                                       names=["item_id", "contribution"]))

    def first_positions(self, users: np.ndarray) -> torch.Tensor:
        """[B, L]: for each history position of each user row (rows of user_ids), the first
        position of that history holding the same item. Computed once per distinct user."""
        distinct, of_row = np.unique(users, return_inverse=True)
        history = torch.as_tensor(self.history_rows[distinct])
        same = history.unsqueeze(2) == history.unsqueeze(1)
        return same.int().argmax(-1)[torch.as_tensor(of_row)]  # argmax: the first of the ties


def build_state(student: Student, catalogue_ids: np.ndarray, catalogue_tokens: np.ndarray,
                user_ids: np.ndarray, history_rows: np.ndarray) -> ScoringState:
    """Vectors for every catalogue item and user, once per run (catalogue sorted by id), and the
    history rows the user vectors were built from, for explanations."""
    items = student.item_vectors(catalogue_tokens, catalogue_ids)
    users = student.user_vectors(items, history_rows)
    order = np.argsort(user_ids)
    history = history_rows[order, : student.cfg.max_history].astype(np.int32)
    return ScoringState(student, user_ids[order], users[torch.as_tensor(order)], catalogue_ids,
                        items, history)


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


def set_torch_threads() -> None:
    """torch's intra-op threads = the CPUs Spark gave this task (spark.task.cpus)."""
    from pyspark import TaskContext

    context = TaskContext.get()
    cpus = int(context.cpus()) if context is not None else os.cpu_count() or 1
    if torch.get_num_threads() != cpus:
        torch.set_num_threads(cpus)


def pair_score_udf(shared: SharedState):
    """pandas UDF: (user_id, item_id) -> the student's score, for any number of pairs."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("double")
    def score(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.Series]:
        set_torch_threads()
        state = shared.get()
        for users, items in batches:
            yield pd.Series(state.score_pairs(users.to_numpy(np.int64), items.to_numpy(np.int64)))

    return score


def explanation_udf(shared: SharedState):
    """Arrow UDF: (user_id, item_id) -> the history items that drove the score (explain_pairs).
    Arrow in and out: nested results built as arrays, never as a Python object per row."""
    from pyspark.sql.functions import arrow_udf

    @arrow_udf(TOP_K_BECAUSE.type)
    def because(batches: Iterator[tuple[pa.Array, pa.Array]]) -> Iterator[pa.Array]:
        set_torch_threads()
        state = shared.get()
        for users, items in batches:
            yield state.explain_pairs(users.to_numpy(), items.to_numpy())

    return because
