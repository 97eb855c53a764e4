"""Fine-tunes of the synthetic tasks: a body pretrained once on a source set, and a fragile body.

:mod:`lrpilot.training.synthetic` makes a ``teacher`` or ``gmm`` MLP task, or a ``seq`` transformer, a
fine-tune with ``options["pretrain"]`` (the size of its source set) and passes what it knows of the task in: how to
generate the source set and how to build the model. This module owns what does not depend on the
family: the option checks, the pretraining (:func:`pretrain_body`: Adam, LR 1e-3, batch 64,
:data:`PRETRAIN_EPOCHS` epochs, seeded by the data seed alone, cached per process and on disk:
:func:`body_cache_dir`), and :func:`rescale_body` (``options["body_scale"]``, for MLPs and transformers). It
imports nothing of ``synthetic``, so the two modules form no cycle.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from lrpilot.training.transformer import EncoderLayer

__all__ = ["PRETRAIN_EPOCHS", "PRETRAIN_FAMILIES", "PRETRAIN_ARCHS", "BODY_CACHE", "CACHE_ENV", "body_cache_dir",
           "check_finetune", "pretrain_body", "rescale_body", "rescale_encoder", "output_layer"]

PRETRAIN_EPOCHS = 20
"""Epochs of pretraining on the source set (Adam, LR 1e-3, batch 64)."""
PRETRAIN_FAMILIES = ("teacher", "gmm", "seq")
"""The families that can be fine-tunes (``options["pretrain"]`` > 0): ``teacher`` and ``gmm`` as MLPs, ``seq`` as
a transformer (:data:`PRETRAIN_ARCHS`)."""
PRETRAIN_ARCHS = {"teacher": "mlp", "gmm": "mlp", "seq": "transformer"}
"""The architecture a fine-tune of each family must have."""
BODY_CACHE = 32
"""Pretrained bodies kept per process (the oldest is dropped first)."""
CACHE_ENV = "LRPILOT_CACHE_DIR"
"""The environment variable that names the on-disk cache (:func:`body_cache_dir`); set to an empty string, no disk
cache is read or written."""
_CACHE_FORMAT = 1
"""Part of every disk key: raised when the pretraining loop changes in a way the key cannot see."""
_TARGET_ONLY = ("n_train", "n_val", "n_test", "noise", "body_scale")
"""Options that change the target task only: the source set and its pretrained body do not depend on them."""
_BODIES: dict[tuple[Any, ...], dict[str, torch.Tensor]] = {}


def check_finetune(opt: dict[str, Any]) -> int:
    """The source set's size (0: not a fine-tune); ``ValueError`` naming a bad ``pretrain`` or ``body_scale``."""
    examples = opt["pretrain"]
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 0:
        raise ValueError(f"pretrain must be an integer >= 0 (source examples; 0: no pretraining), got {examples!r}")
    if examples and PRETRAIN_ARCHS.get(opt["family"]) != opt["arch"]:
        raise ValueError("pretrain: only teacher and gmm MLP tasks and seq transformer tasks can be fine-tunes, "
                         f"got family={opt['family']!r}, arch={opt['arch']!r}")
    scale = opt["body_scale"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"body_scale must be a finite number > 0, got {scale!r}")
    if scale != 1.0 and not (examples and opt["arch"] in ("mlp", "transformer")):
        raise ValueError(f"body_scale rescales a pretrained body, so it needs pretrain > 0 and arch 'mlp' or "
                         f"'transformer', got body_scale={scale!r}, arch={opt['arch']!r}")
    return examples


