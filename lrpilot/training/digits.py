"""The offline tasks: scikit-learn's bundled handwritten digits (1,797 real 8x8 images).

They run in seconds on a CPU and need no download: the embedded default for the demo,
the tests and controller training. Splits are fixed (seed 0): 1,077 train / 360 val /
360 test, stratification-free but seed-independent.
"""

from __future__ import annotations

import torch
from torch import nn

from lrpilot.training.data import DataSplits, TensorSplit
from lrpilot.training.loading import require
from lrpilot.training.task import Task

__all__ = ["load_digits", "digits_mlp", "digits_cnn", "DIGITS_MLP", "DIGITS_CNN"]

N_VAL = N_TEST = 360


def load_digits(task: Task, data_dir: str | None = None) -> DataSplits:
    """scikit-learn's digits as float tensors in [0, 1]; ``data_dir`` is ignored (data ships with sklearn)."""
    sk = require("sklearn.datasets", "dev")
    bunch = sk.load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    if task.options.get("image", False):
        x = x.view(-1, 1, 8, 8)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    test, val, train = perm[:N_TEST], perm[N_TEST : N_TEST + N_VAL], perm[N_TEST + N_VAL :]
    full = TensorSplit(x, y)
    return DataSplits(full.subset(train), full.subset(val), full.subset(test), num_classes=10)


def digits_mlp(task: Task, data: DataSplits) -> nn.Module:
    """An MLP 64 -> width -> width -> 10 with ReLU."""
    width = int(task.options.get("width", 128))
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, data.num_classes))


def digits_cnn(task: Task, data: DataSplits) -> nn.Module:
    """Two 3x3 conv layers (32, 64 channels), a 2x2 max-pool and a 128-unit head."""
    width = int(task.options.get("width", 32))
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * width * 16, 128), nn.ReLU(), nn.Linear(128, data.num_classes),
    )


DIGITS_MLP = Task(
    name="digits-mlp", load_data=load_digits, build_model=digits_mlp, epochs=20,
    description="MLP on scikit-learn's 8x8 digits (offline, seconds on a CPU)",
    options={"image": False, "width": 128},
)
DIGITS_CNN = Task(
    name="digits-cnn", load_data=load_digits, build_model=digits_cnn, epochs=20,
    description="small CNN on scikit-learn's 8x8 digits (offline, seconds on a CPU)",
    options={"image": True, "width": 32},
)
