"""Losses an attack ascends: cross-entropy (the paper's) and the Carlini–Wagner margin.

Both are summed over the batch, so every sample's gradient is independent of the batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cross_entropy", "margin_loss", "ATTACK_LOSSES"]


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
