"""The student artifact as scoring loads it, without Spark."""

import pytest

from jobs.core import registry
from tests.conftest import make_student


def test_student_loader_refuses_pickles_and_corrupt_weights(tmp_path):
    from models.safe_weights import ArtifactError
    from models.student import load_student

    make_student(str(tmp_path), "v1", [1], seed=1)
    artifact = registry.student_dir(str(tmp_path), "v1")
    assert load_student(artifact)[0].cfg.dim == 8
    weights = artifact / "model.safetensors"
    weights.write_bytes(b"PK\x03\x04 a torch.save zip")
    with pytest.raises(ArtifactError, match="refusing to load .*pickle"):
        load_student(artifact)
    weights.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    with pytest.raises(ArtifactError, match="corrupt weights file"):
        load_student(artifact)
    weights.unlink()
    with pytest.raises(ArtifactError, match="student artifact .* has no model.safetensors"):
        load_student(artifact)


def test_best_first_ranks_by_score_then_item_id_with_ties_at_the_kth_score_exact():
    import numpy as np

    from udfs.scoring import best_first

    scores = np.array([[1.0, 3.0, 2.0, 3.0, 2.0, 2.0],
                       [-np.inf, 5.0, -np.inf, 4.0, -np.inf, -np.inf],
                       [2.0, 2.0, 2.0, 2.0, 2.0, 2.0]], dtype=np.float32)
    rows, cols = best_first(scores, 3)
    # Row 0: the two 3.0s, then the third place ties at 2.0 on columns 2, 4 and 5: the smallest
    # column (the catalogue is sorted by item id) takes it. Row 1: seen items (-inf) never
    # count, so two. Row 2: all tied, the first three.
    assert list(zip(rows.tolist(), cols.tolist())) == [
        (0, 1), (0, 3), (0, 2), (1, 1), (1, 3), (2, 0), (2, 1), (2, 2)]
    assert best_first(scores, 10)[0].tolist().count(0) == 6  # k past the catalogue: all of it
