"""Training throughput of the seed tasks: lrpilot's TrainingSession against a plain PyTorch loop.

For ``cifar10-resnet18`` and ``imdb-bert`` the script times, in one process, (a) lrpilot's
path (temporary tasks registered with synthetic DataSplits built by the real task code:
uint8 images on the device with batched augmentation, channels-last, bf16 autocast and
torch.compile on CUDA; token ids with length-grouped batches, dynamic padding and SDPA)
and (b) the usual reference loop (reference_loops.py): a torchvision-style DataLoader
over PIL images with RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor +
Normalize, or over reviews padded to the maximum length with eager attention; fp32, no
compile. An epoch is one pass over the training split plus one evaluation of the
validation split; items/s is training examples per second of epoch time.

Synthetic data has the real shapes and sizes: 50,000 32x32x3 uint8 images in 10 classes
(45,000 train / 5,000 val, and a 10,000 test split that is not timed); 25,000 reviews of
256 tokens (22,500 / 2,500, 25,000 test) whose lengths follow a log-normal law meant to
resemble IMDB's under the BERT tokenizer (median 230 tokens, 44% at the 256 cap); BERT is
``BertConfig()`` (bert-base) randomly initialised. The lower bound (flop_bound.py) is the
FLOPs of an epoch (``FlopCounterMode`` on the meta device; text counted per review at its
own length, no padding) divided by the measured dense matmul rate (bf16 on CUDA, fp32 on
CPU). The paths' timed epochs alternate, so drift in a shared machine's load hits them alike.
Timing: CUDA events on a GPU, ``perf_counter`` on a CPU; warm-up epochs are not timed.

``--small`` (the default on a CPU) shrinks everything so that it runs in CI: 256 images
(128 train), 160 reviews of 64 tokens (96 train) and a 2-layer, 128-wide BERT. Full sizes
take hours on a CPU (a ResNet-18 step of 64 images is about 5 s on 2 cores), so they are
refused there unless ``--force``.

Usage:
    python benchmarks/throughput.py --json gpu.json           # on a GPU machine: full sizes
    python benchmarks/throughput.py --small --repeats 3       # CPU, CI-sized
    python benchmarks/throughput.py --full --count-only       # any machine: full-size FLOPs and padding only
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flop_bound import cifar_work, imdb_work, matmul_rate  # noqa: E402
from reference_loops import bert_model, reference_cifar, reference_imdb  # noqa: E402

CIFAR_TASK, IMDB_TASK = "cifar10-resnet18", "imdb-bert"
TINY_BERT = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512}


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Split sizes and model scale of one mode."""

    images: tuple[int, int, int]
    """CIFAR train / val / test images."""
    reviews: tuple[int, int, int]
    """IMDB train / val / test reviews."""
    seq_len: int
    """Tokens per review after padding (the task's max_length)."""
    bert: dict[str, int]
    """``BertConfig`` overrides; empty means bert-base (``BertConfig()`` defaults)."""


FULL = Sizes((45_000, 5_000, 10_000), (22_500, 2_500, 25_000), 256, {})
SMALL = Sizes((128, 64, 64), (96, 32, 32), 64, TINY_BERT)


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """Command-line settings."""

    small: bool
    """CI-sized data and a tiny BERT instead of the seed's sizes."""
    device: torch.device
    """Where both paths train."""
    repeats: int
    """Timed epochs per path (the table shows their median)."""
    warmup: int
    """Untimed epochs per path first (lrpilot: whole epochs, which compile every shape; reference: 20 batches each)."""
    workers: int
    """DataLoader worker processes of the reference loops."""
    json_path: str | None = None
    """Where to write the results as JSON (None: only print them)."""
    count_only: bool = False
    """Only count FLOPs and padding (seconds, any device, full sizes too); no timing."""
    seed: int = 0
    """Seed of the synthetic data, the models and the data order."""


# -- synthetic data ---------------------------------------------------------------------
def synthetic_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 NHWC 32x32x3 images and labels in 0..9."""
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)


def cifar_data(sizes: Sizes, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The train / val / test images of ``sizes``."""
    rng = np.random.default_rng(seed)
    return {s: synthetic_images(n, rng) for s, n in zip(("train", "val", "test"), sizes.images)}


