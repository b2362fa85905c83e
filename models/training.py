"""Training: the loop both models run (seeded batches of example groups, early stopping on
validation NDCG@10, curves), and the teacher's batches, loss and optimizer.

Lake-free (numpy arrays in, trained module out) so tests can drive it on planted data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from models import losses, metrics
from models.data import Groups, RankingTask, Tokens, UserItems, future_targets, truncate_history
from models.scoring import autocast, item_vectors, rankings, token_batch
from models.teacher import Teacher, mean_pool


@dataclass(frozen=True)
class TrainOptions:
    batch_groups: int = 256  # training rows (one user's history at one moment) per step
    # Chosen on ml-latest-small's validation split (docs/BENCHMARKS.md): 4 epochs of 256 rows,
    # the rate decayed to zero over them, 0.1347 NDCG@10 against 0.1191 for 1,000 steps of 128.
    epochs: float = 4.0
    max_steps: int | None = None  # caps epochs
    lr: float = 1e-3  # projection, id embeddings, user tower
    bert_lr: float = 5e-5  # trainable BERT layers: pretrained, so moved gently
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    clip_norm: float = 1.0
    # Targets per training row: its positive and the user's next train items (future_softmax).
    future_items: int = 1
    # Share of catalogue items whose id embedding is dropped each step, so the text path alone
    # learns to rank: the only path an item nobody has interacted with has.
    id_dropout: float = 0.1
    # Leave every other item of the user's training rows out of each row's softmax, not only the
    # row's history: the user's earlier and later items (a rating session shares one timestamp,
    # so "next" among them is arbitrary) are not negatives for them. Chosen on validation
    # (docs/BENCHMARKS.md): +0.0024 and +0.0013 NDCG@10 for the teacher over two seeds, +0.0058
    # and +0.0033 for the student distilled from it.
    mask_user_items: bool = True
    eval_every: int | None = None  # steps; None = twice per epoch
    patience: int = 4  # evaluations without a better valid NDCG@10 before stopping
    log_every: int = 20
    seed: int = 0
    bf16: bool = False
    # Retrain on train + validation rows for the length validation chose (train_teacher.main):
    # +0.0111 [+0.0011, +0.0217] NDCG@10 in a nested check on the validation split
    # (bench/refit_validation.py, docs/BENCHMARKS.md).
    refit: bool = True


@dataclass
class FitResult:
    train_curve: list[dict] = field(default_factory=list)
    valid_curve: list[dict] = field(default_factory=list)
    best_step: int = 0
    best_valid_ndcg: float = float("-inf")
    steps: int = 0
    train_seconds: float = 0.0
    examples: int = 0
    input_tokens: int = 0
    encoder_tokens: int = 0
    # What a text stage before training did (models/text_tuning.py): its settings and loss curve.
    text_stage: dict | None = None

    def summary(self) -> dict:
        secs = max(self.train_seconds, 1e-9)
        return {
            **({} if self.text_stage is None else {"text_stage": self.text_stage}),
            "train_curve": self.train_curve,
            "valid_curve": self.valid_curve,
            "best_step": self.best_step,
            "best_valid_ndcg@10": self.best_valid_ndcg if self.valid_curve else None,
            "steps": self.steps,
            "train_seconds": self.train_seconds,
            "samples_per_s": self.examples / secs,
            "input_tokens_per_s": self.input_tokens / secs,
            "encoder_tokens_per_s": self.encoder_tokens / secs,
        }

    def refit_summary(self, epochs: float, train_groups: int) -> dict:
        """What metrics.json records of a refit (trained without validation): its length, rows
        and training figures."""
        out = {**self.summary(), "epochs": epochs, "train_groups": train_groups}
        for key in ("valid_curve", "best_step", "best_valid_ndcg@10"):
            del out[key]
        return out


ADAPTER_BASIS_ITEMS = 2048  # items whose token states fix the adapter's projection


class ItemText:
    """Pooled text vectors of catalogue rows, computing the frozen BERT part only once.

    What is cached depends on what trains: nothing on the text side, the pooled vector; only the
    adapter, each item's mean-pooled vector and its token states projected for the adapter;
    top BERT layers, the token states below them; every layer, nothing. The cache is built in
    eval mode: frozen layers are then deterministic, as they are at inference.
    """

    def __init__(self, teacher: Teacher, tokens: Tokens, item_ids: np.ndarray,
                 device: torch.device, bf16: bool, batch_size: int = 256):
        self.teacher, self.tokens, self.item_ids, self.device = teacher, tokens, item_ids, device
        items = teacher.items
        self.id_rows = items.id_rows(torch.as_tensor(item_ids, device=device))
        self.cache: torch.Tensor | None = None  # [N, D] pooled, or [N, T, D] states below the top
        self.reduced: torch.Tensor | None = None  # [N, T, rank] with the [N, D] means in cache
        was_training = teacher.training
        teacher.eval()
        if items.adapter_rank and not items.adapter_basis.any():
            self._fit_adapter_basis(bf16)
        if items.trains_embeddings:
            teacher.train(was_training)
            return
        n, width = tokens.ids.shape
        adapter_only = items.trains_text and teacher.cfg.trainable_layers == 0
        if not items.trains_text or adapter_only:
            self.cache = torch.zeros(n, teacher.cfg.dim, device=device)
        else:
            self.cache = torch.zeros(n, width, teacher.cfg.dim, device=device,
                                     dtype=torch.bfloat16 if bf16 else torch.float32)
        if adapter_only:
            self.reduced = torch.zeros(n, width, items.adapter_rank, device=device)
        order = np.argsort(tokens.lengths, kind="stable")  # similar lengths: less padding
        with torch.no_grad():
            for start in tqdm(range(0, n, batch_size), desc="cache frozen item encoder"):
                rows = order[start : start + batch_size]
                idx = torch.as_tensor(rows, device=device)
                ids, mask = token_batch(tokens, rows, device)
                with autocast(device, bf16):
                    states = items.bottom(ids, mask)
                    if adapter_only:
                        self.cache[idx] = mean_pool(states, mask).float()
                        self.reduced[idx, : states.shape[1]] = items.reduce(states).float()
                    elif not items.trains_text:
                        self.cache[idx] = items.top(states, mask).float()
                    else:
                        self.cache[idx, : states.shape[1]] = states.to(self.cache.dtype)
        teacher.train(was_training)

    def _fit_adapter_basis(self, bf16: bool) -> None:
        """The adapter reads the token states it pools projected on their top principal
        directions, computed here once from a seeded sample of the catalogue."""
        items, n = self.teacher.items, len(self.item_ids)
        rows = np.sort(np.random.default_rng(0).permutation(n)[:ADAPTER_BASIS_ITEMS])
        ids, mask = token_batch(self.tokens, rows, self.device)
        with torch.no_grad(), autocast(self.device, bf16):
            hidden = items._run(items.bottom(ids, mask), mask, items.layers[items.num_frozen:])
        items.set_adapter_basis(hidden[mask.bool()])

    def trainable_tokens(self) -> int:
        """Tokens that pass through trainable BERT layers when the whole catalogue is encoded."""
        if self.teacher.cfg.trainable_layers == 0:
            return 0
        return int(self.tokens.mask.sum())

    def __call__(self, rows: np.ndarray) -> torch.Tensor:
        items = self.teacher.items
        if self.cache is None:
            return items.text(*token_batch(self.tokens, rows, self.device))
        idx = torch.as_tensor(rows, device=self.device)
        if self.reduced is not None:
            _, mask = token_batch(self.tokens, rows, self.device)
            return items.pooled(self.cache[idx], self.reduced[idx, : mask.shape[1]], mask)
        if self.cache.dim() == 2:
            return self.cache[idx]
        _, mask = token_batch(self.tokens, rows, self.device)
        return items.top(self.cache[idx, : mask.shape[1]].float(), mask)

    def catalogue(self) -> torch.Tensor:
        """[N, D] text vectors of every catalogue row, with gradients into what trains."""
        if self.cache is not None and self.cache.dim() == 2 and self.reduced is None:
            return self.cache
        return self(np.arange(len(self.item_ids)))


@dataclass
class Batch:
    history: torch.Tensor  # [B, L] catalogue rows, most recent first, -1 padded
    targets: torch.Tensor  # [B, F] the row's positive, then the user's next items, -1 padded
    input_tokens: int  # text tokens of the histories the batch reads
    # [B, M] rows kept out of each row's softmax (-1 padded): its history, or with
    # TrainOptions.mask_user_items every other item of the user's training rows.
    seen: torch.Tensor

    @property
    def examples(self) -> int:
        return int((self.targets >= 0).sum())

    def histories(self, vecs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """([B, L, D] history item vectors, zero where padded; [B, L] mask) for a user tower."""
        mask = self.history >= 0
        return vecs[self.history.clamp(min=0)] * mask.unsqueeze(-1), mask


def make_batch(groups: Groups, targets: np.ndarray, index: np.ndarray, lengths: np.ndarray,
               max_history: int, budget: int, device: torch.device,
               user_items: UserItems | None = None) -> Batch:
    """Rows `index` of `groups` with their `targets` (see models.data.future_targets); with
    `user_items`, each row's softmax leaves out all of the user's other items, not only its
    history."""
    hist = truncate_history(groups.history[index], lengths, max_history, budget)
    input_tokens = int(lengths[hist[hist >= 0]].sum())
    seen = hist if user_items is None else user_items.matrix(groups.user_ids[index], targets[index])
    return Batch(torch.as_tensor(hist, device=device),
                 torch.as_tensor(targets[index], device=device), input_tokens,
                 torch.as_tensor(seen, device=device))


def dropped_ids(id_rows: torch.Tensor, rate: float) -> torch.Tensor:
    """`id_rows` with a random `rate` of them set to row 0, the id embedding that stays zero."""
    if rate <= 0:
        return id_rows
    drop = torch.rand(id_rows.shape, device=id_rows.device) < rate
    return id_rows.masked_fill(drop, 0)


def batch_loss(teacher: Teacher, text: ItemText, batch: Batch, options: TrainOptions
               ) -> tuple[torch.Tensor, dict]:
    """Full-catalogue softmax of each row's future items, the row's `seen` items masked."""
    vecs = teacher.items.combine(text.catalogue(), dropped_ids(text.id_rows, options.id_dropout))
    users = teacher.users(*batch.histories(vecs))
    logits = losses.mask_seen(teacher.score(users, vecs).float(), batch.seen)
    loss = losses.future_softmax(logits, batch.targets)
    return loss, {"loss": loss.item()}


def param_groups(teacher: Teacher, options: TrainOptions) -> list[dict]:
    """BERT layers get their own (lower) lr; no weight decay on biases, norms, cls/query."""
    groups: dict[tuple[float, float], list] = {}
    bert_ids = {id(p) for p in teacher.items.embeddings.parameters()}
    bert_ids |= {id(p) for p in teacher.items.layers.parameters()}
    for name, p in teacher.named_parameters():
        if not p.requires_grad:
            continue
        lr = options.bert_lr if id(p) in bert_ids else options.lr
        decay = (options.weight_decay if p.dim() >= 2 and "recency" not in name
                 and "adapter_query" not in name else 0.0)
        groups.setdefault((lr, decay), []).append(p)
    return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]


def evaluate_task(teacher: Teacher, text: ItemText, task: RankingTask, lengths: np.ndarray,
                  bf16: bool) -> dict:
    was_training = teacher.training
    teacher.eval()
    vecs = item_vectors(teacher, text, text.item_ids, lengths, text.device, bf16)
    ranked = rankings(teacher, task, vecs, lengths, bf16, k=20)
    relevant = {int(u): r.tolist() for u, r in zip(task.user_ids, task.relevant)}
    teacher.train(was_training)
    return metrics.evaluate(ranked, relevant, len(lengths))


def step_budget(groups: int, batch_groups: int, epochs: float, max_steps: int | None
                ) -> tuple[int, int]:
    """(steps per epoch, total steps) for `epochs` passes over `groups`, capped at max_steps."""
    steps_per_epoch = math.ceil(groups / batch_groups)
    total = max(1, math.ceil(epochs * steps_per_epoch))
    return steps_per_epoch, total if max_steps is None else min(total, max_steps)


def refit_epochs(result: FitResult, train_groups: int, batch_groups: int) -> float:
    """The passes over the train groups that validation chose (those up to its best step): how
    long a refit on train + validation rows trains, for the teacher and the students alike."""
    steps_per_epoch, _ = step_budget(train_groups, batch_groups, 1.0, None)
    return result.best_step / steps_per_epoch


def warmup_then_decay(optimizer: torch.optim.Optimizer, warmup: int, total: int
                      ) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup` steps, then linear decay to zero at step `total`."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / (warmup + 1) if s < warmup else
        max(0.0, (total - s) / max(1, total - warmup)))


def shuffled_batches(groups: int, batch_groups: int, seed: int) -> Iterator[np.ndarray]:
    """Endless batches of group indices, each pass over all groups in a fresh seeded order."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(groups)
        for start in range(0, groups, batch_groups):
            yield order[start:start + batch_groups]


