"""The teacher: a two-tower (bi-encoder) scorer over item text and the user's history.

item vector = normalise(proj(pooled BERT(item text)) + id_embedding[item])
user vector = normalise(attention pooling over a small transformer on
              [CLS] + history item vectors, most recent first, + recency embeddings)
score       = user . item / temperature

Items unseen in training use id row 0, which stays zero, so they are ranked by text alone.
The BERT layers are split into a frozen bottom and a trainable top (`trainable_layers`) so that
training on CPU can compute the frozen part once per catalogue item (see models/train_teacher.py).
The text side is adapted on CPU by a small adapter on the frozen token states rather than by
BERT layers: pooled = mean(token states) + out(attention pooling of the token states projected
on their top `adapter_rank` principal directions, `adapter_heads` learned queries). `out` starts
at zero, so training starts from exactly the sentence encoder's mean pooling; the adapter then
learns which words of an item's text say most about who watches it. The projection is fixed
(computed once from the catalogue's token states), so training caches each item's projected
states (rank 32, not 384 numbers a token) and the adapter costs little per step. With
`adapter_cold_only` only the items scored without an id embedding read the adapted text.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel

from models.item_ids import known_id_rows


@dataclass(frozen=True)
class TeacherConfig:
    """Everything needed to rebuild the module; saved as JSON next to the weights."""

    bert: dict = field(repr=False)  # BertConfig.to_dict() of the (possibly truncated) encoder
    num_known_items: int  # items with an id embedding (seen in training)
    trainable_layers: int = 0  # top BERT layers trained; == all layers also trains embeddings
    adapter_rank: int = 0  # principal directions of the token states the adapter reads; 0 = none
    adapter_heads: int = 4  # learned attention-pooling queries of the adapter
    # The adapted text only for items scored without an id embedding (cold items, and those
    # ID dropout hides in training); items with one keep the plain mean pooling.
    adapter_cold_only: bool = False
    max_item_tokens: int = 32
    max_history: int = 50
    history_token_budget: int = 1024  # most recent items are kept while their tokens fit
    user_layers: int = 1
    user_heads: int = 4
    user_ff_mult: int = 2
    dropout: float = 0.1
    temperature: float = 0.05

    @property
    def bert_layers(self) -> int:
        return int(self.bert["num_hidden_layers"])

    @property
    def dim(self) -> int:
        return int(self.bert["hidden_size"])

    def __post_init__(self) -> None:
        if not 0 <= self.trainable_layers <= self.bert_layers:
            raise ValueError(f"trainable_layers must be in [0, {self.bert_layers}]")
        if self.history_token_budget < self.max_item_tokens:
            raise ValueError("history_token_budget must hold at least one item (max_item_tokens)")
        if self.dim % self.user_heads:
            raise ValueError(f"hidden size {self.dim} is not divisible by user_heads")
        if not 0 <= self.adapter_rank <= self.dim or self.adapter_heads < 1:
            raise ValueError(f"adapter_rank must be in [0, {self.dim}] and adapter_heads >= 1")
        if self.adapter_cold_only and not self.adapter_rank:
            raise ValueError("adapter_cold_only needs an adapter (adapter_rank > 0)")
        if self.temperature <= 0:
            raise ValueError("temperature must be positive")

    def to_json(self) -> dict:
        return asdict(self)


def _attention_mask(mask: torch.Tensor) -> torch.Tensor:
    # [B, T] 0/1 -> [B, 1, 1, T] bool (True = attend); SDPA takes it under autocast as it is.
    return mask.bool()[:, None, None, :]


class ItemTower(nn.Module):
    def __init__(self, cfg: TeacherConfig, bert: BertModel | None = None):
        super().__init__()
        # SDPA takes the boolean mask built by `_attention_mask`, also under autocast.
        bert = bert or BertModel(BertConfig(**cfg.bert, attn_implementation="sdpa"),
                                 add_pooling_layer=False)
        self.embeddings = bert.embeddings
        self.layers = bert.encoder.layer
        self.num_frozen = cfg.bert_layers - cfg.trainable_layers
        self.trains_embeddings = cfg.trainable_layers == cfg.bert_layers
        self.trains_text = cfg.trainable_layers > 0 or cfg.adapter_rank > 0
        self.adapter_cold_only = cfg.adapter_cold_only
        rank = cfg.adapter_rank
        self.register_buffer("adapter_basis", torch.zeros(cfg.dim, rank))  # set by set_adapter_basis
        self.adapter_query = nn.Parameter(torch.zeros(cfg.adapter_heads if rank else 0, rank))
        # Zero start: the adapter adds nothing until training finds something worth adding.
        self.adapter_out = nn.Linear(cfg.adapter_heads * rank, cfg.dim) if rank else nn.Identity()
        if rank:
            nn.init.zeros_(self.adapter_out.weight)
            nn.init.zeros_(self.adapter_out.bias)
        self.proj = nn.Linear(cfg.dim, cfg.dim)
        # Identity start: before training, similarity is the pretrained sentence similarity.
        nn.init.eye_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        # Zero start: a known item begins as its text and learns a collaborative offset.
        self.id_embedding = nn.Embedding(cfg.num_known_items + 1, cfg.dim, padding_idx=0)
        nn.init.zeros_(self.id_embedding.weight)
        # Sorted raw item ids of the known items: id row = 1 + position here.
        self.register_buffer("known_item_ids", torch.zeros(cfg.num_known_items, dtype=torch.long))
        for p in self.frozen_parameters():
            p.requires_grad_(False)

    def frozen_parameters(self):
        if not self.trains_embeddings:
            yield from self.embeddings.parameters()
        for layer in self.layers[: self.num_frozen]:
            yield from layer.parameters()

    def _run(self, hidden: torch.Tensor, mask: torch.Tensor, layers) -> torch.Tensor:
        attn = _attention_mask(mask)
        for layer in layers:
            hidden = layer(hidden, attention_mask=attn)
        return hidden

    def bottom(self, input_ids: torch.Tensor, mask: torch.Tensor, layers: int | None = None
               ) -> torch.Tensor:
        """Token states after the bottom `layers` BERT layers (default: the frozen ones, the
        part training caches per item)."""
        hidden = self.embeddings(input_ids=input_ids)
        return self._run(hidden, mask, self.layers[: self.num_frozen if layers is None else layers])

    def top(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Trainable layers, then pooling, L2-normalised like sentence-transformers."""
        hidden = self._run(hidden, mask, self.layers[self.num_frozen :])
        return self.pooled(mean_pool(hidden, mask), self.reduce(hidden), mask)

    def reduce(self, hidden: torch.Tensor) -> torch.Tensor:
        """[B, T, D] token states -> [B, T, adapter_rank]: what the adapter reads of them."""
        return hidden.float() @ self.adapter_basis

    def pooled(self, mean: torch.Tensor, reduced: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """normalise(mean pooling + adapter(reduced token states)): the text vector ([D]; with
        adapter_cold_only [2D]: the plain and the adapted one side by side, for combine())."""
        mean = mean.float()
        if not self.adapter_query.numel():
            return F.normalize(mean, dim=-1)
        logits = torch.einsum("btr,hr->bth", reduced, self.adapter_query)
        weights = logits.masked_fill(~mask.bool().unsqueeze(-1), float("-inf")).softmax(1)
        # An all-padding row (empty text) has no token to weigh: it adds nothing.
        heads = torch.einsum("bth,btr->bhr", weights.nan_to_num(0.0), reduced)
        adapted = F.normalize(mean + self.adapter_out(heads.flatten(1)), dim=-1)
        if self.adapter_cold_only:  # both, [plain | adapted]: combine() picks by id row
            return torch.cat([F.normalize(mean, dim=-1), adapted], dim=-1)
        return adapted

    @torch.no_grad()
    def set_adapter_basis(self, token_states: torch.Tensor) -> None:
        """Fix the adapter's projection: the top principal directions of [M, D] token states."""
        if self.adapter_rank:
            centred = token_states.float() - token_states.float().mean(0)
            _, _, v = torch.linalg.svd(centred, full_matrices=False)
            self.adapter_basis.copy_(v[: self.adapter_rank].T)

    @property
    def adapter_rank(self) -> int:
        return self.adapter_basis.shape[1]

    def text(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.top(self.bottom(input_ids, mask), mask)

    def combine(self, text: torch.Tensor, id_rows: torch.Tensor) -> torch.Tensor:
        if self.adapter_cold_only:
            plain, adapted = text.chunk(2, dim=-1)
            text = torch.where((id_rows == 0).unsqueeze(-1), adapted, plain)
        return F.normalize(self.proj(text) + self.id_embedding(id_rows), dim=-1)

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor, id_rows: torch.Tensor) -> torch.Tensor:
        return self.combine(self.text(input_ids, mask), id_rows)

    def id_rows(self, item_ids: torch.Tensor) -> torch.Tensor:
        return known_id_rows(self.known_item_ids, item_ids)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over the tokens: the pooling all-MiniLM-L6-v2 was trained with."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


class UserTower(nn.Module):
    def __init__(self, cfg: TeacherConfig):
        super().__init__()
        dim = cfg.dim
        # Zero starts for CLS, recency and the pooling query give uniform pooling at init: the
        # user begins as the mean of the history item vectors, a sensible text-only prior.
        self.cls = nn.Parameter(torch.zeros(dim))
        self.recency = nn.Embedding(cfg.max_history + 1, dim)
        nn.init.zeros_(self.recency.weight)
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, cfg.user_heads, cfg.user_ff_mult * dim, cfg.dropout,
                activation="gelu", batch_first=True, norm_first=True,
            )
            for _ in range(cfg.user_layers)
        )
        self.query = nn.Parameter(torch.zeros(dim))
        self.out = nn.Linear(dim, dim)
        nn.init.eye_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """history [B, L, D] item vectors (most recent first), mask [B, L] -> user vectors [B, D]."""
        b, length, dim = history.shape
        x = torch.cat([self.cls.expand(b, 1, dim), history], dim=1)
        x = self.dropout(x + self.recency.weight[: length + 1])
        # CLS is always valid, so an empty history still yields a (learned) vector.
        valid = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=mask.device), mask.bool()], 1)
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=~valid)
        weights = (x @ self.query / math.sqrt(dim)).masked_fill(~valid, float("-inf")).softmax(-1)
        pooled = (weights.unsqueeze(-1) * x).sum(1)
        return F.normalize(self.out(pooled.float()), dim=-1)


class Teacher(nn.Module):
    config_key = "teacher"  # its section of the artifact's config.json
    config_class = TeacherConfig

    def __init__(self, cfg: TeacherConfig, bert: BertModel | None = None):
        super().__init__()
        self.cfg = cfg
        self.items = ItemTower(cfg, bert)
        self.users = UserTower(cfg)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """[U, D] x [I, D] -> [U, I] logits."""
        return users @ items.T / self.cfg.temperature

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """[B, D] x [B, K, D] -> [B, K] logits of each user against its own candidates."""
        return (users.unsqueeze(1) * items).sum(-1) / self.cfg.temperature
