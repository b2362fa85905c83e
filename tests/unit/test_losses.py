"""models/losses.py on literal logits small enough to compute by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models import losses
from models.data import Groups
from models.training import make_batch


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_own_bce_weighs_positive_and_real_negatives_only():
    logits = torch.tensor([[2.0, -1.0, 5.0], [0.5, 0.0, -3.0]])
    negatives = torch.tensor([[True, False], [True, True]])  # group 0's second negative is padding
    # BCE(x, 1) = softplus(-x), BCE(x, 0) = softplus(x); mean over the 5 real slots.
    expected = (softplus(-2.0) + softplus(-1.0) + softplus(-0.5) + softplus(0.0) + softplus(-3.0)) / 5
    assert losses.own_bce(logits, negatives).item() == pytest.approx(expected, abs=1e-6)
    # Whatever the padded slot's logit, it counts for nothing.
    logits[0, 2] = -40.0
    assert losses.own_bce(logits, negatives).item() == pytest.approx(expected, abs=1e-6)


def test_info_nce_subtracts_log_q_before_the_softmax():
    logits = torch.tensor([[1.0, 0.0, 2.0], [0.5, 1.5, -1.0]])
    log_q = torch.tensor([-1.0, -2.0, -0.5])
    # Adjusted rows: [2, 2, 2.5] (target column 0) and [1.5, 3.5, -0.5] (target column 1).
    row0 = -2.0 + math.log(2 * math.exp(2.0) + math.exp(2.5))
    row1 = -3.5 + math.log(math.exp(1.5) + math.exp(3.5) + math.exp(-0.5))
    assert losses.info_nce(logits, log_q).item() == pytest.approx((row0 + row1) / 2, abs=1e-6)
    without = -1.0 + math.log(math.exp(1.0) + 1.0 + math.exp(2.0))
    without += -1.5 + math.log(math.exp(0.5) + math.exp(1.5) + math.exp(-1.0))
    assert losses.info_nce(logits).item() == pytest.approx(without / 2, abs=1e-6)


def test_another_groups_copy_of_my_positive_is_not_a_negative():
    positive_rows = torch.tensor([7, 9, 7])
    # Positives first in group order, then the real negatives: 3, and 9 (group 1's positive).
    candidate_rows = torch.tensor([7, 9, 7, 3, 9])
    same = losses.other_positives(candidate_rows, positive_rows)
    assert same.tolist() == [[False, False, True, False, False],
                             [False, False, False, False, True],
                             [True, False, False, False, False]]

    logits = torch.tensor([[3.0, 1.0, 3.0, 0.0, 2.0],
                           [1.0, 2.0, 0.5, 1.0, 2.0],
                           [3.0, 0.0, 1.0, -1.0, 0.5]])

    def nce_over(row: int, columns: list[int]) -> float:
        return -logits[row, row].item() + math.log(sum(math.exp(logits[row, c]) for c in columns))

    expected = (nce_over(0, [0, 1, 3, 4]) + nce_over(1, [0, 1, 2, 3])
                + nce_over(2, [1, 2, 3, 4])) / 3
    teacher_way = losses.info_nce(logits, exclude=same)
    student_way = losses.info_nce(logits, exclude=same, fill=-1e4)
    assert teacher_way.item() == pytest.approx(expected, abs=1e-6)
    assert student_way.item() == pytest.approx(expected, abs=1e-6)
    assert losses.info_nce(logits).item() > expected + 0.1  # unmasked, the copies count


def test_distill_kl_is_teacher_to_student_scaled_by_t_squared():
    t = 2.0
    # Row 0 at temperature 2: teacher softmax [3/4, 1/4], student uniform. Row 1: identical.
    student = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
    teacher = torch.tensor([[2 * math.log(3.0), 0.0], [1.0, -1.0]])
    kl_row0 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert losses.distill_kl(student, teacher, t).item() == pytest.approx(
        kl_row0 / 2 * t * t, abs=1e-6)
    assert losses.distill_kl(teacher, teacher, t).item() == pytest.approx(0.0, abs=1e-7)


def test_distill_kl_needs_a_finite_mask():
    student = torch.tensor([[0.0, 0.0, -1e4]])
    teacher = torch.tensor([[1.0, 0.0, -1e4]])
    unmasked = losses.distill_kl(student[:, :2], teacher[:, :2], 1.0)
    assert losses.distill_kl(student, teacher, 1.0).item() == pytest.approx(unmasked.item(), abs=1e-7)
    # With -inf in both, the masked column's term is 0 * (-inf + inf).
    inf = torch.tensor(float("-inf"))
    assert torch.isnan(losses.distill_kl(torch.where(student < -1, inf, student),
                                         torch.where(teacher < -1, inf, teacher), 1.0))


def test_batch_lists_positives_first_then_real_negatives():
    groups = Groups(user_ids=np.array([1, 2]), positive=np.array([4, 2]),
                    negatives=np.array([[5, -1], [4, 3]]), history=np.array([[1, -1], [3, 1]]),
                    target_ts=np.zeros(2, dtype=np.int64))
    batch = make_batch(groups, np.array([0, 1]), np.ones(6, dtype=np.int64), 2, 10,
                       torch.device("cpu"))
    cand, cand_rows = batch.candidates()
    assert cand_rows.tolist() == [4, 2, 5, 4, 3]
    assert batch.rows[cand.numpy()].tolist() == cand_rows.tolist()
    # A padded negative reads the batch's first row; own_bce gives it no weight.
    assert batch.rows[batch.own().numpy()].tolist() == [[4, 5, 1], [2, 4, 3]]
    vecs = torch.arange(len(batch.rows), dtype=torch.float32).unsqueeze(1) + 1
    hist, mask = batch.histories(vecs)
    assert mask.tolist() == [[True, False], [True, True]]
    assert hist[0, 1].item() == 0.0  # padding contributes a zero vector
