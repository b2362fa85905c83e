"""Whole-catalogue ranking with a teacher: item vectors once, user vectors, masked top-k."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from models.data import RankingTask, Tokens, truncate_history
from models.teacher import Teacher

TextFn = Callable[[np.ndarray], torch.Tensor]  # catalogue rows -> pooled text vectors [n, H]


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def token_batch(tokens: Tokens, rows: np.ndarray, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Token ids and mask of `rows`, cut to the longest of them: padding costs as much as text."""
    width = max(int(tokens.mask[rows].sum(1).max(initial=1)), 1)
    ids = torch.as_tensor(tokens.ids[rows, :width], device=device)
    mask = torch.as_tensor(tokens.mask[rows, :width], device=device)
    return ids, mask


def text_from_tokens(teacher: Teacher, tokens: Tokens, device: torch.device) -> TextFn:
    return lambda rows: teacher.items.text(*token_batch(tokens, rows, device))


@torch.no_grad()
def item_vectors(teacher: Teacher, text_fn: TextFn, item_ids: np.ndarray, lengths: np.ndarray,
                 device: torch.device, bf16: bool, batch_size: int = 256) -> torch.Tensor:
    """Vectors of every catalogue row [N, D] (float32 on `device`)."""
    out = torch.empty(len(item_ids), teacher.cfg.dim, device=device)
    order = np.argsort(lengths, kind="stable")  # similar lengths share a batch: less padding
    id_rows = teacher.items.id_rows(torch.as_tensor(item_ids, device=device))
    for start in tqdm(range(0, len(order), batch_size), desc="encode items", leave=False,
                      disable=len(order) <= batch_size):
        rows = order[start : start + batch_size]
        idx = torch.as_tensor(rows, device=device)
        with autocast(device, bf16):
            out[idx] = teacher.items.combine(text_fn(rows).float(), id_rows[idx]).float()
    return out


def gather_history(item_vecs: torch.Tensor, history: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.as_tensor(history, device=item_vecs.device)
    mask = rows >= 0
    return item_vecs[rows.clamp(min=0)] * mask.unsqueeze(-1), mask


@torch.no_grad()
def user_vectors(teacher: Teacher, item_vecs: torch.Tensor, history: np.ndarray, lengths: np.ndarray,
                 bf16: bool, batch_size: int = 512) -> torch.Tensor:
    """User vectors [U, D] from catalogue-row histories, cut to the model's history limits."""
    cfg = teacher.cfg
    history = truncate_history(history, lengths, cfg.max_history, cfg.history_token_budget)
    out = []
    for start in range(0, len(history), batch_size):
        vecs, mask = gather_history(item_vecs, history[start : start + batch_size])
        with autocast(item_vecs.device, bf16):
            out.append(teacher.users(vecs, mask).float())
    return torch.cat(out) if out else torch.empty(0, cfg.dim, device=item_vecs.device)


@torch.no_grad()
def top_k(teacher: Teacher, users: torch.Tensor, items: torch.Tensor, exclude: list[np.ndarray],
          k: int, batch_size: int = 256, penalty: torch.Tensor | None = None) -> np.ndarray:
    """Top-k catalogue rows per user [U, k], never one of that user's `exclude` rows. `penalty`
    [I], when given, is subtracted from every user's score of each item (the student's
    popularity correction, Student.popularity_penalty)."""
    out = []
    for start in range(0, len(users), batch_size):
        scores = teacher.score(users[start : start + batch_size], items)
        if penalty is not None:
            scores = scores - penalty
        for i, rows in enumerate(exclude[start : start + batch_size]):
            scores[i, torch.as_tensor(rows, device=scores.device, dtype=torch.long)] = float("-inf")
        out.append(scores.topk(min(k, items.shape[0]), dim=1).indices.cpu().numpy())
    return np.concatenate(out) if out else np.empty((0, k), dtype=np.int64)


def rankings(teacher: Teacher, task: RankingTask, item_vecs: torch.Tensor, lengths: np.ndarray,
             bf16: bool, k: int = 20) -> dict[int, list[int]]:
    """user id -> top-k catalogue rows for every user of `task`."""
    users = user_vectors(teacher, item_vecs, task.history, lengths, bf16)
    top = top_k(teacher, users, item_vecs, task.exclude, k)
    return {int(u): row.tolist() for u, row in zip(task.user_ids, top)}
