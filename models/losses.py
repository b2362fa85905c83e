"""The losses of both two-tower models: the teacher (models/training.py) and the student
(models/distill.py) score every batch user against the whole catalogue, so they share these.

A batch is B training rows, each a user's history at one moment and that user's next train
items ("targets", -1 padded): logits are [B, N], one column per catalogue row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# An excluded column's logit. Finite, not -inf: the KL of two -inf columns is NaN (see distill_kl).
MASKED_LOGIT = -1e4


def mask_seen(logits: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
    """Give every item of a row's own history (-1 padded [B, L] catalogue rows) MASKED_LOGIT.

    The protocol never recommends a user's own items, so spending softmax mass to push them
    down teaches nothing the ranking uses.
    """
    n = logits.shape[1]
    # Padding writes to a spare last column, so it can never unset a real item's mark.
    seen = torch.zeros(logits.shape[0], n + 1, dtype=torch.bool, device=logits.device)
    seen.scatter_(1, torch.where(history >= 0, history, n), True)
    return logits.masked_fill(seen[:, :n], MASKED_LOGIT)


def future_softmax(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the full-catalogue softmax on each row's real targets.

    With one target per row this is SASRec's next-item cross-entropy (Klenitskiy & Vasilev,
    2023). With the next several train items as targets (a "dense all-action" objective,
    Pancha et al., 2022) the user vector learns what the user goes on to do over a stretch of
    time, which is what a held-out tail of interactions asks of it, rather than the one item
    that happens to come next (ratings entered in one sitting share a timestamp, so the order
    among them is arbitrary).
    """
    real = targets >= 0
    picked = logits.log_softmax(-1).gather(1, targets.clamp(min=0))
    return -(picked * real).sum() / real.sum().clamp(min=1)


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
               temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the row softmaxes at `temperature`, per row.

    Scaled by t^2 so that its gradients keep their size whatever the temperature (Hinton et
    al., 2015). Masked columns must hold a large finite value, not -inf: where both sides are
    -inf the pointwise term is 0 * (-inf - -inf) = NaN.
    """
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, -1), F.log_softmax(teacher_logits / t, -1),
                    log_target=True, reduction="batchmean") * t * t


def co_consumed_contrastive(a: torch.Tensor, b: torch.Tensor, a_items: torch.Tensor,
                            b_items: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric in-batch InfoNCE of [B, D] normalised text vectors: a[i] must pick b[i] (an item
    the same user consumed next to it) among the batch's b, and b[i] pick a[i] among the a
    (sentence-transformers' MultipleNegativesRankingLoss, both ways).

    A column holding the row's own positive item or its anchor item again (popular items recur
    in a batch) is not a negative: it is masked rather than pushed away.
    """
    logits = a @ b.T / temperature
    eye = torch.eye(len(a), dtype=torch.bool, device=a.device)
    clash_ab = (b_items[None, :] == b_items[:, None]) | (b_items[None, :] == a_items[:, None])
    clash_ba = (a_items[None, :] == a_items[:, None]) | (a_items[None, :] == b_items[:, None])
    target = torch.arange(len(a), device=a.device)
    forward = F.cross_entropy(logits.masked_fill(clash_ab & ~eye, MASKED_LOGIT), target)
    backward = F.cross_entropy(logits.T.masked_fill(clash_ba & ~eye, MASKED_LOGIT), target)
    return (forward + backward) / 2
