"""Command line: `python -m jointlab {train,eval,demo} --help`.

    python -m jointlab train --method joint --dataset cifar10 --arch wrn-28-10 --out runs/x
    python -m jointlab eval --checkpoint runs/x/last.pt --suite paper --out results.json
    torchrun --nproc_per_node=2 -m jointlab train --method joint ...     # DistributedDataParallel
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .data import DATASETS, DatasetNotFoundError
from .train import METHODS, SMOOTHINGS, TARGETS


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return value


def _budget(upper: float, unit: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number ({unit}); got {text!r}") from None
        if not 0 <= value <= upper:
            raise argparse.ArgumentTypeError(f"must be in [0, {upper:g}] ({unit}); got {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jointlab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model with one of the paper's methods",
                       description="Train with one of the paper's methods (Alg. 3 for 'joint'). Writes "
                                   "OUT/last.pt every epoch and OUT/metrics.jsonl.")
    t.add_argument("--method", default="joint", choices=sorted(METHODS),
                   help="paper row (default: joint, the one-step joint method of Alg. 3)")
    t.add_argument("--dataset", default="fashion-mnist", choices=sorted(DATASETS),
                   help="default: fashion-mnist (embedded, offline)")
    t.add_argument("--arch", default="wrn-16-2",
                   help="'wrn-DEPTH-WIDEN' (paper: wrn-28-10; default wrn-16-2)")
    t.add_argument("--epochs", type=_positive_int, help="default: the method's paper schedule (100 or 300)")
    t.add_argument("--milestones", type=_positive_int, nargs="+",
                   help="epochs where the learning rate drops x0.1 (default: the paper's, scaled)")
    t.add_argument("--lr", type=_budget(10, "learning rate"), help="default: 0.1, SVHN 0.01")
    t.add_argument("--batch-size", type=_positive_int, default=128, help="global batch size (default 128)")
    t.add_argument("--weight-decay", type=_budget(1, "weight decay"), default=2e-4)
    t.add_argument("--eps-x", type=_budget(255, "0-255 intensity levels"), default=8.0,
                   help="training pixel budget in 0-255 levels (default 8)")
    t.add_argument("--eps-w", type=_budget(32, "pixels"),
                   help="training flow budget in pixels (default: 1%% of the image side)")
    t.add_argument("--order", choices=("sp", "ps"), default="sp", help="joint attack pass order (Table 3)")
    t.add_argument("--target", choices=TARGETS,
                   help="target of a one-step training attack (default: the method's; random for the "
                        "paper's Alg. 3, most-confusing for bilateral)")
    t.add_argument("--smoothing", choices=SMOOTHINGS,
                   help="labels of the weight update (default: the method's; simple (delta 0.5) for "
                        "one-step methods, bilateral for bilateral, none for multi-step ones)")
    t.add_argument("--amp", action=argparse.BooleanOptionalAction,
                   help="bf16 autocast of the weight update; attacks always run in fp32 "
                        "(default: on for CUDA devices with bf16 support)")
    t.add_argument("--limit", type=_positive_int, help="train on a fixed random subset of N images")
    t.add_argument("--eval-limit", type=int, default=1000, help="test images for per-epoch accuracy (0: off)")
    t.add_argument("--out", required=True, help="run folder (checkpoint, metrics)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    t.add_argument("--download", action="store_true", help="download the dataset if missing (online)")
    t.add_argument("--no-progress", action="store_true", help="hide progress bars")

    e = sub.add_parser("eval", help="evaluate a checkpoint under the paper's attacks",
                       description="Accuracy under the paper's attacks (ε_x = 8, ε_ω = 1%% of the side, "
                                   "20 steps) with margin-loss (CW) columns; prints a Markdown table.")
    e.add_argument("--checkpoint", required=True, help="a last.pt written by 'train'")
    e.add_argument("--suite", choices=("paper", "quick", "strong"), default="paper",
                   help="paper: Pristine, FGSM, PGD20, PGD100, Spatial, Joint SP/PS, CW columns; "
                        "quick: without PGD100; strong: the paper's columns, then the per-image worst case "
                        "over PGD and APGD (CE, DLR, targeted) for each threat model, and their union")
    e.add_argument("--apgd-steps", type=_positive_int, default=100,
                   help="strong suite: APGD iterations (100)")
    e.add_argument("--top-k", type=_positive_int, default=9, help="strong suite: APGD-T target classes (9)")
    e.add_argument("--restarts", type=_positive_int, default=1, help="strong suite: runs of APGD-CE/DLR (1)")
    e.add_argument("--no-diagnostics", action="store_true",
                   help="strong suite: skip the gradient-masking diagnostics' extra attacks")
    e.add_argument("--source", help="black-box transfer (Table 5): attacks computed on this checkpoint")
    e.add_argument("--eps-x", type=_budget(255, "0-255 intensity levels"), default=8.0)
    e.add_argument("--eps-w", type=_budget(32, "pixels"), help="default: 1%% of the image side")
    e.add_argument("--steps", type=_positive_int, default=20)
    e.add_argument("--limit", type=_positive_int,
                   help="attack a fixed random subset of N test images, for a quick look (default: the "
                        "whole test set, as the paper; 1000 images give about +-1.5 points)")
    e.add_argument("--batch-size", type=_positive_int, default=256)
    e.add_argument("--out", help="write the results as JSON here")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", help="cpu, cuda, ... (default: cuda if available)")
    e.add_argument("--no-progress", action="store_true")

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
    d.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    d.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def _train(args) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig(method=args.method, dataset=args.dataset, arch=args.arch, epochs=args.epochs,
                      milestones=tuple(args.milestones) if args.milestones else None, lr=args.lr,
                      batch_size=args.batch_size, weight_decay=args.weight_decay, eps_x=args.eps_x,
                      eps_w=args.eps_w, order=args.order, target=args.target, smoothing=args.smoothing,
                      limit=args.limit, eval_limit=args.eval_limit, seed=args.seed, amp=args.amp,
                      download=args.download)
    result = train(cfg, args.out, resume=args.resume, device=args.device, progress=not args.no_progress)
    import torch.distributed as dist

    if dist.is_initialized():  # started by torchrun: only rank 0 reports
        rank = dist.get_rank()
        dist.destroy_process_group()
        if rank:
            return 0
    if result.history:
        last = result.history[-1]
        print(f"done: {len(result.history)} epochs, loss {last['loss']:.4f}, train accuracy "
              f"{100 * last['train_acc']:.1f} %"
              + (f", test accuracy {100 * last['test_acc']:.1f} %" if "test_acc" in last else "")
              + f"; checkpoint {result.checkpoint}")
    return 0


def _eval(args) -> int:
    import torch

    from .data import load_dataset
    from .evaluate import evaluate, markdown_table, standard_error
    from .train import TrainConfig, load_checkpoint, load_model

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cfg = TrainConfig.from_dict(load_checkpoint(args.checkpoint)["config"])
    model = load_model(args.checkpoint, device)
    source = load_model(args.source, device) if args.source else None
    test = load_dataset(cfg.dataset, "test", limit=args.limit, seed=args.seed)
    eps_w = test.spec.eps_w if args.eps_w is None else args.eps_w
    torch.manual_seed(args.seed)
    name = f"{cfg.method} {cfg.arch}" + (f" (attacks from {args.source})" if source is not None else "")
    if args.suite == "strong":
        return _eval_strong(args, cfg, model, source, test, eps_w, name)
    table = evaluate(model, test.batch(), args.suite, eps_x=args.eps_x, eps_w=eps_w, steps=args.steps,
                     batch_size=args.batch_size, progress=not args.no_progress, source=source)
    errors = {column: standard_error(acc, len(test)) for column, acc in table.items()}
    print(markdown_table({name: table, "± s.e.": errors}, caption=(
        f"Accuracy (%) on {len(test)} {cfg.dataset} test images; eps_x = {args.eps_x:g}, "
        f"eps_w = {eps_w:g}, {args.steps} steps. ± s.e.: binomial standard error, sqrt(p(1 - p) / n).")))
    from .strong import diagnose

    checks = diagnose(table, args.steps, images=len(test)) if source is None else []
    for d in checks:  # what the table alone can tell; `--suite strong` runs the whole checklist
        print(d)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(
            {"checkpoint": args.checkpoint, "source": args.source, "config": cfg.to_dict(),
             "suite": args.suite, "eps_x": args.eps_x, "eps_w": eps_w, "steps": args.steps,
             "images": len(test), "accuracy": table, "standard_error": errors,
             "diagnostics": [{"name": d.name, "fired": d.fired, "detail": d.detail} for d in checks]},
            indent=2))
        print(f"results: {args.out}")
    return 0


def _eval_strong(args, cfg, model, source, test, eps_w, name) -> int:
    """`eval --suite strong`: the worst-case table, the passes it cost and the masking diagnostics."""
    from .strong import strong_evaluate

    report = strong_evaluate(model, test.batch(), eps_x=args.eps_x, eps_w=eps_w, steps=args.steps,
                             apgd_steps=args.apgd_steps, top_k=args.top_k, restarts=args.restarts,
                             batch_size=args.batch_size, diagnostics=not args.no_diagnostics, source=source,
                             progress=not args.no_progress)
    print(f"{cfg.dataset} test images, eps_x = {args.eps_x:g}, eps_w = {eps_w:g}, {args.steps} steps "
          f"(APGD: {args.apgd_steps} iterations, {args.top_k} targets, {args.restarts} restart(s))\n")
    print(report.markdown(name))
    for d in report.diagnostics:
        print(d)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(
            {"checkpoint": args.checkpoint, "source": args.source, "config": cfg.to_dict(), "suite": "strong",
             **report.to_dict()}, indent=2))
        print(f"results: {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .train import CheckpointError

    try:
        if args.command == "train":
            return _train(args)
        if args.command == "eval":
            return _eval(args)
        from .demo import run_demo

        run_demo(args.out, arch=args.arch, train_limit=args.train_limit, test_limit=args.test_limit,
                 sweep_limit=args.sweep_limit, epochs=args.epochs, seed=args.seed, device=args.device,
                 progress=not args.no_progress)
        return 0
    except (ValueError, DatasetNotFoundError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
