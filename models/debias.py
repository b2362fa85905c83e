"""Popularity debiasing at scoring time, and how its strength is chosen.

The student learns from logged interactions, and an item is only interacted with where it was
shown: its score estimates relevance and exposure together. Taking an item's exposure propensity
as proportional to popularity^beta (popularity: train interactions, add-one smoothed so that a
cold item is defined) and dividing it out of exp(score) leaves, in log space,

    served score = score - beta x log(1 + train interactions of the item)

beta = 0 is the plain student; beta = 1 divides by popularity itself; a cold item is never
penalised (log 1 = 0). The per-item log(1 + count) is saved with the weights
(`Student.log_popularity`) and beta in the student's config (`popularity_beta`), so nightly
scoring, the first stage and the JVM-free evaluations all rank with the same correction
(`Student.popularity_penalty`).

The strength is one flag, `recs distill --popularity-beta`: a number, or `auto` (the default),
the largest beta of BETAS whose validation NDCG@10 stays within KEEP of beta 0's (choose_beta),
the validation ranking corrected by the popularity known at its cut-off (train interactions less
the validation targets: data.validation_popularity).
The test split's curve over the same grid is only reported (jobs/evaluate.py), never used to
choose.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from models import metrics, popularity_bias
from models.data import RankingTask
from models.scoring import top_k
from models.student import Student

# Student scores are cosine / 0.05 (about 1 logit between a user's 1st and 10th item) and
# log(1 + count) reaches about 6 on ml-latest-small: past beta 1 the lists are nearly all tail.
BETAS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)
KEEP = 0.98  # the share of beta 0's validation NDCG@10 that `auto` may not go below
FIGURES = ("ndcg@10", "tail_share@10")  # the two axes of the trade-off curve


def choose_beta(ndcg_by_beta: Mapping[float, float], keep: float = KEEP) -> float:
    """The largest beta whose NDCG@10 is at least `keep` x beta 0's (beta 0 always is)."""
    floor = keep * ndcg_by_beta[0.0]
    return max(beta for beta, ndcg in ndcg_by_beta.items() if ndcg >= floor)


@torch.no_grad()
def beta_curve(student: Student, items: torch.Tensor, users: torch.Tensor, item_ids: np.ndarray,
               task: RankingTask, popularity: np.ndarray, betas: tuple[float, ...] = BETAS
               ) -> dict[float, dict]:
    """beta -> the FIGURES (each with its `:ci95` interval) of the student's whole-catalogue
    ranking of `task` with that correction.

    items [N, D]: the vectors of the catalogue rows, whose ids are `item_ids`; users [U, D]: the
    task's; popularity [N]: the interactions of every catalogue row known at the task's cut-off,
    which the correction subtracts log(1 + .) of and the tail is cut from. At test time that is
    every train interaction, what the served student's log_popularity holds; on the validation
    split, those before it (data.validation_popularity), so that choosing beta there does not
    read the validation targets.
    """
    relevant = {int(u): r.tolist() for u, r in zip(task.user_ids, task.relevant)}
    counts = dict(enumerate(popularity.tolist()))
    log_popularity = torch.log1p(torch.as_tensor(popularity, dtype=torch.float32))
    curve = {}
    for beta in betas:
        top = top_k(student, users, items, task.exclude, 20, penalty=beta * log_popularity)
        ranked = {int(u): row.tolist() for u, row in zip(task.user_ids, top)}
        values = {**metrics.evaluate(ranked, relevant, len(item_ids)),
                  **popularity_bias.bias_values(ranked, relevant, counts)}
        curve[beta] = {k: v for k, v in values.items()
                       if k.removesuffix(metrics.INTERVAL) in FIGURES}
    return curve
