"""What an item without an id embedding borrows from its textual neighbours
(StudentItemTower.borrowed, through Student.item_vectors), on a literal 2-d student."""

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from models.student import Student, StudentConfig

# Words: 1 -> east, 2 -> north, 3 -> north-east (as close to 1 as to 2). Known items 10 (text
# "1") and 20 (text "2") have id embeddings; 30, 40 and 50 have none: 30 reads like 10, 40 lies
# between both, 50 has no text at all.
ITEM_IDS = np.array([10, 20, 30, 40, 50])
TOKENS = np.array([[1, 0], [2, 0], [1, 0], [3, 0], [0, 0]])
ID_10, ID_20 = [0.0, 3.0], [5.0, 0.0]


def literal_student(neighbours: int, weight: float) -> Student:
    student = Student(StudentConfig(vocab_size=4, pad_token_id=0, num_known_items=2, dim=2,
                                    max_item_tokens=2, cold_neighbours=neighbours,
                                    cold_neighbour_weight=weight))
    with torch.no_grad():
        student.items.words.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0],
                                                       [0.5, 0.5]]))
        student.items.id_embedding.weight.copy_(torch.tensor([[0.0, 0.0], ID_10, ID_20]))
    student.items.known_item_ids.copy_(torch.tensor([10, 20]))
    return student.eval()


def unit(*vector: float) -> torch.Tensor:
    return F.normalize(torch.tensor(vector), dim=-1)


def test_a_cold_item_borrows_its_nearest_known_items_id_embedding_at_the_given_weight():
    vecs = literal_student(neighbours=1, weight=0.5).item_vectors(TOKENS, ITEM_IDS)
    torch.testing.assert_close(vecs[2], unit(1.0, 0.5 * 3.0))  # its own text + half of 10's id
    # Equally near both: with one neighbour it takes one of them, whole.
    assert torch.allclose(vecs[3], unit(0.5, 0.5 + 1.5)) or torch.allclose(vecs[3], unit(3.0, 0.5))


def test_equally_near_neighbours_share_and_known_or_textless_items_keep_their_vectors():
    vecs = literal_student(neighbours=2, weight=0.5).item_vectors(TOKENS, ITEM_IDS)
    # Cosine 0.71 to both known texts: the softmax gives each half.
    torch.testing.assert_close(vecs[3], unit(0.5 + 0.25 * 5.0, 0.5 + 0.25 * 3.0))
    # Item 30's cosine is 1 to item 10 and 0 to item 20: softmax(20, 0) leaves 20 about 2e-9.
    torch.testing.assert_close(vecs[2], unit(1.0, 1.5))
    torch.testing.assert_close(vecs[0], unit(1.0, 3.0))  # known: its text and its own id
    torch.testing.assert_close(vecs[1], unit(5.0, 1.0))
    assert not vecs[4].any()  # no text, no neighbours: nothing to borrow from


def test_no_neighbours_is_the_plain_item_tower():
    student = literal_student(neighbours=50, weight=0.5)
    student.cfg = replace(student.cfg, cold_neighbours=0)
    plain = student.items(torch.as_tensor(TOKENS),
                          student.items.id_rows(torch.as_tensor(ITEM_IDS)))
    torch.testing.assert_close(student.item_vectors(TOKENS, ITEM_IDS), plain)
    # More neighbours than known items asks for all of them.
    vecs = literal_student(neighbours=50, weight=0.5).item_vectors(TOKENS, ITEM_IDS)
    torch.testing.assert_close(vecs[3], unit(0.5 + 0.25 * 5.0, 0.5 + 0.25 * 3.0))


def test_in_training_an_item_whose_id_is_dropped_borrows_from_the_others_never_its_own():
    # DistillOptions.borrow_in_training: the step's id rows, item 10's dropped to row 0.
    student = literal_student(neighbours=1, weight=0.5)
    text = student.items.words(torch.as_tensor(TOKENS))
    vecs = student.items.with_borrowed(text, torch.tensor([0, 2, 0, 0, 0]), 1, 0.5)
    torch.testing.assert_close(vecs[0], unit(1.0 + 0.5 * 5.0, 0.0))  # 20's id, not its own
    torch.testing.assert_close(vecs[1], unit(5.0, 1.0))
    torch.testing.assert_close(vecs[2], unit(1.0 + 0.5 * 5.0, 0.0))
