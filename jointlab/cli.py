"""Command line: `python -m jointlab {train,eval} --help`.

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
    t.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                   help="NHWC memory layout of model and batches (default: on for CUDA devices)")
    t.add_argument("--limit", type=_positive_int, help="train on a fixed random subset of N images")
    t.add_argument("--eval-limit", type=int, default=1000, help="test images for per-epoch accuracy (0: off)")
    t.add_argument("--out", required=True, help="run folder (checkpoint, metrics)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    t.add_argument("--download", action="store_true", help="download the dataset if missing (online)")
    t.add_argument("--no-progress", action="store_true", help="hide progress bars")

    e = sub.add_parser("eval", help="evaluate a model under the paper's attacks (or the strong suite)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Accuracy under the paper's attacks (ε_x = 8, ε_ω = 1%% of the side, "
                                   "20 steps) with margin-loss (CW) columns; prints a Markdown table.\n\n"
                                   "Any PyTorch classifier: --model SPEC is a jointlab checkpoint (last.pt), "
                                   "torchvision:NAME (with --weights PATH), module.path:factory (your own "
                                   "code), or robustbench:[DATASET/THREAT/]NAME. Budgets keep the paper's "
                                   "units whatever the model's range: ε_x in 0-255 levels of that range, "
                                   "ε_ω in pixels.")
    model = e.add_mutually_exclusive_group(required=True)
    model.add_argument("--model", metavar="SPEC",
                       help="path/to/last.pt | torchvision:NAME | module.path:factory | "
                            "robustbench:[DATASET/THREAT/]NAME")
    model.add_argument("--checkpoint", help="a last.pt written by 'train' (the same as --model PATH)")
    e.add_argument("--weights", help="torchvision / factory models: a state_dict to load; robustbench: their "
                                     "model_dir (default ./models)")
    e.add_argument("--dataset", help=f"one of {', '.join(sorted(DATASETS))}, or imagefolder:PATH (one "
                                     f"sub-folder per class); default: the checkpoint's dataset")
    e.add_argument("--input-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help="the range of images the model takes (default: 0 1 for models from outside the "
                        "kit, -1 1 for jointlab checkpoints)")
    e.add_argument("--mean", type=float, nargs="+",
                   help="per-channel mean the model's inputs are normalized by (normalization outside it)")
    e.add_argument("--std", type=float, nargs="+", help="per-channel std, with --mean")
    e.add_argument("--image-size", type=_positive_int, help="resize the test images to this side (pixels)")
    e.add_argument("--num-classes", type=_positive_int, help="torchvision:NAME: the classifier's classes "
                                                              "(default: the dataset's)")
    e.add_argument("--suite", choices=("paper", "quick", "strong"), default="paper",
                   help="paper: Pristine, FGSM, PGD20, PGD100, Spatial, Joint SP/PS, CW columns; "
                        "quick: without PGD100; strong: the paper's columns, then the per-image worst case "
                        "over PGD and APGD (CE, DLR, targeted) for each threat model, and their union")
    strong = e.add_argument_group("strong suite (--suite strong)")
    for flag, kind, default, text in (
            ("--apgd-steps", _positive_int, 100, "APGD iterations"),
            ("--top-k", _positive_int, 9, "APGD-T target classes"),
            ("--restarts", _positive_int, 1, "runs of APGD-CE/DLR"),
            ("--queries", int, 300, "forward passes per image of each gradient-free member, Square and the "
                                    "flow search; 0: none")):
        strong.add_argument(flag, type=kind, default=default, help=f"{text} (default {default})")
    strong.add_argument("--base-suite", choices=("paper", "quick"), default="paper",
                        help="the paper's columns it starts from (quick: without PGD100)")
    strong.add_argument("--no-diagnostics", action="store_true",
                        help="skip the gradient-masking diagnostics' extra attacks")
    strong.add_argument("--state", help="a state file written after every batch; a killed run started again "
                                        "with the same arguments continues where it stopped (default: "
                                        "OUT.state.json with --out)")
    strong.add_argument("--save-adversarial", metavar="PATH",
                        help="each image's first adversarial example found (x_adv, delta, flow, which "
                             "attack) in one .pt file")
    strong.add_argument("--reference", help="a naturally trained model (a --model SPEC in [0, 1] or a "
                                            "checkpoint); the huge-budget check then fires only above its "
                                            "level")
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

    return parser


def _train(args) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig(method=args.method, dataset=args.dataset, arch=args.arch, epochs=args.epochs,
                      milestones=tuple(args.milestones) if args.milestones else None, lr=args.lr,
                      batch_size=args.batch_size, weight_decay=args.weight_decay, eps_x=args.eps_x,
                      eps_w=args.eps_w, order=args.order, target=args.target, smoothing=args.smoothing,
                      limit=args.limit, eval_limit=args.eval_limit, seed=args.seed, amp=args.amp,
                      channels_last=args.channels_last, download=args.download)
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


def _eval_model(args, device):
    """The model of `--model/--checkpoint` as a jointlab model on [-1, 1], the test images and a name."""
    import torch.nn.functional as F

    from .data import get_spec, imagefolder_classes, load_dataset, load_imagefolder
    from .evaluation.interop import load_model_spec, wrap

    def test_set(dataset):
        if dataset.startswith("imagefolder:"):
            channels = len(args.mean) if args.mean and len(args.mean) in (1, 3) else 3
            return load_imagefolder(dataset.partition(":")[2], image_size=args.image_size, channels=channels,
                                    limit=args.limit, seed=args.seed)
        get_spec(dataset)
        return load_dataset(dataset, "test", limit=args.limit, seed=args.seed)

    def classes(dataset):  # without loading the images: the model's errors come first
        if dataset.startswith("imagefolder:"):
            return len(imagefolder_classes(dataset.partition(":")[2]))
        return get_spec(dataset).num_classes

    spec_text = args.model or args.checkpoint
    num_classes = args.num_classes or (classes(args.dataset) if args.dataset else None)
    model, info = load_model_spec(spec_text, weights=args.weights, num_classes=num_classes,
                                  dataset=args.dataset or "cifar10")
    if not (args.dataset or info.get("dataset")):
        raise ValueError(f"--dataset is needed for --model {spec_text} (one of "
                         f"{', '.join(sorted(DATASETS))}, or imagefolder:PATH)")
    test = test_set(args.dataset or info["dataset"])
    x, y = test.batch()
    if args.image_size and x.shape[-1] != args.image_size:
        x = F.interpolate(x, size=args.image_size, mode="bilinear", antialias=True,
                          align_corners=False).clamp(-1, 1)
    if info["scheme"] == "jointlab":
        if args.mean or args.std or (args.input_range and tuple(args.input_range) != (-1.0, 1.0)):
            raise ValueError("a jointlab checkpoint takes [-1, 1] images with no normalization: leave out "
                             "--input-range, --mean and --std")
        conventions = "[-1, 1] images (a jointlab checkpoint)"
    else:
        input_range = info["input_range"] or tuple(args.input_range or (0.0, 1.0))
        if args.input_range and info["input_range"] and tuple(args.input_range) != info["input_range"]:
            raise ValueError(f"--model {spec_text} takes images in {info['input_range']}; --input-range says "
                             f"{tuple(args.input_range)}")
        model = wrap(model, input_range, args.mean, args.std, channels=x.shape[1])
        conventions = f"images in {list(input_range)}" + (
            f", normalized by mean {args.mean} and std {args.std}" if args.mean else "")
    name = info.get("config", {}).get("method", "") + " " + info.get("config", {}).get("arch", "")
    name = name.strip() or info["name"]
    return model.to(device).eval(), (x, y), test.spec, name, info, conventions


def _eval(args) -> int:
    import torch

    from .evaluation import evaluate, markdown_table, provenance, standard_error
    from .evaluation.interop import check_eps_x, check_logits, load_model_spec, wrap

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, (x, y), spec, name, info, conventions = _eval_model(args, device)
    check_logits(model, x.to(device), spec.num_classes)
    check_eps_x(args.eps_x)

    def other(spec_text):  # --source, --reference: a checkpoint, or a model of another scheme on [0, 1]
        if not spec_text:
            return None
        net, net_info = load_model_spec(spec_text, weights=None, dataset=spec.name)
        if net_info["scheme"] != "jointlab":
            net = wrap(net, net_info["input_range"] or (0.0, 1.0))
        return net.to(device).eval()

    source, reference = other(args.source), other(args.reference)
    eps_w = (spec.eps_w if x.shape[-1] == spec.image_size else 0.01 * x.shape[-1]) if args.eps_w is None \
        else args.eps_w
    torch.manual_seed(args.seed)
    if source is not None:
        name += f" (attacks from {args.source})"
    header = {"model": args.model or args.checkpoint, "conventions": conventions, "dataset": spec.name,
              "source": args.source, "reference": args.reference, "config": info.get("config"),
              "provenance": provenance(args.seed, device)}
    if args.suite == "strong":
        return _eval_strong(args, model, source, reference, (x, y), spec, eps_w, name, header)
    table = evaluate(model, (x, y), args.suite, eps_x=args.eps_x, eps_w=eps_w, steps=args.steps,
                     batch_size=args.batch_size, progress=not args.no_progress, source=source)
    errors = {column: standard_error(acc, len(y)) for column, acc in table.items()}
    print(markdown_table({name: table, "± s.e.": errors}, caption=(
        f"Accuracy (%) on {len(y)} {spec.name} test images ({conventions}); eps_x = {args.eps_x:g} levels, "
        f"eps_w = {eps_w:g} px, {args.steps} steps. ± s.e.: binomial standard error, sqrt(p(1 - p) / n).")))
    from .evaluation import diagnose

    checks = diagnose(table, args.steps, images=len(y)) if source is None else []
    for d in checks:  # what the table alone can tell; `--suite strong` runs the whole checklist
        print(d)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(
            {**header, "checkpoint": args.checkpoint, "suite": args.suite, "eps_x": args.eps_x,
             "eps_w": eps_w, "steps": args.steps, "images": len(y), "accuracy": table,
             "standard_error": errors,
             "diagnostics": [{"name": d.name, "fired": d.fired, "detail": d.detail} for d in checks]},
            indent=2))
        print(f"results: {args.out}")
    return 0


def _eval_strong(args, model, source, reference, data, spec, eps_w, name, header) -> int:
    """`eval --suite strong`: the worst-case table, the passes it cost and the masking diagnostics."""
    from .evaluation import strong_evaluate

    state = args.state or (f"{args.out}.state.json" if args.out else None)
    report = strong_evaluate(model, data, eps_x=args.eps_x, eps_w=eps_w, steps=args.steps,
                             apgd_steps=args.apgd_steps, top_k=args.top_k, restarts=args.restarts,
                             batch_size=args.batch_size, diagnostics=not args.no_diagnostics, source=source,
                             reference=reference, suite=args.base_suite, queries=args.queries, seed=args.seed,
                             state=state,
                             save_adversarial=args.save_adversarial,
                             progress=not args.no_progress)
    print(f"{spec.name} test images ({header['conventions']}), eps_x = {args.eps_x:g} levels, eps_w = "
          f"{eps_w:g} px, {args.steps} steps (APGD: {args.apgd_steps} iterations, {args.top_k} targets, "
          f"{args.restarts} restart(s))\n")
    print(report.markdown(name))
    for d in report.diagnostics:
        print(d)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(
            {**header, "checkpoint": args.checkpoint, "suite": "strong", **report.to_dict()}, indent=2))
        print(f"results: {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .train import CheckpointError

    try:
        if args.command == "train":
            return _train(args)
        return _eval(args)
    except (ValueError, DatasetNotFoundError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
