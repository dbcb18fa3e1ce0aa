"""Gradient-free attacks, one for every threat: Square for the ℓ∞ pixel ball, a random search for the
ℓ2,∞ flow ball and both for the joint threat. They catch models that mask their gradients (a
quantized input, a saturated softmax), where every gradient attack is blind.

All three are one loop, the random search of Square Attack (Andriushchenko et al. 2020, "Square
Attack: a query-efficient black-box adversarial attack via random search", Alg. 1): from a starting
point, propose a random change of the perturbation, query the model, and keep the change for the
images whose margin loss rose. An image leaves the search once it is misclassified, so only the
images still robust are queried. The members differ only in their starting point and moves:

- `square`: vertical stripes of ±ε_x, then squares of the image set to ±ε_x (one sign per channel).
- `flow_search`: a grid of constant translations within ε_ω, then squares of flow vectors set to one
  random vector on the ε_ω circle (a local translation, the flow ball's counterpart of a vertex).
- `joint_search`: the stripes, the translation grid, then squares that move both parts at once, on
  x̄ = clip(T(x, ω) + δ) (Eq. 10) with δ projected again onto its ball around T(x, ω) after a flow move.

Budgets are in the paper's units (ε_x in 0–255 levels, ε_ω in pixels) and hold exactly, as in
`jointlab.attacks`; `queries` bounds the forward passes per image, the starting point included.
No gradient is taken; the model's modes are restored; `seed` draws from a local generator.

Example:
    >>> res = square(model, x, y, eps_x=8, queries=300, seed=0)
    >>> (model(res.x_adv).argmax(1) == y).float().mean()
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..attacks import AttackResult, _check_inputs, eval_mode
from ..losses import ATTACK_LOSSES, margin_loss
from ..threats import FlowBall, JointThreat, PixelBall
from ..warp import project_flow

__all__ = ["square", "flow_search", "joint_search", "square_side", "translation_grid", "SEARCH_LOSSES",
           "DEFAULT_QUERIES"]

# "margin" is Square's name for the CW margin (ATTACK_LOSSES' "cw"); the search ascends any of them
SEARCH_LOSSES = {"margin": margin_loss, **ATTACK_LOSSES}

# Square's paper spends 10,000 queries (AutoAttack 5,000), too many for the CPU suite; on the quick
# Madry model 300 bring Square to a transfer attack's accuracy and the flow search within 3 points of
# it (1,000 gain under a point for Square, ~4 for the flow search), for about the time of one 100-step
# APGD run (bench/README.md, "Gradient-free members: cost per image")
DEFAULT_QUERIES = 300

# Square's p schedule (its code, rescaled to any budget): p halves each time the search passes one of
# these fractions of its queries (10, 50, 200, ... of 10,000)
_HALVINGS = (0.001, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8)

# the translation grid: 8 directions (the axes and the diagonals) at these fractions of ε_ω
_GRID_RADII = (1.0, 2.0 / 3.0, 1.0 / 3.0)


def square_side(fraction: float, p_init: float, h: int, w: int) -> int:
    """The side of a square after `fraction` of the search: p (the share of the image a square covers)
    starts at p_init and halves at Square's fixed fractions of the budget; side = round(√(p·h·w)),
    at least 1 and at most the image's shorter side."""
    p = p_init / 2 ** sum(fraction > t for t in _HALVINGS)
    return min(max(round(math.sqrt(p * h * w)), 1), h, w)


def translation_grid(eps_w: float, dtype=torch.float32, device=None) -> Tensor:
    """The constant flows tried first, shape (G, 2): 8 directions (axes and diagonals) at each radius
    of `_GRID_RADII` × ε_ω, longest first (a rigid shift is the cheapest large flow to find)."""
    angles = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
    unit = torch.stack((angles.cos(), angles.sin()), dim=1)
    grid = torch.cat([r * eps_w * unit for r in _GRID_RADII])
    return grid.to(dtype=dtype, device=device)


def _square_masks(n: int, h: int, w: int, side: int, gen, device) -> Tensor:
    """One random square of `side` pixels per image, as a boolean mask (n, 1, h, w)."""
    top = torch.randint(0, h - side + 1, (n, 1), generator=gen, device=device)
    left = torch.randint(0, w - side + 1, (n, 1), generator=gen, device=device)
    rows, cols = torch.arange(h, device=device), torch.arange(w, device=device)
    in_rows = (rows >= top) & (rows < top + side)
    in_cols = (cols >= left) & (cols < left + side)
    return (in_rows[:, :, None] & in_cols[:, None, :])[:, None]


def _random_signs(shape, gen, like: Tensor) -> Tensor:
    """±1 with equal odds, in like's dtype and device."""
    bits = torch.randint(0, 2, shape, generator=gen, device=like.device)
    return (bits * 2 - 1).to(like.dtype)


