"""The popularity correction (models/debias.py) on literal fixtures: what it subtracts, how it
reorders a ranking, how `auto` chooses its strength, that old artifacts still load, and the
report's trade-off curve."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from jobs import evaluate
from jobs.score import build_state
from models import debias
from models.data import Groups, RankingTask, validation_popularity
from models.distill import popularity_beta, popularity_beta_arg
from models.safe_weights import CONFIG, WEIGHTS, save_model
from models.scoring import top_k
from models.student import Student, StudentConfig, load_student
from udfs.scoring import ScoringState

# Twelve catalogue rows, 2-d vectors at 0..11 degrees from the one user's vector: at beta 0 the
# ranking is the row order. Rows 0-2 are the head (100 train interactions each), 3-11 are cold.
ITEM_IDS = np.arange(100, 112)
POPULARITY = np.array([100, 100, 100] + [0] * 9)
ANGLES = np.radians(np.arange(12))
ITEMS = torch.tensor(np.stack([np.cos(ANGLES), np.sin(ANGLES)], 1), dtype=torch.float32)
USERS = torch.tensor([[1.0, 0.0]])
TASK = RankingTask(user_ids=np.array([7]), history=np.array([[-1]]),
                   exclude=[np.empty(0, dtype=np.int64)], relevant=[np.array([0])])


def literal_student(beta: float = 0.0) -> Student:
    student = Student(StudentConfig(vocab_size=6, pad_token_id=0, num_known_items=3, dim=2,
                                    max_item_tokens=2, max_history=2, popularity_beta=beta))
    student.items.known_item_ids.copy_(torch.as_tensor(ITEM_IDS[:3]))
    student.log_popularity.copy_(torch.log1p(torch.as_tensor(POPULARITY[:3], dtype=torch.float32)))
    return student.eval()


def test_served_scores_lose_exactly_beta_log_one_plus_count_and_cold_items_lose_nothing():
    torch.manual_seed(0)
    student = Student(StudentConfig(vocab_size=6, pad_token_id=0, num_known_items=2, dim=4,
                                    max_item_tokens=2, max_history=2)).eval()
    student.items.known_item_ids.copy_(torch.tensor([10, 20]))
    student.log_popularity.copy_(torch.log1p(torch.tensor([99.0, 3.0])))
    ids = np.array([10, 20, 30])
    catalogue = (ids, student.item_vectors(np.array([[1, 2], [3, 4], [5, 0]]), ids),
                 np.array([1, 2]), np.array([[0, 2], [1, -1]]))
    users, items = np.array([1, 1, 1, 2]), np.array([10, 20, 30, 20])
    plain = build_state(student, *catalogue).score_pairs(users, items)
    student.cfg = replace(student.cfg, popularity_beta=0.5)
    state = build_state(student, *catalogue)
    served = state.score_pairs(users, items)
    np.testing.assert_allclose(plain - served, [0.5 * math.log(100), 0.5 * math.log(4), 0.0,
                                                0.5 * math.log(4)], rtol=1e-5)
    # The beta and the per-item popularity travel to Spark's workers with the weights.
    again = ScoringState.from_payload(state.to_payload())
    np.testing.assert_array_equal(again.score_pairs(users, items), served)


def test_a_positive_beta_moves_tail_items_above_a_head_item_that_outranks_them():
    student = literal_student()
    log_popularity = student.popularity_penalty(torch.as_tensor(ITEM_IDS), beta=1.0)
    assert top_k(student, USERS, ITEMS, TASK.exclude, 10).tolist() == [list(range(10))]
    # Row 0 beats row 11 by (1 - cos 11 degrees) / 0.05 = 0.37 before the correction and loses
    # log(101) = 4.6 to it: every cold row passes the three head rows, which keep their order.
    assert top_k(student, USERS, ITEMS, TASK.exclude, 12,
                 penalty=log_popularity).tolist() == [[*range(3, 12), 0, 1, 2]]


def test_the_curve_subtracts_the_popularity_it_is_given_not_the_served_one():
    # On the validation split the head's 100 interactions each may all lie after its cut-off:
    # then nothing was known of them there, the correction takes nothing off, and the ranking at
    # beta 1 is the plain one although the student's own log_popularity (train + validation)
    # would have sunk the head.
    unknown_then = np.zeros(12, dtype=np.int64)
    curve = debias.beta_curve(literal_student(), ITEMS, USERS, ITEM_IDS, TASK, unknown_then,
                              betas=(0.0, 1.0))
    assert curve[1.0]["ndcg@10"] == curve[0.0]["ndcg@10"] == 1.0


def test_validation_popularity_leaves_out_the_validation_targets():
    valid = Groups(user_ids=np.array([1, 2, 2]), positive=np.array([0, 0, 3]),
                   negatives=np.full((3, 1), -1), history=np.full((3, 1), -1),
                   target_ts=np.array([5, 6, 7]))
    # rows 0 and 3 owe 2 and 1 of their train interactions to validation targets
    assert validation_popularity(np.array([5, 1, 0, 1]), valid).tolist() == [3, 1, 0, 0]


def test_the_curve_gives_ndcg_and_tail_share_at_each_beta():
    curve = debias.beta_curve(literal_student(), ITEMS, USERS, ITEM_IDS, TASK, POPULARITY,
                              betas=(0.0, 1.0))
    # The head is ceil(20% of 12) = 3 rows, 0-2; the user's one relevant item is row 0.
    assert curve[0.0]["ndcg@10"] == 1.0 and curve[0.0]["tail_share@10"] == pytest.approx(0.7)
    assert curve[1.0]["ndcg@10"] == pytest.approx(1 / math.log2(11))
    assert curve[1.0]["tail_share@10"] == pytest.approx(0.9)
    assert set(curve[1.0]) == {"ndcg@10", "ndcg@10:ci95", "tail_share@10", "tail_share@10:ci95"}


def test_auto_takes_the_largest_beta_within_98_percent_of_beta_0():
    grid = {0.0: 0.200, 0.1: 0.199, 0.2: 0.197, 0.3: 0.1959, 0.5: 0.150}
    assert debias.choose_beta(grid) == 0.2  # the floor is 0.196
    # The rule reads every beta, not the first that falls short: a dip does not stop it.
    assert debias.choose_beta({0.0: 0.2, 0.1: 0.19, 0.2: 0.197}) == 0.2
    assert debias.choose_beta({0.0: 0.2, 0.1: 0.1}) == 0.0
    assert debias.choose_beta(grid, keep=0.5) == 0.5


def test_distill_chooses_on_validation_and_records_the_grid():
    student = literal_student()
    tokens = np.ones((12, 2), dtype=np.int64)
    beta, recorded = popularity_beta(student, tokens, ITEM_IDS, None, POPULARITY, None)
    assert (beta, recorded) == (0.0, {"popularity_beta": 0.0})  # nothing to choose on
    beta, recorded = popularity_beta(student, tokens, ITEM_IDS, None, POPULARITY, 0.3)
    assert beta == 0.3
    # Random text vectors here: what matters is that auto applies choose_beta to the grid.
    beta, recorded = popularity_beta(student, tokens, ITEM_IDS, TASK, POPULARITY, None)
    grid = recorded["valid_by_popularity_beta"]
    assert list(grid) == [str(b) for b in debias.BETAS]
    assert beta == recorded["popularity_beta"] == debias.choose_beta(
        {float(b): v["ndcg@10"] for b, v in grid.items()})
    assert popularity_beta_arg("auto") is None and popularity_beta_arg("0.25") == 0.25
    with pytest.raises(Exception, match="number >= 0"):
        popularity_beta_arg("-1")


def test_an_artifact_saved_before_the_correction_loads_and_scores_as_before(tmp_path):
    torch.manual_seed(1)
    student = Student(StudentConfig(vocab_size=6, pad_token_id=0, num_known_items=2, dim=4,
                                    max_item_tokens=2, max_history=2)).eval()
    student.items.known_item_ids.copy_(torch.tensor([10, 20]))
    out = save_model(student, tmp_path / "student")
    # Strip what the correction added: the buffer from the weights, beta from the config.
    weights = load_file(str(out / WEIGHTS))
    del weights["log_popularity"]
    save_file(weights, str(out / WEIGHTS), metadata={"format": "pt"})
    config = json.loads((out / CONFIG).read_text())
    del config["student"]["popularity_beta"]
    (out / CONFIG).write_text(json.dumps(config))

    loaded, _ = load_student(out)
    ids, tokens = np.array([10, 20, 30]), np.array([[1, 2], [3, 4], [5, 0]])
    items = loaded.item_vectors(tokens, ids)
    users = loaded.user_vectors(items, np.array([[0, 1], [2, -1]]))
    assert torch.equal(items, student.item_vectors(tokens, ids))
    assert torch.equal(loaded.score(users, items),
                       student.score(student.user_vectors(items, np.array([[0, 1], [2, -1]])),
                                     items))
    assert loaded.cfg.popularity_beta == 0.0
    assert not loaded.popularity_penalty(torch.as_tensor(ids), beta=1.0).any()


def test_the_report_draws_the_curve_and_keeps_it_out_of_the_model_tables(tmp_path):
    def rows(model, ndcg, tail, note=None):
        return [("v1", model, "ndcg@10", ndcg, ndcg - 0.01, ndcg + 0.01, note),
                ("v1", model, "tail_share@10", tail, tail - 0.01, tail + 0.01, note)]

    served = evaluate.SERVED
    models = [("v1", m, "recall@20", 0.2, 0.19, 0.21, None) for m in ("student", "als", "ease")]
    measured = (models + rows("student", 0.149, 0.09) + rows("als", 0.11, 0.02)
                + rows("ease", 0.128, 0.01) + rows("student@beta=0", 0.15, 0.07) + rows("student@beta=0.1", 0.149, 0.09, served)
                + rows("student@beta=0.2", 0.14, 0.12) + rows("student@beta=0.05", 0.15, 0.08))
    report = evaluate.write_report(measured, str(tmp_path), "2026-11-22")
    text = open(report).read()
    assert (tmp_path / "reports" / "2026-11-22" / "debiasing.png").stat().st_size > 0
    assert "![debiasing](debiasing.png)" in text
    curve = [line for line in text.splitlines() if line.startswith("| 0")]
    assert [line.split(" |")[0] for line in curve] == ["| 0", "| 0.05", "| 0.1 (served)", "| 0.2"]
    assert curve[2] == "| 0.1 (served) | 0.1490 [0.1390, 0.1590] | 0.0900 [0.0800, 0.1000] |"
    model_rows = {line.split(" |")[0] for line in text.splitlines() if line.startswith("| ")}
    assert not any("@beta" in row for row in model_rows)
