"""imdb-bert: tokenisation and its disk cache, dynamic padding, the offline errors, training."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import torch

from fixtures import make_imdb_dir, make_tiny_bert_dir, minilm_model_dir, synthetic_reviews
from lrpilot.training import TrainingSession, get_task
from lrpilot.training import text as text_module
from lrpilot.training.loading import OfflineDataError
from lrpilot.training.text import load_imdb, trim_padding


@pytest.fixture(scope="module")
def imdb_dir(tmp_path_factory):
    return make_imdb_dir(tmp_path_factory.mktemp("imdb") / "data", n_train=128, n_test=32)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return make_tiny_bert_dir(tmp_path_factory.mktemp("bert") / "tiny", synthetic_reviews(256)[0])


@pytest.fixture()
def task(bert_dir, tmp_path):
    return get_task("imdb-bert").with_overrides(
        model=str(bert_dir), max_length=64, val_size=32, batch_size=32, cache_dir=str(tmp_path / "cache"))


def test_defaults_follow_the_seed_plan():
    task = get_task("imdb-bert")
    assert (task.optimizer, task.lr, task.batch_size, task.epochs) == ("adam", 1e-3, 64, 50)
    assert (task.options["model"], task.options["max_length"], task.options["val_size"]) == ("bert-base-uncased", 256, 2500)


def test_tokenises_into_fixed_splits(imdb_dir, task):
    data = load_imdb(task, str(imdb_dir))
    assert (len(data.train), len(data.val), len(data.test), data.num_classes) == (96, 32, 32, 2)
    ids, mask = data.train.inputs["input_ids"], data.train.inputs["attention_mask"]
    assert ids.shape == mask.shape == (96, 64) and ids.dtype == torch.int32 and mask.dtype == torch.int8
    assert bool((ids[mask == 0] == 0).all())  # right padding with [PAD] = 0
    assert bool((mask[:, 0] == 1).all()) and set(data.train.labels.tolist()) == {0, 1}


def test_tokenisation_is_cached_on_disk(imdb_dir, task, monkeypatch):
    calls = []
    encode = text_module._encode
    monkeypatch.setattr(text_module, "_encode", lambda *a: calls.append(1) or encode(*a))
    first = load_imdb(task, str(imdb_dir))
    assert len(calls) == 2  # train and test
    files = list(Path(task.options["cache_dir"]).glob("*.safetensors"))
    assert len(files) == 1
    second = load_imdb(task, str(imdb_dir))
    assert len(calls) == 2  # the tokenizer was not run again
    assert torch.equal(first.train.inputs["input_ids"], second.train.inputs["input_ids"])
    load_imdb(task.with_overrides(max_length=32), str(imdb_dir))
    assert len(calls) == 4  # another max_length is another cache entry
    files[0].write_bytes(b"not a safetensors file")
    third = load_imdb(task, str(imdb_dir))  # a corrupt entry is rebuilt, not trusted
    assert len(calls) == 6 and torch.equal(third.test.labels, first.test.labels)


def test_trim_padding_keeps_the_longest_sequence():
    mask = torch.zeros(3, 64, dtype=torch.int8)
    for row, length in enumerate((5, 11, 3)):
        mask[row, :length] = 1
    ids = torch.arange(3 * 64, dtype=torch.int32).view(3, 64) * mask
    out = trim_padding({"input_ids": ids, "attention_mask": mask}, None)
    assert out["input_ids"].shape == (3, 16) and out["input_ids"].dtype == torch.long  # 11 rounded up to 16
    assert torch.equal(out["input_ids"], ids[:, :16].long()) and int(out["attention_mask"].sum()) == 19
    with pytest.raises(ValueError, match="input_ids"):
        trim_padding(torch.zeros(2, 3), None)


def test_bad_options_name_the_value(imdb_dir, task):
    with pytest.raises(ValueError, match="max_length"):
        load_imdb(task.with_overrides(max_length=0), str(imdb_dir))
    with pytest.raises(ValueError, match="val_size"):
        load_imdb(task.with_overrides(val_size=500), str(imdb_dir))
    with pytest.raises(ValueError, match="max_length=200"):  # the tiny BERT has 128 positions
        TrainingSession(task.with_overrides(max_length=200), seed=0, device="cpu", data_dir=str(imdb_dir))


def test_offline_model_name_fails_fast_with_instructions(imdb_dir, monkeypatch):
    monkeypatch.setattr(text_module, "_in_hf_cache", lambda name: False)  # whatever this machine has cached
    start = time.perf_counter()
    with pytest.raises(OfflineDataError) as info:
        TrainingSession("imdb-bert", seed=0, device="cpu", data_dir=str(imdb_dir))
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "\n" not in message
    for needle in ("'bert-base-uncased'", "save_pretrained('DIR')", "model=DIR"):
        assert needle in message


def test_offline_without_data_dir_fails_fast_with_instructions(task, monkeypatch):
    import datasets

    def cache_miss(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'stanfordnlp/imdb' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", cache_miss)
    start = time.perf_counter()
    with pytest.raises(OfflineDataError, match=r"stanfordnlp/imdb.*save_to_disk\('DIR'\).*--data-dir DIR"):
        load_imdb(task, None)
    assert time.perf_counter() - start < 5


def _train_two_epochs(task, data_dir):
    session = TrainingSession(task, seed=0, device="cpu", data_dir=str(data_dir))
    history = [session.run_epoch() for _ in range(2)]
    for m in history:
        assert math.isfinite(m.train_loss) and math.isfinite(m.val_loss) and not m.diverged
        assert 0.0 <= m.val_acc <= 1.0
    return session, history


def test_two_epochs_end_to_end_tiny_bert(imdb_dir, task):
    session, history = _train_two_epochs(task, imdb_dir)
    logits = session.model(**trim_padding(session.data.val.subset(torch.arange(4)).inputs, None))
    assert logits.shape == (4, 2)
    assert math.isfinite(session.evaluate("test")["loss"])


@pytest.mark.slow
def test_pretrained_minilm_learns_the_fixture(imdb_dir, task):
    minilm = minilm_model_dir()
    pretrained = task.with_overrides(model=str(minilm), epochs=1, lr=1e-4)  # a fine-tuning LR: 1e-3 is erratic here
    session = TrainingSession(pretrained, seed=0, device="cpu", data_dir=str(imdb_dir))
    assert session.model.model.config.num_hidden_layers == 6
    before = session.evaluate("val")["loss"]
    metrics = session.run_epoch()
    assert math.isfinite(metrics.train_loss) and metrics.val_loss < before and metrics.val_acc >= 0.75
