"""Test-wide settings: never reach a model or dataset hub. Fixtures shared by many test files."""

import atexit
import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
# Pretrained fine-tune bodies are cached on disk (lrpilot.training.finetune.body_cache_dir): the tests' go to a
# directory of their own, never the user's cache; worker processes started later inherit it.
os.environ["LRPILOT_CACHE_DIR"] = tempfile.mkdtemp(prefix="lrpilot-test-cache-")
atexit.register(shutil.rmtree, os.environ["LRPILOT_CACHE_DIR"], ignore_errors=True)


@pytest.fixture
def one_thread():  # noqa: ANN201
    """One torch thread: tiny models run fastest that way on a shared CPU (restored afterwards)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def benchmark_module(monkeypatch):  # noqa: ANN201
    """``load(name)``: a module of ``benchmarks/``, imported afresh, and dropped from ``sys.modules`` after the test."""
    loaded: list[str] = []

    def load(name: str):  # noqa: ANN202
        monkeypatch.syspath_prepend(str(BENCHMARKS))
        sys.modules.pop(name, None)
        loaded.append(name)
        return importlib.import_module(name)

    yield load
    for name in loaded:
        sys.modules.pop(name, None)
