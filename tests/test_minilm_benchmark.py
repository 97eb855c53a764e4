"""benchmarks/minilm_sentiment.py: labels follow the sentences, the data load through imdb-bert's real code."""

from __future__ import annotations

import pytest

from fixtures import minilm_model_dir


@pytest.fixture()
def module(tmp_path, monkeypatch, benchmark_module):
    minilm_model_dir()  # skips without the package
    monkeypatch.setenv("LRPILOT_MINILM_SENTIMENT_DIR", str(tmp_path / "minilm"))
    return benchmark_module("minilm_sentiment")


def score(text: str, module, vocabulary=None) -> int:
    """Re-read a review: +1 per positive word, -1 per negative, sign flipped by "not"."""
    vocabulary = vocabulary or module.MOVIES
    total = 0
    for clause in text.rstrip(".").lower().split(", and "):
        words = clause.split()
        polarity = 1 if words[-1] in vocabulary.positive else -1
        assert words[-1] in vocabulary.positive + vocabulary.negative
        total += -polarity if words[-2] == "not" else polarity
    return total


def test_clean_labels_say_whether_the_positives_outweigh(module):
    texts, labels = module.generate_reviews(300, seed=4)
    assert all((score(t, module) > 0) == bool(y) for t, y in zip(texts, labels))
    assert 100 < sum(labels) < 200  # both classes


def test_noise_flips_about_that_share_of_labels(module):
    texts, labels = module.generate_reviews(2000, seed=5, noise=0.1)
    flipped = sum((score(t, module) > 0) != bool(y) for t, y in zip(texts, labels))
    assert 140 < flipped < 260


def test_generated_reviews_load_through_the_imdb_bert_loader(module, tmp_path):
    data = module.TASK.load_data(module.TASK, None)
    assert (len(data.train), len(data.val), len(data.test), data.num_classes) == (512, 256, 512, 2)
    assert (tmp_path / "minilm" / "data" / "dataset_dict.json").is_file()
    assert data.train.inputs["input_ids"].shape[1] == 64


@pytest.fixture()
def products(module, tmp_path, monkeypatch, benchmark_module):
    monkeypatch.setenv("LRPILOT_MINILM_PRODUCTS_DIR", str(tmp_path / "products"))
    return benchmark_module("minilm_products")


def test_product_reviews_share_no_word_with_the_held_out_reviews(module, products):
    vocabulary = products.PRODUCTS
    theirs = set(module.POSITIVE + module.NEGATIVE + module.SUBJECTS)
    assert not theirs & set(vocabulary.positive + vocabulary.negative + vocabulary.subjects)
    texts, labels = module.generate_reviews(300, seed=4, vocabulary=vocabulary)
    assert all((score(t, module, vocabulary) > 0) == bool(y) for t, y in zip(texts, labels))
    assert 100 < sum(labels) < 200


def test_product_reviews_load_as_their_own_task(products, tmp_path):
    assert products.TASK.name == "minilm-products"
    data = products.TASK.load_data(products.TASK, None)
    assert (len(data.train), len(data.val), len(data.test), data.num_classes) == (512, 256, 512, 2)
    assert (tmp_path / "products" / "data" / "dataset_dict.json").is_file()
    assert not (tmp_path / "minilm" / "data").exists()  # the held-out task's data are not written
