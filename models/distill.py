"""Distil the teacher into the student.

    python -m models.distill --lake L --ds D [--teacher-dir <lake>/models/<version>/teacher]

The teacher's item and user vectors are computed once; every training group (a positive, its
sampled negatives and, through the batch, everyone else's candidates) then gets the teacher's
scores as soft targets. Loss = KL(teacher || student) at a temperature over the in-batch
candidate list + BCE on the hard labels + InfoNCE on the hard labels. Early stopping on the
validation slice by NDCG@10 over the whole catalogue, as the protocol measures. Writes
`<lake>/models/<version>/student/` beside the teacher it came from. JVM-free.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from jobs.args import run_date
from jobs.tables import LAKE_DEFAULT
from models import metrics
from models.artifact import load_teacher
from models.data import (
    Groups,
    RankingTask,
    load_catalogue,
    read_examples,
    tokenize,
    train_item_ids,
    validation_task,
)
from models.evaluate_teacher import latest_artifact
from models.runtime import resolve_device
from models.scoring import item_vectors, text_from_tokens, top_k, user_vectors
from models.student import Student, StudentConfig, save_student
from models.training import make_batch, shuffled_batches, step_budget


@dataclass(frozen=True)
class DistillOptions:
    dim: int = 64
    batch_groups: int = 256
    epochs: float = 4.0
    max_steps: int | None = None
    lr: float = 5e-3
    weight_decay: float = 0.0
    kl_weight: float = 1.0
    bce_weight: float = 0.2
    nce_weight: float = 0.5
    distill_temperature: float = 2.0
    patience: int = 3
    seed: int = 0


def word_embedding_init(teacher, dim: int) -> torch.Tensor:
    """The teacher's wordpiece embeddings reduced to `dim` by PCA: text means something at step 0."""
    words = teacher.items.embeddings.word_embeddings.weight.detach().float()
    centred = words - words.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    reduced = centred @ v[:dim].T
    return reduced / reduced.norm(dim=1).mean()


def student_rankings(student: Student, tokens: np.ndarray, item_ids: np.ndarray, task: RankingTask,
                     k: int = 20) -> dict[int, list[int]]:
    student.eval()
    items = student.item_vectors(tokens, item_ids)
    users = student.user_vectors(items, task.history)
    top = top_k(student, users, items, task.exclude, k)
    return {int(u): row.tolist() for u, row in zip(task.user_ids, top)}


def evaluate_student(student: Student, tokens: np.ndarray, item_ids: np.ndarray,
                     task: RankingTask, cold_rows: np.ndarray = np.array([], dtype=np.int64)) -> dict:
    ranked = student_rankings(student, tokens, item_ids, task)
    relevant = {int(u): r.tolist() for u, r in zip(task.user_ids, task.relevant)}
    return metrics.evaluate(ranked, relevant, len(item_ids), cold_rows.tolist())


def distill_loss(student: Student, token_ids: torch.Tensor, id_rows: torch.Tensor, batch,
                 teacher_users: torch.Tensor, teacher_items: torch.Tensor, teacher_temperature: float,
                 options: DistillOptions) -> tuple[torch.Tensor, dict]:
    rows = torch.as_tensor(batch.rows)
    vecs = student.items(token_ids[rows], id_rows[rows])
    hist_mask = batch.history >= 0
    users = student.users(vecs[batch.history.clamp(min=0)] * hist_mask.unsqueeze(-1), hist_mask)

    neg_mask = batch.negatives >= 0
    cand = torch.cat([batch.positive, batch.negatives[neg_mask]])
    cand_rows = torch.cat([batch.positive_rows, batch.negative_rows[neg_mask]])
    g = len(batch.positive)
    target = torch.arange(g)
    # Another group's candidate that is this group's positive item is not a negative.
    same = cand_rows.unsqueeze(0) == batch.positive_rows.unsqueeze(1)
    same[target, target] = False

    student_logits = student.score(users, vecs[cand]).masked_fill(same, -1e4)
    teacher_logits = (teacher_users @ teacher_items[cand_rows].T / teacher_temperature
                      ).masked_fill(same, -1e4)
    t = options.distill_temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, -1), F.log_softmax(teacher_logits / t, -1),
                  log_target=True, reduction="batchmean") * t * t
    nce = F.cross_entropy(student_logits, target)

    own = torch.cat([batch.positive.unsqueeze(1), batch.negatives.clamp(min=0)], 1)
    own_logits = student.score_pairs(users.unsqueeze(1), vecs[own])
    labels = torch.zeros_like(own_logits)
    labels[:, 0] = 1
    weight = torch.cat([torch.ones_like(neg_mask[:, :1]), neg_mask], 1).float()
    bce = F.binary_cross_entropy_with_logits(own_logits, labels, weight, reduction="sum") / weight.sum()

    loss = options.kl_weight * kl + options.bce_weight * bce + options.nce_weight * nce
    return loss, {"loss": loss.item(), "kl": kl.item(), "bce": bce.item(), "nce": nce.item()}


