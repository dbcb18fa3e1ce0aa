"""A model built the way most code outside the kit builds one, for notebook 08 ("Evaluate your own
model"): images in [0, 1] normalized by the training set's mean and std in the data pipeline (not
inside the model), a small plain CNN, a plain PyTorch training loop. Nothing here uses jointlab's
conventions; `jointlab.wrap` meets the model at the boundary.

    model = small_cnn()                       # also `--model jointlab.outside:small_cnn` on the CLI
    train_small_cnn(model, images01, labels)  # [0, 1] images; normalized with MEAN, STD inside
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MEAN", "STD", "small_cnn", "train_small_cnn", "normalize"]

# Fashion-MNIST's training images in [0, 1]: their mean and std (one channel)
MEAN, STD = 0.2860, 0.3530


def small_cnn(num_classes: int = 10, channels: int = 1) -> nn.Module:
    """Two conv blocks and a linear head (~100 k parameters): the kind of model a tutorial trains."""
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(),
        nn.Linear(128, num_classes))


def normalize(images01: Tensor) -> Tensor:
    """The data pipeline's normalization, outside the model (as torchvision's transforms.Normalize)."""
    return (images01 - MEAN) / STD


def train_small_cnn(model: nn.Module, images01: Tensor, labels: Tensor, *, epochs: int = 2,
                    batch_size: int = 128, lr: float = 1e-3, seed: int = 0) -> list[float]:
    """Plain training (Adam, cross-entropy) on normalized [0, 1] images; returns the loss per epoch."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=g)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(model(normalize(images01[idx])), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(order))
    return losses
