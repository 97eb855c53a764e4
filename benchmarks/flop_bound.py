"""The physical floor of an epoch: FLOPs counted with ``FlopCounterMode`` and a measured matmul rate.

Counting runs on the meta device (shapes only, no arithmetic), so full-size counts take
seconds on any machine: ``python benchmarks/throughput.py --full --count-only``.
ResNet-18 costs the same per image whatever the batch; BERT's cost per review is
a + b*L + c*L^2 in its length L (linear layers, then attention scores), fitted exactly
from three counts, so a bound can charge every review at its own length, without padding.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["cifar_work", "imdb_work", "matmul_rate"]


def _count(model: torch.nn.Module, train: bool, **inputs: torch.Tensor) -> int:
    """FLOPs of one forward (and, when ``train``, backward of a cross-entropy loss) on meta tensors."""
    from torch.utils.flop_counter import FlopCounterMode

    model.train(train)
    with FlopCounterMode(display=False) as counter, torch.set_grad_enabled(train):
        logits = model(**inputs)
        if train:
            logits = getattr(logits, "logits", logits)
            F.cross_entropy(logits.float(), torch.zeros(len(logits), dtype=torch.long, device="meta")).backward()
    return counter.get_total_flops()


def cifar_work(images: tuple[int, int, int], batch_size: int = 64) -> dict[str, float]:
    """ResNet-18 (CIFAR stem): training FLOPs of the train split plus forward FLOPs of the val split."""
    from lrpilot.training import get_task
    from lrpilot.training.vision import resnet18_cifar

    with torch.device("meta"):
        model = resnet18_cifar(get_task("cifar10-resnet18"), SimpleNamespace(num_classes=10))
    x = torch.empty(batch_size, 3, 32, 32, device="meta")
    step = _count(model, True, x=x)
    forward = _count(model, False, x=x) / batch_size
    return {"epoch_tflop": (step / batch_size * images[0] + forward * images[1]) / 1e12, "step_gflop": step / 1e9}


def imdb_work(bert: Callable[[], torch.nn.Module], lengths: dict[str, np.ndarray], seq_len: int,
              batch_size: int = 64) -> dict[str, Any]:
    """BERT: FLOPs of an epoch with every review at its own length (the bound), and padded to ``seq_len``
    (what the reference computes); plus tokens computed per real token for three batchings."""
    from lrpilot.training.data import length_grouped_order

    with torch.device("meta"):
        model = bert()
    widths = np.array([8.0, seq_len / 2, seq_len])
    basis = np.stack([np.ones(3), widths, widths**2], axis=1)
    exact = padded = 0.0
    for split, train in (("train", True), ("val", False)):
        counts = [_count(model, train, input_ids=torch.zeros(1, int(w), dtype=torch.long, device="meta"))
                  for w in widths]
        a, b, c = np.linalg.solve(basis, np.array(counts, dtype=np.float64))
        length = lengths[split].astype(np.float64)
        exact += float(np.sum(a + b * length + c * length**2))
        padded += len(length) * float(a + b * seq_len + c * seq_len**2)
    train = torch.from_numpy(lengths["train"])
    gen = torch.Generator().manual_seed(0)
    tokens = {"padded": len(train) * seq_len,
              "random batches, trimmed": _trimmed(train, torch.randperm(len(train), generator=gen), batch_size),
              "grouped batches, trimmed": _trimmed(train, length_grouped_order(train, batch_size, gen), batch_size)}
    real = float(train.sum())
    return {"epoch_tflop": exact / 1e12, "padded_epoch_tflop": padded / 1e12,
            "tokens_per_real_token": {k: v / real for k, v in tokens.items()}}


def _trimmed(lengths: torch.Tensor, order: torch.Tensor, batch_size: int) -> int:
    """Tokens computed when each batch is cut to its longest review rounded up to 8 (``trim_padding``)."""
    return sum(-(-int(lengths[b].max()) // 8) * 8 * len(b) for b in order.split(batch_size))


def matmul_rate(device: torch.device, timed: Callable[[Callable[[], Any], torch.device], float]) -> tuple[float, str]:
    """Best measured dense matmul rate in FLOP/s: bf16 8192^2 on CUDA, fp32 1024^2 on a CPU."""
    n, dtype, reps = (8192, torch.bfloat16, 20) if device.type == "cuda" else (1024, torch.float32, 5)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best = min(timed(lambda: a @ b, device) for _ in range(reps))
    return 2 * n**3 / best, str(dtype).replace("torch.", "")
