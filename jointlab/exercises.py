"""Exercises that check themselves (CS231n style): the learner writes one key function of the paper
in a notebook, a checker here compares it with the reference on random and edge cases, and names
the first failing case in plain words.

The step functions are pure: they receive tensors (and, for Alg. 2, a gradient callable made by
this module). The loops (PGD, Alg. 1, Alg. 2) take a model and compute their own gradients with
autograd, through `warp` for the flow: the one new PyTorch skill of the paper. The checkers run
them on small fixed networks from a zero start (no random start, so the answer is unique) and
compare with the library's attacks.

    ok = check_vector_sign(my_vector_sign)   # True: passed; False: not written yet; raises: wrong

| exercise          | paper      | the learner's function                                          |
|-------------------|------------|-----------------------------------------------------------------|
| vector_sign       | Eq. 8      | `f(grad) -> unit vectors`                                       |
| project_flow      | Eq. 6      | `f(flow, eps) -> flow with every vector at most eps long`       |
| pgd               | Eq. 3      | `f(model, x, y, eps_x, step_x, steps) -> x_adv` (a loop)        |
| spatial_step      | Alg. 1     | `f(x, flow, grad, eps_w, step_w) -> (new_flow, x_adv)`          |
| spatial_attack    | Alg. 1     | `f(model, x, y, eps_w, step_w, steps) -> (flow, x_adv)` (a loop) |
| joint_step        | Alg. 2     | `f(x, flow, delta, grads, eps_x, eps_w, step_x, step_w)`        |
|                   |            | `-> (flow, delta, x_adv)`                                       |
| joint_attack      | Alg. 2     | `f(model, x, y, eps_x, eps_w, step_x, step_w, steps) -> x_adv`  |
| smooth_labels     | Alg. 3     | `f(y, num_classes, delta) -> (N, C) soft labels`                 |
| random_targets    | Alg. 3     | `f(y, num_classes, generator) -> ŷ ≠ y, uniform over the others` |

`SOLUTIONS[name]` holds the reference of each exercise (the notebooks run it when papermill
passes `solutions=True`, as `jointlab.notebooks.run` does in CI).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from . import attacks, losses
from .threats import PixelBall, compose, levels_to_unit
from .warp import project_flow, vector_sign, warp

__all__ = ["ExerciseError", "check_vector_sign", "check_project_flow", "check_pgd", "check_spatial_step",
           "check_spatial_attack", "check_joint_step", "check_joint_attack", "check_smooth_labels",
           "check_random_targets", "SOLUTIONS", "CHECKERS"]

_ATOL = 1e-5


class ExerciseError(AssertionError):
    """A learner's function disagrees with the reference; the message names the case."""


# --------------------------------------------------------------------------- reference solutions


def _spatial_step(x, flow, grad, eps_w, step_w):
    """Alg. 1, one step: ω ← P(ω + α · sign→(∇_ω L)), then warp the *original* x with it."""
    new_flow = project_flow(flow + step_w * vector_sign(grad), eps_w)
    return new_flow, warp(x, new_flow)


def _joint_step(x, flow, delta, grads, eps_x, eps_w, step_x, step_w):
    """Alg. 2, one double-pass step (SP): pass 1 updates ω from ∇_ω L at (ω, δ); δ is re-centred on
    the new T(x, ω); pass 2 updates δ from ∇_δ L at (new ω, δ). Budgets: ε_x, β in 0–255 levels."""
    g_flow, _ = grads(flow, delta)
    flow = project_flow(flow + step_w * vector_sign(g_flow), eps_w)
    base = warp(x, flow)
    ball = PixelBall(eps_x, step_x)
    delta = ball.project(delta, base)
    _, g_delta = grads(flow, delta)
    delta = ball.project(delta + levels_to_unit(step_x) * g_delta.sign(), base)
    return flow, delta, compose(x, flow, delta)


def _random_targets(y, num_classes, generator):
    return losses.random_wrong_labels(y, num_classes, generator=generator)


# the loops: the library's attacks from a zero start (the learner's loop has no random start)
def _pgd(model, x, y, eps_x, step_x, steps):
    return attacks.pgd(model, x, y, eps_x, step_x, steps, random_start=False).x_adv


def _spatial_attack(model, x, y, eps_w, step_w, steps):
    res = attacks.spatial(model, x, y, eps_w, step_w, steps, random_start=False)
    return res.flow, res.x_adv


