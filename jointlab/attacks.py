"""Adversarial attacks: PGD (Eq. 3), the spatial attack (Alg. 1), the double-pass joint attack
(Alg. 2) and the Table 2 baselines (one-pass, cascade), all as one loop over threat models.

Every attack takes `(model, x, y, ...)` with x a batch (N, C, H, W) in [-1, 1] and y integer
labels (N,), and returns an `AttackResult` with `x_adv`, `delta` (pixel part, [-1, 1] units, or
None) and `flow` (flow part in pixels, (N, 2, H, W), or None). Budgets are in the paper's units:
ε_x and pixel steps in 0–255 levels, ε_ω and flow steps in pixels.

Common keywords:
    random_start: start from a random point in each threat model's set (default True; FGSM False).
    targeted: if True, `y` holds target labels and the attack *descends* the loss on them.
    loss: "ce" (cross-entropy, the paper's) or "cw" (margin loss, for strong evaluation).

Attacks put the model in eval mode and restore every submodule's mode afterwards, differentiate
with respect to the perturbation only (parameter `.grad`s are never touched), run on the device
and dtype of `x`, and respect their budgets exactly: ‖δ‖∞ ≤ ε_x, ‖ω‖_{2,∞} ≤ ε_ω, x_adv ∈ [-1, 1].

Example:
    >>> res = joint(model, x, y, eps_x=8, eps_w=0.3, steps=20)
    >>> (model(res.x_adv).argmax(1) == y).float().mean()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .losses import ATTACK_LOSSES
from .models import eval_mode
from .threats import FlowBall, JointThreat, PixelBall, compose

__all__ = [
    "AttackResult",
    "compose",
    "attack",
    "fgsm",
    "pgd",
    "spatial",
    "joint",
    "one_pass",
    "cascade",
    "apgd",
    "apgd_targeted",
    "apgd_checkpoints",
    "apgd_threat",
    "first_success",
    "THREATS",
    "ATTACKS",
    "AttackInfo",
    "threat_of",
    "SCHEDULES",
    "STEP_RULES",
    "trusted_inputs",
    "eval_mode",
]

# A schedule lists the passes of one attack step; each pass is one forward/backward that updates
# the named variables. This is the only thing that differs between the attacks of the paper.
SCHEDULES: dict[str, tuple[tuple[str, ...], ...]] = {
    "pixel": (("delta",),),  # PGD, Eq. 3
    "spatial": (("flow",),),  # Alg. 1
    "sp": (("flow",), ("delta",)),  # Alg. 2, double pass, spatial first
    "ps": (("delta",), ("flow",)),  # Alg. 2 with the passes swapped (Table 3)
    "one_pass": (("flow", "delta"),),  # Table 2 baseline: both from one gradient
}

_VALUE_TOLERANCE = 1e-5  # images may leave [-1, 1] by rounding from a conversion, not more
_CHECK_VALUES: ContextVar[bool] = ContextVar("jointlab_check_values", default=True)


@contextmanager
def trusted_inputs():
    """Skip the value checks of x (finite, in [-1, 1]) inside this block.

    Those checks read a value back from the device, a host-device sync per attack call; the
    trainer, whose batches come from `jointlab.data` and are in range by construction, skips them.
    Shape, dtype and argument checks still run.
    """
    token = _CHECK_VALUES.set(False)
    try:
        yield
    finally:
        _CHECK_VALUES.reset(token)


@dataclass
class AttackResult:
    """Output of an attack: x_adv = clip(T(x, flow) + delta), with `None` for an unused part."""

    x_adv: Tensor
    delta: Tensor | None
    flow: Tensor | None


def _check_inputs(model, x, y, steps, loss) -> tuple[Tensor, Tensor]:
    if not isinstance(model, nn.Module):
        hint = " (wrap a plain function first: jointlab.wrap(fn, input_range=...))" if callable(model) else ""
        raise ValueError(f"model must be a torch.nn.Module{hint}; got {type(model).__name__}")
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor of shape (N, C, H, W); got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor with values in [-1, 1]; got {x.dtype}")
    if _CHECK_VALUES.get() and x.numel():
        if not torch.isfinite(x).all():
            raise ValueError("x must be finite; it contains NaN or infinite values")
        if x.min() < -1 - _VALUE_TOLERANCE or x.max() > 1 + _VALUE_TOLERANCE:
            raise ValueError(
                f"x must have values in [-1, 1] (jointlab's image range); got min {x.min().item():.4g}, "
                f"max {x.max().item():.4g}. Scale [0, 1] images with x * 2 - 1."
            )
        # several images with contrast and not one pixel below 0: a [0, 1] batch (a constant grey
        # batch is a legal [-1, 1] input and passes)
        if x.shape[0] > 1 and x.min() >= 0 and x.max() > x.min():
            raise ValueError(
                f"x lies entirely in [0, 1] (min {x.min().item():.3g}, max {x.max().item():.3g}), but "
                "jointlab takes images in [-1, 1]: a [0, 1] batch would get twice the pixel budget. Pass "
                "x * 2 - 1, and wrap a model that takes [0, 1] images first: jointlab.wrap(model, "
                "input_range=(0, 1), mean=..., std=...)")
    if not isinstance(y, Tensor) or y.dim() != 1 or y.is_floating_point() or y.is_complex():
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"y must be a 1-D integer tensor of labels, shape (N,); got {shape}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y must have one label per image: x has {x.shape[0]}, y has {y.shape[0]}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    if not callable(loss) and loss not in ATTACK_LOSSES:
        raise ValueError(f"loss must be one of {sorted(ATTACK_LOSSES)} or a function (logits, y) -> "
                         f"per-sample losses; got {loss!r}")
    return x.detach().clamp(-1.0, 1.0), y.to(device=x.device, dtype=torch.long)


class _PGDRule:
    """The paper's step rule (Eq. 3, Alg. 1, Alg. 2): a fixed step, project, output the last iterate."""

    keeps_best = False

    def __init__(self, var: dict[str, Tensor], balls: dict, steps: int):
        pass

    def observe(self, losses: Tensor, var: dict[str, Tensor], fooled: Tensor) -> None:
        pass

    def update(self, name: str, ball, v: Tensor, grad: Tensor, base: Tensor) -> Tensor:
        return ball.project(ball.step(v, grad), base)

    def end_step(self, k: int, var: dict[str, Tensor]) -> bool:
        return False


