"""Accuracy under attack, batched, for tensors already in memory."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .attacks import _eval_mode

__all__ = ["predict", "accuracy", "robust_accuracy"]


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 512) -> Tensor:
    """Predicted labels of x in eval mode (the caller's mode is restored)."""
    device = next(model.parameters()).device
    with _eval_mode(model):
        return torch.cat([model(x[i:i + batch_size].to(device)).argmax(1).cpu()
                          for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 512) -> float:
    """Fraction of x classified as y."""
    return (predict(model, x, batch_size) == y.cpu()).float().mean().item()


def robust_accuracy(model: nn.Module, x: Tensor, y: Tensor, attack: Callable | None = None, *,
                    batch_size: int = 256, progress: bool = False, desc: str = "attack",
                    **attack_kwargs) -> float:
    """Accuracy on attack(model, x, y, **attack_kwargs).x_adv, batch by batch (clean if None)."""
    if attack is None:
        return accuracy(model, x, y, batch_size)
    device = next(model.parameters()).device
    correct = 0
    for i in tqdm(range(0, len(x), batch_size), desc=desc, leave=False, disable=not progress):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        x_adv = attack(model, xb, yb, **attack_kwargs).x_adv
        correct += (predict(model, x_adv, batch_size) == yb.cpu()).sum().item()
    return correct / max(len(x), 1)