def _joint_attack(model, x, y, eps_x, eps_w, step_x, step_w, steps):
    return attacks.joint(model, x, y, eps_x, eps_w, step_x, step_w, steps, random_start=False).x_adv


SOLUTIONS: dict[str, Callable] = {
    "vector_sign": vector_sign,
    "project_flow": project_flow,
    "pgd": _pgd,
    "spatial_step": _spatial_step,
    "spatial_attack": _spatial_attack,
    "joint_step": _joint_step,
    "joint_attack": _joint_attack,
    "smooth_labels": losses.smooth_labels,
    "random_targets": _random_targets,
}


# --------------------------------------------------------------------------- the checking machinery


def _call(name: str, fn: Callable, *args):
    """Run the learner's function; NotImplementedError means 'not written yet' (None)."""
    try:
        return fn(*args)
    except NotImplementedError:
        return None
    except Exception as e:  # a crash is a failure too, named like any other
        raise ExerciseError(f"{name}: your function raised {type(e).__name__}: {e}") from e


def _where(index: tuple[int, ...], kind: str) -> str:
    """A tensor position in the tensor's own coordinates: image, channel (or flow component), row,
    column for (N, C, H, W) images and (N, 2, H, W) flows; image (and class) for labels."""
    if len(index) == 4:
        n, c, i, j = index
        part = f"component {'uv'[c]} ({'horizontal' if c == 0 else 'vertical'})" if kind == "flow" else \
            f"channel {c}"
        return f"image {n}, {part}, row {i}, column {j}"
    if len(index) == 2:
        return f"image {index[0]}, class {index[1]}"
    return f"index {', '.join(map(str, index))}"


def _compare(name: str, case: str, got, expected, atol: float = _ATOL, kinds: tuple[str, ...] = ()) -> None:
    got_t = got if isinstance(got, tuple) else (got,)
    exp_t = expected if isinstance(expected, tuple) else (expected,)
    if len(got_t) != len(exp_t):
        raise ExerciseError(f"{name} fails on {case}: return {len(exp_t)} value(s), got {len(got_t)}")
    for i, (g, e) in enumerate(zip(got_t, exp_t, strict=True)):
        kind = kinds[i] if i < len(kinds) else ""
        what = f"the {kind}" if kind else (f"output {i + 1}" if len(exp_t) > 1 else "the output")
        if not isinstance(g, Tensor):
            raise ExerciseError(f"{name} fails on {case}: {what} must be a tensor, got {type(g).__name__}")
        if g.shape != e.shape:
            raise ExerciseError(f"{name} fails on {case}: {what} must have shape {tuple(e.shape)}, "
                                f"got {tuple(g.shape)}")
        err = (g.double() - e.double()).abs()
        if not torch.isfinite(err).all() or err.max() > atol:
            k = int(torch.nan_to_num(err, nan=float("inf")).flatten().argmax())
            index = tuple(int(v) for v in torch.unravel_index(torch.tensor(k), e.shape))
            want, have = e.flatten()[k].item(), g.flatten()[k].item()
            raise ExerciseError(f"{name} fails on {case}: {what} differs from the reference, e.g. at "
                                f"{_where(index, kind)}: expected {want:.6g}, got {have:.6g}")


def _run(name: str, fn: Callable, cases: list[tuple[str, tuple]], atol: float = _ATOL,
         kinds: tuple[str, ...] = ()) -> bool:
    if not callable(fn):
        raise ValueError(f"fn must be your function (a callable); got {type(fn).__name__}")
    ref = SOLUTIONS[name]
    for case, args in cases:
        got = _call(name, fn, *args)
        if got is None:
            print(f"{name}: not written yet (it raises NotImplementedError). Write it in the cell above.")
            return False
        with torch.no_grad():
            expected = ref(*args)
        _compare(name, case, got, expected, atol, kinds)
    print(f"{name}: all {len(cases)} cases pass.")
    return True


def _vectors(*pairs) -> Tensor:
    """Flow-shaped tensor (1, 2, 1, K) holding the given (u, v) vectors."""
    return torch.tensor(pairs, dtype=torch.float32).T.reshape(1, 2, 1, len(pairs))


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(n=2, c=1, h=6, w=6, seed=0) -> Tensor:
    return torch.rand((n, c, h, w), generator=_gen(seed)) * 2 - 1


# --------------------------------------------------------------------------- the checkers


