"""IMDB sentiment with a BERT classifier (the seed experiment's text task).

Reviews are tokenised once (fast tokenizer, batched), padded to ``max_length`` and kept
as int32 ``input_ids`` / int8 ``attention_mask`` tensors on the device; each training
or evaluation batch is trimmed to its longest review (dynamic padding, rounded up to a
multiple of 8). With the task option ``group_by_length`` (on by default) the training
batches group reviews of similar length (the session's seeded length-grouped order) and
evaluation goes longest first, so trimming removes most of the padding. The tokenised
tensors are cached on disk (safetensors, written atomically) keyed by the tokenizer,
``max_length`` and a hash of the reviews.

Data: ``datasets.load_dataset("stanfordnlp/imdb")`` when the hub answers, or ``data_dir``
with a ``DatasetDict.save_to_disk`` copy (splits ``train``/``test``, columns ``text``,
``label``). 2,500 training reviews are held out as validation (fixed, seed 0).
Model and tokenizer: a hub name (default ``bert-base-uncased``) or a local directory
written by ``save_pretrained``; a local directory is used without touching the network.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lrpilot.training.data import DataSplits, Inputs, TensorSplit, fixed_split_indices
from lrpilot.training.loading import OfflineDataError, hf_offline, hub_reachable, load_dataset_dict, require
from lrpilot.training.task import Task

__all__ = ["SequenceClassifier", "trim_padding", "token_splits", "load_imdb", "bert_classifier", "IMDB_BERT"]

HUB_ID = "stanfordnlp/imdb"
CACHE_FORMAT = 1
"""Bumped whenever the layout of the token cache changes (invalidates old files)."""
_ENCODE_CHUNK = 4096
_HUB_SEEN: dict[str, float] = {}


class SequenceClassifier(nn.Module):
    """Wraps a Hugging Face sequence classifier so ``model(input_ids=..., attention_mask=...)`` is the logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def trim_padding(inputs: Inputs, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Drop the padding columns every sequence of the batch shares (right padding), as int64 tensors.

    The kept width is the longest sequence rounded up to a multiple of 8 (tensor-core
    friendly, fewer distinct shapes). Reading that length costs one device sync per batch.
    """
    if not isinstance(inputs, dict) or "input_ids" not in inputs or "attention_mask" not in inputs:
        raise ValueError(f"expected a dict with input_ids and attention_mask, got {type(inputs).__name__}")
    mask = inputs["attention_mask"]
    longest = int(mask.sum(dim=1).max()) if mask.numel() else 0
    width = min(mask.shape[1], max(8, -(-longest // 8) * 8))
    return {k: v[:, :width].long() for k, v in inputs.items()}


# -- pretrained sources ---------------------------------------------------------------
def _pretrained_kwargs(name: str, option: str) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments for ``name``, or OfflineDataError without network or cache."""
    if not isinstance(name, (str, os.PathLike)) or not str(name):
        raise TypeError(f"option {option!r} must be a model name or directory, got {name!r}")
    name = str(name)
    if os.path.isdir(name):
        return {}
    if _hub_reachable():
        return {}
    if _in_hf_cache(name):
        return {"local_files_only": True}
    raise OfflineDataError(
        f"{option} {name!r} is not a local directory nor in the Hugging Face cache, and huggingface.co is "
        f"unreachable: on a machine with internet run python -c \"from transformers import AutoTokenizer as T, "
        f"AutoModelForSequenceClassification as M; "
        f"M.from_pretrained('{name}').save_pretrained('DIR'); T.from_pretrained('{name}').save_pretrained('DIR')\", "
        f"copy DIR here and set the task option {option}=DIR (task.with_overrides({option}=DIR))"
    )


def _hub_reachable(max_age: float = 60.0) -> bool:
    """``hub_reachable()``, with the network probe remembered for ``max_age`` seconds (a load asks several times)."""
    if hf_offline():
        return False
    now = time.monotonic()
    if not _HUB_SEEN or now - _HUB_SEEN["at"] > max_age:
        _HUB_SEEN.update(at=now, ok=float(hub_reachable()))
    return bool(_HUB_SEEN["ok"])


def _in_hf_cache(name: str) -> bool:
    """Whether the hub snapshot of ``name`` has a config in the local cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    found = try_to_load_from_cache(name, "config.json") or try_to_load_from_cache(name, "tokenizer_config.json")
    return isinstance(found, str)


def _load_tokenizer(name: str) -> Any:
    transformers = require("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(name, **_pretrained_kwargs(name, "tokenizer"))
    if tokenizer.pad_token is None:
        raise ValueError(f"tokenizer {name!r} has no padding token; choose a BERT-style tokenizer")
    tokenizer.padding_side = "right"
    return tokenizer


# -- tokenisation and its cache -------------------------------------------------------
def _cache_dir(task: Task) -> Path:
    configured = task.options.get("cache_dir")
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lrpilot"


def _tokenizer_identity(name: str) -> str:
    """The hub name, or for a local directory its absolute path plus a hash of its tokenizer files."""
    if not os.path.isdir(name):
        return name
    digest = hashlib.blake2b(digest_size=16)
    for file in sorted(Path(name).glob("*")):
        if file.is_file() and ("token" in file.name or file.name.startswith(("vocab", "merges", "special"))):
            digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return f"{os.path.abspath(name)}#{digest.hexdigest()}"


def _data_hash(texts: list[str], labels: np.ndarray) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for text in texts:
        raw = text.encode("utf-8")
        digest.update(len(raw).to_bytes(8, "little") + raw)
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def _encode(tokenizer: Any, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """Token ids (int32) and attention mask (int8), padded to ``max_length``."""
    ids, masks = [], []
    for start in range(0, len(texts), _ENCODE_CHUNK):
        enc = tokenizer(texts[start : start + _ENCODE_CHUNK], max_length=max_length, truncation=True,
                        padding="max_length", return_attention_mask=True, return_tensors="np")
        ids.append(torch.from_numpy(np.asarray(enc["input_ids"], dtype=np.int32)))
        masks.append(torch.from_numpy(np.asarray(enc["attention_mask"], dtype=np.int8)))
    return {"input_ids": torch.cat(ids), "attention_mask": torch.cat(masks)}


def _tokenised_splits(task: Task, dd: Any, tokenizer_name: str, max_length: int) -> dict[str, torch.Tensor]:
    """Flat ``{"train.input_ids": ..., "test.labels": ...}``, from the disk cache when it has them."""
    from safetensors.torch import load_file, save_file

    raw = {s: (list(dd[s]["text"][:]), np.asarray(dd[s]["label"][:], dtype=np.int64)) for s in ("train", "test")}
    key = "|".join([f"v{CACHE_FORMAT}", _tokenizer_identity(tokenizer_name), str(max_length)]
                   + [_data_hash(*raw[s]) for s in ("train", "test")])
    path = _cache_dir(task) / f"imdb-tokens-{hashlib.blake2b(key.encode(), digest_size=12).hexdigest()}.safetensors"
    if path.is_file():
        try:
            return load_file(str(path))
        except Exception:  # noqa: BLE001 - a corrupt cache file is rebuilt, never trusted
            path.unlink(missing_ok=True)
    tokenizer = _load_tokenizer(tokenizer_name)
    tensors: dict[str, torch.Tensor] = {}
    for split, (texts, labels) in raw.items():
        for field, value in _encode(tokenizer, texts, max_length).items():
            tensors[f"{split}.{field}"] = value
        tensors[f"{split}.labels"] = torch.from_numpy(labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata={"key": key})
        os.replace(tmp, path)  # atomic: concurrent runs never see half a file
    finally:
        tmp.unlink(missing_ok=True)
    return tensors


# -- the task -------------------------------------------------------------------------
def _options(task: Task) -> tuple[str, str, int, int]:
    model = task.options.get("model", "bert-base-uncased")
    tokenizer = task.options.get("tokenizer") or model
    max_length, val_size = task.options.get("max_length", 256), task.options.get("val_size", 2500)
    for key, value in (("max_length", max_length), ("val_size", val_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"option {key} must be an integer >= 1, got {value!r}")
    return str(model), str(tokenizer), max_length, val_size


def load_imdb(task: Task, data_dir: str | None = None) -> DataSplits:
    """IMDB tokenised for the task's tokenizer: train (minus ``val_size``) / val / official test.

    Checks that model and tokenizer are available (local directory, hub or cache) before
    any work, and raises ``OfflineDataError`` within seconds when they or the data are not.
    """
    model, tokenizer, max_length, val_size = _options(task)
    _group_by_length(task)  # a bad option fails before any tokenising
    _pretrained_kwargs(model, "model")
    if tokenizer != model:
        _pretrained_kwargs(tokenizer, "tokenizer")
    dd = load_dataset_dict(HUB_ID, data_dir)
    for split in ("train", "test"):
        missing = {"text", "label"} - set(dd[split].column_names)
        if missing:
            raise ValueError(f"IMDB split {split!r} lacks columns {sorted(missing)}; has {dd[split].column_names}")
    if val_size >= len(dd["train"]):
        raise ValueError(f"val_size must be < {len(dd['train'])} (training reviews), got {val_size}")
    t = _tokenised_splits(task, dd, tokenizer, max_length)
    splits = {s: TensorSplit({"input_ids": t[f"{s}.input_ids"], "attention_mask": t[f"{s}.attention_mask"]},
                             t[f"{s}.labels"].long()) for s in ("train", "test")}
    keep, held = fixed_split_indices(len(splits["train"]), val_size, seed=0)
    feature = dd["train"].features["label"]
    num_classes = int(getattr(feature, "num_classes", None) or int(splits["train"].labels.max()) + 1)
    return token_splits(task, splits["train"].subset(keep), splits["train"].subset(held), splits["test"], num_classes,
                        model=model, tokenizer=tokenizer, max_length=max_length)


def token_splits(task: Task, train: TensorSplit, val: TensorSplit, test: TensorSplit, num_classes: int,
                 **meta: Any) -> DataSplits:
    """Token-id splits with dynamic padding and, when the task's ``group_by_length`` is on, length grouping.

    ``benchmarks/throughput.py`` builds its synthetic IMDB-shaped data through this too.
    """
    return DataSplits(train=train, val=val, test=test, num_classes=num_classes, train_transform=trim_padding,
                      eval_transform=trim_padding, meta={**meta, "group_by_length": _group_by_length(task)})


def _group_by_length(task: Task) -> bool:
    group = task.options.get("group_by_length", False)
    if not isinstance(group, bool):
        raise ValueError(f"option group_by_length must be True or False, got {group!r}")
    return group


def bert_classifier(task: Task, data: DataSplits) -> nn.Module:
    """``AutoModelForSequenceClassification`` from the ``model`` option (SDPA attention when supported)."""
    auto = require("transformers").AutoModelForSequenceClassification
    name, _, max_length, _ = _options(task)
    kwargs = {"num_labels": data.num_classes, **_pretrained_kwargs(name, "model")}
    try:
        model = auto.from_pretrained(name, attn_implementation="sdpa", **kwargs)
    except (ValueError, ImportError) as err:
        if "sdpa" not in str(err).lower():
            raise
        model = auto.from_pretrained(name, **kwargs)
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and max_length > positions:
        raise ValueError(f"option max_length={max_length} exceeds the {positions} positions model {name!r} supports")
    return SequenceClassifier(model)


IMDB_BERT = Task(
    name="imdb-bert", load_data=load_imdb, build_model=bert_classifier,
    description="BERT (bert-base-uncased) fine-tuned on IMDB sentiment (seed experiment; GPU)",
    optimizer="adam", lr=1e-3, batch_size=64, epochs=50, eval_batch_size=256, pretrained=True,
    options={"model": "bert-base-uncased", "tokenizer": None, "max_length": 256, "val_size": 2500, "cache_dir": None,
             "group_by_length": True},
)
