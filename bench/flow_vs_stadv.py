"""The flow attack beside stAdv (Xiao et al. 2018, advertorch's SpatialTransformAttack): success rate
against flow budget on the same model and images, with times.

stAdv is unbudgeted (L-BFGS on the margin loss plus a flow-smoothness penalty); its successful flows
have some length ‖ω‖₂,∞. Ours is budgeted: APGD-DLR in the ℓ2,∞ ball of radius ε_ω (with the first
flow step as APGD's 2ε, and capped at 1 px, `max_step_w`). Goal (issue 17): ≥ 90 % success at stAdv's
median flow length within ¼ of stAdv's time. The last column is the strong suite's whole flow threat
(`strong_evaluate(threats=("spatial",))` with its default members: the paper's Alg. 1, APGD-CE and
APGD-DLR 100, APGD-T on 9 targets, the gradient-free flow search), the per-image worst case.

    pip install --no-deps advertorch==0.2.3    # it needs scipy (in the dev extra)
    python bench/flow_vs_stadv.py              # the quick natural lesson model, 64 test images
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time

import torch

from jointlab import attacks as A
from jointlab.evaluation import strong_evaluate
from jointlab.profiles import get_profile

# the module, not the function torch.autograd.gradcheck that shadows it as an attribute
gradcheck = importlib.import_module("torch.autograd.gradcheck")
if not hasattr(gradcheck, "zero_gradients"):  # advertorch 0.2.3 imports it; current torch dropped it
    def _zero_gradients(x):
        if isinstance(x, torch.Tensor) and x.grad is not None:
            x.grad.detach_().zero_()

    gradcheck.zero_gradients = _zero_gradients


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="natural")
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--budgets", type=float, nargs="+", default=[0.3, 0.5, 1.0, 1.5, 2.0, 3.0])
    p.add_argument("--steps", type=int, nargs="+", default=[20, 100])
    p.add_argument("--no-ensemble", action="store_true",
                   help="skip the strong suite's spatial ensemble (its default members, ~10 s per budget)")
    args = p.parse_args(argv)
    from advertorch.attacks import SpatialTransformAttack

    P = get_profile("quick", test_limit=max(args.images, 64), progress=False)
    model = P.model(args.model, progress=False)
    x, y = P.test_batch(args.images)
    with torch.no_grad():
        keep = model(x).argmax(1) == y  # success is measured on the images the model gets right
    x, y = x[keep], y[keep]
    n, side = len(y), x.shape[-1]

    import advertorch.attacks.spatial as stadv_module

    grids = []  # stAdv returns images only: record the sampling grid of its last warp (the final flow)

    class _Functional:
        def __getattr__(self, name):
            return getattr(torch.nn.functional, name)

        def grid_sample(self, inp, grid, *args, **kwargs):
            grids.append(grid.detach())
            return torch.nn.functional.grid_sample(inp, grid, *args, **kwargs)

    stadv_module.F = _Functional()
    stadv = SpatialTransformAttack(lambda z: model(z * 2 - 1), num_classes=10, max_iterations=1000)
    t = time.perf_counter()
    adv01 = stadv.perturb((x + 1) / 2, y)
    t_stadv = time.perf_counter() - t
    with torch.no_grad():
        fooled = model(adv01 * 2 - 1).argmax(1) != y
    identity = torch.nn.functional.affine_grid(torch.eye(2, 3).repeat(n, 1, 1), list(x.shape),
                                               align_corners=False)
    # grid_sample's normalized coordinates (align_corners=False): one pixel is 2 / side
    flow_px = (grids[-1] - identity) * (side / 2)
    lengths = flow_px.norm(dim=-1).flatten(1).amax(1)[fooled].tolist()
    median = statistics.median(lengths) if lengths else float("nan")
    print(f"{args.model} model, {n} correctly classified test images of {args.images}")
    print(f"stAdv: {100 * fooled.float().mean():.1f} % success, median flow length ‖ω‖₂,∞ of the successes "
          f"{median:.2f} px, {t_stadv:.1f} s")
    budgets = sorted({*args.budgets, round(median, 2)} if lengths else set(args.budgets))
    print("| ε_ω (px) | " + " | ".join(f"APGD-DLR {s} (cap 1 px) | s" for s in args.steps)
          + " | " + " | ".join(f"APGD-DLR {s} | s" for s in args.steps)
          + ("" if args.no_ensemble else " | spatial ensemble | s") + " |")
    print("|---" * (1 + 4 * len(args.steps) + 2 * (not args.no_ensemble)) + "|")
    for eps in budgets:
        cells = []
        for cap in (1.0, None):
            for steps in args.steps:
                torch.manual_seed(0)
                t = time.perf_counter()
                res = A.apgd(model, x, y, eps_w=eps, steps=steps, threat="spatial", loss="dlr",
                             max_step_w=cap)
                seconds = time.perf_counter() - t
                with torch.no_grad():
                    rate = 100 * (model(res.x_adv).argmax(1) != y).float().mean().item()
                cells += [f"{rate:.1f}", f"{seconds:.1f}"]
        if not args.no_ensemble:  # the strong suite's flow threat: every member, per-image worst case
            t = time.perf_counter()
            r = strong_evaluate(model, (x, y), eps_w=eps, threats=("spatial",), suite="quick",
                                diagnostics=False, progress=False)
            cells += [f"{100 - r.accuracy['Spatial (worst)']:.1f}", f"{time.perf_counter() - t:.1f}"]
        print(f"| {eps:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
