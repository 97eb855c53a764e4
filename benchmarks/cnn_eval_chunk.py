"""Inference time of a population of 1D CNNs under ``torch.vmap`` by evaluation chunk size (docs/performance.md).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/cnn_eval_chunk.py [--members 32] [--width 32] [--depth 2]

The shape of a ``seq`` group of the population environment: one-hot sequences of 8 channels and length 32, a
512-example validation split shared by every member, each member with its own weights. Prints the mean of 5
passes per chunk size, and the same pass as one im2col + ``bmm`` product (the MLPs' fast path) for comparison.
"""

import argparse
import time

import torch
from torch import nn
from torch.func import functional_call

from lrpilot.training.population_trainer import VMAP_EVAL_CHUNK
from lrpilot.training.synthetic import GlobalMaxPool1d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=32)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    k, n, channels, length, width = args.members, 512, 8, 32, args.width
    layers: list[nn.Module] = []
    for i in range(args.depth):
        layers += [nn.Conv1d(channels if i == 0 else width, width, 3, padding=1), nn.ReLU()]
    base = nn.Sequential(*layers, GlobalMaxPool1d(), nn.Linear(width, 4))
    params = {name: torch.randn(k, *p.shape) * 0.3 for name, p in base.named_parameters()}
    x = torch.randn(n, channels, length)

    def vmapped(inputs: torch.Tensor) -> torch.Tensor:
        return torch.vmap(lambda p, xs: functional_call(base, p, (xs,)), in_dims=(0, None))(params, inputs)

    def im2col(inputs: torch.Tensor) -> torch.Tensor:
        h = inputs.transpose(1, 2).expand(k, n, length, channels)  # channels last
        for i in range(args.depth):
            u = nn.functional.pad(h, (0, 0, 1, 1)).unfold(2, 3, 1)  # [k, n, length, c_in, 3]
            weight = params[f"{2 * i}.weight"]
            h = torch.baddbmm(params[f"{2 * i}.bias"].unsqueeze(1), u.reshape(k, n * length, -1),
                              weight.reshape(k, weight.shape[1], -1).transpose(1, 2)).relu_().view(k, n, length, -1)
        last = f"{2 * args.depth + 1}"
        return torch.baddbmm(params[f"{last}.bias"].unsqueeze(1), h.amax(2), params[f"{last}.weight"].transpose(1, 2))

    def timed(fn) -> float:  # noqa: ANN001
        start = time.perf_counter()
        for _ in range(5):
            fn()
        return (time.perf_counter() - start) / 5 * 1000

    with torch.inference_mode():
        assert torch.allclose(vmapped(x), im2col(x), atol=1e-3)
        for chunk in (512, 256, 128, 64, 32):
            ms = timed(lambda: [vmapped(x[s:s + chunk]) for s in range(0, n, chunk)])
            note = "  (the population's chunk)" if chunk == VMAP_EVAL_CHUNK else ""
            print(f"vmap, chunks of {chunk}: {ms:.1f} ms{note}")
        print(f"im2col + bmm, one chunk of 512: {timed(lambda: im2col(x)):.1f} ms")


if __name__ == "__main__":
    main()
