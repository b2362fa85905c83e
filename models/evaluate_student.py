"""What distillation adds, measured in every evaluation run: the served student against the same
student trained without the teacher (`recs distill --no-teacher-ablation`), on the same users.

Both artifacts are ranked here by the same code, on the protocol's task (whole catalogue, each
user's train items excluded; cold-only ranking over the items without train interactions), and
compared per user with a paired bootstrap. Each is ranked as it is served, its popularity
correction included (models/debias.py). The served student's trade-off curve over the
correction's strength on the same task comes from here too (debias_curve). JVM-free:
`jobs/evaluate.py` calls it on the driver.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from contract.delta_reader import read_partition
from contract.layout import artifact_dir
from contract.tables import FEATURES_TEST
from models import debias, metrics
from models.data import (
    Catalogue,
    RankingTask,
    artifact_token_ids,
    evaluation_task,
    load_catalogue,
    train_item_ids,
    train_popularity,
)
from models.scoring import top_k
from models.student import Student, load_student

# The figures the paired comparison reports: full-ranking quality and the cold-start path.
COMPARED = ("ndcg@10", "cold_only_recall@20")


def _protocol_vectors(model_dir: str | Path, lake: str, ds: str
                      ) -> tuple[Student, Catalogue, RankingTask, torch.Tensor, torch.Tensor]:
    """(student, catalogue, the protocol's task, catalogue item vectors, task user vectors)."""
    student, _ = load_student(model_dir)
    catalogue = load_catalogue(lake, ds)
    task = evaluation_task(lake, ds, catalogue,
                           read_partition(lake, FEATURES_TEST, ds, ["user_id", "item_id"]))
    tokens = artifact_token_ids(model_dir, catalogue.texts, student.cfg.max_item_tokens)
    items = student.item_vectors(tokens, catalogue.item_ids)
    return student, catalogue, task, items, student.user_vectors(items, task.history)


def student_values(model_dir: str | Path, lake: str, ds: str) -> dict[str, dict[int, float]]:
    """metric -> {user: value} (models.metrics.per_user_values) of a student artifact."""
    student, catalogue, task, items, users = _protocol_vectors(model_dir, lake, ds)
    cold_rows = np.flatnonzero(~np.isin(catalogue.item_ids, train_item_ids(lake, ds)))
    penalty = student.popularity_penalty(torch.as_tensor(catalogue.item_ids))
    full = top_k(student, users, items, task.exclude, 20, penalty=penalty)
    nothing = [np.empty(0, dtype=np.int64)] * len(task.user_ids)
    cold = torch.as_tensor(cold_rows)
    cold_top = top_k(student, users, items[cold], nothing, 20, penalty=penalty[cold])
    return metrics.per_user_values(
        {int(u): r.tolist() for u, r in zip(task.user_ids, full)},
        {int(u): r.tolist() for u, r in zip(task.user_ids, task.relevant)},
        cold_rows.tolist(),
        {int(u): cold_rows[r].tolist() for u, r in zip(task.user_ids, cold_top)})


def debias_curve(model_dir: str | Path, lake: str, ds: str) -> tuple[float, dict[float, dict]]:
    """(the artifact's own popularity_beta, debias.beta_curve of it on the protocol's task over
    debias.BETAS and that beta): the correction's trade-off, reported only (beta is chosen on
    validation)."""
    student, catalogue, task, items, users = _protocol_vectors(model_dir, lake, ds)
    served = student.cfg.popularity_beta
    return served, debias.beta_curve(student, items, users, catalogue.item_ids, task,
                                     train_popularity(lake, ds, catalogue),
                                     tuple(sorted({*debias.BETAS, served})))


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