def body_cache_dir() -> Path | None:
    """Where pretrained bodies are kept on disk: ``$LRPILOT_CACHE_DIR/bodies``, by default
    ``$XDG_CACHE_HOME/lrpilot/bodies`` (``~/.cache/lrpilot/bodies``, beside the IMDB token cache); None when
    ``LRPILOT_CACHE_DIR`` is set to an empty string."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None:
        return Path(configured).expanduser() / "bodies" if configured else None
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lrpilot" / "bodies"


def _digest(tensors: dict[str, torch.Tensor] | tuple[torch.Tensor, ...]) -> str:
    items = sorted(tensors.items()) if isinstance(tensors, dict) else enumerate(tensors)
    digest = hashlib.blake2b(digest_size=16)
    for name, value in items:
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(value.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _disk_path(key: tuple[Any, ...], source: tuple[torch.Tensor, torch.Tensor], model: nn.Module) -> Path | None:
    """The body's file in :func:`body_cache_dir`: named by everything its bits depend on (the options, the source
    set, the initial weights, the loop's settings, torch's version, the CPU's vector capability and the thread
    count: the same thread count gives the same bits, another may not)."""
    folder = body_cache_dir()
    if folder is None:
        return None
    identity = repr((_CACHE_FORMAT, key, PRETRAIN_EPOCHS, torch.__version__, torch.backends.cpu.get_cpu_capability(),
                     torch.get_num_threads(), _digest(source), _digest(model.state_dict())))
    return folder / f"body-{hashlib.blake2b(identity.encode(), digest_size=16).hexdigest()}.safetensors"


def _read_body(path: Path | None) -> dict[str, torch.Tensor] | None:
    if path is None or not path.is_file():
        return None
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception:  # noqa: BLE001 - a corrupt cache file is trained again and replaced, never trusted
        try:
            path.unlink(missing_ok=True)
        except OSError:  # a read-only cache: _write_body says so
            pass
        return None


def _one_trainer(path: Path | None) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock on ``path``'s lock file (``body-....lock`` beside it), held while a body is read or trained,
    so that the processes of a run that start together (a population's workers) train it once: the others wait, then
    read the file. Without ``fcntl`` (Windows) or a writable cache folder, every process trains as before."""
    try:
        import fcntl
    except ImportError:
        return contextlib.nullcontext()
    if path is None:
        return contextlib.nullcontext()
    lock = path.with_suffix(".lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "ab")  # noqa: SIM115 - closed by _held
    except OSError:  # a read-only cache: _write_body says so
        return contextlib.nullcontext()
    return _held(handle, lock, fcntl)


@contextlib.contextmanager
def _held(handle: Any, lock: Path, fcntl: Any) -> Iterator[None]:
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:  # removed before it is unlocked: a waiter then finds the body, a newcomer a fresh lock file
            with contextlib.suppress(OSError):
                lock.unlink()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_body(path: Path | None, body: dict[str, torch.Tensor]) -> None:
    if path is None:
        return
    from safetensors.torch import save

    from lrpilot.atomic import write_atomic

    try:
        write_atomic(path, lambda fh: fh.write(save({k: v.contiguous() for k, v in body.items()})))
    except OSError as err:  # a read-only or full disk: train on, as without a disk cache
        warnings.warn(f"pretrained body not cached on disk ({err}); set {CACHE_ENV} to a writable directory, "
                      f"or to an empty string to turn the disk cache off", RuntimeWarning, stacklevel=3)


def _train_body(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, head: str) -> dict[str, torch.Tensor]:
    """Pretrain ``model`` on the source set (Adam, LR 1e-3, batch 64, :data:`PRETRAIN_EPOCHS` epochs) and return
    every parameter but the output layer ``head``'s."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(PRETRAIN_EPOCHS):
        for batch in torch.randperm(len(labels)).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(inputs[batch]), labels[batch]).backward()
            optimizer.step()
    return {name: value.detach().clone() for name, value in model.state_dict().items()
            if not name.startswith(f"{head}.")}


def pretrain_body(opt: dict[str, Any], source: Callable[[], tuple[torch.Tensor, torch.Tensor]],
                  build: Callable[[torch.Tensor, torch.Tensor], nn.Module]) -> dict[str, torch.Tensor]:
    """The body (every parameter but the output layer's, :func:`output_layer`) of ``build(inputs, labels)``
    trained on ``source()``.

    Computed once per process and set of options (those of the target alone aside), without touching the
    global RNG: the model is built and its batches drawn under ``opt["data_seed"]``, so the body does not
    depend on the run's seed. Kept on disk too (:func:`body_cache_dir`), so the other processes of a run (a
    population's workers, a validation pool), a resumed run and later runs load it in place of training it again
    (about 30 s of a core for the ``steep`` fine-tune's depth-4 body); the file is named by everything its bits
    depend on, thread count included, so a loaded body is the one this process would have trained. Processes that
    need the same body at once train it once: one holds a lock while it trains, the others wait and load it."""
    key = tuple(sorted((k, v) for k, v in opt.items() if k not in _TARGET_ONLY))
    if key not in _BODIES:
        inputs, labels = source()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(opt["data_seed"]))
            model = build(inputs, labels)
            head = output_layer(model)
            path = _disk_path(key, (inputs, labels), model)
            with _one_trainer(path):  # read under the lock: another process may be training this body
                body = _read_body(path)
                if body is None:
                    body = _train_body(model, inputs, labels, head)
                    _write_body(path, body)
        _BODIES[key] = body
        while len(_BODIES) > BODY_CACHE:
            del _BODIES[next(iter(_BODIES))]
    return _BODIES[key]


def output_layer(model: nn.Module) -> str:
    """The name of the model's output layer (its last ``nn.Linear``): what a fine-tune draws afresh."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)][-1]


def rescale_body(model: nn.Module, scale: float) -> None:
    """Make a pretrained body fragile: the same function, with weights that Adam's steps, about the LR per weight
    whatever its size, move ``1 / scale`` times as far relative to their size.

    An MLP: the first layer's weights and every hidden bias before the last hidden layer times ``scale``, the last
    hidden layer's weights divided by it (each hidden activation but the last is ``scale`` times as large; ReLU is
    positively homogeneous). A body of one hidden layer is left as it is.

    A transformer (its :class:`~lrpilot.training.transformer.EncoderLayer` modules): :func:`rescale_encoder` with
    ``scale`` for both the feed-forward blocks and attention."""
    if scale == 1.0:
        return
    if any(isinstance(m, EncoderLayer) for m in model.modules()):
        rescale_encoder(model, scale, scale)
        return
    hidden = [m for m in model.modules() if isinstance(m, nn.Linear)][:-1]
    if len(hidden) < 2:
        return
    with torch.no_grad():
        hidden[0].weight.mul_(scale)
        for layer in hidden[:-1]:
            layer.bias.mul_(scale)
        hidden[-1].weight.div_(scale)


def rescale_encoder(model: nn.Module, ff: float = 1.0, attn: float = 1.0) -> None:
    """The same function, a more fragile body, in each :class:`~lrpilot.training.transformer.EncoderLayer` of
    ``model``: the first feed-forward layer (weights and bias) times ``ff`` and the second's weights divided by it
    (ReLU is positively homogeneous); the query and value projections times ``attn``, the key projection and the
    attention output's weights divided by it (the attention scores and outputs are unchanged)."""
    with torch.no_grad():
        for layer in (m for m in model.modules() if isinstance(m, EncoderLayer)):
            layer.ff1.weight.mul_(ff)
            layer.ff1.bias.mul_(ff)
            layer.ff2.weight.div_(ff)
            width = layer.out.weight.shape[0]
            for rows, factor in ((slice(0, width), attn), (slice(width, 2 * width), 1 / attn),
                                 (slice(2 * width, 3 * width), attn)):
                layer.qkv.weight[rows].mul_(factor)
                layer.qkv.bias[rows].mul_(factor)
            layer.out.weight.div_(attn)
