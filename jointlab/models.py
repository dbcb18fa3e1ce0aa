"""Wide Residual Networks (Zagoruyko & Komodakis 2016), the architecture of the paper and of
Madry et al.: WRN-28-10 for the paper's runs, small widths such as WRN-16-2 for a laptop CPU.
"""

from __future__ import annotations

import re
from contextlib import contextmanager

import torch
from torch import Tensor, nn

__all__ = ["WideResNet", "wrn", "build_model", "parse_arch", "eval_mode", "model_device", "predict",
           "accuracy"]


class _Block(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3 plus shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (
            None if c_in == c_out and stride == 1 else nn.Conv2d(c_in, c_out, 1, stride, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(x))
        # the projection shortcut takes the pre-activated input, as in the reference WRN code
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        return out + shortcut


class WideResNet(nn.Module):
    """WRN-depth-widen: a 3x3 stem, three groups of (depth − 4) / 6 blocks of widths
    16k, 32k, 64k (strides 1, 2, 2), then BN-ReLU, global average pooling and a linear layer.
    Works for any input side (28 for Fashion-MNIST, 32 for CIFAR/SVHN)."""

    def __init__(self, depth: int = 28, widen: int = 10, num_classes: int = 10,
                 in_channels: int = 3, dropout: float = 0.0):
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 34, ...); got {depth}")
        for name, v in (("widen", widen), ("num_classes", num_classes), ("in_channels", in_channels)):
            if v < 1:
                raise ValueError(f"{name} must be >= 1; got {v}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.depth, self.widen = depth, widen
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        blocks = []
        for g, stride in enumerate((1, 2, 2)):
            for i in range(n):
                c_in = widths[g] if i == 0 else widths[g + 1]
                blocks.append(_Block(c_in, widths[g + 1], stride if i == 0 else 1, dropout))
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(widths[-1])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(widths[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn(self.blocks(self.stem(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1))


def wrn(depth: int = 28, widen: int = 10, num_classes: int = 10, in_channels: int = 3,
        dropout: float = 0.0) -> WideResNet:
    """WRN-depth-widen; `wrn()` is the paper's WRN-28-10, `wrn(16, 2)` a CPU-sized one."""
    return WideResNet(depth, widen, num_classes, in_channels, dropout)


_ARCH = re.compile(r"^wrn-(\d+)-(\d+)$")


def parse_arch(arch: str) -> tuple[int, int]:
    """'wrn-28-10' -> (28, 10)."""
    m = _ARCH.match(str(arch).lower())
    if not m:
        raise ValueError(
            f"arch must look like 'wrn-DEPTH-WIDEN', e.g. 'wrn-28-10' or 'wrn-16-2'; got {arch!r}"
        )
    return int(m.group(1)), int(m.group(2))


def build_model(arch: str, num_classes: int = 10, in_channels: int = 3) -> WideResNet:
    """Build a model from its name, e.g. `build_model('wrn-16-2', 10, 1)` for Fashion-MNIST."""
    depth, widen = parse_arch(arch)
    return wrn(depth, widen, num_classes, in_channels)


# --------------------------------------------------------------------------- any model


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter, else of its first buffer, else the CPU."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


@contextmanager
def eval_mode(model: nn.Module):
    """Put every submodule in eval mode; restore each one's own mode afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 512) -> Tensor:
    """Predicted labels of x (on the CPU), in eval mode; the caller's mode is restored."""
    device = model_device(model)
    with eval_mode(model):
        return torch.cat([model(x[i:i + batch_size].to(device)).argmax(1).cpu()
                          for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 512) -> float:
    """Fraction of x classified as y."""
    return (predict(model, x, batch_size) == y.cpu()).float().mean().item()
