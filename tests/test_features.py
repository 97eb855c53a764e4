"""The observation encoder: fixed length, documented bounds, scale-free, never NaN."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from lrpilot.controller.features import FEATURES, ObservationEncoder
from lrpilot.metrics import EpochMetrics

ENC = ObservationEncoder()
IDX = {name: i for i, name in enumerate(ENC.feature_names)}


def history(losses, lrs=None, accs=None, scale=1.0, lr_scale=1.0):  # noqa: ANN001, ANN201
    lrs = lrs or [1e-3] * len(losses)
    accs = accs or [0.5] * len(losses)
    return [
        EpochMetrics(epoch=i + 1, lr=lr * lr_scale, train_loss=t * scale, train_loss_std=0.1 * t * scale,
                     val_loss=v * scale, val_acc=a)
        for i, ((t, v), lr, a) in enumerate(zip(losses, lrs, accs))
    ]


def in_bounds(obs: np.ndarray) -> bool:
    return obs.dtype == np.float32 and obs.shape == (ENC.size,) and bool(np.all(obs >= ENC.low) and np.all(obs <= ENC.high))


def test_shape_names_and_bounds_are_consistent() -> None:
    assert ENC.size == len(FEATURES) == len(set(ENC.feature_names))
    assert all(f.low < f.high for f in FEATURES)
    obs = ENC.encode(history([(2.0, 1.9), (1.5, 1.6), (1.0, 1.2)]), 1e-3, 10)
    assert in_bounds(obs)
    assert obs[IDX["progress"]] == pytest.approx(0.3)
    assert obs[IDX["log_val_loss_ratio"]] == pytest.approx(math.log(1.2 / 1.9), rel=1e-6)
    assert obs[IDX["val_loss_log_change"]] == pytest.approx(math.log(1.2 / 1.6), rel=1e-6)
    assert obs[IDX["val_loss_log_change_lag1"]] == pytest.approx(math.log(1.6 / 1.9), rel=1e-6)
    assert obs[IDX["val_loss_log_change_lag2"]] == 0.0  # before the start
    assert obs[IDX["nonfinite"]] == 0.0


def test_features_are_scale_free() -> None:
    """Multiplying every loss by 1000 and every LR by 1e-3 (and the initial LR) changes nothing."""
    losses = [(2.0, 1.9), (1.5, 1.6), (1.0, 1.2), (0.9, 1.25)]
    lrs = [1e-3, 1e-3, 5e-4, 5e-4]
    a = ENC.encode(history(losses, lrs), 1e-3, 10)
    b = ENC.encode(history(losses, lrs, scale=1000.0, lr_scale=1e-3), 1e-6, 10)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_lr_and_best_tracking() -> None:
    obs = ENC.encode(history([(2, 2), (1, 1), (1, 1.5), (1, 1.6)], lrs=[1e-3, 2e-3, 2e-3, 2e-3]), 1e-3, 10)
    assert obs[IDX["log_lr_ratio"]] == pytest.approx(math.log(2))
    assert obs[IDX["since_best_val_loss"]] == pytest.approx(0.2)  # best at epoch 2, now epoch 4
    assert obs[IDX["since_lr_change"]] == pytest.approx(0.2)  # changed before epoch 2


def test_task_without_accuracy() -> None:
    h = [EpochMetrics(epoch=1, lr=1e-3, train_loss=1.0, val_loss=1.0, val_acc=None)]
    obs = ENC.encode(h, 1e-3, 5)
    assert obs[IDX["has_acc"]] == 0.0 and obs[IDX["val_acc"]] == 0.0
    with_acc = ENC.encode(history([(1.0, 1.0)], accs=[0.7]), 1e-3, 5)
    assert with_acc[IDX["has_acc"]] == 1.0 and with_acc[IDX["val_acc"]] == pytest.approx(0.7)


BAD = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("field", ["train_loss", "val_loss", "lr", "val_acc", "train_loss_std"])
@pytest.mark.parametrize("where", [0, -1])
def test_non_finite_inputs_never_give_nan(bad: float, field: str, where: int) -> None:
    h = history([(2.0, 1.9), (1.5, 1.6), (1.0, 1.2)])
    m = h[where]
    h[where] = EpochMetrics(**{**m.__dict__, field: bad})
    obs = ENC.encode(h, 1e-3, 10)
    assert not np.isnan(obs).any()
    assert in_bounds(obs)
    if where == -1 and field != "train_loss_std":
        assert obs[IDX["nonfinite"]] == 1.0


def test_exploded_loss_reads_as_the_worst_case() -> None:
    obs = ENC.encode(history([(2.0, 1.9), (math.inf, math.nan)]), 1e-3, 10)
    assert obs[IDX["log_val_loss_ratio"]] == FEATURES[IDX["log_val_loss_ratio"]].high
    assert obs[IDX["nonfinite"]] == 1.0


def test_random_histories_stay_in_bounds() -> None:
    rng = np.random.default_rng(0)
    pool = np.array([math.nan, math.inf, -math.inf, 0.0, -1.0, 1e-30, 1e30])
    for _ in range(300):
        n = int(rng.integers(1, 12))
        values = np.exp(rng.normal(0, 5, (n, 5)))
        mask = rng.random((n, 5)) < 0.15
        values[mask] = rng.choice(pool, mask.sum())
        h = [EpochMetrics(epoch=i + 1, lr=float(v[0]), train_loss=float(v[1]), train_loss_std=float(v[2]),
                          val_loss=float(v[3]), val_acc=float(v[4] % 1.0) if math.isfinite(v[4]) else float(v[4]))
             for i, v in enumerate(values)]
        obs = ENC.encode(h, 1e-3, int(rng.integers(1, 30)))
        assert in_bounds(obs) and not np.isnan(obs).any()


@pytest.mark.parametrize("args, match", [
    (([], 1e-3, 10), "at least one epoch"),
    ((history([(1, 1)]), 0.0, 10), "initial_lr"),
    ((history([(1, 1)]), math.nan, 10), "initial_lr"),
    ((history([(1, 1)]), 1e-3, 0), "total_epochs"),
])
def test_bad_arguments_raise_value_error(args, match: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=match):
        ENC.encode(*args)


def test_compatibility_check_names_the_difference() -> None:
    ENC.check_compatible(ENC.describe())
    with pytest.raises(ValueError, match="version"):
        ENC.check_compatible({**ENC.describe(), "version": 0})
    with pytest.raises(ValueError, match="features"):
        ENC.check_compatible({**ENC.describe(), "features": ENC.feature_names[::-1]})


def test_encoder_imports_neither_torch_nor_gymnasium() -> None:
    code = ("import sys, lrpilot.controller.features, lrpilot.controller.actions;"
            "bad = [m for m in ('torch', 'gymnasium', 'stable_baselines3') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
