"""The gradient-free members (Square, the flow search, the joint search): budgets, bookkeeping, and that
they break a model whose input gradient is zero where white-box APGD cannot."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jointlab import attacks as A
from jointlab.evaluation import gradient_free as G
from jointlab.threats import FlowBall, levels_to_unit
from jointlab.warp import flow_norm, warp

MEMBERS = {"square": G.square, "flow_search": G.flow_search, "joint_search": G.joint_search}


def _call(name, model, x, y, eps_x, eps_w, **kw):
    if name == "square":
        return G.square(model, x, y, eps_x, **kw)
    if name == "flow_search":
        return G.flow_search(model, x, y, eps_w, **kw)
    return G.joint_search(model, x, y, eps_x, eps_w, **kw)


class CountingModel(torch.nn.Module):
    """Records, for every forward pass, how many images it saw and how many it did not classify as
    `label` (all the images of the test share that label)."""

    def __init__(self, model, label):
        super().__init__()
        self.model, self.label, self.calls = model, label, []

    def forward(self, x):
        logits = self.model(x)
        self.calls.append((len(x), int((logits.argmax(1) != self.label).sum())))
        return logits


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(member=st.sampled_from(sorted(MEMBERS)), n=st.integers(1, 3), side=st.integers(4, 9),
       eps_x=st.one_of(st.just(0.0), st.floats(1e-20, 16)),
       eps_w=st.one_of(st.just(0.0), st.floats(1e-20, 2)),
       queries=st.integers(1, 80), loss=st.sampled_from(sorted(G.SEARCH_LOSSES)),
       dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**16))
def test_members_respect_every_budget_exactly(tiny_model, member, n, side, eps_x, eps_w, queries, loss,
                                              dtype, seed):
    torch.manual_seed(seed)
    model = copy.deepcopy(tiny_model).to(dtype).train()
    x = torch.rand(n, 1, side, side, dtype=dtype) * 2 - 1
    x[0, 0, 0, :2] = torch.tensor([-1.0, 1.0], dtype=dtype)  # saturated pixels
    with torch.no_grad():
        y = model.eval()(x).argmax(1)  # labels the model gets right, so that the search runs its moves
    model.train()
    rng = torch.get_rng_state()
    res = _call(member, model, x, y, eps_x, eps_w, queries=queries, loss=loss, seed=seed)
    assert torch.equal(torch.get_rng_state(), rng)  # a local generator: the global RNG is untouched
    assert model.training and all(m.training for m in model.modules())  # the caller's mode is back
    assert all(p.grad is None for p in model.parameters())
    assert res.x_adv.dtype == dtype and res.x_adv.min() >= -1 and res.x_adv.max() <= 1
    assert (res.flow is None) == (member == "square") and (res.delta is None) == (member == "flow_search")
    base = x
    # budgets compared in float64: a float32 comparison would round ε to nearest, possibly up
    if res.flow is not None:
        assert res.flow.dtype == dtype and torch.all(flow_norm(res.flow).double() <= eps_w)
        base = warp(x, res.flow)
    if res.delta is not None:
        assert res.delta.dtype == dtype and res.delta.abs().max().double() <= levels_to_unit(eps_x)
    torch.testing.assert_close(res.x_adv, A.compose(x, res.flow, res.delta))
    torch.testing.assert_close(res.x_adv, base if res.delta is None else (base + res.delta).clamp(-1, 1))
    # the same seed gives the same point
    again = _call(member, model, x, y, eps_x, eps_w, queries=queries, loss=loss, seed=seed)
    assert torch.equal(again.x_adv, res.x_adv)


@pytest.mark.parametrize("member", sorted(MEMBERS))
def test_members_query_only_robust_images_within_the_budget(trained_model, fmnist_test_batch, member):
    x, y = fmnist_test_batch
    with torch.no_grad():
        wrong = trained_model(x).argmax(1) != y
    # one class, so that a pass's misclassified images are countable: the one the model gets wrong most
    # often, so that some images leave at the start and some during the search
    label = int(y[wrong].mode().values)
    x, y = x[y == label][:16], y[y == label][:16]
    with torch.no_grad():
        clean = int((trained_model(x).argmax(1) == y).sum())
    counting = CountingModel(trained_model, label)
    res = _call(member, counting, x, y, 8, 0.28, queries=30, seed=0)
    sizes, fooled = zip(*counting.calls, strict=True)
    assert sizes[0] == len(x) and len(sizes) <= 30
    # an image leaves the search at its first misclassified query: the next pass sees the others only
    assert all(sizes[k + 1] == sizes[k] - fooled[k] for k in range(len(sizes) - 1))
    with torch.no_grad():
        robust = int((trained_model(res.x_adv).argmax(1) == y).sum())
    assert robust == sizes[-1] - fooled[-1]
    assert robust == 0 or len(sizes) == 30  # images still robust got every query
    assert fooled[0] >= len(x) - clean and robust < clean  # the search broke some the model got right


def test_square_side_follows_squares_p_schedule():
    # 28 x 28: p = 0.8 covers a 25-pixel square; p halves after 0.1 %, 0.5 %, 2 %, ... of the queries
    fractions = (0, 0.001, 0.002, 0.01, 0.03, 0.07, 0.15, 0.3, 0.5, 0.7, 0.9)
    sides = [G.square_side(f, 0.8, 28, 28) for f in fractions]
    assert sides == [25, 25, 18, 13, 9, 6, 4, 3, 2, 2, 1]
    assert G.square_side(0, 1.0, 5, 9) == 5  # never beyond the shorter side
    assert G.square_side(0.99, 0.05, 28, 28) == 1  # never below one pixel


def test_translation_grid_spans_every_direction_within_the_ball():
    grid = G.translation_grid(0.28, torch.float64)
    assert grid.shape == (24, 2) and torch.all(grid.norm(dim=1) <= 0.28 + 1e-12)
    longest = grid[grid.norm(dim=1) > 0.28 - 1e-12]
    angles = torch.atan2(longest[:, 1], longest[:, 0]).div(torch.pi / 4).round().remainder(8)
    assert sorted(angles.long().tolist()) == list(range(8))  # the axes and the diagonals


def test_bad_arguments_get_one_clear_error(tiny_model):
    x, y = torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.long)
    for kw, match in [(dict(queries=0), "queries must be an integer"),
                      (dict(queries=2.5), "queries must be an integer"),
                      (dict(p_init=0), "p_init must be a number in"),
                      (dict(loss="hinge"), "loss must be one of"),
                      (dict(seed="0"), "seed must be an integer"),
                      (dict(eps_x=-1), "eps_x must be a finite number >= 0")]:
        with pytest.raises(ValueError, match=match):
            G.square(tiny_model, x, y, **kw)
    with pytest.raises(ValueError, match="eps_w must be a finite number >= 0"):
        G.flow_search(tiny_model, x, y, eps_w=float("nan"))
    with pytest.raises(ValueError, match=r"x must have values in \[-1, 1\]"):
        G.joint_search(tiny_model, x + 3, y)


# ---------------------------------------------------------------- a model that masks its gradients


class Quantized(torch.nn.Module):
    """Masks gradients: the input is rounded to 4 grey levels of [-1, 1] (zero gradient almost
    everywhere); its twin is the bare model."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round((x + 1) * 1.5) / 1.5 - 1)