def check_vector_sign(fn: Callable[[Tensor], Tensor]) -> bool:
    """Eq. 8: sign→([u, v]) = [u, v] / √(u² + v²) per pixel, zero vectors stay zero."""
    cases = [
        ("a 3-4-5 vector (the answer is [0.6, 0.8], not [1, 1])", (_vectors((3.0, 4.0)),)),
        ("a zero gradient vector (it must stay zero, not NaN)", (_vectors((0.0, 0.0), (1.0, -1.0)),)),
        ("a vector along one axis", (_vectors((0.0, -2.5)),)),
        ("a short vector (1e-6 long: normalize it all the same)", (_vectors((1e-6, -1e-6)),)),
        ("random gradients of shape (3, 2, 5, 5)", (torch.randn((3, 2, 5, 5), generator=_gen(1)),)),
    ]
    return _run("vector_sign", fn, cases, kinds=("flow",))


def check_project_flow(fn: Callable[[Tensor, float], Tensor]) -> bool:
    """Eq. 6: rescale every flow vector longer than ε to length ε; shorter ones are untouched."""
    cases = [
        ("a vector (3, 4) with budget 0.5 (rescale the vector, do not clip each coordinate)",
         (_vectors((3.0, 4.0)), 0.5)),
        ("vectors already inside the budget (leave them alone)", (_vectors((0.1, 0.0), (0.0, -0.2)), 0.5)),
        ("a zero vector", (_vectors((0.0, 0.0), (2.0, 0.0)), 1.0)),
        ("a zero budget (every vector becomes zero)", (_vectors((0.3, -0.4), (1.0, 1.0)), 0.0)),
        ("random flows of shape (2, 2, 5, 5), budget 0.3",
         (torch.randn((2, 2, 5, 5), generator=_gen(2)), 0.3)),
    ]
    return _run("project_flow", fn, cases, kinds=("flow",))


def _toy_model(c: int = 1, h: int = 6, w: int = 6, seed: int = 0) -> nn.Module:
    """A small fixed network on (N, c, h, w) images in [-1, 1]: a 3x3 convolution, tanh, a linear
    layer. Its input gradients are dense and never tie at zero, so a correct loop matches the
    library's to rounding."""
    with torch.random.fork_rng(devices=[]):  # checking must not move the notebook's random stream
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.Tanh(), nn.Flatten(),
                              nn.Linear(4 * h * w, 10))
        with torch.no_grad():  # large weights: tanh bends, so the gradient changes from point to point
            model[0].weight.mul_(6.0)
    return model.eval().requires_grad_(False)


def _loop_inputs(seed: int) -> tuple[nn.Module, Tensor, Tensor, Tensor]:
    """A loop exercise's model, images, saturated images and labels (each checker adds its budgets)."""
    model = _toy_model(seed=seed)
    x = _images(n=3, seed=seed + 1) * 0.8  # away from the box: only the saturated case tests [-1, 1]
    saturated = x.clone()
    saturated[:, :, ::2, ::2] = 1.0  # white dots: x̄ may not exceed 1; a warp mixes darker neighbours in
    return model, x, saturated, torch.tensor([1, 4, 7])


def check_pgd(fn: Callable) -> bool:
    """Eq. 3, the loop: from x̄ = x, `steps` times x̄ ← P(x̄ + β · sign(∇_x L)), P the ℓ∞ ball ∩ [-1, 1]."""
    m, x, xs, y = _loop_inputs(20)
    cases = [
        ("one step of the full budget (FGSM: step_x = eps_x = 8 levels)", (m, x, y, 8.0, 8.0, 1)),
        ("10 steps of 2 levels in an 8-level ball (project back onto the ball after every step; the "
         "budgets are in 0-255 levels: 8 levels are levels_to_unit(8) = 16/255 in [-1, 1])",
         (m, x, y, 8.0, 2.0, 10)),
        ("saturated pixels (x̄ must stay in [-1, 1])", (m, xs, y, 8.0, 2.0, 5)),
        ("a zero budget (the images must come back unchanged)", (m, x, y, 0.0, 2.0, 3)),
    ]
    return _run("pgd", fn, cases, kinds=("adversarial image",))


