"""Raw item ids -> rows of an id embedding table, the same way for the teacher and the student."""

from __future__ import annotations

import torch


def known_id_rows(known_item_ids: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
    """1 + the position of each id in the sorted `known_item_ids`; 0 (a zero row, so the vector
    comes from text alone) for an item unseen in training."""
    if known_item_ids.numel() == 0:
        return torch.zeros_like(item_ids)
    pos = torch.searchsorted(known_item_ids, item_ids).clamp(max=known_item_ids.numel() - 1)
    return torch.where(known_item_ids[pos] == item_ids, pos + 1, torch.zeros_like(pos))
