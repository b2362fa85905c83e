"""Command-line plumbing shared by the teacher entry points."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

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


def cpu_multiplies_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX512-BF16 or AMX-BF16), read from the
    Linux `/proc/cpuinfo` flags (False where there is none to read). Without them torch
    emulates bf16 and autocast gains nothing."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", cpuinfo) is not None


def use_bf16(precision: str, device: torch.device) -> bool:
    """auto|bf16|fp32 -> whether to autocast to bf16. auto: on CUDA, and on a CPU with bf16
    matrix instructions, where a teacher step took 0.31 s instead of 0.47 s and validation
    NDCG@10 followed fp32's to the third decimal (docs/BENCHMARKS.md)."""
    return precision == "bf16" or (precision == "auto" and (
        device.type == "cuda" or (device.type == "cpu" and cpu_multiplies_bf16())))
