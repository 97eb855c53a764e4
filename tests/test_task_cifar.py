"""cifar10-resnet18: loading from a save_to_disk copy, augmentation on the device, the offline error, training."""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn.functional as F

from fixtures import make_cifar_dir
from lrpilot.training import TrainingSession, get_task
from lrpilot.training.loading import OfflineDataError
from lrpilot.training.vision import CIFAR10_MEAN, CIFAR10_STD, ImageTransform, load_cifar10

RAW = ((0.0, 0.0, 0.0), (1 / 255,) * 3)  # mean/std that make the transform return the raw pixel values


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    return make_cifar_dir(tmp_path_factory.mktemp("cifar") / "data", n_train=96, n_test=32)


@pytest.fixture(scope="module")
def small_task():
    return get_task("cifar10-resnet18").with_overrides(val_size=32, batch_size=32)


def _batch(n=8, seed=0):
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_defaults_follow_the_seed_plan():
    task = get_task("cifar10-resnet18")
    assert (task.optimizer, task.lr, task.batch_size, task.epochs) == ("adam", 1e-3, 64, 50)
    assert task.options["val_size"] == 5000


def test_loads_uint8_splits_with_a_fixed_validation_set(cifar_dir, small_task):
    data = load_cifar10(small_task, str(cifar_dir))
    assert (len(data.train), len(data.val), len(data.test), data.num_classes) == (64, 32, 32, 10)
    assert data.train.inputs.dtype == torch.uint8 and data.train.inputs.shape[1:] == (3, 32, 32)
    assert data.meta["channels_last"] is True
    again = load_cifar10(small_task, str(cifar_dir))
    assert torch.equal(again.val.inputs, data.val.inputs)  # fixed, not a fresh draw


def test_accepts_an_image_column_and_rejects_bad_inputs(tmp_path, small_task):
    path = make_cifar_dir(tmp_path / "alt", n_train=40, n_test=8, image_column="image")
    assert len(load_cifar10(small_task.with_overrides(val_size=8), str(path)).train) == 32
    with pytest.raises(ValueError, match="val_size"):
        load_cifar10(small_task.with_overrides(val_size=40), str(path))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_cifar10(small_task, str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="save_to_disk"):
        load_cifar10(small_task, str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="pad_mode"):
        load_cifar10(small_task.with_overrides(pad_mode="wrap"), str(path))


def test_offline_without_data_dir_fails_fast_with_instructions(monkeypatch):
    import datasets

    def cache_miss(*args, **kwargs):  # what datasets does offline with an empty cache, whatever this machine caches
        raise ConnectionError("Couldn't reach 'uoft-cs/cifar10' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", cache_miss)
    start = time.perf_counter()
    with pytest.raises(OfflineDataError) as info:
        TrainingSession("cifar10-resnet18", seed=0, device="cpu")
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "\n" not in message
    for needle in ("uoft-cs/cifar10", "save_to_disk('DIR')", "--data-dir DIR"):
        assert needle in message


def test_eval_transform_normalises_with_cifar_statistics():
    x = _batch()
    out = ImageTransform(CIFAR10_MEAN, CIFAR10_STD)(x, None)
    mean, std = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, (x.float() / 255 - mean) / std)


def test_train_transform_differs_between_generator_states():
    tf = ImageTransform(CIFAR10_MEAN, CIFAR10_STD, padding=4, flip=True)
    x = _batch()
    a = tf(x, torch.Generator().manual_seed(1))
    b = tf(x, torch.Generator().manual_seed(2))
    assert not torch.equal(a, b)
    torch.testing.assert_close(a, tf(x, torch.Generator().manual_seed(1)))  # same state, same batch
    with pytest.raises(TypeError, match="Generator"):
        tf(x, None)
    with pytest.raises(TypeError, match="uint8"):
        tf(x.float(), torch.Generator())


def test_flip_with_the_same_draws_twice_is_the_identity():
    tf = ImageTransform(*RAW, flip=True)
    x = _batch(16)
    once = tf(x, torch.Generator().manual_seed(3))
    twice = tf(once.round().to(torch.uint8), torch.Generator().manual_seed(3))
    assert not torch.equal(once, x.float())  # some images were flipped
    assert torch.equal(twice, x.float())
    flipped = [torch.equal(o, i.float().flip(-1)) for o, i in zip(once, x)]
    kept = [torch.equal(o, i.float()) for o, i in zip(once, x)]
    assert all(f or k for f, k in zip(flipped, kept))


@pytest.mark.parametrize("pad_mode,torch_mode", [("zeros", "constant"), ("reflect", "reflect")])
def test_crop_is_a_window_of_the_padded_image(pad_mode, torch_mode):
    tf = ImageTransform(*RAW, padding=4, flip=True, pad_mode=pad_mode)
    x = _batch(6)
    out = tf(x, torch.Generator().manual_seed(5))
    padded = F.pad(x.float(), (4, 4, 4, 4), mode=torch_mode)
    shifts = set()
    for img, pad in zip(out, padded):
        windows = {(dy, dx): pad[:, dy : dy + 32, dx : dx + 32] for dy in range(9) for dx in range(9)}
        matches = [k for k, w in windows.items() if torch.equal(img, w) or torch.equal(img, w.flip(-1))]
        assert matches, "output is not a (flipped) window of the padded image"
        shifts.add(matches[0])
    assert len(shifts) > 1  # offsets vary across the batch


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_transform_on_cuda_matches_cpu_and_is_channels_last():
    tf = ImageTransform(CIFAR10_MEAN, CIFAR10_STD, padding=4, flip=True)
    x = _batch(32)
    cpu = tf(x, torch.Generator().manual_seed(0))
    gpu = tf(x.cuda(), torch.Generator().manual_seed(0))
    assert gpu.is_cuda and gpu.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(gpu.cpu(), cpu)


def test_model_has_the_cifar_stem(cifar_dir, small_task):
    data = load_cifar10(small_task, str(cifar_dir))
    model = small_task.build_model(small_task, data)
    assert (model.conv1.kernel_size, model.conv1.stride, model.conv1.bias) == ((3, 3), (1, 1), None)
    assert isinstance(model.maxpool, torch.nn.Identity) and model.fc.out_features == 10
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.slow
def test_two_epochs_end_to_end(cifar_dir, small_task):
    session = TrainingSession(small_task, seed=0, device="cpu", data_dir=str(cifar_dir))
    history = [session.run_epoch() for _ in range(2)]
    for m in history:
        assert math.isfinite(m.train_loss) and math.isfinite(m.val_loss) and not m.diverged
        assert 0.0 <= m.val_acc <= 1.0
    assert history[1].train_loss < history[0].train_loss
    assert math.isfinite(session.evaluate("test")["loss"])
