"""Metrics: predictions and accuracy (from `jointlab.models`, which the trainer shares), the binomial
standard error every reported accuracy carries, and the batching of evaluation data."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from ..models import accuracy, predict

__all__ = ["predict", "accuracy", "standard_error", "paired_difference", "noise_word", "difference_text",
           "batches", "num_batches"]


def standard_error(accuracy: float, n: int) -> float:
    """Binomial standard error (%) of an accuracy (%) measured on n images: 100 · sqrt(p(1 − p) / n)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer (the number of images); got {n!r}")
    if not 0 <= accuracy <= 100:
        raise ValueError(f"accuracy must be a percentage in [0, 100]; got {accuracy}")
    p = accuracy / 100
    return 100 * math.sqrt(p * (1 - p) / n)


def paired_difference(a, b, reps: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """The difference of two accuracies (%) measured on the same images, a − b, with a paired bootstrap
    interval: `a` and `b` hold one 0/1 (wrong/right) per image (or any per-image score, such as a
    difference of two records), in the same image order; the images are
    resampled with replacement, both records together (so the images both get right or both get
    wrong add no noise). Returns {"difference", "low", "high", "images"}."""
    a = torch.as_tensor(a, dtype=torch.float64).flatten()
    b = torch.as_tensor(b, dtype=torch.float64).flatten()
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"a and b must hold one 0/1 per image of the same images; got {len(a)} and {len(b)}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(a), (reps, len(a)), generator=gen)
    diffs = 100 * (a[idx] - b[idx]).mean(1)
    tail = (1 - level) / 2
    low, high = torch.quantile(diffs, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return {"difference": 100 * float((a - b).mean()), "low": low, "high": high, "images": len(a)}


def noise_word(d: dict) -> str:
    """"within noise" when the interval of a `paired_difference` holds 0, else "beyond noise"."""
    return "within noise" if d["low"] <= 0 <= d["high"] else "beyond noise"


def difference_text(d: dict) -> str:
    """A `paired_difference` as the lessons read it out: "+4.2 [+1.0, +7.5] points (beyond noise)"."""
    return f"{d['difference']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}] points ({noise_word(d)})"


def batches(data, batch_size: int) -> Iterable[tuple[Tensor, Tensor]]:
    """`data` in batches: a pair of tensors (x, y) sliced, any other iterable of (x, y) as it is."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], Tensor):
        x, y = data
        return ((x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size))
    return data


def num_batches(data, batch_size: int) -> int | None:
    """How many batches `batches(data, batch_size)` yields, when known (for progress bars)."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], Tensor):
        return -(-len(data[0]) // batch_size)
    return len(data) if hasattr(data, "__len__") else None
