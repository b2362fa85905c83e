"""First-stage retrieval inside Spark's Python workers, for `jobs/generate_candidates.py`.

Each Arrow batch of users (with their seen items) is scored against the whole item matrix in one
matrix product, as nightly scoring scores a pair (the popularity correction included), seen items
masked, and each user's n best items kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd


def tower_top_n_blocks(shared, n: int) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The `mapInPandas` function: (user_id, seen) batches -> (user_id, item_id) of the n best."""

    def top(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import torch

        from udfs.scoring import set_torch_threads

        set_torch_threads()
        state = shared.get()
        penalty = state.student.popularity_penalty(torch.as_tensor(state.item_ids))
        for frame in frames:
            user_rows = state.rows(frame["user_id"].to_numpy(np.int64), state.user_ids, "users")
            with torch.inference_mode():
                scores = state.student.score(state.user_vecs[user_rows], state.item_vecs) - penalty
                for i, seen in enumerate(frame["seen"]):
                    if seen is not None and len(seen):
                        pos = np.searchsorted(state.item_ids, np.asarray(seen, dtype=np.int64))
                        scores[i, torch.as_tensor(pos.clip(max=len(state.item_ids) - 1))] = -torch.inf
                best = scores.topk(min(n, scores.shape[1]), dim=1)
            keep = torch.isfinite(best.values).numpy()
            items = state.item_ids[best.indices.numpy()]
            users = np.repeat(frame["user_id"].to_numpy(np.int64), items.shape[1])
            yield pd.DataFrame({"user_id": users[keep.ravel()], "item_id": items.ravel()[keep.ravel()]})

    return top
