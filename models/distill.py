"""Distil the teacher into the student.

    python -m models.distill --lake L --ds D [--teacher-dir <lake>/models/<version>/teacher]

The teacher's item and user vectors are computed once; every training row (a user's history at
one moment) then gets the teacher's scores over the whole catalogue as soft targets, cold items
included, so the student learns the teacher's text-only ranking of items nobody has touched.
Loss = kl_weight x KL(teacher || student) at a temperature + label_weight x the full-catalogue
softmax of the user's next train items (the teacher's own objective, models.losses). Early
stopping on the validation slice by NDCG@10 over the whole catalogue, as the protocol measures.
Then the strength of the scoring-time popularity correction (models/debias.py) is fixed,
`--popularity-beta auto` choosing it on the same validation slice.
Writes `<lake>/models/<version>/student/` beside the teacher it came from. JVM-free.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from contract.args import add_lake_arg, run_date
from contract.layout import VALIDATION_TEACHER, artifact_dir, latest_artifact
from models import debias, losses, metrics
from models.artifact import load_teacher
from models.data import (
    Groups,
    RankingTask,
    concat_groups,
    future_targets,
    load_catalogue,
    read_examples,
    tokenize,
    train_item_ids,
    train_popularity,
    validation_popularity,
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
    dropped_ids,
    make_batch,
    plot_curves,
    refit_epochs,
    step_budget,
    train_loop,
)


@dataclass(frozen=True)
class DistillOptions:
    dim: int = 64
    batch_groups: int = 256
    epochs: float = 4.0
    max_steps: int | None = None
    lr: float = 5e-3
    weight_decay: float = 0.0
    kl_weight: float = 1.0
    label_weight: float = 0.2
    future_items: int = 1
    id_dropout: float = 0.1
    # False (an ablation, bench/cold_validation.py): the KL leaves out the catalogue items without
    # an id (the cold ones), so the student ranks them from what its text path learned elsewhere.
    kl_on_cold: bool = True
    # What an item without train interactions borrows from its textual neighbours' id embeddings
    # (StudentItemTower.borrowed): chosen on pseudo-cold items carved from the training data
    # (bench/cold_validation.py, docs/BENCHMARKS.md); 0 and 0.0 turn it off.
    cold_neighbours: int = 50
    cold_neighbour_weight: float = 0.25
    # True: in training too, every item without an id in a step (cold, or its id dropped) borrows
    # from its textual neighbours that have one in that step, as served items do, so the text
    # path learns beside what is borrowed (bench/cold_validation.py `+borrow`).
    borrow_in_training: bool = False
    # Chosen on ml-latest-small's validation split with the default teacher: 1 gave NDCG@10 0.1380
    # against 0.1355 at 2, and held it from the second epoch on (docs/BENCHMARKS.md).
    distill_temperature: float = 1.0
    patience: int = 3
    log_every: int = 20
    seed: int = 0
    popularity_beta: float | None = None  # None: auto (debias.choose_beta on validation)
    # Retrain on train + validation rows for the length validation chose (see distill()).
    refit: bool = True


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
    top = top_k(student, users, items, task.exclude, k,
                penalty=student.popularity_penalty(torch.as_tensor(item_ids)))
    return {int(u): row.tolist() for u, row in zip(task.user_ids, top)}


def evaluate_student(student: Student, tokens: np.ndarray, item_ids: np.ndarray,
                     task: RankingTask) -> dict:
    ranked = student_rankings(student, tokens, item_ids, task)
    relevant = {int(u): r.tolist() for u, r in zip(task.user_ids, task.relevant)}
    return metrics.evaluate(ranked, relevant, len(item_ids))


def popularity_beta(student: Student, tokens: np.ndarray, item_ids: np.ndarray,
                    valid: RankingTask | None, popularity: np.ndarray, requested: float | None
                    ) -> tuple[float, dict]:
    """(the served popularity_beta, what metrics.json records about it): `requested`, or with
    None (auto) the largest of debias.BETAS within debias.KEEP of beta 0's validation NDCG@10;
    auto is beta 0 when there is no validation slice to choose on."""
    if valid is None:
        beta = requested or 0.0
        return beta, {"popularity_beta": beta}
    student.eval()
    items = student.item_vectors(tokens, item_ids)
    curve = debias.beta_curve(student, items, student.user_vectors(items, valid.history),
                              item_ids, valid, popularity)
    by_beta = {str(b): {k: v[k] for k in debias.FIGURES} for b, v in curve.items()}
    if requested is None:
        requested = debias.choose_beta({b: v["ndcg@10"] for b, v in curve.items()})
    print(f"popularity_beta {requested:g}; validation by beta: {by_beta}", file=sys.stderr)
    return requested, {"popularity_beta": requested, "valid_by_popularity_beta": by_beta}


def distill_loss(student: Student, token_ids: torch.Tensor, id_rows: torch.Tensor, batch: Batch,
                 teacher_users: torch.Tensor, teacher_items: torch.Tensor, teacher_temperature: float,
                 options: DistillOptions) -> tuple[torch.Tensor, dict]:
    """KL to the teacher's full-catalogue softmax + the softmax of the user's next train items.

    teacher_users [B, D] are the batch rows' user vectors, teacher_items [N, D] the whole
    catalogue's; `teacher_temperature` turns their dot products into the teacher's logits.
    """
    ids = dropped_ids(id_rows, options.id_dropout)
    if options.borrow_in_training:
        vecs = student.items.with_borrowed(student.items.words(token_ids), ids,
                                           student.cfg.cold_neighbours,
                                           student.cfg.cold_neighbour_weight)
    else:
        vecs = student.items(token_ids, ids)
    users = student.users(*batch.histories(vecs))
    student_logits = losses.mask_seen(student.score(users, vecs), batch.history)
    labels = losses.future_softmax(student_logits, batch.targets)
    parts = {"labels": labels.item()}
    loss = options.label_weight * labels
    if options.kl_weight:
        teacher_logits = losses.mask_seen(teacher_users @ teacher_items.T / teacher_temperature,
                                          batch.history)
        kl_student = student_logits
        if not options.kl_on_cold:
            cold = id_rows == 0
            teacher_logits = teacher_logits.masked_fill(cold, losses.MASKED_LOGIT)
            kl_student = student_logits.masked_fill(cold, losses.MASKED_LOGIT)
        kl = losses.distill_kl(kl_student, teacher_logits, options.distill_temperature)
        loss = loss + options.kl_weight * kl
        parts["kl"] = kl.item()
    return loss, {"loss": loss.item(), **parts}


def fit_student(student: Student, token_ids: np.ndarray, item_ids: np.ndarray, train: Groups,
                teacher_users: torch.Tensor, teacher_items: torch.Tensor, teacher_temperature: float,
                valid: RankingTask | None, options: DistillOptions) -> FitResult:
    """Train in place; on return the student holds its best validation weights.

    teacher_users [len(train), D] are the teacher's user vectors of every train row.
    """
    tokens_t = torch.as_tensor(token_ids)
    id_rows = student.items.id_rows(torch.as_tensor(item_ids))
    targets = future_targets(train, options.future_items)
    lengths = np.ones(len(item_ids), dtype=np.int64)  # no token budget: the student reads ids
    steps_per_epoch, total = step_budget(len(train), options.batch_groups, options.epochs,
                                         options.max_steps)
    optimizer = torch.optim.AdamW(student.parameters(), lr=options.lr,
                                  weight_decay=options.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / total))

    def step_loss(index: np.ndarray) -> StepLoss:
        batch = make_batch(train, targets, index, lengths, student.cfg.max_history, 10**9,
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


# The ablation's own learning rates, chosen between on validation: without the teacher's soft
# targets the hard labels alone set the gradient scale, so the served student's rate need not suit.
NO_TEACHER_LRS = (5e-3, 2e-2)


def new_student(teacher, pad_token_id: int, known: np.ndarray, options: DistillOptions,
                log_popularity: torch.Tensor | None = None) -> Student:
    """A student ready to distil from `teacher`: id embeddings for the `known` raw item ids, the
    teacher's wordpieces reduced to `options.dim` as its words, the options' cold neighbours, and
    each known item's log(1 + train interactions) for the served popularity correction (zeros
    when not given)."""
    cfg = StudentConfig(vocab_size=teacher.cfg.bert["vocab_size"], pad_token_id=pad_token_id,
                        num_known_items=len(known), dim=options.dim,
                        max_item_tokens=teacher.cfg.max_item_tokens,
                        cold_neighbours=options.cold_neighbours,
                        cold_neighbour_weight=options.cold_neighbour_weight)
    student = Student(cfg)
    student.items.known_item_ids.copy_(torch.as_tensor(known))
    if log_popularity is not None:
        student.log_popularity.copy_(log_popularity)
    with torch.no_grad():
        student.items.words.weight.copy_(word_embedding_init(teacher, cfg.dim))
    return student


def teacher_targets(teacher_dir: Path, catalogue, groups: Groups):
    """(teacher, tokenizer, tokens, [N, D] catalogue vectors, [len(groups), D] user vectors of
    every row of `groups`): what the soft targets are computed from, once."""
    teacher, tokenizer, _ = load_teacher(teacher_dir, "cpu")
    tokens = tokenize(tokenizer, catalogue.texts, teacher.cfg.max_item_tokens)
    print(f"teacher vectors of {teacher_dir.name} for {len(catalogue.item_ids)} items and "
          f"{len(groups)} groups", file=sys.stderr)
    items = item_vectors(teacher, text_from_tokens(teacher, tokens, torch.device("cpu")),
                         catalogue.item_ids, tokens.lengths, torch.device("cpu"), False)
    users = user_vectors(teacher, items, groups.history, tokens.lengths, False)
    return teacher, tokenizer, tokens, items, users


def distill(lake: str, ds: str, teacher_dir: Path, options: DistillOptions,
            ablation: bool = False) -> Path:
    """Distil the student; with `ablation`, also train the same student without the teacher.

    With `options.refit` (and a validation split), each student is first trained on the train
    rows, which is where validation chooses its length (and the served one's popularity beta),
    then trained afresh on the train and validation rows together for that length and saved.
    Validation must not read a teacher that learned the validation rows: when the teacher was
    refitted, its validation-run twin (`teacher-validation` beside it) gives the soft targets of
    the first run, the refitted teacher those of the second.
    """
    teacher_dir = Path(teacher_dir)
    catalogue = load_catalogue(lake, ds)
    train, valid = read_examples(lake, ds, catalogue)
    valid_task = validation_task(train, valid) if len(valid) else None
    refit = options.refit and valid_task is not None
    groups = concat_groups(train, valid) if refit else train  # train rows first
    teacher, tokenizer, teacher_tokens, teacher_items, teacher_users = teacher_targets(
        teacher_dir, catalogue, groups)
    twin = teacher_dir.with_name(VALIDATION_TEACHER)
    if refit and twin.is_dir():
        *_, valid_items, valid_users = teacher_targets(twin, catalogue, train)
    else:
        valid_items, valid_users = teacher_items, teacher_users[: len(train)]

    known = train_item_ids(lake, ds)
    popularity = train_popularity(lake, ds, catalogue)
    log_popularity = torch.as_tensor(np.log1p(popularity[catalogue.rows(known)]),
                                     dtype=torch.float32)
    version = teacher_dir.parent.name  # the student is the same model version as its teacher

    def train_student(opts: DistillOptions, rows: Groups, users: torch.Tensor,
                      items: torch.Tensor, task: RankingTask | None) -> tuple[Student, FitResult]:
        student = new_student(teacher, int(tokenizer.pad_token_id), known, opts, log_popularity)
        result = fit_student(student, teacher_tokens.ids, catalogue.item_ids, rows, users,
                             items, teacher.cfg.temperature, task, opts)
        return student, result

    def validated(opts: DistillOptions) -> tuple[Student, FitResult]:
        return train_student(opts, train, valid_users, valid_items, valid_task)

    def refitted(opts: DistillOptions, result: FitResult, student: Student
                 ) -> tuple[Student, dict]:
        """The student to save and what metrics.json records of its refit (nothing without)."""
        if not refit:
            return student, {}
        epochs = refit_epochs(result, len(train), opts.batch_groups)
        print(f"refit on train + valid groups for {epochs:.2f} epochs", file=sys.stderr)
        again, fitted = train_student(replace(opts, epochs=epochs, max_steps=None), groups,
                                      teacher_users, teacher_items, None)
        again.cfg = student.cfg
        return again, {"refit": fitted.refit_summary(epochs, len(groups))}

    def save(student: Student, result: FitResult, role: str, opts: DistillOptions,
             extra: dict | None = None) -> Path:
        out = artifact_dir(lake, version, role)
        save_model(student, out, {"teacher_dir": str(teacher_dir), "ds": ds,
                                  "options": asdict(opts), "refit": refit}, tokenizer=tokenizer)
        summary = {**result.summary(), **(extra or {})}
        (out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
        plot_curves(result, out / "curves.png")
        print(f"{role}: best valid NDCG@10 {summary['best_valid_ndcg@10']}, "
              f"{summary['samples_per_s']:.0f} samples/s -> {out}", file=sys.stderr)
        return out

    student, result = validated(options)
    beta, choice = popularity_beta(student, teacher_tokens.ids, catalogue.item_ids, valid_task,
                                   validation_popularity(popularity, valid),
                                   options.popularity_beta)
    student.cfg = replace(student.cfg, popularity_beta=beta)
    student, refit_summary = refitted(options, result, student)
    out = save(student, result, "student", options, {**choice, **refit_summary})
    if ablation:
        if valid_task is None:
            raise SystemExit("the no-teacher ablation chooses its settings on the validation "
                             "split, and features.training_examples has none")
        trials = {}
        for lr in NO_TEACHER_LRS:
            opts = replace(options, kl_weight=0.0, label_weight=1.0, lr=lr)
            trials[lr] = (opts, *validated(opts))
        best = max(trials, key=lambda lr: trials[lr][2].best_valid_ndcg)
        opts, student, result = trials[best]
        # The served student's beta: the paired distillation gain then compares the same serving
        # (the same correction) with and without the teacher.
        student.cfg = replace(student.cfg, popularity_beta=beta)
        student, refit_summary = refitted(opts, result, student)
        save(student, result, "student-no-teacher", opts, {"valid_ndcg@10_by_lr": {
            str(lr): t[2].best_valid_ndcg for lr, t in trials.items()}, **refit_summary})
    print(out)
    return out


def popularity_beta_arg(value: str) -> float | None:
    """`--popularity-beta`: `auto` (None: chosen on validation) or a strength >= 0."""
    if value == "auto":
        return None
    beta = float(value)
    if not beta >= 0:
        raise argparse.ArgumentTypeError(f"expected auto or a number >= 0, got {value}")
    return beta


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
    p.add_argument("--label-weight", type=float, default=d.label_weight,
                   help=f"weight of the softmax of the user's next train items ({d.label_weight})")
    p.add_argument("--future-items", type=int, default=d.future_items,
                   help=f"next train items per row that count as labels ({d.future_items})")
    p.add_argument("--id-dropout", type=float, default=d.id_dropout,
                   help=f"share of id embeddings dropped per step, training the text path ({d.id_dropout})")
    p.add_argument("--cold-neighbours", type=int, default=d.cold_neighbours,
                   help="an item without train interactions borrows the id embeddings of this "
                        f"many nearest known items by text; 0: text alone ({d.cold_neighbours})")
    p.add_argument("--cold-neighbour-weight", type=float, default=d.cold_neighbour_weight,
                   help="the weight of what it borrows, next to its own text "
                        f"({d.cold_neighbour_weight})")
    p.add_argument("--distill-temperature", type=float, default=d.distill_temperature,
                   help=f"softmax temperature of the KL term ({d.distill_temperature})")
    p.add_argument("--patience", type=int, default=d.patience,
                   help=f"validations without improvement before stopping ({d.patience})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed ({d.seed})")
    p.add_argument("--popularity-beta", type=popularity_beta_arg, default=None,
                   help="strength of the scoring-time popularity correction, score - beta x "
                        "log(1 + train interactions) (models/debias.py): a number, or auto "
                        f"(default): the largest of {list(debias.BETAS)} whose validation NDCG@10 "
                        f"stays >= {debias.KEEP:g} x beta 0's")
    p.add_argument("--refit", action=argparse.BooleanOptionalAction, default=d.refit,
                   help="after validation has chosen each student's length (and the served "
                        "one's popularity beta), train it afresh on the train and validation rows "
                        "together for as long, so it also learns each user's latest interactions "
                        f"({d.refit})")
    p.add_argument("--no-teacher-ablation", action="store_true",
                   help="also train the same student without the teacher (kl weight 0, its own "
                        "learning rate chosen on validation) into <version>/student-no-teacher, "
                        "for evaluate to measure what distillation adds (recs run does this in "
                        "evaluation mode)")
    return p


def main(argv: list[str] | None = None) -> Path:
    args = build_parser().parse_args(argv)
    resolve_device("cpu")
    options = DistillOptions(dim=args.dim, epochs=args.epochs, max_steps=args.max_steps,
                             batch_groups=args.batch_groups, lr=args.lr, kl_weight=args.kl_weight,
                             label_weight=args.label_weight, future_items=args.future_items,
                             id_dropout=args.id_dropout,
                             cold_neighbours=args.cold_neighbours,
                             cold_neighbour_weight=args.cold_neighbour_weight,
                             distill_temperature=args.distill_temperature,
                             patience=args.patience, seed=args.seed,
                             popularity_beta=args.popularity_beta, refit=args.refit)
    teacher_dir = Path(args.teacher_dir) if args.teacher_dir else latest_artifact(args.lake, args.ds, "teacher")
    return distill(args.lake, args.ds, teacher_dir, options, args.no_teacher_ablation)


if __name__ == "__main__":
    main()
