"""Command line: `python -m jointlab <command> --help`."""

from __future__ import annotations

import argparse


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jointlab", description="Joint adversarial training kit.")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="train a small model on the embedded data, attack it, write figures",
                       description="Train a small WRN naturally on Fashion-MNIST (cached), run every "
                                   "attack of the paper, write table.md, results.json and figures.")
    d.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    d.add_argument("--arch", default="wrn-10-2", help="model, 'wrn-DEPTH-WIDEN' (default: wrn-10-2)")
    d.add_argument("--train-limit", type=_positive_int, default=6000, help="training images (default 6000)")
    d.add_argument("--test-limit", type=_positive_int, default=300, help="test images attacked (default 300)")
    d.add_argument("--sweep-limit", type=_positive_int, default=200, help="test images per sweep point")
    d.add_argument("--epochs", type=_positive_int, default=3, help="training epochs (default 3)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    d.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        run_demo(args.out, arch=args.arch, train_limit=args.train_limit, test_limit=args.test_limit,
                 sweep_limit=args.sweep_limit, epochs=args.epochs, seed=args.seed, device=args.device,
                 progress=not args.no_progress)
    return 0
