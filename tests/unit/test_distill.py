"""models/distill.py on literal fixtures: a tiny random teacher, three users, six groups."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import BertTokenizerFast

from models.data import Groups, RankingTask, Tokens, future_targets
from models.distill import (
    DistillOptions,
    distill_loss,
    evaluate_student,
    fit_student,
    word_embedding_init,
)
from models.safe_weights import save_model
from models.scoring import item_vectors, text_from_tokens, user_vectors
from models.student import Student, StudentConfig, load_student
from models.teacher import Teacher, TeacherConfig
from models.training import make_batch

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "red", "blue", "circle", "square", "star", "moon"]
ITEM_IDS = np.arange(10, 18)  # catalogue rows 0..7; even rows are red, odd rows blue
# [CLS] colour shape [SEP]
TOKENS = Tokens(ids=np.array([[2, 4 + r % 2, 6 + r // 2, 3] for r in range(8)]),
                mask=np.ones((8, 4), dtype=np.int64))
# Users 1 and 3 like red, user 2 blue. Group 5's positive is also group 0's (an in-batch copy).
TRAIN = Groups(
    user_ids=np.array([1, 1, 2, 2, 3, 3]),
    positive=np.array([2, 4, 3, 5, 6, 2]),
    negatives=np.array([[1, 3], [5, -1], [0, 2], [4, 6], [7, 1], [3, -1]]),
    history=np.array([[0, -1, -1], [2, 0, -1], [1, -1, -1], [3, 1, -1], [4, -1, -1], [6, 4, -1]]),
    target_ts=np.zeros(6, dtype=np.int64))
VALID = RankingTask(user_ids=np.array([1, 2, 3]),
                    history=np.array([[4, 2, 0], [5, 3, 1], [2, 6, 4]]),
                    exclude=[np.array([0, 2, 4]), np.array([1, 3, 5]), np.array([2, 4, 6])],
                    relevant=[np.array([6]), np.array([7]), np.array([0])])
BERT = {"vocab_size": len(WORDS), "hidden_size": 16, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 32, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": 8, "type_vocab_size": 2, "initializer_range": 0.02,
        "layer_norm_eps": 1e-12, "pad_token_id": 0}


@pytest.fixture(scope="module")
def teacher() -> Teacher:
    torch.manual_seed(0)
    teacher = Teacher(TeacherConfig(bert=BERT, num_known_items=8, max_item_tokens=4,
                                    max_history=3, history_token_budget=12, user_heads=2,
                                    dropout=0.0, temperature=0.1))
    teacher.items.known_item_ids.copy_(torch.as_tensor(ITEM_IDS))
    return teacher.eval()


@pytest.fixture(scope="module")
def teacher_vectors(teacher) -> tuple[torch.Tensor, torch.Tensor]:
    """(user vectors of the train groups, item vectors of the catalogue), as distill() makes them."""
    cpu = torch.device("cpu")
    items = item_vectors(teacher, text_from_tokens(teacher, TOKENS, cpu), ITEM_IDS,
                         TOKENS.lengths, cpu, False)
    return user_vectors(teacher, items, TRAIN.history, TOKENS.lengths, False), items


def new_student(teacher: Teacher, seed: int = 0) -> Student:
    torch.manual_seed(seed)
    student = Student(StudentConfig(vocab_size=len(WORDS), pad_token_id=0, num_known_items=8,
                                    dim=8, max_item_tokens=4, max_history=3))
    student.items.known_item_ids.copy_(torch.as_tensor(ITEM_IDS))
    with torch.no_grad():
        student.items.words.weight.copy_(word_embedding_init(teacher, 8))
    return student


def whole_batch():
    return make_batch(TRAIN, future_targets(TRAIN, 2), np.arange(len(TRAIN)),
                      np.ones(8, dtype=np.int64), 3, 10**9, torch.device("cpu"))


def test_distillation_loss_falls(teacher, teacher_vectors):
    student = new_student(teacher)
    options = DistillOptions(dim=8, batch_groups=3, epochs=20, lr=5e-2, log_every=10)
    result = fit_student(student, TOKENS.ids, ITEM_IDS, TRAIN, *teacher_vectors,
                         teacher.cfg.temperature, None, options)
    curve = result.train_curve
    assert [p["step"] for p in curve] == [10, 20, 30, 40]
    assert curve[-1]["loss"] < 0.6 * curve[0]["loss"]
    assert curve[-1]["kl"] < 0.6 * curve[0]["kl"]
    assert result.best_step == 40 and result.valid_curve == []


def test_kl_is_zero_when_the_student_is_its_own_teacher(teacher, teacher_vectors):
    student = new_student(teacher).eval()
    # Move every weight off its initial value so that no term is trivially zero.
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.1 * torch.randn_like(p))
    items = student.item_vectors(TOKENS.ids, ITEM_IDS)
    users = student.user_vectors(items, TRAIN.history)
    token_ids = torch.as_tensor(TOKENS.ids)
    id_rows = student.items.id_rows(torch.as_tensor(ITEM_IDS))
    options = DistillOptions(dim=8, id_dropout=0.0)
    _, own = distill_loss(student, token_ids, id_rows, whole_batch(), users, items,
                          student.cfg.temperature, options)
    assert own["kl"] == pytest.approx(0.0, abs=1e-5)
    assert own["labels"] > 0.1
    _, other = distill_loss(student, token_ids, id_rows, whole_batch(), *teacher_vectors,
                            teacher.cfg.temperature, options)
    assert other["kl"] > 0.01


def test_early_stopping_keeps_the_best_validation_weights(teacher, teacher_vectors):
    student = new_student(teacher)
    options = DistillOptions(dim=8, batch_groups=2, epochs=12, lr=0.1, patience=2)
    result = fit_student(student, TOKENS.ids, ITEM_IDS, TRAIN, *teacher_vectors,
                         teacher.cfg.temperature, VALID, options)
    curve = [p["ndcg@10"] for p in result.valid_curve]
    assert [p["step"] for p in result.valid_curve][:2] == [3, 6]  # once per epoch of 3 steps
    assert result.best_valid_ndcg == max(curve)
    assert result.best_step == result.valid_curve[curve.index(max(curve))]["step"]
    assert evaluate_student(student, TOKENS.ids, ITEM_IDS, VALID)["ndcg@10"] == max(curve)


def test_student_artifact_round_trips(teacher, tmp_path):
    student = new_student(teacher, seed=1).eval()
    with torch.no_grad():
        student.items.id_embedding.weight.normal_()
        student.users.recency.normal_()

    def scores(model: Student) -> torch.Tensor:
        items = model.item_vectors(TOKENS.ids, ITEM_IDS)
        return model.score(model.user_vectors(items, VALID.history), items)

    (tmp_path / "vocab").mkdir()
    (tmp_path / "vocab" / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    tokenizer = BertTokenizerFast.from_pretrained(str(tmp_path / "vocab"))
    out = save_model(student, tmp_path / "student", {"ds": "2024-03-01"}, tokenizer=tokenizer)
    loaded, config = load_student(out)
    assert torch.equal(scores(student), scores(loaded))
    assert loaded.cfg == student.cfg and not loaded.training
    assert config["ds"] == "2024-03-01" and config["student"]["dim"] == 8
    assert json.loads((out / "config.json").read_text()) == config
    reread = BertTokenizerFast.from_pretrained(str(out))
    assert reread("red star")["input_ids"] == tokenizer("red star")["input_ids"] == [2, 4, 8, 3]



def test_kl_without_cold_items_reads_only_the_items_with_an_id(teacher, teacher_vectors):
    student = new_student(teacher).eval()
    users, items = teacher_vectors
    token_ids = torch.as_tensor(TOKENS.ids)
    id_rows = student.items.id_rows(torch.as_tensor(ITEM_IDS))
    id_rows[[6, 7]] = 0  # rows 6 and 7 are cold: no id embedding

    def kl(teacher_items: torch.Tensor, on_cold: bool) -> float:
        options = DistillOptions(dim=8, id_dropout=0.0, kl_on_cold=on_cold)
        _, parts = distill_loss(student, token_ids, id_rows, whole_batch(), users, teacher_items,
                                teacher.cfg.temperature, options)
        return parts["kl"]

    colder = items.clone()
    colder[[6, 7]] = -items[[6, 7]]  # the teacher changes its mind about the cold items only
    assert kl(colder, on_cold=False) == pytest.approx(kl(items, on_cold=False), abs=1e-6)
    assert kl(colder, on_cold=True) != pytest.approx(kl(items, on_cold=True), abs=1e-4)
