"""The exercise checkers accept the reference and reject the typical wrong answers, naming the case."""

import pytest
import torch

from jointlab import exercises as ex
from jointlab.threats import PixelBall, levels_to_unit
from jointlab.warp import project_flow, vector_sign, warp


@pytest.mark.parametrize("name", sorted(ex.CHECKERS))
def test_checker_accepts_the_reference(name):
    assert ex.CHECKERS[name](ex.SOLUTIONS[name]) is True


@pytest.mark.parametrize("name", sorted(ex.CHECKERS))
def test_a_stub_is_reported_as_not_written(name, capsys):
    def stub(*args):
        raise NotImplementedError

    assert ex.CHECKERS[name](stub) is False
    assert "not written yet" in capsys.readouterr().out


def _rejects(checker, fn, words):
    with pytest.raises(ex.ExerciseError, match=words):
        checker(fn)


def test_vector_sign_rejects_the_plain_sign_and_nan_at_zero():
    _rejects(ex.check_vector_sign, torch.sign, "3-4-5")
    _rejects(ex.check_vector_sign, lambda g: g / g.norm(dim=1, keepdim=True), "zero gradient")


def test_projection_rejects_clipping_each_coordinate_and_always_rescaling():
    _rejects(ex.check_project_flow, lambda f, eps: f.clamp(-eps, eps), "do not clip each coordinate")
    _rejects(ex.check_project_flow, lambda f, eps: eps * vector_sign(f), "inside the budget")


def test_spatial_step_rejects_warping_the_warped_image_and_a_missing_projection():
    def warps_warped(x, flow, grad, eps_w, step_w):
        new = project_flow(flow + step_w * vector_sign(grad), eps_w)
        return new, warp(warp(x, flow), new - flow)

    def no_projection(x, flow, grad, eps_w, step_w):
        new = flow + step_w * vector_sign(grad)
        return new, warp(x, new)

    _rejects(ex.check_spatial_step, warps_warped, "not the warped image")
    _rejects(ex.check_spatial_step, no_projection, "random step")


def test_joint_step_rejects_one_pass_and_a_missing_box():
    def one_pass(x, flow, delta, grads, eps_x, eps_w, step_x, step_w):
        g_flow, g_delta = grads(flow, delta)  # both from the same gradient: Table 2's baseline
        flow = project_flow(flow + step_w * vector_sign(g_flow), eps_w)
        base = warp(x, flow)
        delta = PixelBall(eps_x).project(delta + levels_to_unit(step_x) * g_delta.sign(), base)
        return flow, delta, (base + delta).clamp(-1, 1)

    def no_box(x, flow, delta, grads, eps_x, eps_w, step_x, step_w):
        g_flow, _ = grads(flow, delta)
        flow = project_flow(flow + step_w * vector_sign(g_flow), eps_w)
        _, g_delta = grads(flow, delta)
        eps = levels_to_unit(eps_x)
        delta = (delta + levels_to_unit(step_x) * g_delta.sign()).clamp(-eps, eps)
        return flow, delta, warp(x, flow) + delta

    _rejects(ex.check_joint_step, one_pass, "fresh gradient")
    _rejects(ex.check_joint_step, no_box, "saturated pixels")


def test_smooth_labels_rejects_the_wrong_class_and_torchs_variant():
    def wrong_class(y, c, d):  # 1 - δ on the class after y
        return ex.SOLUTIONS["smooth_labels"]((y + 1) % c, c, d)

    def torch_variant(y, c, d):  # ε/C to all classes
        return torch.nn.functional.one_hot(y, c) * (1 - d) + d / c

    _rejects(ex.check_smooth_labels, wrong_class, "class 2 of 4")
    _rejects(ex.check_smooth_labels, torch_variant, "class 2 of 4")


def test_random_targets_rejects_y_itself_a_fixed_shift_and_ignoring_the_generator():
    _rejects(ex.check_random_targets, lambda y, c, g: y.clone(), "ŷ ≠ y")
    _rejects(ex.check_random_targets, lambda y, c, g: torch.randint(0, c, y.shape, generator=g), "ŷ ≠ y")
    _rejects(ex.check_random_targets, lambda y, c, g: (y + 1) % c, "uniformity")

    def ignores_generator(y, c, g):
        return (y + torch.randint(1, c, y.shape, generator=torch.Generator().manual_seed(0))) % c

    _rejects(ex.check_random_targets, ignores_generator, "randomness")


def test_a_crash_names_the_exercise_and_a_non_callable_is_refused():
    _rejects(ex.check_vector_sign, lambda g: g.reshape(-1, 3), "vector_sign: your function raised")
    with pytest.raises(ValueError, match="fn must be your function"):
        ex.check_vector_sign("vector_sign")


# ---- the loops the learner writes with autograd (01: PGD, 03: Alg. 1, 04: Alg. 2)