@dataclass
class StepLoss:
    """What one training step's loss function hands the loop."""

    loss: torch.Tensor
    parts: dict[str, float]  # logged terms, averaged into the train curve
    examples: int
    input_tokens: int = 0
    encoder_tokens: int = 0


def train_loop(model: torch.nn.Module, step_loss: Callable[[np.ndarray], StepLoss], groups: int,
               optimizer: torch.optim.Optimizer, schedule: torch.optim.lr_scheduler.LRScheduler,
               *, total_steps: int, batch_groups: int, seed: int, eval_every: int, patience: int,
               log_every: int, clip_norm: float | None = None,
               evaluate: Callable[[], dict] | None = None, desc: str = "train") -> FitResult:
    """Train `model` in place on seeded batches of group indices; on return it holds the weights
    of the best validation step, in eval mode.

    `step_loss` maps a batch of group indices to its loss; `evaluate` returns the validation
    metrics (ndcg@10, recall@20) and is called every `eval_every` steps and at the last one.
    Training stops after `patience` evaluations without a better NDCG@10.
    """
    torch.manual_seed(seed)
    model.train()
    result = FitResult()
    best_state: dict[str, torch.Tensor] | None = None
    stale = 0
    batches = shuffled_batches(groups, batch_groups, seed)
    running: dict[str, float] = {}
    bar = tqdm(range(1, total_steps + 1), desc=desc, unit="step")
    for step in bar:
        index = next(batches)

        started = time.perf_counter()
        out = step_loss(index)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        if clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        schedule.step()
        if out.loss.device.type == "cuda":
            torch.cuda.synchronize()
        result.train_seconds += time.perf_counter() - started
        result.steps = step
        result.examples += out.examples
        result.input_tokens += out.input_tokens
        result.encoder_tokens += out.encoder_tokens

        for k, v in out.parts.items():
            running[k] = running.get(k, 0.0) + v
        if step % log_every == 0 or step == total_steps:
            n = step % log_every or log_every
            result.train_curve.append({"step": step, "lr": schedule.get_last_lr()[0],
                                       **{k: v / n for k, v in running.items()}})
            running = {}
        bar.set_postfix(loss=f"{out.parts['loss']:.3f}",
                        samples_s=f"{result.examples / max(result.train_seconds, 1e-9):.0f}")

        if evaluate is not None and (step % eval_every == 0 or step == total_steps):
            scores = evaluate()
            model.train()
            result.valid_curve.append({"step": step, "ndcg@10": scores["ndcg@10"],
                                       "recall@20": scores["recall@20"]})
            bar.write(f"step {step}: valid ndcg@10 {scores['ndcg@10']:.4f} "
                      f"recall@20 {scores['recall@20']:.4f}")
            if scores["ndcg@10"] > result.best_valid_ndcg:
                result.best_valid_ndcg, result.best_step, stale = scores["ndcg@10"], step, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if stale >= patience:
                    bar.write(f"early stop at step {step}: no better valid NDCG@10 in "
                              f"{patience} evaluations (best step {result.best_step})")
                    break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        result.best_step = result.steps
    model.eval()
    return result


