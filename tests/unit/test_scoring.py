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