def imdb_data(sizes: Sizes, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """The train / val / test reviews of ``sizes``."""
    rng = np.random.default_rng(seed + 1)
    return {s: synthetic_reviews(n, sizes.seq_len, rng) for s, n in zip(("train", "val", "test"), sizes.reviews)}


def synthetic_reviews(n: int, seq_len: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Right-padded token ids ([CLS] ... [SEP], [PAD] = 0), masks, lengths and labels of ``n`` reviews."""
    lengths = np.clip(np.round(rng.lognormal(np.log(seq_len * 230 / 256), 0.7, n)), 8, seq_len).astype(np.int64)
    mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype(np.int8)
    ids = rng.integers(1000, 30_000, (n, seq_len), dtype=np.int32) * mask
    ids[:, 0] = 101
    ids[np.arange(n), lengths - 1] = 102
    return {"input_ids": ids, "attention_mask": mask, "lengths": lengths, "labels": rng.integers(0, 2, n)}


# -- lrpilot's path -----------------------------------------------------------------------
def lrpilot_cifar(data: dict[str, Any], cfg: BenchConfig, compiled: bool | None = None) -> Callable:
    """A TrainingSession on the synthetic CIFAR data; returns its ``run_epoch``."""
    from lrpilot.training import TrainingSession, get_task, register_task
    from lrpilot.training.data import TensorSplit
    from lrpilot.training.vision import cifar_splits

    base = get_task(CIFAR_TASK)
    split = {s: TensorSplit(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y))
             for s, (x, y) in data.items()}
    splits = cifar_splits(base, split["train"], split["val"], split["test"], 10, source="synthetic")
    task = register_task(dataclasses.replace(base, name=f"bench-{CIFAR_TASK}", load_data=lambda t, d: splits),
                         overwrite=True)
    return TrainingSession(task, seed=cfg.seed, device=cfg.device, data=splits, compile=compiled).run_epoch


def lrpilot_imdb(sizes: Sizes, data: dict[str, Any], cfg: BenchConfig) -> Callable:
    """A TrainingSession on the synthetic reviews with a randomly initialised SDPA BERT; returns ``run_epoch``."""
    from lrpilot.training import TrainingSession, get_task, register_task
    from lrpilot.training.data import TensorSplit
    from lrpilot.training.text import SequenceClassifier, token_splits

    base = get_task(IMDB_TASK).with_overrides(max_length=sizes.seq_len)
    split = {s: TensorSplit({k: torch.from_numpy(d[k]) for k in ("input_ids", "attention_mask")},
                            torch.from_numpy(d["labels"])) for s, d in data.items()}
    splits = token_splits(base, split["train"], split["val"], split["test"], 2, max_length=sizes.seq_len)
    task = register_task(dataclasses.replace(
        base, name=f"bench-{IMDB_TASK}", load_data=lambda t, d: splits,
        build_model=lambda t, d: SequenceClassifier(bert_model(sizes.bert, "sdpa"))), overwrite=True)
    return TrainingSession(task, seed=cfg.seed, device=cfg.device, data=splits).run_epoch


# -- timing -------------------------------------------------------------------------------
def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds ``fn()`` takes: CUDA events around it on a GPU, ``perf_counter`` on a CPU."""
    if device.type != "cuda":
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize(device)
    begin.record()
    fn()
    end.record()
    end.synchronize()
    return begin.elapsed_time(end) / 1000


def measure(paths: dict[str, tuple[Callable[[], Any], Callable[[], Any]]], cfg: BenchConfig) -> dict[str, dict]:
    """Warm up every path (timed apart, reported, not counted), then time ``cfg.repeats`` epochs of each,
    alternating between the paths so that drift in a shared machine's load hits them alike."""
    out: dict[str, dict[str, Any]] = {}
    for path, (_, warmup) in paths.items():
        start = time.perf_counter()
        for _ in range(cfg.warmup):
            warmup()
        out[path] = {"warmup_s": time.perf_counter() - start, "epochs_s": []}
    for _ in range(cfg.repeats):
        for path, (epoch, _) in paths.items():
            out[path]["epochs_s"].append(timed(epoch, cfg.device))
    for row in out.values():
        row["s_per_epoch"] = statistics.median(row["epochs_s"])
        row["best_s_per_epoch"] = min(row["epochs_s"])  # the least disturbed epoch, for a loaded machine
    return out


# -- the benchmark ------------------------------------------------------------------------
def count_work(sizes: Sizes, seed: int) -> dict[str, dict[str, Any]]:
    """FLOPs per epoch (and, for text, padding statistics) of both tasks at ``sizes``."""
    lengths = {s: d["lengths"] for s, d in imdb_data(sizes, seed).items()}
    return {CIFAR_TASK: cifar_work(sizes.images),
            IMDB_TASK: imdb_work(lambda: bert_model(sizes.bert, "eager"), lengths, sizes.seq_len)}


def bench_cifar(sizes: Sizes, cfg: BenchConfig, work: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for cifar10-resnet18: lrpilot (and, on CUDA, lrpilot without compile) and the reference loop."""
    data = cifar_data(sizes, cfg.seed)
    paths: dict[str, Callable[[], Any]] = {"lrpilot": lambda: lrpilot_cifar(data, cfg)}
    if cfg.device.type == "cuda":
        paths["lrpilot (no compile)"] = lambda: lrpilot_cifar(data, cfg, compiled=False)
    paths["reference"] = lambda: reference_cifar(data, cfg.device, cfg.workers, cfg.seed)
    return _rows(CIFAR_TASK, paths, sizes.images[0], work["epoch_tflop"], cfg)


def bench_imdb(sizes: Sizes, cfg: BenchConfig, work: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for imdb-bert: lrpilot and the reference loop."""
    data = imdb_data(sizes, cfg.seed)
    paths = {"lrpilot": lambda: lrpilot_imdb(sizes, data, cfg),
             "reference": lambda: reference_imdb(data, sizes.bert, cfg.device, cfg.workers, cfg.seed)}
    return _rows(IMDB_TASK, paths, sizes.reviews[0], work["epoch_tflop"], cfg)


def _rows(task: str, builders: dict[str, Callable[[], Any]], n_train: int, tflop: float,
          cfg: BenchConfig) -> list[dict[str, Any]]:
    """Build every path of ``task``, measure them side by side; ratios are items/s over the reference's."""
    built = {path: build() for path, build in builders.items()}
    paths = {path: b if isinstance(b, tuple) else (b, b) for path, b in built.items()}
    rows = [{"task": task, "path": path, **m} for path, m in measure(paths, cfg).items()]
    del built, paths
    if cfg.device.type == "cuda":
        torch.cuda.empty_cache()
    reference = next(r for r in rows if r["path"] == "reference")
    for row in rows:
        row["items_per_s"] = n_train / row["s_per_epoch"]
        row["ratio"] = row["items_per_s"] / (n_train / reference["s_per_epoch"])
        row["ratio_best"] = reference["best_s_per_epoch"] / row["best_s_per_epoch"]
        row["epoch_tflop"] = tflop
    return rows


def add_bounds(rows: list[dict[str, Any]], rate: float) -> None:
    """The FLOP lower bound in seconds per epoch and how far each path is above it."""
    for row in rows:
        row["flop_bound_s"] = row["epoch_tflop"] * 1e12 / rate
        row["x_bound"] = row["s_per_epoch"] / row["flop_bound_s"]


def print_table(rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """The results as a Markdown table plus a line on the machine."""
    print(f"\n{meta['mode']} sizes on {meta['device_name']} ({meta['device']}); matmul {meta['matmul_tflops']:.3g} "
          f"TFLOP/s {meta['matmul_dtype']}; {meta['repeats']} timed epochs per path (median), "
          f"{meta['warmup']} warm-up; "
          f"load average {meta['load_before'][0]:.2f} before, {meta['load_after'][0]:.2f} after\n")
    print("| task | path | items/s | s/epoch | ratio | best s/epoch | ratio of best | FLOP bound s/epoch | x bound |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['task']} | {r['path']} | {r['items_per_s']:.4g} | {r['s_per_epoch']:.4g} | {r['ratio']:.2f} | "
              f"{r['best_s_per_epoch']:.4g} | {r['ratio_best']:.2f} | {r['flop_bound_s']:.3g} | {r['x_bound']:.3g} |")


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    """Command line -> config; exits with status 2 on full sizes on a CPU without --force (or --count-only)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--small", action="store_true", help="CI sizes (default on a CPU)")
    size.add_argument("--full", action="store_true", help="the seed's sizes (default on CUDA)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--repeats", type=int, default=None, help="timed epochs per path (default 3 small, 2 full)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up epochs per path (default 1)")
    parser.add_argument("--workers", type=int, default=None, help="reference DataLoader workers (default: see docs)")
    parser.add_argument("--json", default=None, help="also write the rows and machine details to this file")
    parser.add_argument("--force", action="store_true", help="allow full sizes on a CPU (hours)")
    parser.add_argument("--count-only", action="store_true", help="only count FLOPs and padding, no timing")
    args = parser.parse_args(argv)
    from lrpilot.training.devices import resolve_device

    device = resolve_device(args.device)
    small = args.small or (device.type == "cpu" and not args.full)
    if device.type == "cpu" and not small and not (args.force or args.count_only):
        parser.exit(2, "full sizes on a CPU take hours (a ResNet-18 step of 64 images is ~5 s on 2 cores, an epoch "
                       "704 steps; bert-base ~1 min a step); use --small, or --force to run them anyway\n")
    repeats = args.repeats if args.repeats is not None else (3 if small else 2)
    for name, value, low in (("repeats", repeats, 1), ("warmup", args.warmup, 0), ("workers", args.workers, 0)):
        if value is not None and value < low:
            parser.error(f"--{name} must be >= {low}, got {value}")
    return BenchConfig(small=small, device=device, repeats=repeats, warmup=args.warmup,
                       workers=args.workers if args.workers is not None else default_workers(device),
                       json_path=args.json, count_only=args.count_only)


def default_workers(device: torch.device) -> int:
    """Reference DataLoader workers: up to 8 beside a GPU; none on a CPU of 2 cores or fewer (they would
    take cores from the training), else a quarter of the cores."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type == "cuda":
        return max(1, min(8, cpus - 1))
    return 0 if cpus <= 2 else min(4, cpus // 4)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what ``platform`` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def print_work(work: dict[str, dict[str, Any]], mode: str) -> None:
    """The counted work per epoch (the numerators of the bounds)."""
    cifar, imdb = work[CIFAR_TASK], work[IMDB_TASK]
    print(f"\n{mode} sizes: {CIFAR_TASK} {cifar['epoch_tflop']:.4g} TFLOP/epoch ({cifar['step_gflop']:.4g} GFLOP a "
          f"step); {IMDB_TASK} {imdb['epoch_tflop']:.4g} TFLOP/epoch without padding, "
          f"{imdb['padded_epoch_tflop']:.4g} padded to the maximum length")
    print("tokens computed per real token: " + ", ".join(
        f"{name} {value:.3f}" for name, value in imdb["tokens_per_real_token"].items()))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, write the JSON when asked; returns what it writes."""
    cfg = parse_args(argv)
    sizes = SMALL if cfg.small else FULL
    meta: dict[str, Any] = {"mode": "small" if cfg.small else "full", "sizes": dataclasses.asdict(sizes),
                            "command": " ".join(sys.argv), "load_before": os.getloadavg()}
    work = count_work(sizes, cfg.seed)
    print_work(work, meta["mode"])
    result: dict[str, Any] = {"meta": meta, "work": work}
    if not cfg.count_only:
        rate, dtype = matmul_rate(cfg.device, timed)
        rows = bench_cifar(sizes, cfg, work[CIFAR_TASK]) + bench_imdb(sizes, cfg, work[IMDB_TASK])
        add_bounds(rows, rate)
        name = torch.cuda.get_device_name(cfg.device) if cfg.device.type == "cuda" else cpu_name()
        meta.update(device=str(cfg.device), device_name=name, cpus=os.cpu_count(),
                    torch_threads=torch.get_num_threads(), torch=torch.__version__, python=platform.python_version(),
                    matmul_tflops=rate / 1e12, matmul_dtype=dtype, repeats=cfg.repeats, warmup=cfg.warmup,
                    workers=cfg.workers, load_after=os.getloadavg())
        print_table(rows, meta)
        result["rows"] = rows
    if cfg.json_path:
        Path(cfg.json_path).write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    return result


if __name__ == "__main__":
    main()
