"""A small post-LayerNorm transformer encoder for token sequences, written without dropout modules.

The layout of BERT's encoder (attention, then add and LayerNorm; a feed-forward block, then add and
LayerNorm), small enough for the synthetic ``seq`` family (``options["arch"] = "transformer"``). PyTorch's
``nn.TransformerEncoderLayer`` holds dropout modules even at ``p = 0``, which a population cannot train
(:func:`~lrpilot.training.population_init.check_model`), and its fused path does not run under ``torch.vmap``;
this one is plain tensor operations, so a population trains its members side by side.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["SequenceTransformer", "EncoderLayer"]


class EncoderLayer(nn.Module):
    """Multi-head self-attention and a ReLU feed-forward block (``2 * width`` wide), each followed by the
    residual sum and a LayerNorm (post-LN)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"a transformer's width must be a multiple of its {heads} heads, got {width}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.norm1 = nn.LayerNorm(width)
        self.ff1 = nn.Linear(width, 2 * width)
        self.ff2 = nn.Linear(2 * width, width)
        self.norm2 = nn.LayerNorm(width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        batch, length, width = h.shape
        q, k, v = self.qkv(h).view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(width // self.heads), dim=-1)
        attended = (weights @ v).transpose(1, 2).reshape(batch, length, width)
        h = self.norm1(h + self.out(attended))
        return self.norm2(h + self.ff2(torch.relu(self.ff1(h))))


class SequenceTransformer(nn.Module):
    """One-hot tokens ``(N, vocab, length)`` (the ``seq`` family's channels-first layout) -> class logits: a
    per-position token embedding plus learned positions, ``depth`` encoder layers, a mean over positions, and
    the output layer ``head``."""

    def __init__(self, vocab: int, length: int, width: int, depth: int, classes: int, heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Linear(vocab, width)
        self.pos = nn.Parameter(0.02 * torch.randn(length, width))
        self.layers = nn.ModuleList(EncoderLayer(width, heads) for _ in range(depth))
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x.transpose(1, 2)) + self.pos
        for layer in self.layers:
            h = layer(h)
        return self.head(h.mean(dim=1))
