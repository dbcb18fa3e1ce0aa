"""What the strong evaluation costs.

1. One APGD step against one PGD step of the same threat model, model and batch (goal ≤ 1.05 ×):
   per-step times are differences of two calls (1 + n steps minus 1 step), the median over
   interleaved rounds, so the fixed cost of a call (checks, random start, APGD's final evaluation)
   is excluded and a busy machine slows every candidate alike.
2. The strong suite's forward/backward passes with early stopping (each attack only on the images
   still robust, as AutoAttack does) against the sum of its members run on every image.

    python bench/strong.py                       # WRN-16-2 untrained-shape timing + the quick Madry model
    python bench/strong.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from jointlab import attacks as A
from jointlab.models import build_model


def _timed(fn, steps, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn(steps)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def step_costs(arch: str, batch: int, steps: int, rounds: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = build_model(arch, 10, 1).to(device).eval()
    x = torch.rand(batch, 1, 28, 28, device=device) * 2 - 1
    y = torch.randint(0, 10, (batch,), device=device)
    calls = {
        ("pgd", "pixel"): lambda s: A.pgd(model, x, y, 8, 2, s),
        ("apgd", "pixel"): lambda s: A.apgd(model, x, y, 8, 0.28, s, "pixel"),
        ("pgd", "spatial"): lambda s: A.spatial(model, x, y, 0.28, 0.14, s),
        ("apgd", "spatial"): lambda s: A.apgd(model, x, y, 8, 0.28, s, "spatial"),
        ("pgd", "joint"): lambda s: A.joint(model, x, y, 8, 0.28, 2, 0.14, s),
        ("apgd", "joint"): lambda s: A.apgd(model, x, y, 8, 0.28, s, "joint"),
    }
    for fn in calls.values():  # warm-up
        fn(1)
    times = {k: [] for k in calls}
    for _ in range(rounds):
        for k, fn in calls.items():
            times[k].append((_timed(fn, 1 + steps, device) - _timed(fn, 1, device)) / steps)
    per_step = {f"{rule} {threat}": 1000 * statistics.median(v) for (rule, threat), v in times.items()}
    ratios = {t: per_step[f"apgd {t}"] / per_step[f"pgd {t}"] for t in A.THREATS}
    return {"ms_per_step": per_step, "apgd_over_pgd": ratios}


def suite_passes(images: int, apgd_steps: int, top_k: int) -> dict:
    """Passes per image of the strong suite on the quick profile's Madry model, with early stopping,
    against every member on every image (the same members, counted from their schedules)."""
    from jointlab.evaluation import strong_evaluate, strong_members
    from jointlab.profiles import get_profile

    P = get_profile("quick")
    model = P.model("madry", progress=False)
    x, y = P.test_batch(images)
    torch.manual_seed(0)
    t = time.perf_counter()
    report = strong_evaluate(model, (x, y), eps_x=P.eps_x, eps_w=P.eps_w, steps=20, apgd_steps=apgd_steps,
                             top_k=top_k, diagnostics=False, progress=False)
    seconds = time.perf_counter() - t
    passes_of_threat = {"pixel": 1, "spatial": 1, "joint": 2}  # forward/backward passes per step
    members = strong_members(P.eps_x, P.eps_w, apgd_steps, top_k)
    paper = ("FGSM", "PGD", "Spatial", "Joint-")
    full = sum(report.passes[c] for c in report.accuracy if c.startswith(paper) and "worst" not in c)
    for threat, ms in members.items():
        for name, _, kw in ms:
            if "steps" not in kw:  # a gradient-free member: forward passes only, not counted as passes
                continue
            per_run = kw["steps"] * passes_of_threat[threat]
            full += per_run * (kw.get("top_k", 1) if name == "APGD-T" else 1)
    return {"images": images, "accuracy": report.accuracy,
            "passes_per_image_early_stop": report.passes["Union"],
            "passes_per_image_every_member_on_every_image": full,
            "ratio": report.passes["Union"] / full, "seconds": seconds}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="wrn-16-2")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=8, help="extra steps timed per attack call")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--images", type=int, default=100, help="test images of the suite-cost run")
    p.add_argument("--apgd-steps", type=int, default=100)
    p.add_argument("--top-k", type=int, default=9)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device),
           "steps": step_costs(args.arch, args.batch, args.steps, args.rounds, device),
           "suite": suite_passes(args.images, args.apgd_steps, args.top_k)}
    s = out["steps"]
    print(f"{args.arch}, batch {args.batch}, {device}: ms per step (median of {args.rounds} rounds)")
    for threat in A.THREATS:
        print(f"  {threat:8s} PGD {s['ms_per_step'][f'pgd {threat}']:7.1f}  APGD "
              f"{s['ms_per_step'][f'apgd {threat}']:7.1f}  ratio {s['apgd_over_pgd'][threat]:.3f}")
    q = out["suite"]
    print(f"strong suite on {q['images']} images of the quick Madry model ({q['seconds']:.0f} s): "
          f"{q['passes_per_image_early_stop']:.0f} passes per image with early stopping vs "
          f"{q['passes_per_image_every_member_on_every_image']:.0f} without ({q['ratio']:.2f} x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