def fit(teacher: Teacher, tokens: Tokens, item_ids: np.ndarray, train: Groups,
        valid: RankingTask | None, options: TrainOptions, device: torch.device) -> FitResult:
    """Train in place; on return the teacher holds the weights of the best validation step."""
    # train_loop seeds torch after this setup, which draws no random numbers (the item cache
    # is built in eval mode), so dropout sees the same stream as if seeded first.
    teacher.to(device)
    cfg = teacher.cfg
    lengths = tokens.lengths
    text = ItemText(teacher, tokens, item_ids, device, options.bf16)
    targets = future_targets(train, options.future_items)
    user_items = UserItems.of(train) if options.mask_user_items else None

    steps_per_epoch, total = step_budget(len(train), options.batch_groups, options.epochs,
                                         options.max_steps)
    # The fused kernel halves the optimizer step on CPU, where the dense id-embedding update dominates.
    optimizer = torch.optim.AdamW(param_groups(teacher, options), fused=True)
    schedule = warmup_then_decay(optimizer, int(options.warmup_ratio * total), total)

    def step_loss(index: np.ndarray) -> StepLoss:
        batch = make_batch(train, targets, index, lengths, cfg.max_history,
                           cfg.history_token_budget, device, user_items)
        with autocast(device, options.bf16):
            loss, parts = batch_loss(teacher, text, batch, options)
        return StepLoss(loss, parts, batch.examples, batch.input_tokens, text.trainable_tokens())

    evaluate = None if valid is None else (
        lambda: evaluate_task(teacher, text, valid, lengths, options.bf16))
    return train_loop(teacher, step_loss, len(train), optimizer, schedule, total_steps=total,
                      batch_groups=options.batch_groups, seed=options.seed,
                      eval_every=options.eval_every or max(1, steps_per_epoch // 2),
                      patience=options.patience, log_every=options.log_every,
                      clip_norm=options.clip_norm, evaluate=evaluate, desc="train teacher")


def plot_curves(result: FitResult, path: Path) -> None:
    """Train loss terms on the left, validation NDCG@10 and Recall@20 on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [p["step"] for p in result.train_curve]
    terms = [k for k in (result.train_curve[0] if result.train_curve else {})
             if k not in ("step", "lr")]
    for key in terms:
        left.plot(steps, [p[key] for p in result.train_curve], marker=".", label=key)
    left.set(title="training loss", xlabel="step")
    left.legend()
    if result.valid_curve:
        vsteps = [p["step"] for p in result.valid_curve]
        right.plot(vsteps, [p["ndcg@10"] for p in result.valid_curve], marker="o", label="NDCG@10")
        right.plot(vsteps, [p["recall@20"] for p in result.valid_curve], marker="o", label="Recall@20")
        right.axvline(result.best_step, color="grey", linestyle="--", label="best step")
        right.legend()
    right.set(title="validation (whole catalogue)", xlabel="step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
