"""The student: what nightly scoring runs inside Spark, small and fast by design.

item vector = normalise(mean of word embeddings of the item text + id_embedding[item])
              (an item without an id embedding, nobody's in training, borrows its nearest known
               items' instead: StudentItemTower.borrowed)
user vector = normalise(out(recency-weighted mean of the history item vectors))
score       = user . item / temperature
served      = score - popularity_beta x log(1 + train interactions of the item)   (models/debias.py)

No transformer anywhere: an item's vector is a bag of its wordpiece embeddings (so an item
nobody has touched still gets one from its text, and a new item needs only the tokenizer), and
scoring a pair is one dot product. Item and user vectors are computed once per run and every
candidate pair after that costs D multiply-adds. It learns from the teacher's scores
(models/distill.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.item_ids import known_id_rows
from models.safe_weights import load_model

# Softmax temperature over the cosines of a cold item's textual neighbours: at 0.05 the nearest
# few dominate without the rest counting for nothing.
NEIGHBOUR_TEMPERATURE = 0.05
SIMILARITY_CELLS = 1 << 24  # 64 MiB of float32 cosines at a time, whatever the catalogue's size


@dataclass(frozen=True)
class StudentConfig:
    vocab_size: int
    pad_token_id: int
    num_known_items: int
    dim: int = 64
    max_item_tokens: int = 32
    max_history: int = 20
    temperature: float = 0.05
    # Strength of the scoring-time popularity correction (models/debias.py); 0 for configs saved
    # before it existed, so they rank as they always did.
    popularity_beta: float = 0.0
    # An item without an id embedding (no train interactions) borrows `cold_neighbour_weight` x
    # those of its `cold_neighbours` nearest known items by text (StudentItemTower.borrowed); 0
    # for configs saved before it existed, so they rank as they always did.
    cold_neighbours: int = 0
    cold_neighbour_weight: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


class StudentItemTower(nn.Module):
    def __init__(self, cfg: StudentConfig):
        super().__init__()
        # Padding is excluded from the mean, so short and long texts are on the same scale.
        self.words = nn.EmbeddingBag(cfg.vocab_size, cfg.dim, mode="mean",
                                     padding_idx=cfg.pad_token_id)
        self.id_embedding = nn.Embedding(cfg.num_known_items + 1, cfg.dim, padding_idx=0)
        nn.init.zeros_(self.id_embedding.weight)
        self.register_buffer("known_item_ids", torch.zeros(cfg.num_known_items, dtype=torch.long))

    def id_rows(self, item_ids: torch.Tensor) -> torch.Tensor:
        return known_id_rows(self.known_item_ids, item_ids)

    def forward(self, token_ids: torch.Tensor, id_rows: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.words(token_ids) + self.id_embedding(id_rows), dim=-1)

    def with_borrowed(self, text: torch.Tensor, id_rows: torch.Tensor, neighbours: int,
                      weight: float) -> torch.Tensor:
        """[N, D] item vectors from the rows' text vectors and id rows, each row without an id
        borrowing its textual neighbours' among these rows (`borrowed`)."""
        borrowed = self.borrowed(text, id_rows, neighbours, weight)
        return F.normalize(text + self.id_embedding(id_rows) + borrowed, dim=-1)

    @torch.no_grad()
    def borrowed(self, text: torch.Tensor, id_rows: torch.Tensor, neighbours: int, weight: float
                 ) -> torch.Tensor:
        """What each row without an id embedding adds in its place [N, D], 0 for the others.

        text [N, D]: the rows' text vectors (the word means); id_rows [N]. A row without an id
        (id row 0: nobody interacted with the item in training) gets `weight` x the mean of the
        id embeddings of its `neighbours` nearest rows with one, by cosine of the text vectors,
        each weighted by softmax(cosine / NEIGHBOUR_TEMPERATURE). The id embeddings hold what
        interactions taught about an item beyond its text, which its text alone cannot give a
        cold item; its textual neighbours' are the best guess of it. A row without text (a zero
        vector) borrows nothing. Chosen inside the training data (bench/cold_validation.py).
        """
        out = torch.zeros_like(text)
        unit = F.normalize(text, dim=-1)
        has_text = text.norm(dim=-1) > 0
        cold = torch.nonzero((id_rows == 0) & has_text).squeeze(1)
        known = torch.nonzero(id_rows > 0).squeeze(1)
        neighbours = min(neighbours, len(known))
        if not (neighbours and weight and len(cold)):
            return out
        known_ids = self.id_embedding(id_rows[known])
        chunk = max(1, SIMILARITY_CELLS // len(known))  # cold rows per [rows, known] product
        for start in range(0, len(cold), chunk):
            rows = cold[start : start + chunk]
            similarity, nearest = (unit[rows] @ unit[known].T).topk(neighbours, dim=1)
            share = (similarity / NEIGHBOUR_TEMPERATURE).softmax(dim=1)
            out[rows] = weight * (share.unsqueeze(-1) * known_ids[nearest]).sum(1)
        return out


class StudentUserTower(nn.Module):
    def __init__(self, cfg: StudentConfig):
        super().__init__()
        # Zero logits start as a plain mean; training learns how much recency matters.
        self.recency = nn.Parameter(torch.zeros(cfg.max_history))
        self.out = nn.Linear(cfg.dim, cfg.dim)
        nn.init.eye_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def weights(self, mask: torch.Tensor) -> torch.Tensor:
        """mask [B, L] -> [B, L]: each history position's weight (softmax over the real items of
        the recency logits; 0 on padding, and everywhere for an empty history)."""
        length = mask.shape[1]
        logits = self.recency[:length].expand(mask.shape[0], length)
        return logits.masked_fill(~mask.bool(), float("-inf")).softmax(-1).nan_to_num(0.0)

    def unnormalised(self, history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The user vector before normalisation: out(weighted sum of the history vectors)."""
        return self.out((self.weights(mask).unsqueeze(1) @ history).squeeze(1))

    def forward(self, history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """history [B, L, D] item vectors, most recent first; mask [B, L] -> [B, D]."""
        return F.normalize(self.unnormalised(history, mask), dim=-1)


class Student(nn.Module):
    config_key = "student"  # its section of the artifact's config.json
    config_class = StudentConfig

    def __init__(self, cfg: StudentConfig):
        super().__init__()
        self.cfg = cfg
        self.items = StudentItemTower(cfg)
        self.users = StudentUserTower(cfg)
        # log(1 + train interactions) of each known item, in known_item_ids order: saved with the
        # weights, so the served correction needs no train data at scoring time.
        self.register_buffer("log_popularity", torch.zeros(cfg.num_known_items))

    def load_state_dict(self, state_dict, *args, **kwargs):
        # Artifacts saved before the popularity correction have no log_popularity: zeros leave
        # their scores as they were (their config's popularity_beta is 0 as well).
        state = {"log_popularity": torch.zeros(self.cfg.num_known_items), **state_dict}
        return super().load_state_dict(state, *args, **kwargs)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """[U, D] x [I, D] -> [U, I]."""
        return users @ items.T / self.cfg.temperature

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Row-wise: [..., D] x [..., D] -> [...] (user i against item i)."""
        return (users * items).sum(-1) / self.cfg.temperature

    def popularity_penalty(self, item_ids: torch.Tensor, beta: float | None = None) -> torch.Tensor:
        """What the served score subtracts from each raw item id's: beta x log(1 + its train
        interactions), 0 for an item unseen in training. `beta`: the configured popularity_beta
        unless given (the validation grid tries others)."""
        beta = self.cfg.popularity_beta if beta is None else beta
        return beta * F.pad(self.log_popularity, (1, 0))[self.items.id_rows(item_ids)]

    def contributions(self, history: torch.Tensor, mask: torch.Tensor, items: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """The score of each (history, item) row split exactly over its history positions.

        The user vector is normalise(W sum_j w_j h_j + b), and W is linear, so
            score = sum_j w_j (W h_j . i) / (n T)  +  b . i / (n T),   n = |W sum_j w_j h_j + b|
        term j is what history item j adds; the bias term is what the user vector brings without
        any item. They add up to score_pairs(users(history, mask), items) up to float rounding:
        a decomposition of the score, not an approximation of it. (The served score also
        subtracts popularity_penalty, a term of the item alone that no history item explains.)

        history [B, L, D] item vectors, mask [B, L], items [B, D] -> ([B, L] per position, 0 on
        padding; [B] bias term).
        """
        users = self.users
        # F.normalize's own floor, so that the terms divide by exactly what the score did.
        norm = users.unnormalised(history, mask).norm(dim=-1).clamp_min(1e-12)
        scale = norm * self.cfg.temperature
        pulled = items @ users.out.weight  # W^T i: W h_j . i = h_j . W^T i, D^2 once per row
        per_position = users.weights(mask) * (history @ pulled.unsqueeze(-1)).squeeze(-1)
        return per_position / scale.unsqueeze(-1), (items @ users.out.bias) / scale

    @torch.no_grad()
    def item_vectors(self, token_ids: np.ndarray, item_ids: np.ndarray,
                     batch_size: int = 65536) -> torch.Tensor:
        """The served vectors of a catalogue [N, D]: each item's text and id embedding, an item
        without an id borrowing its textual neighbours' among these rows (so pass the whole
        catalogue, as scoring and evaluation do)."""
        if not len(item_ids):
            return torch.empty(0, self.cfg.dim)
        items = self.items
        text, id_rows = [], []
        for start in range(0, len(item_ids), batch_size):
            text.append(items.words(torch.as_tensor(token_ids[start:start + batch_size])))
            id_rows.append(items.id_rows(torch.as_tensor(item_ids[start:start + batch_size])))
        return items.with_borrowed(torch.cat(text), torch.cat(id_rows), self.cfg.cold_neighbours,
                                   self.cfg.cold_neighbour_weight)

    @torch.no_grad()
    def user_vectors(self, item_vecs: torch.Tensor, history_rows: np.ndarray,
                     batch_size: int = 65536) -> torch.Tensor:
        """history_rows [U, L] catalogue rows, most recent first, -1 padded -> [U, D]."""
        history_rows = history_rows[:, : self.cfg.max_history]
        out = []
        for start in range(0, len(history_rows), batch_size):
            rows = torch.as_tensor(history_rows[start:start + batch_size])
            mask = rows >= 0
            vecs = item_vecs[rows.clamp(min=0)] * mask.unsqueeze(-1)
            out.append(self.users(vecs, mask))
        return torch.cat(out) if out else torch.empty(0, self.cfg.dim)


def student_from_state(config: dict, state: dict[str, torch.Tensor]) -> Student:
    """Rebuild from a config dict and a state dict (what scoring ships to workers)."""
    student = Student(StudentConfig(**config["student"]))
    student.load_state_dict(state, strict=True)
    return student.eval()


def load_student(model_dir: str | Path) -> tuple[Student, dict]:
    """load_model typed for the student: (student in eval mode, config.json)."""
    return load_model(model_dir, Student)


