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
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from contract.args import add_lake_arg, run_date
from contract.layout import artifact_dir, latest_artifact
from models import losses, metrics
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
from models.runtime import resolve_device
from models.safe_weights import save_model
from models.scoring import item_vectors, text_from_tokens, top_k, user_vectors
from models.student import Student, StudentConfig
from models.training import (
    Batch,
    FitResult,
    StepLoss,
    make_batch,
    plot_curves,
    step_budget,
    train_loop,
)

MASKED_LOGIT = -1e4  # an excluded in-batch candidate's logit, for student and teacher alike


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
    log_every: int = 20
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
                     task: RankingTask) -> dict:
    ranked = student_rankings(student, tokens, item_ids, task)
    relevant = {int(u): r.tolist() for u, r in zip(task.user_ids, task.relevant)}
    return metrics.evaluate(ranked, relevant, len(item_ids))


def distill_loss(student: Student, token_ids: torch.Tensor, id_rows: torch.Tensor, batch: Batch,
                 teacher_users: torch.Tensor, teacher_items: torch.Tensor, teacher_temperature: float,
                 options: DistillOptions) -> tuple[torch.Tensor, dict]:
    """KL to the teacher's in-batch softmax + InfoNCE + BCE on the hard labels.

    teacher_users [G, D] are the batch's groups' user vectors, teacher_items [N, D] the whole
    catalogue's; `teacher_temperature` turns their dot products into the teacher's logits.
    """
    rows = torch.as_tensor(batch.rows)
    vecs = student.items(token_ids[rows], id_rows[rows])
    users = student.users(*batch.histories(vecs))

    cand, cand_rows = batch.candidates()
    same = losses.other_positives(cand_rows, batch.positive_rows)
    # Finite, not -inf: the KL of two -inf columns is NaN (see losses.distill_kl).
    student_logits = student.score(users, vecs[cand]).masked_fill(same, MASKED_LOGIT)
    teacher_logits = (teacher_users @ teacher_items[cand_rows].T / teacher_temperature
                      ).masked_fill(same, MASKED_LOGIT)
    kl = losses.distill_kl(student_logits, teacher_logits, options.distill_temperature)
    nce = losses.info_nce(student_logits)

    own_logits = student.score_pairs(users.unsqueeze(1), vecs[batch.own()])
    bce = losses.own_bce(own_logits, batch.negatives >= 0)

    loss = options.kl_weight * kl + options.bce_weight * bce + options.nce_weight * nce
    return loss, {"loss": loss.item(), "kl": kl.item(), "bce": bce.item(), "nce": nce.item()}


def fit_student(student: Student, token_ids: np.ndarray, item_ids: np.ndarray, train: Groups,
                teacher_users: torch.Tensor, teacher_items: torch.Tensor, teacher_temperature: float,
                valid: RankingTask | None, options: DistillOptions) -> FitResult:
    """Train in place; on return the student holds its best validation weights.

    teacher_users [len(train), D] are the teacher's user vectors of every train group.
    """
    tokens_t = torch.as_tensor(token_ids)
    id_rows = student.items.id_rows(torch.as_tensor(item_ids))
    lengths = np.ones(len(item_ids), dtype=np.int64)  # no token budget: the student reads ids
    steps_per_epoch, total = step_budget(len(train), options.batch_groups, options.epochs,
                                         options.max_steps)
    optimizer = torch.optim.AdamW(student.parameters(), lr=options.lr,
                                  weight_decay=options.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / total))

    def step_loss(index: np.ndarray) -> StepLoss:
        batch = make_batch(train, index, lengths, student.cfg.max_history, 10**9,
                           torch.device("cpu"))
        loss, parts = distill_loss(student, tokens_t, id_rows, batch,
                                   teacher_users[torch.as_tensor(index)], teacher_items,
                                   teacher_temperature, options)
        return StepLoss(loss, parts, batch.examples)

    evaluate = None if valid is None else (
        lambda: evaluate_student(student, token_ids, item_ids, valid))
    return train_loop(student, step_loss, len(train), optimizer, schedule, total_steps=total,
                      batch_groups=options.batch_groups, seed=options.seed,
                      eval_every=steps_per_epoch, patience=options.patience,
                      log_every=options.log_every, evaluate=evaluate, desc="distil student")


def distill(lake: str, ds: str, teacher_dir: Path, options: DistillOptions) -> Path:
    teacher, tokenizer, _ = load_teacher(teacher_dir, "cpu")
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

    # The student is the same model version as its teacher.
    out = artifact_dir(lake, Path(teacher_dir).parent.name, "student")
    save_model(student, out, {"teacher_dir": str(teacher_dir), "ds": ds,
                              "options": asdict(options)}, tokenizer=tokenizer)
    summary = result.summary()
    (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_curves(result, out / "curves.png")
    print(f"student: best valid NDCG@10 {summary['best_valid_ndcg@10']}, "
          f"{summary['samples_per_s']:.0f} samples/s -> {out}")
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recs distill", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = DistillOptions()
    add_lake_arg(p)
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
    teacher_dir = Path(args.teacher_dir) if args.teacher_dir else latest_artifact(args.lake, args.ds, "teacher")
    return distill(args.lake, args.ds, teacher_dir, options)


if __name__ == "__main__":
    main()
