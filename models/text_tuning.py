"""Fine-tune the item encoder's top BERT layers on what users consume together, before the
teacher trains: the CPU default's adapted text side.

The teacher's full-catalogue softmax needs every item's text vector at every step, so training
BERT layers inside it means encoding the whole catalogue per step (the GPU configuration, hours
on 2 cores). This stage adapts the same layers on a cheap objective first: two items one user
consumed one after the other should have close text vectors (in-batch InfoNCE over co-consumed
pairs, models.losses.co_consumed_contrastive). Only the batch's items pass through the tuned
layers, on token states computed once below them. The teacher then trains on the adapted
encoder's vectors, cached as for a frozen one, and an item nobody has interacted with is
encoded by text that has learned what predicts who watches it, not only what it is about.

Pairs come from the training rows the teacher is given (a row's target and the items just
before it in its history), so nothing after the cut-off reaches the encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from models import losses
from models.data import Groups, Tokens
from models.scoring import autocast, token_batch
from models.teacher import ItemTower, mean_pool
from models.training import FitResult, StepLoss, train_loop, warmup_then_decay


@dataclass(frozen=True)
class TextTuning:
    steps: int = 0  # 0 = no stage: the pretrained encoder as it is
    layers: int = 1  # top BERT layers tuned
    lr: float = 1e-4
    batch_pairs: int = 256
    window: int = 3  # a target pairs with one of the items just before it in its history
    # Pairs are drawn with probability ~ 1 / (pairs of their target) ** flatten: 0 follows the
    # interactions (popular items dominate), 1 gives every target item the same share.
    flatten: float = 0.0
    temperature: float = 0.05  # all-MiniLM-L6-v2's own contrastive training scale (20)
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    clip_norm: float = 1.0
    seed: int = 0


def co_consumed_pairs(groups: Groups, window: int) -> np.ndarray:
    """[P, 2] distinct catalogue rows (a row's target, an item among the `window` just before it
    in its history): items consumed next to each other by one user."""
    history = groups.history[:, :window]
    target = np.repeat(groups.positive[:, None], history.shape[1], 1)
    pairs = np.stack([target.ravel(), history.ravel()], 1)
    return pairs[(pairs[:, 1] >= 0) & (pairs[:, 0] != pairs[:, 1])]


@torch.no_grad()
def states_below(items: ItemTower, tokens: Tokens, first_tuned: int, device: torch.device,
                 bf16: bool, batch_size: int = 256) -> torch.Tensor:
    """[N, T, D] token states of every catalogue row after the layers below `first_tuned`."""
    n, width = tokens.ids.shape
    out = torch.zeros(n, width, items.embeddings.word_embeddings.embedding_dim, device=device,
                      dtype=torch.bfloat16 if bf16 else torch.float32)
    for start in tqdm(range(0, n, batch_size), desc="cache item states below the tuned layers"):
        rows = np.arange(start, min(start + batch_size, n))
        ids, mask = token_batch(tokens, rows, device)
        with autocast(device, bf16):
            hidden = items.bottom(ids, mask, first_tuned)
        out[start:start + len(rows), : hidden.shape[1]] = hidden.to(out.dtype)
    return out


def tune_item_text(items: ItemTower, tokens: Tokens, pairs: np.ndarray, tuning: TextTuning,
                   device: torch.device, bf16: bool) -> FitResult | None:
    """Train the top `tuning.layers` BERT layers of `items` in place on co-consumed `pairs`
    ([P, 2] catalogue rows); they are frozen again on return. None when there is no stage."""
    if tuning.steps <= 0 or len(pairs) == 0:
        return None
    if not 1 <= tuning.layers <= len(items.layers):
        raise ValueError(f"text tuning layers must be in [1, {len(items.layers)}]")
    first = len(items.layers) - tuning.layers
    was_training = items.training
    items.eval()  # the cached states below are what inference computes
    below = states_below(items, tokens, first, device, bf16)
    # The stage's pairs, drawn up front (seeded) so the shared loop's batches walk them once.
    weight = np.bincount(pairs[:, 0])[pairs[:, 0]].astype(float) ** -tuning.flatten
    pool = pairs[np.random.default_rng(tuning.seed).choice(
        len(pairs), size=tuning.steps * tuning.batch_pairs, p=weight / weight.sum())]

    def step_loss(index: np.ndarray) -> StepLoss:
        batch = pool[index]
        rows, inverse = np.unique(batch, return_inverse=True)
        inverse = torch.as_tensor(inverse.reshape(batch.shape), device=device)
        _, mask = token_batch(tokens, rows, device)
        with autocast(device, bf16):
            hidden = items._run(below[torch.as_tensor(rows, device=device), : mask.shape[1]],
                                mask, items.layers[first:])
        vecs = F.normalize(mean_pool(hidden, mask).float(), dim=-1)
        pair_items = torch.as_tensor(batch, device=device)
        loss = losses.co_consumed_contrastive(vecs[inverse[:, 0]], vecs[inverse[:, 1]],
                                              pair_items[:, 0], pair_items[:, 1],
                                              tuning.temperature)
        return StepLoss(loss, {"loss": loss.item()}, len(batch))

    tuned = [p for layer in items.layers[first:] for p in layer.parameters()]
    for p in tuned:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(tuned, lr=tuning.lr, weight_decay=tuning.weight_decay)
    schedule = warmup_then_decay(optimizer, int(tuning.warmup_ratio * tuning.steps), tuning.steps)
    result = train_loop(items, step_loss, len(pool), optimizer, schedule,
                        total_steps=tuning.steps, batch_groups=tuning.batch_pairs,
                        seed=tuning.seed, eval_every=tuning.steps, patience=1, log_every=10,
                        clip_norm=tuning.clip_norm, desc="tune item text")
    for p in tuned:
        p.requires_grad_(False)
    items.train(was_training)
    return result
