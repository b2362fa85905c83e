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
product under `torch.inference_mode`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from models.student import Student, student_from_state


@dataclass
class ScoringState:
    student: Student
    user_ids: np.ndarray  # sorted int64
    user_vecs: torch.Tensor  # [U, D]
    item_ids: np.ndarray  # sorted int64
    item_vecs: torch.Tensor  # [I, D]

    def to_payload(self) -> tuple[str, bytes]:
        """(config JSON, safetensors bytes): what the driver broadcasts. No pickled tensors."""
        from safetensors.torch import save

        tensors = {f"student.{k}": v.contiguous() for k, v in self.student.state_dict().items()}
        tensors.update(user_ids=torch.as_tensor(self.user_ids), user_vecs=self.user_vecs.contiguous(),
                       item_ids=torch.as_tensor(self.item_ids), item_vecs=self.item_vecs.contiguous())
        return json.dumps({"student": self.student.cfg.to_json()}), save(tensors)

    @staticmethod
    def from_payload(payload: tuple[str, bytes]) -> ScoringState:
        from safetensors.torch import load

        config, blob = payload
        tensors = load(blob)
        weights = {k.removeprefix("student."): v for k, v in tensors.items() if k.startswith("student.")}
        student = student_from_state(json.loads(config), weights)
        return ScoringState(student, tensors["user_ids"].numpy(), tensors["user_vecs"],
                            tensors["item_ids"].numpy(), tensors["item_vecs"])

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
        i = self.item_vecs[self.rows(item_ids, self.item_ids, "items")]
        return self.student.score_pairs(u, i).numpy().astype(np.float64)


def build_state(student: Student, catalogue_ids: np.ndarray, catalogue_tokens: np.ndarray,
                user_ids: np.ndarray, history_rows: np.ndarray) -> ScoringState:
    """Vectors for every catalogue item and user, once per run (catalogue sorted by id)."""
    items = student.item_vectors(catalogue_tokens, catalogue_ids)
    users = student.user_vectors(items, history_rows)
    order = np.argsort(user_ids)
    return ScoringState(student, user_ids[order], users[torch.as_tensor(order)], catalogue_ids, items)


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
