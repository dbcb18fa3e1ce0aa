"""Threat models: the constraint sets an attack searches, one small object each.

The seam follows MadryLab's `robustness`: a threat model knows how to draw a random start inside
its set, take one ascent step along a gradient, and project back. The attack loop in
`jointlab.attacks` is the same for every threat model; only the schedule of which variable is
updated when differs.

The joint threat model composes the two (paper Eq. 10), and `JointThreat` owns that composition:

    x̄ = clip_[-1, 1]( T(x, ω) + δ ),   ω ∈ FlowBall,  δ ∈ PixelBall around T(x, ω)

Units follow the paper: pixel budgets and steps in 0–255 intensity levels (8 means 8/255 of the
full range, i.e. 16/255 in the [-1, 1] image range), flow budgets and steps in pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .warp import flow_norm, largest_not_above, project_flow, vector_sign, warp

__all__ = ["levels_to_unit", "PixelBall", "FlowBall", "JointThreat", "compose"]


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
        rule: the ascent direction of a step, for the ablation in notebook 2: "vector_sign" (the
            paper's Eq. 8, the steepest ascent under ℓ2,∞), "sign" (FGSM's per-coordinate sign, the
            steepest ascent under ℓ∞: diagonal steps √2·α long) or "gradient" (the raw gradient,
            scaled so that the longest vector of each image is α long).
    """

    name = "flow"
    RULES = ("vector_sign", "sign", "gradient")

    def __init__(self, eps: float = 0.3, step: float = 0.15, rule: str = "vector_sign"):
        self.eps = _check_budget("eps_w", eps)
        self.step_size = _check_budget("step_w", step)
        if rule not in self.RULES:
            raise ValueError(f"rule must be one of {self.RULES}; got {rule!r}")
        self.rule = rule

    def zeros(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        return x.new_zeros((n, 2, h, w))

    def random_init(self, x: Tensor) -> Tensor:
        """ω⁰ ~ B(0, ε_ω): every flow vector uniform in the disc of radius ε_ω."""
        n, _, h, w = x.shape
        radius = self.eps * torch.rand((n, 1, h, w), dtype=x.dtype, device=x.device).sqrt()
        angle = 2.0 * math.pi * torch.rand((n, 1, h, w), dtype=x.dtype, device=x.device)
        return self.project(torch.cat((radius * angle.cos(), radius * angle.sin()), dim=1))

    def direction(self, grad: Tensor) -> Tensor:
        """The ascent direction of a step: the vector sign sign→(∇_ω L) (Eq. 8), the steepest ascent
        of a linear function in the ℓ2,∞ ball; or the ablation's per-coordinate sign or raw gradient."""
        if self.rule == "sign":
            return grad.sign()
        if self.rule == "gradient":
            return grad / flow_norm(grad).clamp_min(torch.finfo(grad.dtype).tiny).view(-1, 1, 1, 1)
        return vector_sign(grad)

    def step(self, flow: Tensor, grad: Tensor, size: float | Tensor | None = None) -> Tensor:
        """One ascent step of the generalized gradient sign method: ω + α · sign→(∇_ω L) (Eq. 8);
        `size` (a number or a per-sample tensor) overrides α."""
        return flow + (self.step_size if size is None else size) * self.direction(grad)

    def project(self, flow: Tensor, base: Tensor | None = None) -> Tensor:
        """P_{S_ω}: rescale flow vectors longer than ε_ω (Eq. 6); `base` is unused."""
        return project_flow(flow, self.eps)

    def __repr__(self) -> str:
        rule = "" if self.rule == "vector_sign" else f", rule={self.rule!r}"
        return f"FlowBall(eps={self.eps:g} px, step={self.step_size:g} px{rule})"


def compose(x: Tensor, flow: Tensor | None = None, delta: Tensor | None = None) -> Tensor:
    """Eq. 10: x̄ = clip_[-1, 1](T(x, ω) + δ), either part optional."""
    base = x if flow is None else warp(x, flow)
    return base if delta is None else (base + delta).clamp(-1.0, 1.0)


class JointThreat:
    """Eq. 10's threat model over a flow ball and/or a pixel ball: x̄ = T(x, ω) + δ, δ in the pixel ball
    centred on T(x, ω) (with one ball, that ball alone). It owns the composition and the re-centring of
    δ when ω moves, so an attack loop handles a dict {ball name: tensor} and nothing else."""

    ORDER = ("flow", "delta")  # ω before δ: δ's ball is centred on T(x, ω)

    def __init__(self, balls: Sequence[PixelBall | FlowBall]):
        named = {getattr(b, "name", None): b for b in balls}
        if (len(named) != len(balls) or not named or set(named) - set(self.ORDER)
                or not all(isinstance(b, (PixelBall, FlowBall)) for b in balls)):
            raise ValueError(f"threats must hold one PixelBall and/or one FlowBall; got {list(balls)!r}")
        self.balls = {name: named[name] for name in self.ORDER if name in named}
        self.names = tuple(self.balls)

    def centre(self, x: Tensor, var: dict[str, Tensor]) -> Tensor:
        """T(x, ω), the centre of the pixel ball (x itself without a flow)."""
        return warp(x, var["flow"]) if "flow" in var else x

    def start(self, x: Tensor, random: bool = True) -> dict[str, Tensor]:
        """The starting point: each ball's random start (δ's around T(x, ω⁰)), or zeros."""
        var: dict[str, Tensor] = {}
        if "flow" in self.balls:
            ball = self.balls["flow"]
            var["flow"] = ball.random_init(x) if random else ball.zeros(x)
        if "delta" in self.balls:
            ball = self.balls["delta"]
            with torch.no_grad():
                var["delta"] = ball.random_init(self.centre(x, var)) if random else ball.zeros(x)
        return var

    def image(self, x: Tensor, var: dict[str, Tensor], centre: Tensor | None = None) -> Tensor:
        """x̄ = T(x, ω) + δ, differentiable in both; a given `centre` (T(x, ω), detached) skips the warp
        when ω needs no gradient. No clip: δ lies in its ball around T(x, ω), so x̄ is in [-1, 1] and no
        pixel at the edge of the range loses its gradient to a clip."""
        x_bar = self.centre(x, var) if centre is None else centre
        return x_bar + var["delta"] if "delta" in var else x_bar

    def recentre(self, x: Tensor, var: dict[str, Tensor]) -> Tensor:
        """After ω moved: project δ onto its ball around the new T(x, ω) (in place in `var`); returns
        the new centre."""
        centre = self.centre(x, var)
        if "delta" in var:
            var["delta"] = self.balls["delta"].project(var["delta"], centre)
        return centre

    def move(self, x: Tensor, var: dict[str, Tensor], name: str, value: Tensor, centre: Tensor) -> Tensor:
        """Set variable `name` to `value` (a step already projected onto its ball); when ω moved and
        there is a δ, re-centre δ. Returns the pixel ball's centre, T(x, ω) (`centre` if unchanged)."""
        var[name] = value
        if name == "flow" and "delta" in var:
            return self.recentre(x, var)
        return centre

    def compose(self, x: Tensor, var: dict[str, Tensor]) -> Tensor:
        """The adversarial image of `var`: Eq. 10 with the final clip."""
        return compose(x, var.get("flow"), var.get("delta"))

    def __repr__(self) -> str:
        return f"JointThreat({', '.join(map(repr, self.balls.values()))})"
