"""Threat models: the constraint sets an attack searches, one small object each.

The seam follows MadryLab's `robustness`: a threat model knows how to draw a random start inside
its set, take one ascent step along a gradient, and project back. The attack loop in
`jointlab.attacks` is the same for every threat model; only the schedule of which variable is
updated when differs.

Two parameterizations of an adversarial image x̄ (paper Eq. 10):

    x̄ = clip_[-1, 1]( T(x, ω) + δ ),   ω ∈ FlowBall,  δ ∈ PixelBall around T(x, ω)

Units follow the paper: pixel budgets and steps in 0–255 intensity levels (8 means 8/255 of the
full range, i.e. 16/255 in the [-1, 1] image range), flow budgets and steps in pixels.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .warp import largest_not_above, project_flow, vector_sign

__all__ = ["levels_to_unit", "PixelBall", "FlowBall"]


def levels_to_unit(levels: float) -> float:
    """Convert a pixel budget in 0–255 intensity levels into [-1, 1] image units (× 2/255)."""
    return float(levels) * 2.0 / 255.0


def _check_budget(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a non-negative number; got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {value}")
    return float(value)


class PixelBall:
    """ℓ∞ pixel threat (Eq. 3): S_x = {δ : ‖δ‖∞ ≤ ε_x, base + δ ∈ [-1, 1]^n}.

    Args:
        eps: radius ε_x in 0–255 levels (paper: 8).
        step: step size β in 0–255 levels (paper: 2 for multi-step attacks, ε_x for one step).

    `delta` tensors are in [-1, 1] image units; `self.eps` and `self.step_size` hold the
    converted values.
    """

    name = "delta"

    def __init__(self, eps: float = 8.0, step: float = 2.0):
        self.eps_levels = _check_budget("eps_x", eps)
        self.step_levels = _check_budget("step_x", step)
        self.eps = levels_to_unit(self.eps_levels)
        self.step_size = levels_to_unit(self.step_levels)

    def zeros(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)

    def random_init(self, x: Tensor) -> Tensor:
        """δ⁰ ~ U[-ε_x, ε_x]^n, projected so that x + δ⁰ stays in [-1, 1]."""
        delta = (torch.rand_like(x) * 2.0 - 1.0) * self.eps
        return self.project(delta, x)

    @staticmethod
    def direction(grad: Tensor) -> Tensor:
        """Steepest ascent of a linear function in the ℓ∞ ball: sign(∇_δ L)."""
        return grad.sign()

    def step(self, delta: Tensor, grad: Tensor, size: float | Tensor | None = None) -> Tensor:
        """One ascent step: δ + β · sign(∇_δ L); `size` (a number or a per-sample tensor) overrides β."""
        return delta + (self.step_size if size is None else size) * self.direction(grad)

    def project(self, delta: Tensor, base: Tensor) -> Tensor:
        """P_{S_x}: clip δ so that base + δ lies in [-1, 1] and ‖δ‖∞ ≤ ε_x.

        The ε_x clip (with ε_x rounded down to δ's dtype) comes last so that the budget holds
        exactly despite the rounding of (base + δ) − base; the box then holds up to one ulp, and
        attacks clip x̄ itself.
        """
        eps = largest_not_above(self.eps, delta.dtype)
        delta = (base + delta.clamp(-eps, eps)).clamp(-1.0, 1.0) - base
        return delta.clamp(-eps, eps)

    def __repr__(self) -> str:
        return f"PixelBall(eps={self.eps_levels:g}/255 levels, step={self.step_levels:g})"


class FlowBall:
    """ℓ2,∞ flow threat (Eq. 6): S_ω = {ω : ‖ω‖_{2,∞} ≤ ε_ω}, every flow vector at most ε_ω long.

    Args:
        eps: radius ε_ω in pixels (paper: 0.3 = 1 % of a 32-pixel side).
        step: step size α in pixels (paper: 0.15 at test time, 0.1 in multi-step training).
    """

    name = "flow"

    def __init__(self, eps: float = 0.3, step: float = 0.15):
        self.eps = _check_budget("eps_w", eps)
        self.step_size = _check_budget("step_w", step)

    def zeros(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        return x.new_zeros((n, 2, h, w))

    def random_init(self, x: Tensor) -> Tensor:
        """ω⁰ ~ B(0, ε_ω): every flow vector uniform in the disc of radius ε_ω."""
        n, _, h, w = x.shape
        radius = self.eps * torch.rand((n, 1, h, w), dtype=x.dtype, device=x.device).sqrt()
        angle = 2.0 * math.pi * torch.rand((n, 1, h, w), dtype=x.dtype, device=x.device)
        return self.project(torch.cat((radius * angle.cos(), radius * angle.sin()), dim=1))

    @staticmethod
    def direction(grad: Tensor) -> Tensor:
        """Steepest ascent of a linear function in the ℓ2,∞ ball: the vector sign sign→(∇_ω L) (Eq. 8)."""
        return vector_sign(grad)

    def step(self, flow: Tensor, grad: Tensor, size: float | Tensor | None = None) -> Tensor:
        """One ascent step of the generalized gradient sign method: ω + α · sign→(∇_ω L) (Eq. 8);
        `size` (a number or a per-sample tensor) overrides α."""
        return flow + (self.step_size if size is None else size) * self.direction(grad)

    def project(self, flow: Tensor, base: Tensor | None = None) -> Tensor:
        """P_{S_ω}: rescale flow vectors longer than ε_ω (Eq. 6); `base` is unused."""
        return project_flow(flow, self.eps)

    def __repr__(self) -> str:
        return f"FlowBall(eps={self.eps:g} px, step={self.step_size:g} px)"