MASKED_IMAGES = 96  # one image is 1.04 points; 128 would take the file past 45 s on 2 cores
EPS_W = 0.28  # the lesson's ε_ω, 1 % of Fashion-MNIST's 28-pixel side


@pytest.fixture(scope="module")
def masked(fmnist_test_batch, tmp_path_factory):
    """The quick profile's Madry lesson model (shipped in models/), its quantized twin, 96 test images."""
    from jointlab.profiles import get_profile

    out = tmp_path_factory.mktemp("gf")
    P = get_profile("quick", cache_dir=str(out / "cache"), out_dir=str(out / "out"), device="cpu")
    bare = P.model("madry", progress=False).eval()
    x, y = fmnist_test_batch[0][:MASKED_IMAGES], fmnist_test_batch[1][:MASKED_IMAGES]
    return bare, Quantized(bare).eval(), x, y


def _accuracy(model, x_adv, y):
    with torch.no_grad():
        return 100 * (model(x_adv).argmax(1) == y).float().mean().item()


def test_the_quantized_model_has_a_zero_input_gradient(masked):
    _, quantized, x, y = masked
    x = x[:16].clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(quantized(x), y[:16]).backward()
    assert torch.all(x.grad == 0)


# measured on these 96 images with 300 queries (seeds 0 / 1), accuracy % of the quantized model (clean 78.1):
#   threat   white-box APGD-DLR  random point  member       transfer (APGD-DLR on the twin)
#   pixel    78.1 / 78.1         78.1 / 77.1   68.8 / 68.8  68.8 / 68.8
#   spatial  76.0 / 75.0         76.0 / 75.0   63.5 / 64.6  60.4 / 61.5
#   joint    77.1 / 75.0         79.2 / 75.0   60.4 / 63.5  55.2 / 54.2
# (on 128 images: pixel 71.9 vs 71.1, spatial 67.2 vs 64.8, joint 65.6 vs 58.6). The joint search splits
# its queries over two parts and stays 5-9 points above the transfer attack; the margins leave 3-6 images
# of slack over what was measured
SLACK_OVER_TRANSFER = {"pixel": 5, "spatial": 7, "joint": 12}


# the joint member in `make test`, Square and the flow search (~25 s each) in `make test-slow`
@pytest.mark.parametrize("threat", [pytest.param("pixel", marks=pytest.mark.slow),
                                    pytest.param("spatial", marks=pytest.mark.slow), "joint"])
def test_a_member_breaks_the_masked_model_down_to_a_transfer_attack(masked, threat):
    bare, quantized, x, y = masked
    torch.manual_seed(0)
    kw = dict(eps_x=8, eps_w=EPS_W, threat=threat, steps=20, loss="dlr")
    white_box = _accuracy(quantized, A.apgd(quantized, x, y, **kw).x_adv, y)
    transfer = _accuracy(quantized, A.apgd(bare, x, y, **kw).x_adv, y)
    flow = None if threat == "pixel" else FlowBall(EPS_W).random_init(x)
    delta = None if threat == "spatial" else levels_to_unit(8) * torch.randn(x.shape).sign()
    noise = _accuracy(quantized, A.compose(x, flow, delta), y)
    if threat == "pixel":
        ours = G.square(quantized, x, y, eps_x=8, seed=0)
    elif threat == "spatial":
        ours = G.flow_search(quantized, x, y, eps_w=EPS_W, seed=0)
    else:
        ours = G.joint_search(quantized, x, y, eps_x=8, eps_w=EPS_W, seed=0)
    ours = _accuracy(quantized, ours.x_adv, y)
    clean = _accuracy(quantized, x, y)
    # blind: no better than its random start (measured 0-3 points below clean)
    assert white_box >= clean - 5, "white-box APGD should be blind to the mask"
    assert ours <= transfer + SLACK_OVER_TRANSFER[threat], (ours, transfer)
    assert ours <= min(white_box, noise) - 4, (ours, white_box, noise)
