"""Guards shared by every artifact loader: safetensors only, never pickle.

Kept free of transformers so that Spark's Python workers, which load only the student, start in
the time it takes to import torch.
"""

from __future__ import annotations

from pathlib import Path

# Pickle-based formats run code when loaded; an artifact must never be one of them.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


class ArtifactError(RuntimeError):
    """A model artifact is missing, corrupt, or in a refused format."""


def refuse_pickle(path: Path) -> None:
    if path.suffix in PICKLE_SUFFIXES:
        raise ArtifactError(f"refusing to load {path}: pickle-based weights are not accepted, "
                            "only model.safetensors")
    with path.open("rb") as f:
        head = f.read(2)
    # torch.save writes a zip ("PK") or a raw pickle (protocol byte 0x80), never a safetensors header.
    if head == b"PK" or head[:1] == b"\x80":
        raise ArtifactError(f"refusing to load {path}: it is a pickle/torch.save file, "
                            "not safetensors")