def fit_student(student: Student, token_ids: np.ndarray, item_ids: np.ndarray, train: Groups,
                teacher_users: torch.Tensor, teacher_items: torch.Tensor, teacher_temperature: float,
                valid: RankingTask | None, options: DistillOptions) -> dict:
    """Train in place; on return the student holds its best validation weights."""
    torch.manual_seed(options.seed)
    tokens_t = torch.as_tensor(token_ids)
    id_rows = student.items.id_rows(torch.as_tensor(item_ids))
    lengths = np.ones(len(item_ids), dtype=np.int64)  # no token budget: the student reads ids
    steps_per_epoch, total = step_budget(len(train), options.batch_groups, options.epochs,
                                         options.max_steps)
    optimizer = torch.optim.AdamW(student.parameters(), lr=options.lr,
                                  weight_decay=options.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / total))
    curves: dict[str, list] = {"train": [], "valid": []}
    best = (-math.inf, 0, None)
    stale, running, examples, seconds = 0, {}, 0, 0.0
    batches = shuffled_batches(len(train), options.batch_groups, options.seed)
    bar = tqdm(range(1, total + 1), desc="distil student", unit="step")
    student.train()
    for step in bar:
        index = next(batches)
        started = time.perf_counter()
        batch = make_batch(train, index, lengths, student.cfg.max_history, 10**9,
                           torch.device("cpu"))
        loss, parts = distill_loss(student, tokens_t, id_rows, batch,
                                   teacher_users[torch.as_tensor(index)], teacher_items,
                                   teacher_temperature, options)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        seconds += time.perf_counter() - started
        examples += batch.examples
        for k, v in parts.items():
            running[k] = running.get(k, 0.0) + v
        if step % 20 == 0 or step == total:
            n = step % 20 or 20
            curves["train"].append({"step": step, **{k: v / n for k, v in running.items()}})
            running = {}
        bar.set_postfix(loss=f"{parts['loss']:.3f}", samples_s=f"{examples / seconds:.0f}")
        if valid is not None and (step % steps_per_epoch == 0 or step == total):
            scores = evaluate_student(student, token_ids, item_ids, valid)
            student.train()
            curves["valid"].append({"step": step, "ndcg@10": scores["ndcg@10"],
                                    "recall@20": scores["recall@20"]})
            bar.write(f"step {step}: valid ndcg@10 {scores['ndcg@10']:.4f}")
            if scores["ndcg@10"] > best[0]:
                best = (scores["ndcg@10"], step,
                        {k: v.detach().clone() for k, v in student.state_dict().items()})
                stale = 0
            else:
                stale += 1
                if stale >= options.patience:
                    break
    bar.close()
    if best[2] is not None:
        student.load_state_dict(best[2])
    student.eval()
    return {"curves": curves, "best_step": best[1],
            "best_valid_ndcg@10": best[0] if best[2] is not None else None,
            "samples_per_s": examples / max(seconds, 1e-9), "train_seconds": seconds}


