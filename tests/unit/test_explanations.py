"""Explanations of recs.top_k without Spark: the student's score splits exactly over the history
items, the scoring state names the largest positive ones, and the fidelity check rescores
without them."""

import numpy as np
import torch
import torch.nn.functional as F

from jobs.score import build_state
from models.explanation_fidelity import removal_effects, without
from models.student import Student, StudentConfig
from udfs.scoring import ScoringState


def tiny_student(dim: int = 8, seed: int = 0) -> Student:
    torch.manual_seed(seed)
    student = Student(StudentConfig(vocab_size=5, pad_token_id=0, num_known_items=1, dim=dim,
                                    max_history=6))
    with torch.no_grad():  # away from the identity/zero start, so every term matters
        student.users.recency.normal_()
        student.users.out.weight.normal_()
        student.users.out.bias.normal_()
    return student.eval()


def test_contributions_add_up_to_the_score():
    student = tiny_student()
    history = F.normalize(torch.randn(5, 6, 8), dim=-1)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    history = history * mask.unsqueeze(-1)
    items = F.normalize(torch.randn(5, 8), dim=-1)
    with torch.no_grad():
        per_position, bias = student.contributions(history, mask, items)
        score = student.score_pairs(student.users(history, mask), items)
    torch.testing.assert_close(per_position.sum(-1) + bias, score, rtol=1e-5, atol=1e-5)
    assert (per_position[~mask] == 0).all()
    torch.testing.assert_close(bias[3], score[3])  # no history: the bias term is the score
    assert (per_position[mask] != 0).all() and (bias != 0).all()


def test_the_numpy_decomposition_workers_run_is_the_students():
    student = tiny_student(seed=3)
    torch.manual_seed(3)
    item_ids = np.arange(100, 109)
    item_vecs = F.normalize(torch.randn(9, 8), dim=-1)
    history = np.array([[0, 3, 3, 5, 8, -1], [2, -1, -1, -1, -1, -1], [1, 2, 3, 4, 5, 6]])
    state = build_state(student, item_ids, item_vecs, np.array([30, 10, 20]), history)
    users, items = np.array([10, 20, 30, 30]), np.array([101, 108, 100, 107])
    rows = state.history_rows[np.searchsorted(state.user_ids, users)].astype(np.int64)
    mask = rows >= 0
    vecs = state.item_vecs[np.maximum(rows, 0)] * mask[..., None]
    candidates = state.item_vecs[items - 100]
    terms, bias = state.contributions(vecs, mask, candidates)
    with torch.no_grad():
        expected = student.contributions(torch.as_tensor(vecs), torch.as_tensor(mask),
                                         torch.as_tensor(candidates))
    np.testing.assert_allclose(terms, expected[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bias, expected[1].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(terms.sum(-1) + bias, state.score_pairs(users, items), rtol=1e-5,
                               atol=1e-5)
    assert (terms[~mask] == 0).all() and (terms[mask] != 0).all()


LITERAL_ITEM_IDS = np.array([10, 20, 30, 40, 50])
LITERAL_ITEM_VECS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8], [0.8, 0.6]])


def literal_student() -> Student:
    """2-d items, an identity user tower with equal weights: each term is h_j . i / (n T)."""
    return Student(StudentConfig(vocab_size=5, pad_token_id=0, num_known_items=1, dim=2,
                                 max_history=4)).eval()


def literal_state() -> ScoringState:
    # User 7 saw 20, 40 and 10 twice: their user vector points along (2.6, 1.8). User 8 saw 30.
    history = np.array([[1, 3, 0, 0], [2, -1, -1, -1]], dtype=np.int32)
    return build_state(literal_student(), LITERAL_ITEM_IDS, LITERAL_ITEM_VECS, np.array([7, 8]),
                       history)


def test_explanations_name_what_pulls_the_user_towards_the_item_by_exact_terms():
    state = literal_state()
    for_50, for_10, for_30, for_user_8, for_user_8_30 = state.explain_pairs(
        np.array([7, 7, 7, 8, 8]), np.array([50, 10, 30, 40, 30])).to_pylist()
    # 50 = (0.8, 0.6) lies past the user vector towards 20 and 40: they are named, by their terms
    # (40: 0.96, 20: 0.6). 10 has the largest term (0.8 twice) but pulls the user away from 50.
    assert [e["item_id"] for e in for_50] == [40, 20]
    unit = for_50[1]["contribution"] / 0.6
    assert np.isclose(for_50[0]["contribution"], 0.96 * unit)
    # Named or not, the terms are exact: with 10's they are the whole score (the bias is zero).
    score = state.score_pairs(np.array([7]), np.array([50]))[0]
    assert np.isclose(sum(e["contribution"] for e in for_50) + 1.6 * unit, score, rtol=1e-5)
    # An item seen twice is named once, with both of its terms.
    assert [(e["item_id"], round(e["contribution"] / unit, 4)) for e in for_10] == [(10, 2.0)]
    assert for_30 == [] and for_user_8 == []  # no history item raises these scores
    # A one-item history is the whole user vector: nothing pulls aside from it, so it is named.
    assert [e["item_id"] for e in for_user_8_30] == [30]


def test_explanations_survive_the_broadcast_payload():
    state = literal_state()
    again = ScoringState.from_payload(state.to_payload())
    users, items = np.array([7, 8, 7]), np.array([50, 40, 40])
    assert again.explain_pairs(users, items).equals(state.explain_pairs(users, items))


def test_without_removes_every_occurrence_and_moves_the_rest_up():
    history = np.array([[3, 5, 3, 7], [5, -1, -1, -1], [1, 2, -1, -1]])
    assert without(history, np.array([3, 5, 9])).tolist() == [[5, 7, -1, -1], [-1, -1, -1, -1],
                                                              [1, 2, -1, -1]]


def test_removal_effects_on_literal_vectors():
    # History 10 = (1, 0) and 20 = (0, 1); the item 40 = (0.6, 0.8) owes more to 20. Without 20
    # the user is (1, 0) and 50 overtakes 40; without 10 the user is (0, 1) and 40 stays first.
    history = np.array([[0, 1], [0, 1]])
    candidates = np.array([[False, False, True, True, True]] * 2)
    score_fell, rank_fell_further = removal_effects(
        literal_student(), LITERAL_ITEM_IDS, LITERAL_ITEM_VECS, history, items=np.array([3, 3]),
        named=np.array([1, 0]), other=np.array([0, 1]), candidates=candidates)
    assert score_fell.tolist() == [True, True]  # either removal lowers 40's score...
    assert rank_fell_further.tolist() == [True, False]  # ...only 20's costs it its rank


def test_the_report_lists_fidelity_with_its_targets_apart_from_the_model_table(tmp_path):
    from jobs.evaluate import metric_rows, write_report

    rows = metric_rows("v", "student", {"ndcg@10": 0.1, "ndcg@10:ci95": (0.09, 0.11),
                                        "recall@20": 0.2, "recall@20:ci95": (0.18, 0.22)})
    rows += metric_rows("v", "student", {
        "explanation_score_drop_share": 0.997, "explanation_score_drop_share:ci95": (0.99, 1.0),
        "explanation_sampled_rows": 2000.0})
    report = open(write_report(rows, str(tmp_path), "2026-11-22")).read()
    assert "| model | ndcg@10 | recall@20 |" in report  # no explanation columns in the table
    assert "- explanation_score_drop_share: 0.9970 [0.9900, 1.0000] (target >= 0.95)" in report
    assert "- explanation_sampled_rows: 2,000" in report
