"""What ``from lrpilot import PolicyScheduler`` costs beyond ``import torch``.

Starts fresh interpreters, alternating ``python -c "import torch"`` and
``python -c "from lrpilot import PolicyScheduler"``, and prints the medians and their
difference over ``--repeats`` pairs, with the machine; then, less noisy, the time of
the lrpilot import timed inside interpreters that have already imported torch. Also checks that the deployment
import leaves datasets, transformers, gymnasium and lightning unloaded.

    python benchmarks/import_time.py --repeats 9
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

BASE = "import torch"
DEPLOY = "from lrpilot import PolicyScheduler"
HEAVY = ("datasets", "transformers", "gymnasium", "lightning", "stable_baselines3", "ray")


def wall(code: str) -> float:
    """Seconds for a fresh interpreter to run ``code`` and exit."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def marginal(code: str = DEPLOY) -> float:
    """Seconds ``code`` takes in a fresh interpreter that has already imported torch (less noisy)."""
    probe = f"import time, torch; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout)


def heavy_modules_loaded() -> list[str]:
    """The heavy packages that the deployment import pulls in (should be none)."""
    code = f"import sys; {DEPLOY}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    return [m for m in out.split(",") if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="pairs of interpreter starts")
    args = parser.parse_args()
    wall(BASE), wall(DEPLOY)  # warm the file cache
    base, deploy = [], []
    for _ in range(args.repeats):
        base.append(wall(BASE))
        deploy.append(wall(DEPLOY))
    diffs = [d - b for b, d in zip(base, deploy)]
    inside = [marginal() for _ in range(args.repeats)]
    print(f"python -c '{BASE}': median {statistics.median(base) * 1e3:.0f} ms")
    print(f"python -c '{DEPLOY}': median {statistics.median(deploy) * 1e3:.0f} ms")
    print(f"extra for lrpilot: median {statistics.median(diffs) * 1e3:.0f} ms "
          f"(paired differences, n={args.repeats}; min {min(diffs) * 1e3:.0f}, max {max(diffs) * 1e3:.0f} ms)")
    print(f"'{DEPLOY}' after 'import torch', timed inside the interpreter: "
          f"median {statistics.median(inside) * 1e3:.1f} ms "
          f"(n={args.repeats})")
    print(f"heavy modules loaded by the deployment import: {heavy_modules_loaded() or 'none'}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
