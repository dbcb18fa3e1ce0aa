"""Training throughput of every method relative to natural training, in one run.

Each method trains the same model on the same batches for a few steps through the real trainer
(`jointlab.train.train`); images/s is measured inside the epoch loop (no data preparation or
evaluation). Expected cost in forward/backward passes per batch: natural 1, one-step pixel or
spatial 2, one-step joint 3 (two attack passes + the update), Madry 8, multi-step joint 11.

    python bench/train.py                                  # WRN-16-2 on Fashion-MNIST, CPU
    python bench/train.py --dataset synthetic-cifar --arch wrn-28-10 --batches 200 --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from jointlab.train import METHODS, TrainConfig, train

PASSES = {"natural": 1, "madry": 8, "bilateral": 2, "spatial": 2, "spatial-multi": 6, "joint": 3,
          "joint-multi": 11, "cascade": 3, "one-pass": 2}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--arch", default="wrn-16-2")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=int, default=4, help="training steps timed per method and round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--methods", nargs="+", default=sorted(METHODS, key=lambda m: PASSES[m]))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)

    speed = {m: [] for m in args.methods}
    for _ in range(args.rounds):
        for method in args.methods:
            cfg = TrainConfig(method=method, dataset=args.dataset, arch=args.arch, epochs=1,
                              batch_size=args.batch_size, limit=args.batch_size * args.batches, eval_limit=0)
            speed[method].append(train(cfg, device=args.device, progress=False).history[0]["images_per_s"])
    med = {m: statistics.median(v) for m, v in speed.items()}
    base = med.get("natural") or max(med.values())
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    print(f"{args.arch} on {args.dataset}, batch {args.batch_size}, {args.batches} steps x {args.rounds} "
          f"rounds, {args.device} ({name}), {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'method':14s} {'images/s':>9s} {'time / natural':>15s} {'passes':>7s}")
    for m in args.methods:
        print(f"{m:14s} {med[m]:9.1f} {base / med[m]:15.2f} {PASSES.get(m, '?'):>7}")
    cost = {m: base / v for m, v in med.items()}
    result = {"config": vars(args), "images_per_s": med, "cost_vs_natural": cost}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
