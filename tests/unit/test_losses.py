"""models/losses.py on literal logits small enough to compute by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models import losses
from models.data import Groups, UserItems
from models.training import make_batch


def test_future_softmax_averages_the_real_targets_over_the_whole_catalogue():
    logits = torch.tensor([[0.0, math.log(2.0), math.log(5.0)], [1.0, 1.0, 1.0]])
    # Row 0 softmax [1/8, 2/8, 5/8], targets rows 2 and 1; row 1 uniform, one target, one padding.
    targets = torch.tensor([[2, 1], [0, -1]])
    expected = -(math.log(5 / 8) + math.log(2 / 8) + math.log(1 / 3)) / 3
    assert losses.future_softmax(logits, targets).item() == pytest.approx(expected, abs=1e-6)
    # One target per row is plain next-item cross-entropy.
    assert losses.future_softmax(logits, targets[:, :1]).item() == pytest.approx(
        -(math.log(5 / 8) + math.log(1 / 3)) / 2, abs=1e-6)


def test_mask_seen_masks_each_rows_own_history_only():
    logits = torch.zeros(2, 4)
    history = torch.tensor([[3, 1], [0, -1]])
    masked = losses.mask_seen(logits, history)
    assert (masked == losses.MASKED_LOGIT).tolist() == [[False, True, False, True],
                                                         [True, False, False, False]]
    # A masked item takes no softmax mass from the targets: 2 items left in row 0, 3 in row 1.
    assert losses.future_softmax(masked, torch.tensor([[0], [1]])).item() == pytest.approx(
        (math.log(2.0) + math.log(3.0)) / 2, abs=1e-4)


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


def test_batch_pairs_each_row_with_its_targets_and_zeroes_padded_history():
    groups = Groups(user_ids=np.array([1, 2]), positive=np.array([4, 2]),
                    negatives=np.array([[5, -1], [4, 3]]), history=np.array([[1, -1], [3, 1]]),
                    target_ts=np.zeros(2, dtype=np.int64))
    targets = np.array([[4, 0], [2, -1]])
    batch = make_batch(groups, targets, np.array([1, 0]), np.ones(6, dtype=np.int64), 2, 10,
                       torch.device("cpu"))
    assert batch.targets.tolist() == [[2, -1], [4, 0]]
    assert batch.examples == 3
    vecs = torch.arange(6, dtype=torch.float32).unsqueeze(1) + 1
    hist, mask = batch.histories(vecs)
    assert mask.tolist() == [[True, True], [True, False]]
    assert hist[:, :, 0].tolist() == [[4.0, 2.0], [2.0, 0.0]]  # padding contributes a zero vector


def test_user_items_mask_the_users_other_rows_but_never_the_rows_targets():
    # User 7: three rows in time order (positives 4, 2, 5), so row 0's later positives 2 and 5
    # are the same user's items; user 9 has one row.
    groups = Groups(user_ids=np.array([7, 7, 7, 9]), positive=np.array([4, 2, 5, 4]),
                    negatives=np.full((4, 1), -1), history=np.array([[1, -1], [4, 1], [2, 4], [3, -1]]),
                    target_ts=np.array([1, 2, 3, 1]))
    targets = np.array([[4], [2], [5], [4]])
    plain = make_batch(groups, targets, np.array([0, 3]), np.ones(6, dtype=np.int64), 2, 10,
                       torch.device("cpu"))
    assert plain.seen.tolist() == plain.history.tolist() == [[1], [3]]
    batch = make_batch(groups, targets, np.array([0, 3]), np.ones(6, dtype=np.int64), 2, 10,
                       torch.device("cpu"), UserItems.of(groups))
    # Row 0 (user 7, target 4) masks 1, 2 and 5; row 3 (user 9, target 4) masks only 3.
    assert [sorted(r for r in row if r >= 0) for row in batch.seen.tolist()] == [[1, 2, 5], [3]]
    # A user with no rows in the groups masks nothing.
    assert (UserItems.of(groups).matrix(np.array([8]), np.array([[0]])) == -1).all()


def test_co_consumed_contrastive_masks_repeated_items_instead_of_pushing_them_away():
    same = torch.nn.functional.normalize(torch.ones(2, 3), dim=-1)
    # Both rows' partner is item 7. Forward, each row's other column is its own positive item
    # again: masked, one candidate left, loss 0. Backward, item 7 picks item 1 or 2 among two
    # distinct items with equal vectors: ln(2). Mean of the two directions: ln(2) / 2.
    assert losses.co_consumed_contrastive(same, same, torch.tensor([1, 2]), torch.tensor([7, 7]),
                                          0.05).item() == pytest.approx(math.log(2) / 2)
    # The same pair twice, reversed: each row's other column holds its own anchor item, masked
    # in both directions, loss 0.
    assert losses.co_consumed_contrastive(same, same, torch.tensor([1, 7]), torch.tensor([7, 1]),
                                          0.05).item() == pytest.approx(0.0, abs=1e-6)
    # Distinct items and identical vectors: every column a real negative, ln(2) both ways.
    assert losses.co_consumed_contrastive(same, same, torch.tensor([1, 2]), torch.tensor([7, 8]),
                                          0.05).item() == pytest.approx(math.log(2))
    # Orthonormal pairs at temperature 1: -log(e / (e + 2)) for each of 3 rows, both ways.
    eye = torch.eye(3)
    assert losses.co_consumed_contrastive(eye, eye, torch.tensor([1, 2, 3]),
                                          torch.tensor([4, 5, 6]), 1.0).item() == pytest.approx(
        -math.log(math.e / (math.e + 2)))
