"""Losses an attack ascends: cross-entropy (the paper's), the Carlini–Wagner margin and the
difference-of-logits ratio (DLR, Croce & Hein 2020), untargeted and targeted.

Each returns one value per sample, shape (N,): the attack loop sums them for the gradient (so every
sample's gradient is independent of the batch) and APGD keeps them to track each sample's best point.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cross_entropy", "margin_loss", "dlr_loss", "targeted_dlr_loss", "ATTACK_LOSSES",
           "random_wrong_labels", "most_confusing_labels", "smooth_labels", "bilateral_labels",
           "soft_cross_entropy"]


def cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """CE(z_n, y_n) per sample, the loss of the paper's attacks."""
    return F.cross_entropy(logits.float(), y, reduction="none")


def _true_and_best_other(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """z_y and max_{k≠y} z_k per sample."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], torch.finfo(logits.dtype).min)
    return true, others.amax(dim=1)


def margin_loss(logits: Tensor, y: Tensor) -> Tensor:
    """max_{k≠y} z_k − z_y per sample, the CW margin on logits.

    Positive exactly when the sample is misclassified. Unlike cross-entropy it does not saturate
    when a (label-smoothed, one-step trained) model is over-confident, so it exposes gradient
    masking that makes CE-PGD overstate robustness (see docs on the pitfall in paper.md).
    """
    logits = logits.float()
    true, other = _true_and_best_other(logits, y)
    return other - true


def _check_classes(logits: Tensor, need: int, name: str) -> None:
    if logits.shape[1] < need:
        raise ValueError(f"the {name} loss needs at least {need} classes; the model returns "
                         f"{logits.shape[1]}")


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """DLR (Croce & Hein 2020): −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e-12), z_π sorted descending.

    Invariant to shifting and scaling the logits, so a model cannot mask it by saturating its softmax.
    """
    _check_classes(logits, 3, "DLR")
    logits = logits.float()
    top = logits.topk(3, dim=1).values
    true, other = _true_and_best_other(logits, y)
    return -(true - other) / (top[:, 0] - top[:, 2] + 1e-12)


def targeted_dlr_loss(logits: Tensor, y: Tensor, target: Tensor) -> Tensor:
    """Targeted DLR (APGD-T): −(z_y − z_t) / (z_π1 − (z_π3 + z_π4) / 2 + 1e-12), ascended; y is the
    true label and t the target class."""
    _check_classes(logits, 4, "targeted DLR")
    logits = logits.float()
    top = logits.topk(4, dim=1).values
    true = logits.gather(1, y[:, None]).squeeze(1)
    tgt = logits.gather(1, target[:, None].to(y.device)).squeeze(1)
    return -(true - tgt) / (top[:, 0] - (top[:, 2] + top[:, 3]) / 2 + 1e-12)


ATTACK_LOSSES = {"ce": cross_entropy, "cw": margin_loss, "dlr": dlr_loss}


# --------------------------------------------------------------------------- training targets


def random_wrong_labels(y: Tensor, num_classes: int, generator: torch.Generator | None = None) -> Tensor:
    """Alg. 3: ŷ uniform over the classes other than y (the targets of the training attack)."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 to draw a wrong label; got {num_classes}")
    shift = torch.randint(1, num_classes, y.shape, device=y.device, generator=generator)
    return (y + shift) % num_classes


def most_confusing_labels(logits: Tensor, y: Tensor) -> Tensor:
    """Bilateral AT's target: ŷ = argmax_{k≠y} z_k, the wrong class the model finds likeliest."""
    if logits.dim() != 2 or logits.shape[1] < 2 or logits.shape[0] != len(y):
        raise ValueError(f"logits must have shape (N, C) with C >= 2 and N = len(y) = {len(y)}; "
                         f"got {tuple(logits.shape)}")
    return logits.detach().scatter(1, y[:, None], -torch.inf).argmax(1)


def smooth_labels(y: Tensor, num_classes: int, delta: float = 0.5) -> Tensor:
    """Label smoothing of the authors' Feature Scattering code: 1 − δ on the true class and
    δ / (C − 1) on every other class (not torch's ε/C-to-all variant)."""
    if not 0 <= delta < 1:
        raise ValueError(f"delta must be in [0, 1); got {delta}")
    target = torch.full((len(y), num_classes), delta / (num_classes - 1), device=y.device)
    return target.scatter_(1, y[:, None], 1.0 - delta)


def bilateral_labels(logits: Tensor, y: Tensor, gamma: float = 0.01, multi: float = 9.0) -> Tensor:
    """Bilateral AT's adversarial labels (Wang & Zhang 2019, TF `adv_labels`), computed from the
    clean logits: with L_k = −log p_k, m and M the min and max of L_k over wrong classes,
    D = Σ_{k≠y}(L_k − m + γ) and δ = 1 / (1 + multi · (M − m + γ) / D), a wrong class gets
    δ · (L_k − m + γ) / D and the true class 1 − δ."""
    with torch.no_grad():
        nll = -torch.log_softmax(logits.float(), dim=1)
        wrong = torch.ones_like(nll, dtype=torch.bool).scatter_(1, y[:, None], False)
        inf = torch.finfo(nll.dtype).max
        m = nll.masked_fill(~wrong, inf).amin(1, keepdim=True)
        big = nll.masked_fill(~wrong, -inf).amax(1, keepdim=True)
        shifted = (nll - m + gamma) * wrong
        d = shifted.sum(1, keepdim=True)
        delta = 1.0 / (1.0 + multi * (big - m + gamma) / d)
        target = delta * shifted / d
        return target.scatter_(1, y[:, None], 1.0 - delta)


def soft_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Mean over the batch of −Σ_k target_k log softmax(z)_k, for smoothed labels."""
    return -(target * torch.log_softmax(logits.float(), dim=1)).sum(1).mean()
