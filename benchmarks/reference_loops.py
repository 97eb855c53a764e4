"""The plain PyTorch training loops that ``throughput.py`` compares lrpilot against.

They are written the way most tutorials and papers write them: a ``DataLoader`` with
worker processes over a ``Dataset`` that hands out one example at a time (a PIL image
through torchvision transforms; a review already padded to the maximum length), fp32,
eager mode, ``loss.item()`` summed every step, evaluation in a second loop under
``torch.no_grad()``. Each builder returns ``(epoch, warmup)``: one full epoch (train
split, then validation split) and a short version of it (20 training batches) for warm-up.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
WARMUP_BATCHES = 20


def bert_model(overrides: dict[str, int], attention: str) -> torch.nn.Module:
    """A randomly initialised ``BertForSequenceClassification`` (2 labels): ``BertConfig()`` plus ``overrides``."""
    from transformers import BertConfig, BertForSequenceClassification

    return BertForSequenceClassification(BertConfig(num_labels=2, attn_implementation=attention, **overrides))


class PilImages(Dataset):
    """torchvision's CIFAR10 ``__getitem__``: uint8 HWC array -> PIL image -> transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def _loader(dataset: Dataset, batch_size: int, shuffle: bool, device: torch.device, workers: int,
            seed: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                      pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                      generator=torch.Generator().manual_seed(seed))


def _loop(model: torch.nn.Module, forward: Callable[[Any], torch.Tensor], train: DataLoader, val: DataLoader,
          device: torch.device) -> tuple[Callable[[], float], Callable[[], float]]:
    """The epoch and warm-up functions: Adam at 1e-3 on cross-entropy, the labels last in every batch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(batch: Any) -> torch.Tensor:
        loss = F.cross_entropy(forward(batch), batch[-1].to(device, non_blocking=True))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    def run(limit: int | None) -> float:
        model.train()
        total = 0.0
        for i, batch in enumerate(train):
            if limit is not None and i == limit:
                break
            total += step(batch).item()
        model.eval()
        correct = 0
        with torch.no_grad():
            for batch in val:
                correct += (forward(batch).argmax(-1) == batch[-1].to(device)).sum().item()
        return total

    return (lambda: run(None)), (lambda: run(WARMUP_BATCHES))


def reference_cifar(data: dict[str, tuple[np.ndarray, np.ndarray]], device: torch.device, workers: int,
                    seed: int) -> tuple[Callable[[], float], Callable[[], float]]:
    """ResNet-18 (CIFAR stem) trained from a PIL/torchvision DataLoader, fp32, NCHW, no compile."""
    import torchvision.transforms as T

    from lrpilot.training import get_task
    from lrpilot.training.vision import resnet18_cifar

    normalise = [T.ToTensor(), T.Normalize(CIFAR10_MEAN, CIFAR10_STD)]
    augment = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), *normalise])
    train = _loader(PilImages(*data["train"], augment), 64, True, device, workers, seed)
    val = _loader(PilImages(*data["val"], T.Compose(normalise)), 256, False, device, workers, seed)
    torch.manual_seed(seed)  # the reference loop seeds globally, as such scripts do
    model = resnet18_cifar(get_task("cifar10-resnet18"), _Classes(10)).to(device)

    def forward(batch: Any) -> torch.Tensor:
        return model(batch[0].to(device, non_blocking=True))

    return _loop(model, forward, train, val, device)


def reference_imdb(data: dict[str, dict[str, np.ndarray]], bert: dict[str, int], device: torch.device, workers: int,
                   seed: int) -> tuple[Callable[[], float], Callable[[], float]]:
    """BERT with eager attention on reviews padded to the maximum length, fp32, no compile."""

    def dataset(split: str) -> TensorDataset:
        d = data[split]
        return TensorDataset(*(torch.from_numpy(d[k]).long() for k in ("input_ids", "attention_mask", "labels")))

    train = _loader(dataset("train"), 64, True, device, workers, seed)
    val = _loader(dataset("val"), 256, False, device, workers, seed)
    torch.manual_seed(seed)
    model = bert_model(bert, "eager").to(device)

    def forward(batch: Any) -> torch.Tensor:
        ids, mask = (t.to(device, non_blocking=True) for t in batch[:2])
        return model(input_ids=ids, attention_mask=mask).logits

    return _loop(model, forward, train, val, device)


class _Classes:
    """The one attribute of DataSplits that ``resnet18_cifar`` reads."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
