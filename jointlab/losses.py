"""Losses an attack ascends: cross-entropy (the paper's) and the Carlini–Wagner margin.

Both are summed over the batch, so every sample's gradient is independent of the batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cross_entropy", "margin_loss", "ATTACK_LOSSES", "random_wrong_labels", "most_confusing_labels",
           "smooth_labels", "bilateral_labels", "soft_cross_entropy"]


def cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Σ_n CE(z_n, y_n), the loss of the paper's attacks."""
    return F.cross_entropy(logits, y, reduction="sum")


def margin_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Σ_n (max_{k≠y} z_k − z_y), the CW margin on logits.

    Positive exactly when the sample is misclassified. Unlike cross-entropy it does not saturate
    when a (label-smoothed, one-step trained) model is over-confident, so it exposes gradient
    masking that makes CE-PGD overstate robustness (see docs on the pitfall in paper.md).
    """
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], torch.finfo(logits.dtype).min)
    return (others.amax(dim=1) - true).sum()


ATTACK_LOSSES = {"ce": cross_entropy, "cw": margin_loss}


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
