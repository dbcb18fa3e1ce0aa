"""Training. For now: a plain supervised loop used by the demo and the test fixtures; the
adversarial methods of the paper (Alg. 3 and the Table 1 rows) build on `train_epoch`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

__all__ = ["train_epoch", "fit"]


def train_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, *,
                device: torch.device | str = "cpu", progress: bool = True, desc: str = "train") -> dict:
    """One epoch of SGD on cross-entropy; returns {'loss', 'acc'} averaged over the epoch."""
    model.train()
    total = correct = 0
    loss_sum = torch.zeros((), device=device)
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress)
    for x, y in bar:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        total += len(y)
    return {"loss": loss_sum.item() / max(total, 1), "acc": correct / max(total, 1)}


def fit(model: nn.Module, loader: DataLoader, epochs: int = 1, lr: float = 0.05, *,
        device: torch.device | str = "cpu", progress: bool = True) -> list[dict]:
    """Natural training with SGD (momentum 0.9, weight decay 5e-4) and a cosine learning rate."""
    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * len(loader))
    history = []
    for epoch in range(epochs):
        stats = {}
        model.train()
        total = correct = 0
        loss_sum = 0.0
        for x, y in tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=not progress):
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            total += len(y)
        stats = {"epoch": epoch + 1, "loss": loss_sum / total, "acc": correct / total}
        history.append(stats)
    return history
