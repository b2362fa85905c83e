"""Command-line plumbing shared by the teacher entry points."""

from __future__ import annotations

import argparse
import os

import torch


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the module docstring's layout and shows each flag's default where help does not."""

    def _get_help_string(self, action):
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def resolve_device(name: str) -> torch.device:
    """auto|cpu|cuda -> device; on CPU, torch uses every core this process may run on."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda but torch sees no CUDA device")
        return torch.device("cuda")
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    return torch.device("cpu")


def use_bf16(precision: str, device: torch.device) -> bool:
    """auto|bf16|fp32 -> whether to autocast to bf16."""
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")
