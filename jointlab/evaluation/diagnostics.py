"""The gradient-masking checklist (Athalye, Carlini & Wagner 2018; Carlini et al. 2019; AutoAttack's
flags), each check with the numbers behind it and one noise rule for all: a one-step attack beats the
iterative one; a huge budget does not bring accuracy to ~0 % (beyond a natural model's level, when one
is given); random noise (or transfer from another model) beats the white-box attack; more steps or a
restart still lower accuracy (not converged); cross-entropy and margin losses disagree; many input
gradients are exactly zero."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..attacks import THREATS
from ..losses import ATTACK_LOSSES
from ..models import eval_mode
from .metrics import standard_error
from .paper import paper_column
from .reports import Diagnostic

__all__ = ["MASKING_THRESHOLDS", "HUGE_MAX_STEP_W", "significant", "diagnose", "zero_gradients"]

# When a diagnostic fires (accuracy points, or a share of images); every check also needs its effect to
# exceed noise (`significant`): two standard errors and `min_images` images
MASKING_THRESHOLDS = {
    "one_step_margin": 1.0,     # FGSM more than this below PGD
    "huge_budget_acc": 2.0,     # accuracy left at a huge budget
    "noise_margin": 1.0,        # random noise / transfer more than this below the white-box attack
    "not_converged": 2.0,       # more steps or one more restart lower accuracy by more than this
    "loss_gap": 5.0,            # CE accuracy minus margin-loss accuracy
    "zero_grad_share": 0.10,    # share of images whose input gradient is exactly zero
    "min_images": 3,            # the fewest images an effect must concern
}
# The huge-budget check's cap on APGD's flow step (pixels): the warp is linear only within about one
# pixel, so APGD's first step of 2ε_ω (14 px at a quarter of a 28-px side) overshoots, and at a 7-px
# random start about half the flow vectors have an exactly zero gradient (issue 17 measured 51–56 %):
# the images that survive would measure the step size, not masking
HUGE_MAX_STEP_W = 1.0


def significant(effect: float, images: int | None, threshold: float) -> bool:
    """The noise rule of every diagnostic: an effect (accuracy points, or % of the images) counts when it
    exceeds `threshold`, two standard errors of a share of `images` images (2·sqrt(p(1 − p)/n)) and
    `MASKING_THRESHOLDS["min_images"]` images; without `images` (a table alone), the threshold only."""
    if not effect > threshold:
        return False
    if images is None:
        return True
    share = min(effect, 100.0)
    return (share * images / 100 >= MASKING_THRESHOLDS["min_images"] - 1e-9
            and share > 2 * standard_error(share, images))


def zero_gradients(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Per image: is the input gradient of the cross-entropy exactly zero?"""
    with eval_mode(model), torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(ATTACK_LOSSES["ce"](model(xg), y).sum(), xg)
    return (g.flatten(1) == 0).all(1)


def diagnose(acc: dict[str, float], steps: int = 20, counts: dict | None = None, images: int | None = None,
             huge: tuple = (128, "side/4", 100)) -> list[Diagnostic]:
    """The masking checklist. From a table of accuracies alone (any suite with FGSM, PGD and CW
    columns): one-step vs iterative, PGD{steps} vs PGD100, CE vs margin loss. With the extra counts of
    `strong_evaluate` (huge budget, random noise, transfer, one more restart, zero gradients) the rest.
    Each check fires only on an effect beyond noise (`significant`, on `images` images); `huge` names
    the huge budgets and APGD's iterations there."""
    t = MASKING_THRESHOLDS
    white = {th: paper_column(th, steps) for th in THREATS}  # the paper's white-box column of each threat
    cw = {th: paper_column(th, steps, "cw") for th in THREATS}
    out = []
    pgd_ = acc.get(white["pixel"])
    if "FGSM" in acc and pgd_ is not None:
        fired = significant(pgd_ - acc["FGSM"], images, t["one_step_margin"])
        out.append(Diagnostic("one-step attack beats the iterative one", fired,
                              f"FGSM {acc['FGSM']:.1f} % vs PGD{steps} {pgd_:.1f} %"))
    pct = {}
    if counts is not None:
        pct = {k: {th: 100.0 * v / images for th, v in d.items()}
               for k, d in counts.items() if isinstance(d, dict)}
        h = pct["huge"]
        ref = pct["huge_reference"] if counts.get("with_reference") else None  # a natural model, same attack
        out.append(Diagnostic(
            "a huge budget leaves accuracy above ~0 %" + (" (above the natural model's)" if ref else ""),
            any(significant(v - (ref[th] if ref else 0.0), images, t["huge_budget_acc"])
                for th, v in h.items()),
            f"accuracy at ε_x = {huge[0]:g} levels / ε_ω = {huge[1]} px (APGD-DLR, {huge[2]} steps, "
            f"flow step ≤ {HUGE_MAX_STEP_W:g} px): "
            + ", ".join(f"{th} {v:.1f} %" + (f" (natural model {ref[th]:.1f} %)" if ref else "")
                        for th, v in h.items())))
        for key, what in (("noise", "random noise"), ("transfer", "a transferred attack")):
            if key == "transfer" and not counts.get("with_source"):
                continue
            p = pct[key]
            beaten = [th for th in p if significant(acc[white[th]] - p[th], images, t["noise_margin"])]
            out.append(Diagnostic(
                f"{what} beats the white-box attack", bool(beaten),
                ", ".join(f"{th}: {key} {p[th]:.1f} % vs {white[th]} {acc[white[th]]:.1f} %"
                          for th in p)))
    more = acc.get("PGD100") if steps != 100 else None
    if pgd_ is not None and (more is not None or pct):
        fired = more is not None and significant(pgd_ - more, images, t["not_converged"])
        parts = [f"PGD{steps} {pgd_:.1f} % → PGD100 {more:.1f} %"] if more is not None else []
        if pct:
            fired |= any(significant(v, images, t["not_converged"]) for v in pct["restart"].values())
            parts += [f"one more APGD-DLR restart breaks {v:.1f} % more ({th})"
                      for th, v in pct["restart"].items()]
        out.append(Diagnostic("more steps or restarts still lower accuracy (not converged)", fired,
                              "; ".join(parts)))
    pairs = [th for th in THREATS if white[th] in acc and cw[th] in acc]
    if pairs:
        out.append(Diagnostic(
            "cross-entropy and margin losses disagree",
            any(significant(acc[white[th]] - acc[cw[th]], images, t["loss_gap"]) for th in pairs),
            ", ".join(f"{white[th]} {acc[white[th]]:.1f} % vs {cw[th]} {acc[cw[th]]:.1f} %" for th in pairs)))
    if counts is not None:
        share = counts["zero_grad"] / images
        out.append(Diagnostic("many input gradients are exactly zero",
                              significant(100 * share, images, 100 * t["zero_grad_share"]),
                              f"{100 * share:.1f} % of the images have an all-zero input gradient (CE loss)"))
    return out