def _pixel_square(delta: Tensor, base: Tensor, pixel: PixelBall, mask: Tensor, gen) -> Tensor:
    """Square's ℓ∞ move: the square `mask` of δ set to ±ε_x (one sign per image and channel), then
    projected onto the pixel ball around `base` (Square clips x̄ to the ball and the image box)."""
    n, c = delta.shape[:2]
    value = pixel.eps * _random_signs((n, c, 1, 1), gen, delta)
    return pixel.project(torch.where(mask, value, delta), base)


def _flow_square(flow: Tensor, flow_ball: FlowBall, mask: Tensor, gen) -> Tensor:
    """The flow move: the square `mask` of flow vectors set to one vector of length ε_ω at a random
    angle (a vector on the ℓ2,∞ sphere; Eq. 6's projection absorbs rounding)."""
    turns = torch.rand((len(flow), 1, 1, 1), generator=gen, device=flow.device, dtype=flow.dtype)
    angle = 2 * math.pi * turns
    value = flow_ball.eps * torch.cat((angle.cos(), angle.sin()), dim=1)
    return project_flow(torch.where(mask, value, flow), flow_ball.eps)


def _stripes(x: Tensor, pixel: PixelBall, gen) -> Tensor:
    """Square's ℓ∞ start: vertical stripes, δ = ±ε_x per image, channel and column, in the box."""
    n, c, _, w = x.shape
    return pixel.project(pixel.eps * _random_signs((n, c, 1, w), gen, x).expand_as(x).clone(), x)


Moves = Callable[[int, dict[str, Tensor], Tensor], dict[str, Tensor]]


def _random_search(model, x: Tensor, y: Tensor, threat: JointThreat, start: dict[str, Tensor], move: Moves,
                   queries: int, loss_fn) -> dict[str, Tensor]:
    """Square's Alg. 1 on any perturbation of `threat`: `start` (a dict of "flow" and/or "delta") is the first
    query; then, `queries - 1` times, `move(k, best, x)` proposes a change of the best point of the
    images still classified correctly (k = 1, 2, …), and each image keeps it when its loss rose or it
    is misclassified. Returns the best point of every image."""
    best = {name: v.clone() for name, v in start.items()}
    with torch.no_grad(), eval_mode(model):
        logits = model(threat.compose(x, best))
        best_loss = loss_fn(logits, y)
        robust = logits.argmax(1) == y
        for k in range(1, queries):
            idx = robust.nonzero().squeeze(1)
            if len(idx) == 0:
                break
            cand = move(k, {name: v[idx] for name, v in best.items()}, x[idx])
            logits = model(threat.compose(x[idx], cand))
            loss = loss_fn(logits, y[idx])
            fooled = logits.argmax(1) != y[idx]
            keep = (loss > best_loss[idx]) | fooled
            for name, v in best.items():
                v[idx[keep]] = cand[name][keep]
            best_loss[idx[keep]] = loss[keep]
            robust[idx[fooled]] = False
    return best


def _setup(model, x, y, queries, p_init, loss, seed):
    """Checks shared by the three members; returns x, y, the loss function and the generator."""
    if isinstance(queries, bool) or not isinstance(queries, int) or queries < 1:
        raise ValueError(f"queries must be an integer >= 1 (forward passes per image); got {queries!r}")
    if isinstance(p_init, bool) or not isinstance(p_init, (int, float)) or not 0 < p_init <= 1:
        raise ValueError(f"p_init must be a number in (0, 1] (the share of the image a square covers); "
                         f"got {p_init!r}")
    if loss not in SEARCH_LOSSES:
        raise ValueError(f"loss must be one of {sorted(SEARCH_LOSSES)}; got {loss!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be an integer or None; got {seed!r}")
    x, y = _check_inputs(model, x, y, 1, "ce")  # the shapes, the [-1, 1] range and the labels
    gen = None if seed is None else torch.Generator(device=x.device).manual_seed(seed)
    return x, y, SEARCH_LOSSES[loss], gen


def square(model, x, y, eps_x: float = 8, queries: int = DEFAULT_QUERIES, p_init: float = 0.8,
           loss: str = "margin", seed: int | None = None) -> AttackResult:
    """Square Attack, ℓ∞ (Andriushchenko et al. 2020, Alg. 1 with the ℓ∞ moves of its §3.1): vertical
    stripes of ±ε_x, then random squares set to ±ε_x whose side follows Square's p schedule (p = p_init,
    halved at fixed fractions of `queries`), each kept only where the margin loss rises.

    Args: eps_x in 0–255 levels; queries: forward passes per image at most (paper 10,000, AutoAttack
    5,000; default 300, see DEFAULT_QUERIES); p_init (paper: 0.8 for ℓ∞); loss "margin" (Square's) or
    one of `ATTACK_LOSSES`; seed: a local generator's seed (None: torch's global RNG).
    Returns AttackResult(x_adv = clip(x + δ), δ, None) with ‖δ‖∞ ≤ ε_x exactly.
    """
    x, y, loss_fn, gen = _setup(model, x, y, queries, p_init, loss, seed)
    pixel = PixelBall(eps_x)
    h, w = x.shape[2:]

    def move(k, best, xs):
        mask = _square_masks(len(xs), h, w, square_side((k - 1) / queries, p_init, h, w), gen, x.device)
        return {"delta": _pixel_square(best["delta"], xs, pixel, mask, gen)}

    threat = JointThreat([pixel])
    best = _random_search(model, x, y, threat, {"delta": _stripes(x, pixel, gen)}, move, queries, loss_fn)
    return AttackResult(x_adv=threat.compose(x, best), delta=best["delta"], flow=None)


