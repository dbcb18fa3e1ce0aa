import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import map_coordinates

from jointlab.warp import flow_norm, project_flow, vector_sign, warp


def _reference_warp(x: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Independent bilinear reference: sample x at (i + v, j + u), edges repeated."""
    n, c, h, w = x.shape
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    out = np.empty_like(x)
    for k in range(n):
        coords = np.stack([rows + flow[k, 1], cols + flow[k, 0]])
        for ch in range(c):
            out[k, ch] = map_coordinates(x[k, ch], coords, order=1, mode="nearest")
    return out


def test_warp_matches_scipy_bilinear_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 7, 9, generator=g, dtype=torch.float64) * 2 - 1
    flow = (torch.rand(3, 2, 7, 9, generator=g, dtype=torch.float64) - 0.5) * 6  # up to 3 px, past edges
    ours = warp(x, flow).numpy()
    ref = _reference_warp(x.numpy(), flow.numpy())
    np.testing.assert_allclose(ours, ref, atol=1e-12)


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("padding_mode", ["border", "zeros", "reflection"])
def test_zero_flow_is_identity(padding_mode, align_corners):
    x = torch.rand(2, 3, 8, 5) * 2 - 1
    out = warp(x, torch.zeros(2, 2, 8, 5), padding_mode=padding_mode, align_corners=align_corners)
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


@pytest.mark.parametrize("align_corners", [True, False])
def test_integer_flow_is_an_exact_shift_in_the_interior(align_corners):
    x = torch.rand(2, 3, 10, 12, dtype=torch.float64)
    flow = torch.zeros(2, 2, 10, 12, dtype=torch.float64)
    flow[:, 0], flow[:, 1] = 2.0, -1.0  # sample 2 px to the right and 1 px up
    out = warp(x, flow, align_corners=align_corners)
    # out[i, j] = x[i - 1, j + 2] wherever that source pixel exists
    torch.testing.assert_close(out[..., 1:, :-2], x[..., :-1, 2:], atol=1e-12, rtol=0)


def test_flow_direction_convention():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 3] = 1.0  # a bright pixel right of the centre
    flow = torch.zeros(1, 2, 5, 5)
    flow[:, 0] = 1.0  # u = +1: every output pixel samples one pixel to its right
    assert warp(x, flow)[0, 0, 2, 2] == pytest.approx(1.0)


def test_warp_gradcheck_float64():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 2, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    # keep sampling points off integer positions, where bilinear interpolation has kinks
    flow = (0.1 + 0.8 * torch.rand(2, 2, 5, 6, generator=g, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(warp, (x, flow), eps=1e-6, atol=1e-6)


def test_warp_rejects_mismatched_flow():
    with pytest.raises(ValueError, match="flow must have shape"):
        warp(torch.zeros(2, 3, 8, 8), torch.zeros(2, 2, 8, 7))
    with pytest.raises(ValueError, match="padding_mode"):
        warp(torch.zeros(1, 1, 4, 4), torch.zeros(1, 2, 4, 4), padding_mode="wrap")


# budgets of 0 or above float32's smallest normal number (below it, ulps are too coarse to promise)
BUDGETS = st.one_of(st.just(0.0), st.floats(1e-30, 5))
vectors = st.lists(st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False), min_size=8, max_size=8)


@given(vectors)
def test_vector_sign_has_unit_length_or_is_zero(vals):
    g = torch.tensor(vals, dtype=torch.float64).view(1, 2, 2, 2)
    s = vector_sign(g)
    length = s.pow(2).sum(1).sqrt()
    nonzero = g.abs().sum(1) > 0
    torch.testing.assert_close(length[nonzero], torch.ones_like(length[nonzero]))
    assert torch.all(s[:, :, ~nonzero[0]] == 0)
    # same direction as the gradient
    assert torch.all((s * g).sum(1) >= 0)


@settings(max_examples=200)
@given(vectors, BUDGETS, st.sampled_from([torch.float32, torch.float64]))
def test_project_flow_respects_budget_exactly(vals, eps, dtype):
    flow = torch.tensor(vals, dtype=dtype).view(1, 2, 2, 2)
    p = project_flow(flow, eps)
    assert flow_norm(p).item() <= eps
    inside = torch.hypot(flow[:, 0].double(), flow[:, 1].double()) <= eps  # exact comparison
    assert torch.equal(p[:, :, inside[0]], flow[:, :, inside[0]])  # short vectors untouched
    assert torch.all((p * flow).sum(1) >= 0)  # directions kept


def test_budget_that_float32_cannot_represent_is_not_overshot():
    eps = 2.0929502331103014  # float32 rounds it up; found by hypothesis
    flow = torch.zeros(1, 2, 2, 2)
    flow[0, 1, 1, 1] = eps
    assert flow_norm(project_flow(flow, eps)).item() <= eps


def test_flow_norm_is_max_vector_length():
    flow = torch.zeros(2, 2, 3, 3)
    flow[0, :, 1, 1] = torch.tensor([3.0, 4.0])
    flow[1, 0] = 0.5
    torch.testing.assert_close(flow_norm(flow), torch.tensor([5.0, 0.5]))


def test_warp_rejects_non_finite_flow():
    flow = torch.zeros(1, 2, 4, 4)
    flow[0, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="flow must be finite"):
        warp(torch.zeros(1, 1, 4, 4), flow)


def test_flow_smoothness_is_stadvs_penalty_and_ignores_constant_shifts():
    from jointlab.warp import flow_smoothness

    flow = torch.zeros(2, 2, 5, 5)
    flow[0, 0] = 3.0  # a constant shift costs nothing
    flow[1, :, 2, 2] = torch.tensor([0.6, 0.8])  # one interior vector of length 1: 4 neighbours, both ways
    assert flow_smoothness(flow).tolist() == pytest.approx([0.0, 8.0])
    with pytest.raises(ValueError, match="flow must have shape"):
        flow_smoothness(torch.zeros(1, 3, 5, 5))
