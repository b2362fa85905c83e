"""The losses of both two-tower models: the teacher (models/training.py) and the student
(models/distill.py) train on the same batches, so they share these definitions.

A batch is G example groups. "Own" logits are [G, 1 + K]: each group's user against its
positive (column 0) and its K sampled negatives, -1 padded where a group has fewer. In-batch
logits are [G, C]: each user against every candidate of the batch, the G positives first in
group order (so group i's positive is column i), then every real negative.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def own_bce(logits: torch.Tensor, negative_mask: torch.Tensor) -> torch.Tensor:
    """Mean BCE over each group's positive and its real negatives; padded slots weigh nothing.

    logits [G, 1 + K]; negative_mask [G, K], False where the negative is padding.
    """
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1
    weight = torch.cat([torch.ones_like(negative_mask[:, :1]), negative_mask], 1).float()
    bce = F.binary_cross_entropy_with_logits(logits, labels, weight, reduction="sum")
    return bce / weight.sum()


def other_positives(candidate_rows: torch.Tensor, positive_rows: torch.Tensor) -> torch.Tensor:
    """[G, C] True where a candidate of another group is this group's positive item.

    Popular items are often several groups' positives, or another group's sampled negative;
    counting such a copy as a negative would push the user away from the very item it clicked.
    """
    same = candidate_rows.unsqueeze(0) == positive_rows.unsqueeze(1)
    own = torch.arange(len(positive_rows), device=same.device)
    same[own, own] = False
    return same


def info_nce(logits: torch.Tensor, log_q: torch.Tensor | None = None,
             exclude: torch.Tensor | None = None, fill: float = float("-inf")) -> torch.Tensor:
    """Softmax cross-entropy of each group's positive (column i of row i) against the batch.

    In-batch candidates are drawn by popularity, so with `log_q` (the log sampling frequency of
    each column) subtracted the softmax estimates the full-catalogue one instead of learning to
    demote popular items (Yi et al., 2019). `exclude` ([G, C] bool, see other_positives) columns
    get `fill`.
    """
    if log_q is not None:
        logits = logits - log_q
    if exclude is not None:
        logits = logits.masked_fill(exclude, fill)
    target = torch.arange(len(logits), device=logits.device)
    return F.cross_entropy(logits, target)


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