def apgd_checkpoints(steps: int) -> list[int]:
    """APGD checkpoints w_j = ⌈p_j N⌉: p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − .03, .06)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    # rounded before ceil: the sums carry float error (p_3 · 100 = 57.00000000000001 would give 58, not 57)
    return sorted({math.ceil(round(q * steps, 9)) for q in p if 0 < q <= 1})


class _APGDRule:
    """APGD's step rule (Croce & Hein 2020), per sample and per threat variable: step size η starting
    at the ball's step (`apgd`: 2ε), momentum 0.75, and at each checkpoint η halved and the iterate
    moved back to the best point when fewer than ρ = 0.75 of the evaluations since the last checkpoint
    raised the loss, or when η was not halved last time and the best loss has not improved since.
    Outputs, as AutoAttack does, the last misclassified iterate of each sample the attack broke, else
    its best (highest-loss) point.

    With several variables (the joint threat) each has its own η; they are halved together, and the
    best point is the best (ω, δ) pair. After a restart the momentum of the restarted samples is reset.
    """

    keeps_best = True
    momentum, rho = 0.75, 0.75

    def __init__(self, var: dict[str, Tensor], balls: dict, steps: int):
        some = next(iter(var.values()))
        n, dev = some.shape[0], some.device
        self.eta = {k: torch.full((n, 1, 1, 1), balls[k].step_size, dtype=v.dtype, device=dev)
                    for k, v in var.items()}
        self.prev: dict[str, Tensor | None] = dict.fromkeys(var)
        self.best = {k: v.detach().clone() for k, v in var.items()}
        self.adversarial = {k: v.detach().clone() for k, v in var.items()}  # last misclassified iterate
        self.fooled = torch.zeros(n, dtype=torch.bool, device=dev)
        self.best_loss = torch.full((n,), -math.inf, device=dev)
        self.last_loss: Tensor | None = None
        self.successes = torch.zeros(n, device=dev)
        self.evaluations = 0
        self.checkpoints = set(apgd_checkpoints(steps))
        self.best_at_checkpoint = self.best_loss.clone()
        self.halved_last = torch.zeros(n, dtype=torch.bool, device=dev)

    def observe(self, losses: Tensor, var: dict[str, Tensor], fooled: Tensor) -> None:
        losses = losses.detach().float()
        better = losses > self.best_loss
        for k, v in var.items():
            self.best[k][better] = v.detach()[better]
            self.adversarial[k][fooled] = v.detach()[fooled]
        self.fooled |= fooled
        self.best_loss = torch.where(better, losses, self.best_loss)
        if self.last_loss is not None:
            self.successes += (losses > self.last_loss).float()
            self.evaluations += 1
        self.last_loss = losses

    def update(self, name: str, ball, v: Tensor, grad: Tensor, base: Tensor) -> Tensor:
        z = ball.project(ball.step(v, grad, self.eta[name]), base)
        prev, self.prev[name] = self.prev[name], v
        if prev is None:  # the first step has no momentum
            return z
        a = self.momentum
        return ball.project(v + a * (z - v) + (1 - a) * (v - prev), base)

    def end_step(self, k: int, var: dict[str, Tensor]) -> bool:
        """At a checkpoint, halve η and restart from the best point where progress stalled."""
        if k + 1 not in self.checkpoints:
            return False
        few_successes = self.successes < self.rho * max(self.evaluations, 1)
        stalled = ~self.halved_last & (self.best_loss <= self.best_at_checkpoint)
        halve = few_successes | stalled
        for name in var:
            self.eta[name][halve] /= 2
            var[name][halve] = self.best[name][halve]
            if self.prev[name] is not None:
                self.prev[name][halve] = self.best[name][halve]
        self.halved_last, self.best_at_checkpoint = halve, self.best_loss.clone()
        self.successes.zero_()
        self.evaluations = 0
        return bool(halve.any())

    def result(self) -> dict[str, Tensor]:
        """The last misclassified iterate where there is one, else the best point."""
        return {k: torch.where(self.fooled.view(-1, *[1] * (v.dim() - 1)), self.adversarial[k], v)
                for k, v in self.best.items()}


STEP_RULES = {"pgd": _PGDRule, "apgd": _APGDRule}


def attack(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    threats: Sequence[PixelBall | FlowBall] | JointThreat,
    schedule: Sequence[Sequence[str]],
    steps: int,
    *,
    random_start: bool = True,
    targeted: bool = False,
    loss: str | Callable = "ce",
    rule: str = "pgd",
) -> AttackResult:
    """The one attack loop: `steps` times, run each pass of `schedule` (a forward/backward that
    updates the named threat variables by `step` then `project`). The threat model (`JointThreat`,
    Eq. 10) composes x̄ = T(x, ω) + δ and keeps δ's ball centred on T(x, ω) as ω moves.

    `rule` chooses how a variable moves along its ball's steepest-ascent direction: "pgd" (the
    paper's: fixed step, last iterate) or "apgd" (the ball's step halved at checkpoints, momentum,
    restarts from the best point; returns the last misclassified iterate, else the best point; see
    `apgd`). `loss` is a name of `ATTACK_LOSSES` or a function (logits, y) -> per-sample loss to ascend.

    Example (Alg. 2 by hand): `attack(model, x, y, [FlowBall(0.3, 0.15), PixelBall(8, 2)],
    SCHEDULES["sp"], steps=20)`.
    """
    x, y = _check_inputs(model, x, y, steps, loss)
    if rule not in STEP_RULES:
        raise ValueError(f"rule must be one of {sorted(STEP_RULES)}; got {rule!r}")
    threat = threats if isinstance(threats, JointThreat) else JointThreat(list(threats))
    for p in schedule:
        if not p or any(name not in threat.balls for name in p):
            raise ValueError(f"schedule passes must name threats among {sorted(threat.balls)}; got {p!r}")
    loss_fn = loss if callable(loss) else ATTACK_LOSSES[loss]
    sign = -1.0 if targeted else 1.0  # targeted attacks descend the loss on the target label

    def objective(var, centre, names):
        # a pass that moves ω differentiates through the warp; the others reuse the detached centre
        logits = model(threat.image(x, var, None if "flow" in names else centre))
        with torch.no_grad():  # did this iterate fool the model (reach the target, when targeted)?
            fooled = (logits.argmax(1) == y) if targeted else (logits.argmax(1) != y)
        return sign * loss_fn(logits, y), fooled

    with eval_mode(model), torch.enable_grad():
        var = threat.start(x, random_start)
        with torch.no_grad():
            centre = threat.centre(x, var)  # T(x, ω) for the current ω, detached
        step_rule = STEP_RULES[rule](var, threat.balls, steps)

        for k in range(steps):
            for names in schedule:
                for name in names:
                    var[name].requires_grad_(True)
                losses, fooled = objective(var, centre, names)
                grads = dict(zip(names, torch.autograd.grad(losses.sum(), [var[n] for n in names]),
                                 strict=True))
                with torch.no_grad():
                    for name in names:
                        var[name] = var[name].detach()
                    step_rule.observe(losses, var, fooled)
                    for name in threat.names:  # in the threat's order: δ's ball follows ω
                        if name in grads:
                            ball = threat.balls[name]
                            centre = threat.move(x, var, name,
                                                 step_rule.update(name, ball, var[name], grads[name], centre),
                                                 centre)
            with torch.no_grad():
                if step_rule.end_step(k, var):  # moved back to the best point
                    centre = threat.centre(x, var)
        if step_rule.keeps_best:  # the last iterate has not been evaluated yet
            with torch.no_grad():
                losses, fooled = objective(var, centre, threat.names)
                step_rule.observe(losses, var, fooled)
                var = step_rule.result()

    with torch.no_grad():
        x_adv = threat.compose(x, var)
    return AttackResult(x_adv=x_adv, delta=var.get("delta"), flow=var.get("flow"))


def first_success(model: nn.Module, x: Tensor, y: Tensor, attempts: Sequence[Callable],
                  robust: Tensor | None = None) -> tuple[AttackResult, Tensor]:
    """AutoAttack's survivor rule: run `attempts` one after the other, each only on the images that no
    attempt before it broke, and keep per image the first adversarial example found (else the last
    attempt's point). An attempt is a function (x, y, idx) -> AttackResult on the images `idx` of the
    batch; `robust` (default: those the model classifies correctly) marks the images to attack.
    Returns the combined result and, per image, the index of the attempt that broke it (-1: none)."""
    if robust is None:
        with torch.no_grad(), eval_mode(model):
            robust = model(x).argmax(1) == y
    robust = robust.clone()
    x_adv, parts = x.detach().clone(), {}
    by = torch.full((len(x),), -1, dtype=torch.long, device=x.device)
    for j, attempt in enumerate(attempts):
        idx = robust.nonzero().squeeze(1)
        if len(idx) == 0:
            break
        res = attempt(x[idx], y[idx], idx)
        x_adv[idx] = res.x_adv.detach()
        for name in ("delta", "flow"):
            part = getattr(res, name)
            if part is not None:
                parts.setdefault(name, part.new_zeros((len(x), *part.shape[1:])))[idx] = part.detach()
        with torch.no_grad(), eval_mode(model):
            broken = model(res.x_adv).argmax(1) != y[idx]
        by[idx[broken]] = j
        robust[idx[broken]] = False
    return AttackResult(x_adv=x_adv, delta=parts.get("delta"), flow=parts.get("flow")), by


def fgsm(model, x, y, eps_x: float = 8, *, random_start=False, targeted=False, loss="ce"):
    """Fast gradient sign method (Goodfellow et al. 2015): one ℓ∞ step of size ε_x from x.

    Args: eps_x in 0–255 levels (paper: 8). Returns an AttackResult with `flow=None`.
    """
    return attack(model, x, y, [PixelBall(eps_x, eps_x)], SCHEDULES["pixel"], 1,
                  random_start=random_start, targeted=targeted, loss=loss)


def pgd(model, x, y, eps_x: float = 8, step_x: float = 2, steps: int = 20, *,
        random_start=True, targeted=False, loss="ce"):
    """Eq. 3, projected gradient descent in the ℓ∞ pixel ball (Madry et al. 2018).

    x ← P_{S_x}(x + β · sign(∇_x L)), S_x = {‖x̄ − x‖∞ ≤ ε_x} ∩ [-1, 1]^n.
    Args: eps_x, step_x (β) in 0–255 levels (paper: 8 and 2), steps (paper: 20 or 100).
    Example: `pgd(model, x, y, eps_x=8, step_x=2, steps=20).x_adv`
    """
    return attack(model, x, y, [PixelBall(eps_x, step_x)], SCHEDULES["pixel"], steps,
                  random_start=random_start, targeted=targeted, loss=loss)


def spatial(model, x, y, eps_w: float = 0.3, step_w: float = 0.15, steps: int = 20, *,
            random_start=True, targeted=False, loss="ce"):
    """Alg. 1, the budgeted flow-field attack by the generalized gradient sign method.

    ω ← P_{S_ω}(ω + α · sign→(∇_ω L(T(x, ω), y))) with S_ω = {‖ω‖_{2,∞} ≤ ε_ω}. The flow is
    accumulated and always applied to the original x (warping a warped image would blur it).
    Args: eps_w, step_w (α) in pixels (paper: 0.3 and 0.15), steps (paper: 20).
    Example: `spatial(model, x, y, eps_w=0.3).flow`
    """
    return attack(model, x, y, [FlowBall(eps_w, step_w)], SCHEDULES["spatial"], steps,
                  random_start=random_start, targeted=targeted, loss=loss)


def _check_order(order):
    if order not in ("sp", "ps"):
        raise ValueError(f"order must be 'sp' (spatial pass first) or 'ps'; got {order!r}")
    return order


def joint(model, x, y, eps_x: float = 8, eps_w: float = 0.3, step_x: float = 2,
          step_w: float = 0.15, steps: int = 20, order: str = "sp", *,
          random_start=True, targeted=False, loss="ce"):
    """Alg. 2, the double-pass joint attack on x̄ = T(x, ω) + δ (Eq. 10).

    Each step makes two forward/backward passes: one updates ω with the vector sign and projects,
    the next (with the new ω) updates δ with the sign and projects; `order="ps"` swaps them.
    Args: eps_x, step_x in 0–255 levels (8, 2); eps_w, step_w in pixels (0.3, 0.15); steps (20).
    Example: `joint(model, x, y, order="sp").x_adv`
    """
    return attack(model, x, y, [FlowBall(eps_w, step_w), PixelBall(eps_x, step_x)],
                  SCHEDULES[_check_order(order)], steps,
                  random_start=random_start, targeted=targeted, loss=loss)


def one_pass(model, x, y, eps_x: float = 8, eps_w: float = 0.3, step_x: float = 2,
             step_w: float = 0.15, steps: int = 20, *, random_start=True, targeted=False, loss="ce"):
    """Table 2 baseline: one forward/backward per step updates ω and δ from the same gradient."""
    return attack(model, x, y, [FlowBall(eps_w, step_w), PixelBall(eps_x, step_x)],
                  SCHEDULES["one_pass"], steps,
                  random_start=random_start, targeted=targeted, loss=loss)


def cascade(model, x, y, eps_x: float = 8, eps_w: float = 0.3, step_x: float = 2,
            step_w: float = 0.15, steps: int = 20, *, random_start=True, targeted=False, loss="ce"):
    """Table 2 baseline: a full spatial attack, then a full PGD attack on its output (two
    isolated modules, `steps` each); δ is centred on the warped image T(x, ω)."""
    kw = dict(random_start=random_start, targeted=targeted, loss=loss)
    first = spatial(model, x, y, eps_w, step_w, steps, **kw)
    second = pgd(model, first.x_adv, y, eps_x, step_x, steps, **kw)
    return AttackResult(x_adv=second.x_adv, delta=second.delta, flow=first.flow)


def apgd_threat(threat: str, eps_x: float = 8, eps_w: float = 0.3, order: str = "sp",
                max_step_w: float | None = None) -> tuple[JointThreat, tuple]:
    """The threat model and schedule of a named threat (one of THREATS), with APGD's initial steps 2ε
    (the flow's at most `max_step_w` pixels)."""
    pixel = PixelBall(eps_x, 2 * eps_x)
    flow = FlowBall(eps_w, 2 * eps_w if max_step_w is None else min(2 * eps_w, max_step_w))
    if threat == "pixel":
        return JointThreat([pixel]), SCHEDULES["pixel"]
    if threat == "spatial":
        return JointThreat([flow]), SCHEDULES["spatial"]
    if threat == "joint":
        return JointThreat([flow, pixel]), SCHEDULES[_check_order(order)]
    raise ValueError(f"threat must be one of {THREATS}; got {threat!r}")


THREATS = ("pixel", "spatial", "joint")


@dataclass(frozen=True)
class AttackInfo:
    """One named attack of the kit: its function, the threat model it searches, how it is labelled."""

    fn: Callable
    threat: str  # one of THREATS: the ball (pixel ℓ∞, flow ℓ2,∞, or both) its perturbation lies in
    label: str
    extra: dict = field(default_factory=dict)  # fixed keywords, e.g. order="ps"

    @property
    def uses_x(self) -> bool:  # has a pixel part δ (ε_x)
        return self.threat != "spatial"

    @property
    def uses_w(self) -> bool:  # has a flow part ω (ε_ω)
        return self.threat != "pixel"

    def budgets(self, eps_x: float, eps_w: float, step_x: float, step_w: float) -> dict:
        """The budget and step keywords this attack takes."""
        return ({"eps_x": eps_x, "step_x": step_x} if self.uses_x else {}) | (
            {"eps_w": eps_w, "step_w": step_w} if self.uses_w else {})


# The one registry of the kit's attacks: the trainer, the sliders, the explorer and the evaluation
# suites read names, threats and labels from here
ATTACKS: dict[str, AttackInfo] = {
    "fgsm": AttackInfo(fgsm, "pixel", "FGSM (one step)"),
    "pixel": AttackInfo(pgd, "pixel", "pixel (PGD)"),
    "spatial": AttackInfo(spatial, "spatial", "spatial (Alg. 1)"),
    "joint": AttackInfo(joint, "joint", "joint SP (Alg. 2)"),
    "joint-ps": AttackInfo(joint, "joint", "joint PS (Alg. 2)", {"order": "ps"}),
    "one-pass": AttackInfo(one_pass, "joint", "one-pass"),
    "cascade": AttackInfo(cascade, "joint", "cascade"),
}


def threat_of(fn: Callable) -> str:
    """The threat model an attack function of `ATTACKS` searches."""
    for info in ATTACKS.values():
        if info.fn is fn:
            return info.threat
    raise ValueError(f"not an attack of jointlab.attacks.ATTACKS: {getattr(fn, '__name__', fn)!r}")


def apgd(model, x, y, eps_x: float = 8, eps_w: float = 0.3, steps: int = 100, threat: str = "pixel",
         order: str = "sp", *, loss="ce", random_start=True, targeted=False, max_step_w: float | None = None):
    """APGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks") on any of our threat models.

    The step size of each variable starts at 2ε and is halved, with a restart from the best point,
    at the checkpoints of the paper's schedule when too few steps raised the loss or the best loss
    stalled; momentum 0.75; the steepest-ascent step of each ball (sign for the ℓ∞ ball of δ, the
    vector sign of Eq. 8 for the ℓ2,∞ ball of ω). The joint threat alternates the two variables in
    double passes (Alg. 2, `order` "sp" or "ps"), each with its own step size. Returns, as AutoAttack
    does, the last misclassified iterate of each image it broke, and the best (highest-loss) point of
    the others.

    Args: eps_x in 0–255 levels, eps_w in pixels, steps = N_iter (paper: 100), threat "pixel" |
    "spatial" | "joint", loss "ce" | "dlr" | "cw" or a function (logits, y) -> per-sample loss,
    max_step_w: a cap (pixels) on the flow's step, which otherwise starts at 2ε_ω. The warp is linear
    only within about one pixel, so at flow budgets of several pixels a 2ε_ω step overshoots every
    useful direction (`strong_evaluate`'s huge-budget check caps it at 1 px).
    Example: `apgd(model, x, y, eps_x=8, threat="pixel", loss="dlr").x_adv`
    """
    if max_step_w is not None and (isinstance(max_step_w, bool) or not isinstance(max_step_w, (int, float))
                                   or not max_step_w > 0):
        raise ValueError(f"max_step_w must be a number > 0 (pixels) or None; got {max_step_w!r}")
    threat_model, schedule = apgd_threat(threat, eps_x, eps_w, order, max_step_w)
    return attack(model, x, y, threat_model, schedule, steps, random_start=random_start, targeted=targeted,
                  loss=loss, rule="apgd")


def apgd_targeted(model, x, y, eps_x: float = 8, eps_w: float = 0.3, steps: int = 100,
                  threat: str = "pixel", order: str = "sp", *, top_k: int = 9, random_start=True):
    """APGD-T (Croce & Hein 2020): APGD on the targeted DLR loss towards each of the `top_k` classes
    the clean image's logits rank highest after the prediction, one target after the other, each run
    only on the images that are still classified correctly. Returns, per image, the first
    misclassified point found (else the last target's best point).

    Example: `apgd_targeted(model, x, y, eps_x=8, threat="joint", top_k=3).x_adv`
    """
    from functools import partial

    from .losses import targeted_dlr_loss

    x, y = _check_inputs(model, x, y, steps, "ce")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1; got {top_k!r}")
    with torch.no_grad(), eval_mode(model):
        ranked = model(x).argsort(dim=1, descending=True)

    def towards(k):  # the attempt on the k-th most likely class of each image
        return lambda xs, ys, idx: apgd(model, xs, ys, eps_x, eps_w, steps, threat, order,
                                        random_start=random_start,
                                        loss=partial(targeted_dlr_loss, target=ranked[idx, k]))

    attempts = [towards(k) for k in range(1, min(top_k, ranked.shape[1] - 1) + 1)]
    everyone = torch.ones(len(x), dtype=torch.bool, device=x.device)
    return first_success(model, x, y, attempts, robust=everyone)[0]