def plot_curves(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    train = curves["train"]
    for key in ("loss", "kl", "bce", "nce"):
        left.plot([p["step"] for p in train], [p[key] for p in train], label=key)
    left.set_xlabel("step"), left.set_title("training loss"), left.legend()
    valid = curves["valid"]
    right.plot([p["step"] for p in valid], [p["ndcg@10"] for p in valid], marker="o")
    right.set_xlabel("step"), right.set_title("validation NDCG@10")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def distill(lake: str, ds: str, teacher_dir: Path, options: DistillOptions) -> Path:
    teacher, tokenizer, teacher_config = load_teacher(teacher_dir, "cpu")
    catalogue = load_catalogue(lake, ds)
    teacher_tokens = tokenize(tokenizer, catalogue.texts, teacher.cfg.max_item_tokens)
    train, valid = read_examples(lake, ds, catalogue)
    print(f"teacher vectors for {len(catalogue.item_ids)} items and {len(train)} groups",
          file=sys.stderr)
    teacher_items = item_vectors(teacher, text_from_tokens(teacher, teacher_tokens, torch.device("cpu")),
                                 catalogue.item_ids, teacher_tokens.lengths, torch.device("cpu"), False)
    teacher_users = user_vectors(teacher, teacher_items, train.history, teacher_tokens.lengths, False)

    known = train_item_ids(lake, ds)
    cfg = StudentConfig(vocab_size=teacher.cfg.bert["vocab_size"],
                        pad_token_id=int(tokenizer.pad_token_id), num_known_items=len(known),
                        dim=options.dim, max_item_tokens=teacher.cfg.max_item_tokens)
    student = Student(cfg)
    student.items.known_item_ids.copy_(torch.as_tensor(known))
    with torch.no_grad():
        student.items.words.weight.copy_(word_embedding_init(teacher, cfg.dim))
    valid_task = validation_task(train, valid) if len(valid) else None
    result = fit_student(student, teacher_tokens.ids, catalogue.item_ids, train, teacher_users,
                         teacher_items, teacher.cfg.temperature, valid_task, options)

    out = Path(teacher_dir).parent / "student"
    save_student(student, out, {"teacher_dir": str(teacher_dir), "ds": ds,
                                "options": asdict(options)})
    tokenizer.save_pretrained(str(out))
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_curves(result["curves"], out / "curves.png")
    print(f"student: best valid NDCG@10 {result['best_valid_ndcg@10']}, "
          f"{result['samples_per_s']:.0f} samples/s -> {out}")
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recs distill", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = DistillOptions()
    p.add_argument("--lake", default=LAKE_DEFAULT, help="lake root holding the Delta tables")
    p.add_argument("--ds", required=True, type=run_date, help="run date YYYY-MM-DD")
    p.add_argument("--teacher-dir", default=None,
                   help="teacher artifact (default: the newest <lake>/models/<ds>-*/teacher)")
    p.add_argument("--dim", type=int, default=d.dim, help=f"student vector size ({d.dim})")
    p.add_argument("--epochs", type=float, default=d.epochs, help=f"passes over the groups ({d.epochs})")
    p.add_argument("--max-steps", type=int, default=None, help="cap on optimizer steps")
    p.add_argument("--batch-groups", type=int, default=d.batch_groups,
                   help=f"example groups per step ({d.batch_groups})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"AdamW learning rate ({d.lr})")
    p.add_argument("--kl-weight", type=float, default=d.kl_weight, help=f"weight of KL to the teacher ({d.kl_weight})")
    p.add_argument("--bce-weight", type=float, default=d.bce_weight, help=f"weight of BCE on labels ({d.bce_weight})")
    p.add_argument("--nce-weight", type=float, default=d.nce_weight, help=f"weight of InfoNCE ({d.nce_weight})")
    p.add_argument("--distill-temperature", type=float, default=d.distill_temperature,
                   help=f"softmax temperature of the KL term ({d.distill_temperature})")
    p.add_argument("--patience", type=int, default=d.patience,
                   help=f"validations without improvement before stopping ({d.patience})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed ({d.seed})")
    return p


def main(argv: list[str] | None = None) -> Path:
    args = build_parser().parse_args(argv)
    resolve_device("cpu")
    options = DistillOptions(dim=args.dim, epochs=args.epochs, max_steps=args.max_steps,
                             batch_groups=args.batch_groups, lr=args.lr, kl_weight=args.kl_weight,
                             bce_weight=args.bce_weight, nce_weight=args.nce_weight,
                             distill_temperature=args.distill_temperature,
                             patience=args.patience, seed=args.seed)
    teacher_dir = Path(args.teacher_dir) if args.teacher_dir else latest_artifact(args.lake, args.ds)
    return distill(args.lake, args.ds, teacher_dir, options)


if __name__ == "__main__":
    main()
