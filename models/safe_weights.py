"""Model artifacts, teacher and student alike: a directory of model.safetensors, config.json
and (as training writes it) the tokenizer's files. Never pickle.

Kept free of transformers so that Spark's Python workers, which load only the student, start in
the time it takes to import torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedTokenizerBase

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


def save_model(model: nn.Module, out_dir: str | Path, extra: dict | None = None,
               tokenizer: PreTrainedTokenizerBase | None = None) -> Path:
    """Write `model` as an artifact directory: model.safetensors, config.json (its config under
    `model.config_key`, plus `extra`) and, when given, the tokenizer's files."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS), metadata={"format": "pt"})
    config = {"format_version": FORMAT_VERSION, model.config_key: model.cfg.to_json(),
              **(extra or {})}
    (out / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out))
    return out


Model = TypeVar("Model", bound="nn.Module")


def load_model(model_dir: str | Path, model_class: type[Model]) -> tuple[Model, dict]:
    """(the model in eval mode on the CPU, config.json) of an artifact `save_model` wrote.

    `model_class` names its config section (`config_key`) and config type (`config_class`).
    Every way the directory can be wrong is an ArtifactError naming the path: missing, a file
    instead of a directory, pickle-based weights, an unreadable or foreign-version config,
    corrupt weights, weights that do not fit the config.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    what = model_class.config_key
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
        cfg = model_class.config_class(**config[what])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ArtifactError(f"{what} config {path / CONFIG} is missing or invalid: {e}") from e
    if config.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path / CONFIG}: format_version {config.get('format_version')!r}, "
                            f"this code reads {FORMAT_VERSION}")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ArtifactError(f"corrupt weights file {weights}: {e}") from e
    model = model_class(cfg)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ArtifactError(f"weights {weights} do not match {path / CONFIG}: {e}") from e
    return model.eval(), config