def check_spatial_attack(fn: Callable) -> bool:
    """Alg. 1, the loop: from ω = 0, `steps` times the gradient of L(f(T(x, ω)), y) with respect to ω
    (autograd through `warp`), a vector-sign step, the projection; returns (ω, T(x, ω))."""
    m, x, _, y = _loop_inputs(30)
    cases = [
        ("one step (ω moves from 0 by step_w along the vector sign of a gradient taken through the warp)",
         (m, x, y, 0.3, 0.15, 1)),
        ("10 steps (a fresh gradient at the current ω every step; warp the ORIGINAL x with the "
         "accumulated flow, not the last warped image)", (m, x, y, 0.3, 0.15, 10)),
        ("steps longer than the budget (project every vector back to length ε_ω, do not clip "
         "each coordinate)", (m, x, y, 0.2, 0.3, 4)),
        ("a zero budget (the images must come back unchanged)", (m, x, y, 0.0, 0.15, 3)),
    ]
    return _run("spatial_attack", fn, cases, kinds=("flow", "adversarial image"))


def check_spatial_step(fn: Callable) -> bool:
    """Alg. 1, one step: new ω = P(ω + α · sign→(grad)) and the image T(x, new ω) of the original x."""
    x = _images(seed=3)
    flow = project_flow(torch.randn((2, 2, 6, 6), generator=_gen(4)) * 0.3, 0.5)
    grad = torch.randn((2, 2, 6, 6), generator=_gen(5))
    grad[:, :, 0, 0] = 0.0
    cases = [
        ("a random step from a random flow (warp the original x with the accumulated flow, not the "
         "warped image)", (x, flow, grad, 0.5, 0.25)),
        ("a step from ω = 0", (x, torch.zeros_like(flow), grad, 0.3, 0.15)),
        ("a step that leaves the budget (project after the step)", (x, flow, grad, 0.2, 0.5)),
        ("a zero budget (the image must come back unchanged)", (x, flow * 0, grad, 0.0, 0.15)),
    ]
    return _run("spatial_step", fn, cases, kinds=("flow", "adversarial image"))


def _toy_grads(x: Tensor, y: Tensor, seed: int) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """∇_ω L and ∇_δ L of a fixed small non-linear classifier's CE at x̄ = T(x, ω) + δ."""
    c, h, w = x.shape[1:]
    weight = torch.randn((10, c * h * w), generator=_gen(seed))

    def grads(flow: Tensor, delta: Tensor) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            flow = flow.detach().requires_grad_(True)
            delta = delta.detach().requires_grad_(True)
            x_bar = warp(x, flow) + delta
            logits = torch.tanh(x_bar.flatten(1) * 2) @ weight.T
            loss = losses.cross_entropy(logits, y).sum()
            g_flow, g_delta = torch.autograd.grad(loss, [flow, delta])
        return g_flow, g_delta

    return grads


def check_joint_step(fn: Callable) -> bool:
    """Alg. 2, one double-pass step: the flow pass, then a *second* gradient at the new ω for δ."""
    x = _images(seed=6)
    saturated = x.clone()
    saturated[:, :, :3] = 1.0  # white rows: δ may not push these pixels above 1
    y = torch.tensor([1, 7])
    flow = project_flow(torch.randn((2, 2, 6, 6), generator=_gen(7)) * 0.3, 0.3)
    delta = PixelBall(8).project((torch.rand(x.shape, generator=_gen(8)) * 2 - 1) * levels_to_unit(8),
                                 warp(x, flow))
    zeros = torch.zeros_like(flow)
    cases = [
        ("a random step (ε_x = 8 levels, ε_ω = 0.3 px; the δ pass uses a fresh gradient at the new ω)",
         (x, flow, delta, _toy_grads(x, y, 9), 8.0, 0.3, 2.0, 0.15)),
        ("saturated pixels (x̄ must stay in [-1, 1]: δ is projected around T(x, ω))",
         (saturated, flow, delta, _toy_grads(saturated, y, 10), 8.0, 0.3, 8.0, 0.15)),
        ("zero budgets (nothing may change: x̄ = x)",
         (x, zeros, torch.zeros_like(x), _toy_grads(x, y, 11), 0.0, 0.0, 2.0, 0.15)),
        ("a zero flow budget (a pixel attack only)",
         (x, zeros, torch.zeros_like(x), _toy_grads(x, y, 12), 8.0, 0.0, 2.0, 0.15)),
    ]
    return _run("joint_step", fn, cases, kinds=("flow", "δ", "adversarial image"))


