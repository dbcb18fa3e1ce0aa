"""Flow-field warping and the flow budget: paper Eq. 4 (warp), Eq. 6 (ℓ2,∞ norm and projection)
and Eq. 8 (generalized, per-pixel vector sign).

A flow ω has shape (N, 2, H, W) and is measured in pixels: channel 0 is the horizontal component
u (positive moves the sampling point right), channel 1 the vertical component v (positive: down).
The warped image samples the original at the displaced location:

    T(x, ω)[n, :, i, j] = x[n, :, i + v[n, i, j], j + u[n, i, j]]      (bilinear)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["warp", "flow_norm", "vector_sign", "project_flow", "largest_not_above", "flow_smoothness"]

_PADDING_MODES = ("border", "zeros", "reflection")


def _check_flow(x: Tensor, flow: Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"x must be a batch of images of shape (N, C, H, W); got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    if flow.shape != (n, 2, h, w):
        raise ValueError(
            f"flow must have shape (N, 2, H, W) = {(n, 2, h, w)} to match x; got {tuple(flow.shape)}"
        )


def warp(
    x: Tensor, flow: Tensor, *, padding_mode: str = "border", align_corners: bool = True
) -> Tensor:
    """Eq. 4: T(x, ω), differentiable bilinear resampling of x at pixel positions displaced by ω.

    `border` padding repeats edge pixels (a flow never pulls in black from outside the image) and
    `align_corners=True` puts the grid's ±1 on the centres of the corner pixels; with either
    setting ω = 0 is the identity (up to float rounding) because pixel units are converted with
    the matching formula. Both are explicit because `grid_sample`'s defaults changed across torch
    releases.
    """
    _check_flow(x, flow)
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {_PADDING_MODES}; got {padding_mode!r}")
    _, _, h, w = x.shape
    if min(h, w) < 2:
        raise ValueError(f"x must be at least 2x2 pixels to warp; got {h}x{w}")
    # torch's CPU grid_sample backward crashes on NaN coordinates; the check is free on the CPU
    if flow.device.type == "cpu" and not torch.isfinite(flow).all():
        raise ValueError("flow must be finite; it contains NaN or infinite values")
    flow = flow.to(x.dtype)
    cols = torch.arange(w, dtype=x.dtype, device=x.device).view(1, 1, w) + flow[:, 0]
    rows = torch.arange(h, dtype=x.dtype, device=x.device).view(1, h, 1) + flow[:, 1]
    # pixel coordinates -> grid_sample's normalized [-1, 1] coordinates
    if align_corners:
        gx, gy = cols * (2.0 / (w - 1)) - 1.0, rows * (2.0 / (h - 1)) - 1.0
    else:
        gx, gy = (2.0 * cols + 1.0) / w - 1.0, (2.0 * rows + 1.0) / h - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(
        x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=align_corners
    )


def _vector_length(flow: Tensor) -> Tensor:
    """Length of every flow vector, shape (N, 1, H, W); hypot neither underflows nor overflows."""
    return torch.hypot(flow[:, 0:1], flow[:, 1:2])


def flow_norm(flow: Tensor) -> Tensor:
    """Eq. 6: ‖ω‖_{2,∞} = max over pixels of the length of the flow vector; one value per sample."""
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must have shape (N, 2, H, W); got {tuple(flow.shape)}")
    return _vector_length(flow).flatten(1).amax(dim=1)


def vector_sign(grad: Tensor) -> Tensor:
    """Eq. 8: sign→([u, v]) = [u, v] / sqrt(u² + v²) per pixel; zero vectors stay zero."""
    length = _vector_length(grad)
    tiny = torch.finfo(grad.dtype).tiny
    return torch.where(length > 0, grad / length.clamp_min(tiny), torch.zeros_like(grad))


def largest_not_above(value: float, dtype: torch.dtype) -> float:
    """The largest number of `dtype` that is <= value (rounding to nearest could overshoot a budget)."""
    t = torch.tensor(value, dtype=dtype)
    if t.item() > value:
        t = torch.nextafter(t, torch.tensor(-float("inf"), dtype=dtype))
    return t.item()


def project_flow(flow: Tensor, eps: float) -> Tensor:
    """Eq. 6 projection onto {ω : ‖ω‖_{2,∞} ≤ ε}: rescale every vector longer than ε to length ε.

    ε is rounded down to the result's dtype and rescaled vectors are shrunk by a further few ulps,
    so that `flow_norm(result) <= eps` holds exactly, not only up to rounding (for ε = 0 or above
    the dtype's smallest normal number, where ulps are fine enough).
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0; got {eps}")
    eps = largest_not_above(eps, flow.dtype)
    length = _vector_length(flow)
    tiny = torch.finfo(flow.dtype).tiny
    shrink = 1.0 - 4.0 * torch.finfo(flow.dtype).eps
    scale = torch.where(length > eps, eps * shrink / length.clamp_min(tiny), torch.ones_like(length))
    return flow * scale


def flow_smoothness(flow: Tensor) -> Tensor:
    """stAdv's flow loss (Xiao et al. 2018), for comparison with Eq. 6: Σ_p Σ_{q ∈ N(p)}
    √(‖u_p − u_q‖² + ‖v_p − v_q‖²) over the 4-neighbours q of every pixel p; one value per sample.
    It penalizes *uneven* flows, not long ones: a constant shift costs nothing."""
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must have shape (N, 2, H, W); got {tuple(flow.shape)}")
    dx = flow[..., :, 1:] - flow[..., :, :-1]
    dy = flow[..., 1:, :] - flow[..., :-1, :]
    # each neighbour pair is counted from both sides, as in stAdv's sum over p and q ∈ N(p)
    return 2 * (_vector_length(dx).flatten(1).sum(1) + _vector_length(dy).flatten(1).sum(1))
