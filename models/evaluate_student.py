"""What distillation adds, measured in every evaluation run: the served student against the same
student trained without the teacher (`recs distill --no-teacher-ablation`), on the same users.

Both artifacts are ranked here by the same code, on the protocol's task (whole catalogue, each
user's train items excluded; cold-only ranking over the items without train interactions), and
compared per user with a paired bootstrap. JVM-free: `jobs/evaluate.py` calls it on the driver.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from contract.delta_reader import read_partition
from contract.layout import artifact_dir
from contract.tables import FEATURES_TEST
from models import metrics
from models.data import evaluation_task, load_catalogue, tokenize, train_item_ids
from models.scoring import top_k
from models.student import load_student

# The figures the paired comparison reports: full-ranking quality and the cold-start path.
COMPARED = ("ndcg@10", "cold_only_recall@20")


def student_values(model_dir: str | Path, lake: str, ds: str) -> dict[str, dict[int, float]]:
    """metric -> {user: value} (models.metrics.per_user_values) of a student artifact."""
    from transformers import AutoTokenizer

    student, _ = load_student(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), use_fast=True)
    catalogue = load_catalogue(lake, ds)
    task = evaluation_task(lake, ds, catalogue,
                           read_partition(lake, FEATURES_TEST, ds, ["user_id", "item_id"]))
    cold_rows = np.flatnonzero(~np.isin(catalogue.item_ids, train_item_ids(lake, ds)))
    tokens = tokenize(tokenizer, catalogue.texts, student.cfg.max_item_tokens).ids
    items = student.item_vectors(tokens, catalogue.item_ids)
    users = student.user_vectors(items, task.history)
    full = top_k(student, users, items, task.exclude, 20)
    nothing = [np.empty(0, dtype=np.int64)] * len(task.user_ids)
    cold = top_k(student, users, items[torch.as_tensor(cold_rows)], nothing, 20)
    return metrics.per_user_values(
        {int(u): r.tolist() for u, r in zip(task.user_ids, full)},
        {int(u): r.tolist() for u, r in zip(task.user_ids, task.relevant)},
        cold_rows.tolist(),
        {int(u): cold_rows[r].tolist() for u, r in zip(task.user_ids, cold)})


def distillation_gain(lake: str, ds: str, version: str) -> dict[str, dict]:
    """For each COMPARED metric: the served student's mean minus the no-teacher student's over
    the same users, with its 95% paired bootstrap interval (models.metrics.paired_difference),
    and the no-teacher student's own mean and interval."""
    with_teacher = student_values(artifact_dir(lake, version, "student"), lake, ds)
    without = student_values(artifact_dir(lake, version, "student-no-teacher"), lake, ds)
    out = {}
    for metric in COMPARED:
        values = list(without[metric].values())
        out[metric] = {**metrics.paired_difference(with_teacher[metric], without[metric]),
                       "no_teacher": float(np.mean(values)),
                       "no_teacher_ci": metrics.bootstrap_interval(values)}
    return out