def check_joint_attack(fn: Callable) -> bool:
    """Alg. 2, the loop (SP order): from ω = 0, δ = 0, each step a flow pass (∇_ω L, vector sign,
    projection), δ re-centred on the new T(x, ω), then a pixel pass with a fresh ∇_δ L at the new ω."""
    m, x, xs, y = _loop_inputs(40)
    cases = [
        ("one step (two passes: ω first, then δ from a second gradient taken at the new ω)",
         (m, x, y, 8.0, 0.3, 2.0, 0.15, 1)),
        ("10 steps (x̄ = T(x, ω) + δ with T applied to the ORIGINAL x; δ's ball re-centred on T(x, ω) "
         "after every flow move)", (m, x, y, 8.0, 0.3, 2.0, 0.15, 10)),
        ("saturated pixels (x̄ = T(x, ω) + δ must stay in [-1, 1]: δ's box is taken around the warped "
         "T(x, ω), not around x)", (m, xs, y, 8.0, 0.3, 4.0, 0.15, 5)),
        ("a zero flow budget (a pixel attack only: PGD)", (m, x, y, 8.0, 0.0, 2.0, 0.15, 5)),
    ]
    return _run("joint_attack", fn, cases, kinds=("adversarial image",))


def check_smooth_labels(fn: Callable[[Tensor, int, float], Tensor]) -> bool:
    """Alg. 3's smoothed labels: 1 − δ on the true class, δ / (C − 1) on each of the others."""
    cases = [
        ("class 2 of 4 with δ = 0.5 (the answer is [1/6, 1/6, 1/2, 1/6])", (torch.tensor([2]), 4, 0.5)),
        ("δ = 0 (the one-hot label)", (torch.tensor([0, 9]), 10, 0.0)),
        ("a batch of random labels, 10 classes, δ = 0.3",
         (torch.randint(0, 10, (16,), generator=_gen(13)), 10, 0.3)),
    ]
    return _run("smooth_labels", fn, cases, atol=1e-6, kinds=("soft labels",))


def check_random_targets(fn: Callable[[Tensor, int, torch.Generator], Tensor]) -> bool:
    """Alg. 3's random targets: ŷ ≠ y, uniform over the C − 1 other classes, drawn from `generator`.

    There are many correct ways to draw, so this checks properties, not values: range, ŷ ≠ y, every
    wrong class drawn with frequency 1 / (C − 1) (±25 % over 20,000 draws), and fresh draws."""
    name, c, n = "random_targets", 10, 20_000
    y = torch.randint(0, c, (n,), generator=_gen(14))
    targets = _call(name, fn, y, c, _gen(15))
    if targets is None:
        print(f"{name}: not written yet (it raises NotImplementedError). Write it in the cell above.")
        return False
    if not isinstance(targets, Tensor) or targets.shape != y.shape or targets.is_floating_point():
        raise ExerciseError(f"{name} fails on a batch of {n} labels: return integer labels of shape ({n},)")
    if targets.min() < 0 or targets.max() >= c:
        raise ExerciseError(f"{name} fails on range: targets must be class indices 0..{c - 1}")
    same = int((targets == y).sum())
    if same:
        raise ExerciseError(f"{name} fails on ŷ ≠ y: {same} of {n} targets equal the true label "
                            "(a targeted attack towards y would not attack at all)")
    for k in range(c):
        picked = targets[y == k]
        counts = torch.bincount(picked, minlength=c).double()
        share = counts / len(picked)
        wrong = [j for j in range(c) if j != k]
        if (share[wrong] - 1 / (c - 1)).abs().max() > 0.25 / (c - 1):
            shares = [round(v, 3) for v in share.tolist()]
            raise ExerciseError(f"{name} fails on uniformity: for true class {k} the targets are not spread "
                                f"evenly over the other classes (shares {shares})")
    again = fn(y, c, _gen(16))
    if torch.equal(again, targets):
        raise ExerciseError(f"{name} fails on randomness: a different generator gave the same targets "
                            "(draw them from `generator`)")
    print(f"{name}: passes (range, ŷ ≠ y, uniform over the other classes, fresh draws).")
    return True


CHECKERS = {"vector_sign": check_vector_sign, "project_flow": check_project_flow, "pgd": check_pgd,
            "spatial_step": check_spatial_step, "spatial_attack": check_spatial_attack,
            "joint_step": check_joint_step, "joint_attack": check_joint_attack,
            "smooth_labels": check_smooth_labels, "random_targets": check_random_targets}
