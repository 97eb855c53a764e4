"""The on-disk cache of pretrained fine-tune bodies (lrpilot.training.finetune): a body loaded from disk is the one
this process would have trained, and a cache that cannot be used is trained around, never trusted."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import warnings

import pytest
import torch

from lrpilot.training import finetune
from lrpilot.training.synthetic import pretrained_body

OPTIONS = {"family": "teacher", "arch": "mlp", "classes": 4, "n_train": 64, "data_seed": 7, "pretrain": 512}


@pytest.fixture
def cache(monkeypatch, tmp_path):  # noqa: ANN201
    """An empty disk cache and an empty in-process cache, one torch thread."""
    monkeypatch.setenv(finetune.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(finetune, "_BODIES", {})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path / "bodies"
    torch.set_num_threads(threads)


def _no_training(monkeypatch) -> None:
    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the body was trained again")

    monkeypatch.setattr(finetune.torch.optim, "Adam", refuse)


def test_a_body_on_disk_is_loaded_bit_for_bit_instead_of_trained(cache, monkeypatch) -> None:
    trained = pretrained_body(OPTIONS)
    assert [p.name for p in cache.iterdir()] and all(p.suffix == ".safetensors" for p in cache.iterdir())
    monkeypatch.setattr(finetune, "_BODIES", {})  # a new process: nothing in memory
    _no_training(monkeypatch)
    loaded = pretrained_body(OPTIONS)
    assert loaded.keys() == trained.keys()
    assert all(torch.equal(loaded[k], trained[k]) for k in trained)


def test_another_process_loads_what_this_one_trained(cache) -> None:
    """The population's workers and validation pools are other processes: they read the file and get the same bits."""
    trained = pretrained_body(OPTIONS)
    script = ("import hashlib, torch; torch.set_num_threads(1)\n"
              "from lrpilot.training import finetune\n"
              "finetune.torch.optim.Adam = None  # loading must not train\n"
              "from lrpilot.training.synthetic import pretrained_body\n"
              f"body = pretrained_body({OPTIONS!r})\n"
              "print(hashlib.sha256(b''.join(body[k].numpy().tobytes() for k in sorted(body))).hexdigest())")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={**os.environ, finetune.CACHE_ENV: str(cache.parent)})
    expected = hashlib.sha256(b"".join(trained[k].numpy().tobytes() for k in sorted(trained))).hexdigest()
    assert out.stdout.strip() == expected


def test_options_and_thread_count_name_different_files(cache, monkeypatch) -> None:
    pretrained_body(OPTIONS)
    pretrained_body({**OPTIONS, "data_seed": 8})
    pretrained_body({**OPTIONS, "n_train": 32})  # a target-only option: the same body, no new file
    assert len(list(cache.iterdir())) == 2
    monkeypatch.setattr(finetune, "_BODIES", {})
    torch.set_num_threads(2)  # other threads may round otherwise: trained again, kept apart
    pretrained_body(OPTIONS)
    assert len(list(cache.iterdir())) == 3


def test_an_empty_cache_setting_turns_the_disk_cache_off(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(finetune.CACHE_ENV, "")
    monkeypatch.setattr(finetune, "_BODIES", {})
    assert finetune.body_cache_dir() is None
    monkeypatch.chdir(tmp_path)
    assert pretrained_body(OPTIONS)
    assert not list(tmp_path.rglob("*.safetensors"))


def test_the_default_cache_is_beside_the_token_cache(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(finetune.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert finetune.body_cache_dir() == tmp_path / "lrpilot" / "bodies"


def test_a_corrupt_file_is_trained_again_and_replaced(cache, monkeypatch) -> None:
    trained = pretrained_body(OPTIONS)
    (path,) = cache.iterdir()
    path.write_bytes(b"not a safetensors file")
    monkeypatch.setattr(finetune, "_BODIES", {})
    again = pretrained_body(OPTIONS)
    assert all(torch.equal(again[k], trained[k]) for k in trained)
    monkeypatch.setattr(finetune, "_BODIES", {})
    _no_training(monkeypatch)
    assert all(torch.equal(pretrained_body(OPTIONS)[k], trained[k]) for k in trained)  # the file was rewritten


def test_an_unwritable_cache_warns_and_trains_on(monkeypatch, tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory would go")
    monkeypatch.setenv(finetune.CACHE_ENV, str(blocker))
    monkeypatch.setattr(finetune, "_BODIES", {})
    with pytest.warns(RuntimeWarning, match="not cached on disk.*LRPILOT_CACHE_DIR"):
        body = pretrained_body(OPTIONS)
    assert body
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pretrained_body(OPTIONS)  # in memory now: no second warning


def test_processes_that_need_a_body_at_once_train_it_once(cache, monkeypatch) -> None:
    """A population's workers start together: while one trains the body the others wait for it, then load it."""
    import threading

    trained = pretrained_body(OPTIONS)
    (path,) = cache.iterdir()
    content = path.read_bytes()
    path.unlink()
    monkeypatch.setattr(finetune, "_BODIES", {})
    _no_training(monkeypatch)  # the waiter must load, not train
    got: dict[str, dict[str, torch.Tensor]] = {}
    with finetune._one_trainer(path):  # this test is the process that trains
        waiter = threading.Thread(target=lambda: got.setdefault("body", pretrained_body(OPTIONS)))
        waiter.start()
        waiter.join(timeout=1.0)
        assert waiter.is_alive() and not got  # waiting for the trainer, not training
        path.write_bytes(content)
    waiter.join(timeout=30)
    assert all(torch.equal(got["body"][k], trained[k]) for k in trained)
    assert [p.name for p in cache.iterdir()] == [path.name]  # no lock file left behind
