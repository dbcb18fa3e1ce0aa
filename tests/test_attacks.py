import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jointlab import attacks as A
from jointlab.threats import FlowBall, PixelBall, levels_to_unit
from jointlab.warp import flow_norm, warp

PIXEL = {"fgsm", "pgd"}
FLOW = {"spatial"}
ALL = ["fgsm", "pgd", "spatial", "joint_sp", "joint_ps", "one_pass", "cascade"]


def run(name, model, x, y, eps_x=8.0, eps_w=0.3, steps=2, **kw):
    """Call attack `name` with the budgets it takes (step sizes larger than budgets on purpose)."""
    if name == "fgsm":
        return A.fgsm(model, x, y, eps_x, **kw)
    if name == "pgd":
        return A.pgd(model, x, y, eps_x, step_x=eps_x * 0.75, steps=steps, **kw)
    if name == "spatial":
        return A.spatial(model, x, y, eps_w, step_w=eps_w * 0.75, steps=steps, **kw)
    both = dict(eps_x=eps_x, eps_w=eps_w, step_x=eps_x * 0.75, step_w=eps_w * 0.75, steps=steps)
    if name.startswith("joint"):
        return A.joint(model, x, y, order=name[-2:], **both, **kw)
    return getattr(A, name)(model, x, y, **both, **kw)


