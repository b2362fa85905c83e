"""Reading model artifacts: a directory of model.safetensors and config.json, never pickle.

Kept free of transformers so that Spark's Python workers, which load only the student, start in
the time it takes to import torch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT_VERSION = 1
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


Config = TypeVar("Config")


def read_artifact(model_dir: str | Path, what: str, make_config: Callable[[dict], Config]
                  ) -> tuple[dict, Config, dict]:
    """(config.json, `make_config(config[what])`, the weights) of a `what` artifact directory.

    Every way it can be wrong is an ArtifactError naming the path: missing, a file instead of a
    directory, pickle-based weights, an unreadable or foreign-version config, corrupt weights.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(model_dir)
    if path.is_file():
        refuse_pickle(path)
        raise ArtifactError(f"{path} is a file; pass the artifact directory that holds {WEIGHTS}")
    if not path.is_dir():
        raise ArtifactError(f"{what} artifact not found: {path}")
    weights = path / WEIGHTS
    if not weights.is_file():
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise ArtifactError(f"refusing to load {path}: it holds pickle-based weights {pickles}; "
                                f"only {WEIGHTS} is accepted")
        raise ArtifactError(f"{what} artifact {path} has no {WEIGHTS}")
    refuse_pickle(weights)
    try:
        config = json.loads((path / CONFIG).read_text())
        cfg = make_config(config[what])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ArtifactError(f"{what} config {path / CONFIG} is missing or invalid: {e}") from e
    if config.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path / CONFIG}: format_version {config.get('format_version')!r}, "
                            f"this code reads {FORMAT_VERSION}")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ArtifactError(f"corrupt weights file {weights}: {e}") from e
    return config, cfg, state