def _grad(loss_of, *tensors):
    tensors = [t.detach().requires_grad_(True) for t in tensors]
    return torch.autograd.grad(loss_of(*tensors), tensors)


def _pgd(model, x, y, eps_x, step_x, steps, *, project=True, box=True, units=True):
    eps, alpha = (levels_to_unit(eps_x), levels_to_unit(step_x)) if units else (eps_x, step_x)
    x_adv = x.clone()
    for _ in range(steps):
        (g,) = _grad(lambda v: torch.nn.functional.cross_entropy(model(v), y), x_adv)
        x_adv = x_adv + alpha * g.sign()
        if project:
            x_adv = x + (x_adv - x).clamp(-eps, eps)
        if box:
            x_adv = x_adv.clamp(-1, 1)
    return x_adv


def test_a_learners_pgd_loop_passes_and_the_typical_mistakes_fail():
    assert ex.check_pgd(_pgd)
    _rejects(ex.check_pgd, lambda *a: _pgd(*a, project=False), "10 steps of 2 levels")
    _rejects(ex.check_pgd, lambda *a: _pgd(*a, box=False), "saturated pixels")
    _rejects(ex.check_pgd, lambda *a: _pgd(*a, units=False), "FGSM")  # 8 read as 8 in [-1, 1]


def _spatial(model, x, y, eps_w, step_w, steps, *, rule="vector", warped=False, stale=False, clip=False):
    flow, image = torch.zeros(len(x), 2, *x.shape[2:]), x

    def loss(f, source):
        return torch.nn.functional.cross_entropy(model(warp(source, f)), y)

    for k in range(steps):
        if not (stale and k):  # stale: the gradient of the first step, reused
            source, start = (image, torch.zeros_like(flow)) if warped else (x, flow)
            (g,) = _grad(lambda f, s=source: loss(f, s), start)
        move = step_w * (vector_sign(g) if rule == "vector" else g.sign())
        if warped:  # warps the warped image by the step each time (blurs it)
            image = warp(image, move)
            flow = flow + move
        else:
            flow = flow + move
        flow = flow.clamp(-eps_w, eps_w) if clip else project_flow(flow, eps_w)
    return flow, image if warped else warp(x, flow)


def test_a_learners_spatial_loop_passes_and_the_typical_mistakes_fail():
    assert ex.check_spatial_attack(_spatial)
    _rejects(ex.check_spatial_attack, lambda *a: _spatial(*a, rule="plain"), "one step")
    _rejects(ex.check_spatial_attack, lambda *a: _spatial(*a, warped=True), "10 steps")
    _rejects(ex.check_spatial_attack, lambda *a: _spatial(*a, stale=True), "a fresh gradient")
    _rejects(ex.check_spatial_attack, lambda *a: _spatial(*a, clip=True), "10 steps|do not clip")


def _joint(model, x, y, eps_x, eps_w, step_x, step_w, steps, *, recentre=True, passes=2):
    # recentre=False: δ's box is kept around the original x instead of the warped T(x, ω)
    flow, delta = torch.zeros(len(x), 2, *x.shape[2:]), torch.zeros_like(x)
    eps, beta = levels_to_unit(eps_x), levels_to_unit(step_x)

    def loss(f, d):
        return torch.nn.functional.cross_entropy(model(warp(x, f) + d), y)

    for _ in range(steps):
        g_flow, g_delta = _grad(loss, flow, delta)
        flow = project_flow(flow + step_w * vector_sign(g_flow), eps_w)
        base = warp(x, flow) if recentre else x
        delta = (base + delta).clamp(-1, 1) - base
        if passes == 2:
            _, g_delta = _grad(loss, flow, delta)
        delta = (delta + beta * g_delta.sign()).clamp(-eps, eps)
        delta = (base + delta).clamp(-1, 1) - base
    return warp(x, flow) + delta


def test_a_learners_double_pass_loop_passes_and_the_typical_mistakes_fail():
    assert ex.check_joint_attack(_joint)
    _rejects(ex.check_joint_attack, lambda *a: _joint(*a, passes=1), "second gradient")
    _rejects(ex.check_joint_attack, lambda *a: _joint(*a, recentre=False), "saturated pixels")


def test_failure_messages_name_image_channel_row_and_column():
    wrong = ex.SOLUTIONS["pgd"]
    with pytest.raises(ex.ExerciseError, match=r"image \d, channel 0, row \d, column \d"):
        ex.check_pgd(lambda m, x, y, e, s, k: wrong(m, x, y, e, s, k) + (0.1 if k == 1 else 0.0))
    with pytest.raises(ex.ExerciseError, match=r"the flow differs .* image \d, component [uv]"):
        ex.check_project_flow(lambda f, eps: f * 0.5)