def check_budgets(name, x, res, eps_x, eps_w):
    assert res.x_adv.shape == x.shape and res.x_adv.dtype == x.dtype
    assert res.x_adv.min() >= -1 and res.x_adv.max() <= 1
    assert (res.flow is None) == (name in PIXEL)
    assert (res.delta is None) == (name in FLOW)
    base = x
    if res.flow is not None:
        n, _, h, w = x.shape
        assert res.flow.shape == (n, 2, h, w)
        assert torch.all(flow_norm(res.flow) <= eps_w)  # exact: no tolerance
        base = warp(x, res.flow)
    if res.delta is not None:
        assert res.delta.shape == x.shape
        assert res.delta.abs().max() <= levels_to_unit(eps_x)  # exact
        torch.testing.assert_close(res.x_adv, (base + res.delta).clamp(-1, 1))
    else:
        torch.testing.assert_close(res.x_adv, base)
    # the image-space check, up to float rounding of the subtraction
    assert (res.x_adv - base).abs().max() <= levels_to_unit(eps_x) + 1e-6


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(ALL),
    n=st.integers(1, 4),
    side=st.integers(4, 10),
    eps_x=st.one_of(st.just(0.0), st.floats(1e-20, 16)),
    eps_w=st.one_of(st.just(0.0), st.floats(1e-20, 2)),
    steps=st.integers(1, 3),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    targeted=st.booleans(),
    loss=st.sampled_from(["ce", "cw"]),
    seed=st.integers(0, 2**16),
)
def test_attack_invariants(tiny_model, name, n, side, eps_x, eps_w, steps, dtype, targeted, loss, seed):
    g = torch.Generator().manual_seed(seed)
    model = copy.deepcopy(tiny_model).to(dtype)
    model.train()
    model.blocks[0].eval()  # a mixed-mode model: every submodule's own mode must come back
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    model.fc.weight.grad = None
    params = {k: v.clone() for k, v in model.state_dict().items()}
    x = (torch.rand(n, 1, side, side, generator=g, dtype=dtype) * 2 - 1).round(decimals=1)  # hits ±1
    y = torch.randint(0, 10, (n,), generator=g)

    res = run(name, model, x, y, eps_x, eps_w, steps, targeted=targeted, loss=loss)

    check_budgets(name, x, res, eps_x, eps_w)
    assert model.training and not model.blocks[0].training and model.blocks[1].training
    assert model.fc.weight.grad is None
    assert all(torch.all(p.grad == 7.0) for k, p in model.named_parameters() if k != "fc.weight")
    # BatchNorm running statistics untouched: the attack ran in eval mode
    assert all(torch.equal(v, params[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", ALL)
def test_zero_budget_returns_the_clean_image(tiny_model, name):
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    y = torch.tensor([0, 1, 2])
    res = run(name, tiny_model, x, y, eps_x=0.0, eps_w=0.0)
    torch.testing.assert_close(res.x_adv, x, atol=1e-6, rtol=0)


def test_attack_works_inside_no_grad_and_on_float64(tiny_model):
    model = copy.deepcopy(tiny_model).double()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        res = A.joint(model, x, torch.tensor([1, 2]), steps=2)
    assert res.x_adv.dtype == torch.float64 and not res.x_adv.requires_grad


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_attacks_run_on_cuda(tiny_model):
    model = copy.deepcopy(tiny_model).cuda()
    x = (torch.rand(4, 1, 8, 8) * 2 - 1).cuda()
    y = torch.arange(4).cuda()
    for name in ALL:
        res = run(name, model, x, y)
        assert res.x_adv.device == x.device
        check_budgets(name, x, res, 8.0, 0.3)


def test_threat_model_steps():
    ball = FlowBall(eps=0.3, step=0.1)
    g = torch.zeros(1, 2, 2, 2)
    g[0, 0, 0, 0], g[0, 1, 0, 0] = 3.0, 4.0
    stepped = ball.step(torch.zeros_like(g), g)
    torch.testing.assert_close(stepped[0, :, 0, 0], torch.tensor([0.06, 0.08]))
    assert torch.all(stepped[0, :, 1, 1] == 0)
    pix = PixelBall(eps=8, step=2)
    assert pix.eps == pytest.approx(16 / 255) and pix.step_size == pytest.approx(4 / 255)
    base = torch.tensor([0.99, -0.99, 0.0]).view(1, 3, 1, 1)
    d = pix.project(torch.full_like(base, 1.0), base)
    torch.testing.assert_close(d.flatten(), torch.tensor([0.01, 16 / 255, 16 / 255]))


def test_random_init_lies_inside_the_balls():
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    w = FlowBall(0.3).random_init(x)
    assert flow_norm(w).max() <= 0.3 and flow_norm(w).min() > 0.2  # fills the disc
    d = PixelBall(8).random_init(x)
    assert d.abs().max() <= 16 / 255 and (x + d).abs().max() <= 1 + 1e-6


# --------------------------------------------------------------------------- bad input


def _inputs():
    return torch.zeros(2, 1, 8, 8), torch.tensor([0, 1])


BAD = [
    ("x", lambda m, x, y: A.pgd(m, x * 3 + 1.5, y), "x must have values in"),
    ("x", lambda m, x, y: A.pgd(m, x[0], y), r"x must be a tensor of shape \(N, C, H, W\)"),
    ("x", lambda m, x, y: A.pgd(m, x.long(), y), "x must be a floating-point"),
    ("x", lambda m, x, y: A.pgd(m, x * float("nan"), y), "x must be finite"),
    ("y", lambda m, x, y: A.pgd(m, x, y.float()), "y must be a 1-D integer"),
    ("y", lambda m, x, y: A.pgd(m, x, y[:, None]), "y must be a 1-D integer"),
    ("y", lambda m, x, y: A.spatial(m, x, y[:1]), "y must have one label per image"),
    ("eps_x", lambda m, x, y: A.pgd(m, x, y, eps_x=-1), "eps_x must be"),
    ("eps_x", lambda m, x, y: A.fgsm(m, x, y, eps_x=float("nan")), "eps_x must be"),
    ("step_x", lambda m, x, y: A.joint(m, x, y, step_x=-2), "step_x must be"),
    ("eps_w", lambda m, x, y: A.spatial(m, x, y, eps_w=-0.1), "eps_w must be"),
    ("step_w", lambda m, x, y: A.one_pass(m, x, y, step_w=-1), "step_w must be"),
    ("steps", lambda m, x, y: A.pgd(m, x, y, steps=0), "steps must be an integer >= 1"),
    ("steps", lambda m, x, y: A.spatial(m, x, y, steps=2.5), "steps must be an integer >= 1"),
    ("order", lambda m, x, y: A.joint(m, x, y, order="xy"), "order must be 'sp'"),
    ("loss", lambda m, x, y: A.cascade(m, x, y, loss="mse"), "loss must be one of"),
]


@pytest.mark.parametrize("arg,call,message", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_raises_value_error_naming_the_argument(tiny_model, arg, call, message):
    x, y = _inputs()
    with pytest.raises(ValueError, match=message):
        call(tiny_model, x, y)


def test_rounding_outside_the_range_is_accepted(tiny_model):
    x, y = _inputs()
    res = A.fgsm(tiny_model, x + 1 + 1e-7, y)
    assert res.x_adv.max() <= 1


# --------------------------------------------------------------------------- against hand-written loops


def _ce(model, x, y):
    return torch.nn.functional.cross_entropy(model(x), y, reduction="sum")


def test_pgd_matches_a_plain_loop(tiny_model):
    model = copy.deepcopy(tiny_model).double()
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64) * 2 - 1
    y = torch.tensor([1, 2, 3])
    eps, step = 8 * 2 / 255, 2 * 2 / 255
    xa = x.clone()
    for _ in range(5):  # Eq. 3
        xa.requires_grad_(True)
        g, = torch.autograd.grad(_ce(model, xa, y), xa)
        xa = torch.min(torch.max(xa.detach() + step * g.sign(), x - eps), x + eps).clamp(-1, 1)
    res = A.pgd(model, x, y, eps_x=8, step_x=2, steps=5, random_start=False)
    torch.testing.assert_close(res.x_adv, xa)


def test_joint_sp_matches_a_plain_double_pass_loop(tiny_model):
    model = copy.deepcopy(tiny_model).double()
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64) * 2 - 1
    y = torch.tensor([4, 5, 6])
    eps_x, step_x, eps_w, step_w = 8 * 2 / 255, 2 * 2 / 255, 0.3, 0.15
    w = torch.zeros(3, 2, 8, 8, dtype=torch.float64)
    d = torch.zeros_like(x)
    for _ in range(4):  # Alg. 2
        w.requires_grad_(True)
        g, = torch.autograd.grad(_ce(model, warp(x, w) + d, y), w)
        w = w.detach() + step_w * g / g.norm(dim=1, keepdim=True).clamp_min(1e-300)
        w = w * (eps_w / w.norm(dim=1, keepdim=True).clamp_min(1e-300)).clamp(max=1)
        base = warp(x, w)
        d = ((base + d).clamp(-1, 1) - base).requires_grad_(True)  # δ stays in S_x around T(x, ω)
        g, = torch.autograd.grad(_ce(model, base + d, y), d)
        d = (d.detach() + step_x * g.sign()).clamp(-eps_x, eps_x)
        d = (base + d).clamp(-1, 1) - base
    res = A.joint(model, x, y, steps=4, random_start=False)
    torch.testing.assert_close(res.flow, w)
    torch.testing.assert_close(res.x_adv, (warp(x, w) + d).clamp(-1, 1))


def test_trusted_inputs_skips_only_the_value_checks(tiny_model):
    x, y = _inputs()
    with A.trusted_inputs():
        res = A.fgsm(tiny_model, x + 1.5, y)  # out of range: not checked, clipped
        assert res.x_adv.max() <= 1
        with pytest.raises(ValueError, match="steps must be"):
            A.pgd(tiny_model, x, y, steps=0)
    with pytest.raises(ValueError, match="x must have values in"):
        A.fgsm(tiny_model, x + 1.5, y)


def test_flow_step_rules_of_the_ablation():
    """FlowBall's step rules: the vector sign moves every pixel by α, the sign by α√2 on diagonals,
    the raw gradient moves the longest vector by α; a wrong rule is refused by name."""
    g = torch.tensor([[3.0, 4.0], [0.3, 0.0]]).T.reshape(1, 2, 1, 2)
    zero = torch.zeros_like(g)
    lengths = {r: FlowBall(1.0, 0.1, rule=r).step(zero, g).norm(dim=1).flatten().tolist()
               for r in FlowBall.RULES}
    assert lengths["vector_sign"] == pytest.approx([0.1, 0.1])
    assert lengths["sign"] == pytest.approx([0.1 * 2**0.5, 0.1])
    assert lengths["gradient"] == pytest.approx([0.1, 0.006])
    ball = FlowBall(0.05, 0.1, rule="sign")
    assert flow_norm(ball.project(ball.step(zero, g))) <= 0.05
    with pytest.raises(ValueError, match="rule must be one of"):
        FlowBall(0.3, rule="l2")


def test_the_joint_threat_owns_eq_10_and_recentres_delta():
    """JointThreat composes x̄ = clip(T(x, ω) + δ) and, when ω moves, projects δ onto its ball around the
    new T(x, ω): the pixel budget and the [-1, 1] box hold around the warped image, not around x."""
    from jointlab.threats import FlowBall, JointThreat, PixelBall, compose
    from jointlab.warp import warp

    torch.manual_seed(0)
    x = torch.rand(3, 1, 10, 10) * 2 - 1
    x[:, :, :2] = 1.0  # saturated rows: δ may not push them above 1 after the warp either
    threat = JointThreat([PixelBall(8, 2), FlowBall(0.5, 0.25)])  # any order: ω first inside
    assert threat.names == ("flow", "delta")
    var = threat.start(x)
    centre = threat.centre(x, var)
    assert torch.equal(threat.compose(x, var), compose(x, var["flow"], var["delta"]))
    assert torch.allclose(threat.image(x, var), centre + var["delta"])
    new_flow = FlowBall(0.5).random_init(x)
    moved = threat.move(x, var, "flow", new_flow, centre)
    assert torch.equal(moved, warp(x, new_flow)) and torch.equal(var["flow"], new_flow)
    eps = PixelBall(8).eps
    assert var["delta"].abs().max() <= eps
    assert (moved + var["delta"]).max() <= 1 + 1e-6 and (moved + var["delta"]).min() >= -1 - 1e-6
    untouched = threat.move(x, var, "delta", var["delta"] * 0, moved)
    assert untouched is moved  # a δ step leaves the centre where it was
    with pytest.raises(ValueError, match="one PixelBall and/or one FlowBall"):
        JointThreat([PixelBall(8), PixelBall(4)])
    with pytest.raises(ValueError, match="one PixelBall and/or one FlowBall"):
        JointThreat([])


class _Brightness(torch.nn.Module):
    """A toy classifier: the class is the nearest of four grey levels to the image's mean."""

    levels = torch.tensor([-0.75, -0.25, 0.25, 0.75])

    def forward(self, x):
        return -(x.mean((1, 2, 3))[:, None] - self.levels) ** 2


def test_first_success_attacks_only_the_survivors_and_keeps_the_first_break():
    """AutoAttack's survivor rule in one place: each attempt sees only the images no earlier attempt
    broke, an image keeps the first adversarial example found, and `by` names the attempt."""
    model = _Brightness()
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    x = _Brightness.levels[y].view(-1, 1, 1, 1).expand(6, 1, 4, 4).clone()
    seen = []

    def breaks(which, mark):  # moves the chosen images to the next grey level (a wrong class)
        def attempt(xs, ys, idx):
            seen.append(idx.tolist())
            out = xs.clone()
            for k, j in enumerate(idx.tolist()):
                out[k] = _Brightness.levels[(ys[k] + 1) % 4] + mark if j in which else xs[k] + mark
            return A.AttackResult(out, None, None)
        return attempt

    res, by = A.first_success(model, x, y, [breaks({0, 1}, 0.01), breaks({1, 2}, 0.02), breaks(set(), 0.03)])
    assert seen == [[0, 1, 2, 3, 4, 5], [2, 3, 4, 5], [3, 4, 5]]
    assert by.tolist() == [0, 0, 1, -1, -1, -1]
    marks = (res.x_adv - _Brightness.levels[(y + 1) % 4].view(-1, 1, 1, 1)).mean((1, 2, 3))
    assert torch.allclose(marks[:3], torch.tensor([0.01, 0.01, 0.02]))  # the first break is kept
    assert torch.allclose((res.x_adv - x).mean((1, 2, 3))[3:], torch.tensor(0.03))  # survivors: the last try
    assert (model(res.x_adv).argmax(1) != y).tolist() == [True, True, True, False, False, False]
    clean_wrong = y.clone()
    clean_wrong[5] = 0  # misclassified already: not attacked by default
    seen.clear()
    A.first_success(model, x, clean_wrong, [breaks(set(), 0.0)])
    assert seen == [[0, 1, 2, 3, 4]]
