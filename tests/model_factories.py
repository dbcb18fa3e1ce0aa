"""Models built the way a researcher outside the kit builds them, for `--model module.path:factory`
(tests/test_interop.py): [0, 1] images, normalized outside the model."""

import torch
from torch import nn

from jointlab.train import load_model, shipped_checkpoint
from jointlab.zoo import lesson_configs

# Fashion-MNIST's per-channel statistics of the [0, 1] training images
MEAN, STD = 0.2860, 0.3530


class FromNormalized(nn.Module):
    """A jointlab lesson model that takes normalized [0, 1] images: (z · std + mean) · 2 − 1 first."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net((z * STD + MEAN) * 2 - 1)


class ZeroOne(nn.Module):
    """A jointlab model that takes [0, 1] images with no normalization (torchattacks' convention)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z * 2 - 1)


def lesson_path(name: str):
    """The shipped checkpoint of a lesson model (models/)."""
    cfg = lesson_configs()[name][0]
    return shipped_checkpoint(f"{cfg.method}-{cfg.key()}")


def madry_path():
    return lesson_path("madry")


def madry_normalized() -> nn.Module:
    return FromNormalized(load_model(madry_path()))