def _flow_moves(eps_w: float, queries: int, p_init: float, gen, x: Tensor):
    """The schedule of the flow members: queries 1 … G try the G translations of `translation_grid`,
    the rest are square moves on Square's p schedule, counted over the queries the grid leaves.
    Returns `translation(k, flow)` (None past the grid) and `square(k, n)`, the squares of move k
    for n images."""
    flow_ball = FlowBall(eps_w)
    grid = translation_grid(flow_ball.eps, x.dtype, x.device)
    left = max(queries - 1 - len(grid), 1)
    h, w = x.shape[2:]

    def translation(k: int, flow: Tensor) -> Tensor | None:
        if k > len(grid):
            return None
        return project_flow(grid[k - 1].view(1, 2, 1, 1).expand_as(flow), flow_ball.eps)

    def square(k: int, n: int) -> Tensor:
        side = square_side((k - 1 - len(grid)) / left, p_init, h, w)
        return _square_masks(n, h, w, side, gen, x.device)

    return translation, square


def flow_search(model, x, y, eps_w: float = 0.3, queries: int = DEFAULT_QUERIES, p_init: float = 0.8,
                loss: str = "margin", seed: int | None = None) -> AttackResult:
    """Random search in the ℓ2,∞ flow ball (Eq. 6): from ω = 0, the grid of constant translations of
    `translation_grid` (24 queries), then Square-style moves: a random square of flow vectors set to
    one random vector of length ε_ω, its side on Square's p schedule, kept where the margin loss rises.

    Args as `square`, with eps_w in pixels (1 % of the side: 0.28 for Fashion-MNIST). Returns
    AttackResult(T(x, ω), None, ω) with ‖ω‖_{2,∞} ≤ ε_ω exactly.
    """
    x, y, loss_fn, gen = _setup(model, x, y, queries, p_init, loss, seed)
    flow_ball = FlowBall(eps_w)
    translation, square_of = _flow_moves(flow_ball.eps, queries, p_init, gen, x)

    def move(k, best, xs):
        flow = translation(k, best["flow"])
        if flow is None:
            flow = _flow_square(best["flow"], flow_ball, square_of(k, len(xs)), gen)
        return {"flow": flow}

    threat = JointThreat([flow_ball])
    best = _random_search(model, x, y, threat, {"flow": flow_ball.zeros(x)}, move, queries, loss_fn)
    return AttackResult(x_adv=threat.compose(x, best), delta=None, flow=best["flow"])


def joint_search(model, x, y, eps_x: float = 8, eps_w: float = 0.3, queries: int = DEFAULT_QUERIES,
                 p_init: float = 0.8, loss: str = "margin", seed: int | None = None) -> AttackResult:
    """Both searches on the joint threat x̄ = clip(T(x, ω) + δ) (Eq. 10): from Square's stripes δ and
    ω = 0, the translation grid, then joint squares: one random square where the flow vectors are set
    to one random vector of length ε_ω and δ to ±ε_x (measured on the quantized Madry lesson model:
    2 points stronger than alternating flow and pixel squares at 300 queries). δ lives in the ℓ∞ ball
    around T(x, ω) and is projected onto it again whenever ω moves, as in `jointlab.attacks.attack`.

    Args as `square` and `flow_search`. Returns AttackResult(x̄, δ, ω), ‖δ‖∞ ≤ ε_x, ‖ω‖_{2,∞} ≤ ε_ω.
    """
    x, y, loss_fn, gen = _setup(model, x, y, queries, p_init, loss, seed)
    pixel, flow_ball = PixelBall(eps_x), FlowBall(eps_w)
    threat = JointThreat([flow_ball, pixel])
    translation, square_of = _flow_moves(flow_ball.eps, queries, p_init, gen, x)

    def move(k, best, xs):
        flow = translation(k, best["flow"])
        cand = {"flow": flow, "delta": best["delta"]}
        if flow is None:
            mask = square_of(k, len(xs))
            cand["flow"] = _flow_square(best["flow"], flow_ball, mask, gen)
            cand["delta"] = _pixel_square(best["delta"], threat.centre(xs, cand), pixel, mask, gen)
        else:  # the centre T(x, ω) of δ's ball moved: project δ onto the new ball
            threat.recentre(xs, cand)
        return cand

    start = {"flow": flow_ball.zeros(x), "delta": _stripes(x, pixel, gen)}
    best = _random_search(model, x, y, threat, start, move, queries, loss_fn)
    return AttackResult(x_adv=threat.compose(x, best), delta=best["delta"], flow=best["flow"])
