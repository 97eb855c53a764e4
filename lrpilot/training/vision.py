"""CIFAR-10 with a ResNet-18 (the seed experiment's vision task), data kept on the device.

The images stay uint8 NCHW tensors on the training device (150 MB for the 50,000
training images); augmentation (random 32x32 crop of the zero-padded image, horizontal
flip) runs batched on that device as one gather, then uint8 -> float and per-channel
normalisation. The crop offsets and flip flags come from the session's CPU generator,
so a run's augmentation is reproducible and part of its state.

Data: ``datasets.load_dataset("uoft-cs/cifar10")`` when the hub answers, or ``data_dir``
pointing at a ``DatasetDict.save_to_disk`` copy (splits ``train``/``test``, image column
``img`` or ``image``, label column ``label``). 5,000 training images are held out as the
validation split (fixed, seed 0); the official test split is the test split.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from lrpilot.training.data import DataSplits, Inputs, TensorSplit, fixed_split_indices
from lrpilot.training.loading import load_dataset_dict, require
from lrpilot.training.task import Task

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "ImageTransform", "cifar_splits", "load_cifar10", "resnet18_cifar",
           "CIFAR10_RESNET18"]

HUB_ID = "uoft-cs/cifar10"
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
"""Per-channel mean of the CIFAR-10 training images (in [0, 1])."""
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
"""Per-channel standard deviation of the CIFAR-10 training images (in [0, 1])."""
IMAGE_COLUMNS = ("img", "image")
LABEL_COLUMNS = ("label", "labels")
PAD_MODES = ("zeros", "reflect")


class ImageTransform:
    """uint8 NCHW batch -> normalised float batch, optionally with random crop and flip.

    ``padding > 0`` crops a random window of the input's size from the image padded by
    ``padding`` pixels on each side (``"zeros"``: black borders like torchvision's
    ``RandomCrop(32, padding=4)``; ``"reflect"``: mirrored borders); ``flip`` mirrors each
    image left-right with probability 1/2. Crop and flip are one gather on the batch's
    device; the offsets and flags are drawn on the CPU from the generator passed in.
    The output is float NCHW, in channels-last memory on CUDA (where the session
    converts the model to channels-last) and contiguous elsewhere.

    Example:
        >>> train = ImageTransform(CIFAR10_MEAN, CIFAR10_STD, padding=4, flip=True)
        >>> batch = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
        >>> train(batch, torch.Generator().manual_seed(0)).shape
        torch.Size([8, 3, 32, 32])
    """

    def __init__(
        self, mean: Sequence[float], std: Sequence[float], *, padding: int = 0, flip: bool = False, pad_mode: str = "zeros"
    ) -> None:
        if len(mean) != len(std) or not all(s > 0 for s in std):
            raise ValueError(f"mean and std need one entry per channel and std > 0; got mean={mean}, std={std}")
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {', '.join(PAD_MODES)}; got {pad_mode!r}")
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.padding, self.flip, self.pad_mode = padding, bool(flip), pad_mode
        self._consts: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def augments(self) -> bool:
        """Whether the transform draws random numbers (crop or flip)."""
        return self.padding > 0 or self.flip

    def __call__(self, inputs: Inputs, generator: torch.Generator | None) -> torch.Tensor:
        if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4 or inputs.shape[1] != len(self.mean):
            got = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
            raise ValueError(f"expected a uint8 batch of shape (N, {len(self.mean)}, H, W), got {got}")
        if inputs.dtype != torch.uint8:
            raise TypeError(f"expected uint8 pixels (0-255), got {inputs.dtype}")
        x = self._crop_flip(inputs, generator) if self.augments else inputs
        # channels-last where the session converts the model to it (CUDA); plain NCHW on CPU (measured ~10% faster)
        x = x.contiguous(memory_format=torch.channels_last if x.is_cuda else torch.contiguous_format)
        scale, shift = self._scale_shift(x.device)
        return torch.addcmul(shift, x.float(), scale)  # (x/255 - mean)/std in one kernel

    def _scale_shift(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached per device, so a batch costs no host-to-device copy for constants."""
        if device not in self._consts:
            std, mean = torch.tensor(self.std).view(1, -1, 1, 1), torch.tensor(self.mean).view(1, -1, 1, 1)
            self._consts[device] = ((1 / (255 * std)).to(device), (-mean / std).to(device))
        return self._consts[device]

    def _crop_flip(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"an augmenting transform needs a CPU torch.Generator, got {generator!r}")
        n, _, h, w = x.shape
        p = self.padding
        if self.pad_mode == "reflect" and p >= min(h, w):
            raise ValueError(f"reflect padding needs padding < image size; got padding={p} for {h}x{w} images")
        draws = torch.randint(0, 2 * p + 1, (2, n), generator=generator)  # top, left offsets in the padded image
        flips = torch.randint(0, 2, (1, n), generator=generator) if self.flip else torch.zeros(1, n, dtype=torch.long)
        draws = torch.cat([draws, flips]).to(x.device, non_blocking=True)  # one small copy per batch
        top, left, flip = draws[0], draws[1], draws[2].bool()
        rows = top[:, None] - p + torch.arange(h, device=x.device)  # (n, h) source rows, may fall outside
        ar = torch.arange(w, device=x.device)
        cols = left[:, None] - p + torch.where(flip[:, None], w - 1 - ar, ar)  # (n, w), mirrored when flipped
        rows, row_ok = self._source_index(rows, h)
        cols, col_ok = self._source_index(cols, w)
        batch = torch.arange(n, device=x.device)[:, None, None]
        out = x[batch, :, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c): advanced dims come first
        if row_ok is not None and col_ok is not None:
            out = out * (row_ok[:, :, None, None] & col_ok[:, None, :, None]).to(out.dtype)
        return out.permute(0, 3, 1, 2)  # NCHW view of channels-last memory

    def _source_index(self, idx: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Map padded coordinates to source pixels: mirrored (reflect) or clamped plus a validity mask (zeros)."""
        if self.pad_mode == "reflect":
            idx = idx.abs()
            return torch.where(idx > size - 1, 2 * (size - 1) - idx, idx), None
        ok = (idx >= 0) & (idx < size)
        return idx.clamp(0, size - 1), ok


def _column(ds: Any, candidates: Sequence[str], what: str) -> str:
    for name in candidates:
        if name in ds.column_names:
            return name
    raise ValueError(f"no {what} column: expected one of {list(candidates)}, found {ds.column_names}")


def _decode_images(ds: Any, column: str) -> np.ndarray:
    """All images of ``column`` as one uint8 (N, H, W, 3) array."""
    arr = ds.with_format("numpy")[column][:]
    if isinstance(arr, np.ndarray) and arr.dtype == np.uint8 and arr.ndim == 4 and arr.shape[-1] == 3:
        return arr
    # mixed modes or sizes: decode one by one through PIL and insist on one size
    images = [np.asarray(im.convert("RGB")) for im in ds[column]]
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise ValueError(f"images in column {column!r} differ in size: {sorted(shapes)[:4]}")
    return np.stack(images)


def _split_tensors(ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 NCHW images, int64 labels) of one ``datasets.Dataset`` split."""
    images = _decode_images(ds, _column(ds, IMAGE_COLUMNS, "image"))
    labels = np.asarray(ds.with_format("numpy")[_column(ds, LABEL_COLUMNS, "label")][:], dtype=np.int64)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    return x, torch.from_numpy(labels)


def _num_classes(ds: Any, labels: torch.Tensor) -> int:
    feature = ds.features[_column(ds, LABEL_COLUMNS, "label")]
    return int(getattr(feature, "num_classes", None) or int(labels.max()) + 1)


def load_cifar10(task: Task, data_dir: str | None = None) -> DataSplits:
    """CIFAR-10 as uint8 tensors: train (minus ``val_size`` held out) / val / official test.

    Raises ``OfflineDataError`` (within seconds, never waiting on the network) when neither
    ``data_dir`` nor the hub nor the local Hugging Face cache has the data.
    """
    val_size = task.options.get("val_size", 5000)
    ImageTransform(CIFAR10_MEAN, CIFAR10_STD, padding=task.options.get("crop_padding", 4),
                   pad_mode=task.options.get("pad_mode", "zeros"))  # bad options fail before any loading
    dd = load_dataset_dict(HUB_ID, data_dir)
    if isinstance(val_size, bool) or not isinstance(val_size, int) or not 0 < val_size < len(dd["train"]):
        raise ValueError(f"val_size must be in [1, {len(dd['train']) - 1}] (training images), got {val_size!r}")
    train_x, train_y = _split_tensors(dd["train"])
    test_x, test_y = _split_tensors(dd["test"])
    if train_x.shape[1:] != test_x.shape[1:]:
        raise ValueError(f"train images are {tuple(train_x.shape[1:])}, test images {tuple(test_x.shape[1:])}")
    keep, held = fixed_split_indices(len(train_y), val_size, seed=0)
    full = TensorSplit(train_x, train_y)
    return cifar_splits(task, full.subset(keep), full.subset(held), TensorSplit(test_x, test_y),
                        _num_classes(dd["train"], train_y), source=str(data_dir) if data_dir is not None else HUB_ID)


def cifar_splits(task: Task, train: TensorSplit, val: TensorSplit, test: TensorSplit, num_classes: int,
                 source: str = HUB_ID) -> DataSplits:
    """uint8 image splits with the task's augmentation and the CIFAR hints for the session.

    The meta flags ask the session for channels-last memory and ``torch.compile`` on CUDA
    (ResNet-18 at batch 64 is bound by kernel launches, which compilation fuses away).
    ``benchmarks/throughput.py`` builds its synthetic CIFAR-shaped data through this too.
    """
    train_tf = ImageTransform(CIFAR10_MEAN, CIFAR10_STD, flip=True, padding=task.options.get("crop_padding", 4),
                              pad_mode=task.options.get("pad_mode", "zeros"))
    return DataSplits(
        train=train, val=val, test=test, num_classes=num_classes,
        train_transform=train_tf, eval_transform=ImageTransform(CIFAR10_MEAN, CIFAR10_STD),
        meta={"channels_last": True, "compile": True, "source": source},
    )


def resnet18_cifar(task: Task, data: DataSplits) -> nn.Module:
    """torchvision's ResNet-18 with the CIFAR stem: 3x3 stride-1 ``conv1``, no max-pool."""
    require("torchvision")
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=data.num_classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision inits convs
    model.maxpool = nn.Identity()
    return model


CIFAR10_RESNET18 = Task(
    name="cifar10-resnet18", load_data=load_cifar10, build_model=resnet18_cifar,
    description="ResNet-18 (CIFAR stem) on CIFAR-10, crop+flip augmentation (seed experiment; GPU)",
    optimizer="adam", lr=1e-3, batch_size=64, epochs=50, eval_batch_size=1024,
    options={"val_size": 5000, "crop_padding": 4, "pad_mode": "zeros"},
)
