"""Time one attack step against a bare forward + backward of the same model and batch.

Per-step times come from the difference of two runs (steps = 1 + n and steps = 1), so the fixed
cost of an attack call (checks, random start) is excluded. A joint step makes two passes; its
half-step is compared with a PGD step. Measurements are interleaved over rounds and the median
is reported, so a busy machine slows every candidate alike.

    python bench/attacks.py                      # WRN-16-2, Fashion-MNIST shape, batch 128
    python bench/attacks.py --shape 3 32 --arch wrn-28-10 --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from jointlab import attacks as A
from jointlab.models import build_model


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device) -> float:
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        return f"{names[0]}, {len(names)} cores" if names else platform.machine()
    except OSError:
        return platform.processor() or platform.machine()


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="wrn-16-2")
    p.add_argument("--shape", type=int, nargs=2, default=(1, 28), metavar=("CHANNELS", "SIDE"))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=8, help="extra steps timed per attack call")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    torch.manual_seed(0)
    c, side = args.shape
    model = build_model(args.arch, 10, c).to(device).eval()
    x = (torch.rand(args.batch, c, side, side, device=device) * 2 - 1)
    y = torch.randint(0, 10, (args.batch,), device=device)

    def bare():
        xg = x.clone().requires_grad_(True)
        torch.autograd.grad(torch.nn.functional.cross_entropy(model(xg), y, reduction="sum"), xg)

    n = args.steps
    candidates = {
        "pgd step": lambda k: A.pgd(model, x, y, steps=k),
        "spatial step": lambda k: A.spatial(model, x, y, steps=k),
        "joint step": lambda k: A.joint(model, x, y, steps=k),
    }
    times = {"forward+backward": []} | {k: [] for k in candidates}
    for fn in candidates.values():  # warm-up (allocator, cudnn autotuning)
        fn(2)
    for _ in range(args.rounds):
        times["forward+backward"].append(statistics.median(_timed(bare, device) for _ in range(n)))
        for name, fn in candidates.items():
            long, short = _timed(lambda: fn(1 + n), device), _timed(lambda: fn(1), device)  # noqa: B023
            times[name].append((long - short) / n)
    med = {k: statistics.median(v) for k, v in times.items()}
    med["joint half-step"] = med["joint step"] / 2
    pgd = med["pgd step"]
    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
    else:
        device_name = _cpu_name()
    print(f"{args.arch}, batch {args.batch} x {c}x{side}x{side}, {device} ({device_name}), "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'':18s} {'ms':>9s} {'/ fwd+bwd':>10s} {'/ pgd step':>11s}")
    for name in ("forward+backward", "pgd step", "spatial step", "joint half-step", "joint step"):
        print(f"{name:18s} {1e3 * med[name]:9.1f} {med[name] / med['forward+backward']:10.2f} "
              f"{med[name] / pgd:11.2f}")
    result = {"config": vars(args) | {"device_name": device_name}, "seconds": med,
              "ratio_to_pgd": {k: v / pgd for k, v in med.items()}}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
