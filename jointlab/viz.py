"""Pictures: images in [-1, 1], flow fields as colour (Fig. 4) and arrows, accuracy curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor
from torchvision.utils import flow_to_image

__all__ = ["to_numpy_image", "show_image", "flow_to_rgb", "flow_wheel", "add_flow_legend", "amplify",
           "prediction_captions", "plot_image_grid", "plot_flow_arrows", "plot_curves", "psnr",
           "plot_steepest_ascent", "plot_computational_graph", "METHOD_COLORS"]

# one colour per training method in every figure of the kit, so "joint" is the same line everywhere
METHOD_COLORS = {"natural": "C0", "madry": "C1", "bilateral": "C2", "spatial": "C3", "joint": "C4",
                 "cascade": "C5", "one-pass": "C6", "joint-ps": "C7", "spatial-multi": "C8",
                 "joint-multi": "C9"}


def to_numpy_image(x: Tensor) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H, W) or (H, W, 3) array in [0, 1] for imshow; uint8 passes through."""
    x = x.detach().cpu()
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    else:
        x = (x.float().clamp(-1, 1) + 1) / 2
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def show_image(ax, x: Tensor, title: str | None = None, *, alpha: float = 1.0, fontsize: float = 9):
    """Draw one image (C, H, W) in [-1, 1] (or uint8 colour) on an axis: grey or RGB, no ticks."""
    img = to_numpy_image(x)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest",
              alpha=alpha)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize)
    return ax


def flow_to_rgb(flow: Tensor, scale: float | None = None) -> Tensor:
    """Flow (N, 2, H, W) in pixels -> uint8 colour images (N, 3, H, W), Middlebury colour wheel:
    hue is the direction, saturation the length. With `scale`, a vector of that length (e.g. ε_ω)
    is fully saturated in every image; without it, the longest vector in the batch is."""
    flow = flow.detach().float().cpu()
    if scale is None:
        return flow_to_image(flow)
    # flow_to_image normalizes by the batch maximum: add one reference vector of length `scale`
    n, _, h, w = flow.shape
    ref = torch.zeros(n, 2, h, 1)
    ref[:, 0, 0, 0] = scale
    clipped = flow * (scale / flow.norm(dim=1, keepdim=True).clamp_min(scale))
    return flow_to_image(torch.cat([clipped, ref], dim=3))[..., :w]


def flow_wheel(scale: float, size: int = 65) -> Tensor:
    """The colour key of `flow_to_rgb(·, scale)`: the flow (u, v) at each point of a disc of radius
    `scale`, coloured as a flow picture would colour it; white outside the disc. uint8 (3, size, size)."""
    r = torch.linspace(-scale, scale, size)
    v, u = torch.meshgrid(r, r, indexing="ij")  # rows point down, like v
    wheel = flow_to_rgb(torch.stack((u, v))[None], scale)[0]
    outside = (u.pow(2) + v.pow(2)).sqrt() > scale
    return wheel.masked_fill(outside[None], 255)


def add_flow_legend(fig, scale: float, *, rect=(1.0, 0.4, 0.14, 0.2)):
    """Add the colour wheel of flow pictures to a figure (an inset at `rect`, figure coordinates):
    hue = direction in which a pixel samples, saturation = length, full colour = `scale` pixels."""
    ax = fig.add_axes(rect)
    show_image(ax, flow_wheel(scale))
    ax.set_title(f"flow colour\nfull = {scale:g} px", fontsize=7)
    ax.set_xlabel("u → (right)", fontsize=6)
    ax.set_ylabel("v → (down)", fontsize=6)
    return ax


def prediction_captions(model, images: Tensor, y: Tensor, classes: Sequence[str]) -> list[str]:
    """Captions 'pred ✓' or 'pred ✗ (true: label)' for a batch; `plot_image_grid` draws ✗ in red."""
    with torch.no_grad():
        pred = model(images).argmax(1).tolist()
    return [f"{classes[p]} ✓" if p == t else f"{classes[p]} ✗\n(true: {classes[t]})"
            for p, t in zip(pred, y.tolist(), strict=True)]


def amplify(delta: Tensor, eps_levels: float) -> Tensor:
    """Map a pixel perturbation with ‖δ‖∞ ≤ ε_x (levels) to [-1, 1] for display (grey = 0)."""
    return (delta / (eps_levels * 2 / 255)).clamp(-1, 1) if eps_levels > 0 else torch.zeros_like(delta)


def plot_image_grid(columns: Mapping[str, Tensor], captions: Mapping[str, Sequence[str]] | None = None,
                    *, size: float = 1.6, title: str | None = None, flow_scale: float | None = None):
    """One column per entry (a batch of [-1, 1] images or uint8 colour images), one row per sample.

    Captions that contain ✗ (a wrong prediction, see `prediction_captions`) are drawn in red; with
    `flow_scale` the figure gets the colour-wheel legend of its flow columns.
    """
    names = list(columns)
    n = len(next(iter(columns.values())))
    fig, axes = plt.subplots(n, len(names), figsize=(size * len(names), size * n + 0.4), squeeze=False)
    for j, name in enumerate(names):
        for i in range(n):
            ax = show_image(axes[i, j], columns[name][i], name if i == 0 else None)
            if captions and name in captions:
                text = captions[name][i]
                ax.set_xlabel(text, fontsize=7, color="red" if "✗" in text else "black")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if flow_scale is not None:
        add_flow_legend(fig, flow_scale, rect=(1.0, 0.45, 0.6 / len(names), 0.6 / n))
    return fig


def plot_flow_arrows(ax, flow: Tensor, image: Tensor | None = None, stride: int = 2, scale: float = 1.0):
    """Draw one flow field (2, H, W) as arrows (every `stride` pixels, lengths × `scale`) over an image."""
    flow = flow.detach().float().cpu()
    _, h, w = flow.shape
    if image is not None:
        show_image(ax, image, alpha=0.6)
    rows, cols = np.mgrid[0:h:stride, 0:w:stride]
    u, v = flow[0, ::stride, ::stride].numpy(), flow[1, ::stride, ::stride].numpy()
    # image axes point down: an arrow shows where each pixel samples from (u right, v down)
    ax.quiver(cols, rows, u * scale, v * scale, angles="xy", scale_units="xy", scale=1, color="tab:red",
              width=0.006)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def plot_curves(x: Sequence[float], curves: Mapping[str, Sequence[float]], *, xlabel: str,
                ylabel: str = "accuracy (%)", title: str | None = None,
                vlines: Mapping[str, float] | None = None, ax=None, images: int | None = None,
                bands: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
                ylim: tuple[float, float] | None = (0, 100), dashed: Sequence[str] = ()):
    """Accuracy curves (one line per entry) with a shaded band around each: ± one binomial standard
    error when `images` (the images each point was measured on) is given, or the (low, high) arrays of
    `bands`; `vlines` adds dashed vertical lines (training budgets), `dashed` names curves drawn dashed.
    When every label names a training method ("joint", or "joint (union)"), each line takes that
    method's colour (METHOD_COLORS)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.6))
    methods = {label: label.split(" (")[0] for label in curves}
    fixed = all(m in METHOD_COLORS for m in methods.values())
    for label, ys in curves.items():
        (line,) = ax.plot(x, ys, marker="o", markersize=3, label=label,
                          color=METHOD_COLORS[methods[label]] if fixed else None,
                          linestyle="--" if label in dashed else "-")
        band = (bands or {}).get(label)
        if band is None and images:
            v = np.asarray(ys, dtype=float)
            se = 100 * np.sqrt(np.clip(v / 100, 0, 1) * np.clip(1 - v / 100, 0, 1) / images)
            band = (v - se, v + se)
        if band is not None:
            ax.fill_between(x, band[0], band[1], color=line.get_color(), alpha=0.18, linewidth=0)
    for label, v in (vlines or {}).items():
        ax.axvline(v, linestyle="--", color="gray", linewidth=1)
        ax.annotate(label, (v, 0.98), xycoords=("data", "axes fraction"), fontsize=7, rotation=90,
                    va="top", ha="right", color="gray")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


def psnr(images: Tensor, reference: Tensor) -> float:
    """Peak signal-to-noise ratio in dB of [-1, 1] images against a reference (peak-to-peak 2):
    10 · log10(2² / MSE). Higher is closer; identical images give inf."""
    mse = (images.double() - reference.double()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * float(np.log10(4.0 / mse))


def plot_steepest_ascent(grad: tuple[float, float] = (1.0, 0.4), ax=None):
    """Why Eq. 8: the unit step that raises a linear loss g·s most, over the ℓ∞ square (FGSM's sign,
    a corner) and over the disc of one flow vector (the vector sign, g/‖g‖). The sign step is √2
    long, leaves the disc, and projected back it points along the diagonal, not along g."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4.2))
    g = np.asarray(grad, dtype=float)
    sign, vsign = np.sign(g), g / np.linalg.norm(g)
    projected = sign / np.linalg.norm(sign)
    ax.add_patch(plt.Rectangle((-1, -1), 2, 2, fill=False, ls="--", color="gray", label="ℓ∞ ball (square)"))
    ax.add_patch(plt.Circle((0, 0), 1, fill=False, color="tab:blue", label="flow ball ‖(u, v)‖ ≤ 1"))
    for vec, colour, text in [(g / np.linalg.norm(g) * 1.35, "black", "gradient g"),
                              (sign, "tab:red", f"sign(g): g·s = {g @ sign:.2f}"),
                              (projected, "tab:orange", f"sign(g) projected: g·s = {g @ projected:.2f}"),
                              (vsign, "tab:blue", f"vector sign: g·s = {g @ vsign:.2f}")]:
        ax.annotate("", vec, (0, 0), arrowprops=dict(arrowstyle="->", color=colour, lw=2))
        ax.plot([], [], color=colour, lw=2, label=text)
    ax.set_xlim(-1.5, 1.6)
    ax.set_ylim(-1.5, 1.6)
    ax.set_aspect("equal")
    ax.axhline(0, color="lightgray", lw=0.5)
    ax.axvline(0, color="lightgray", lw=0.5)
    ax.set_xlabel("u")
    ax.set_ylabel("v")
    ax.legend(fontsize=7, loc="lower left")
    ax.figure.tight_layout()
    return ax.figure


def plot_computational_graph(ax=None):
    """The paper's Fig. 2: x → T(·, ω) → + δ → clip → f_θ → L, with ω and δ the variables the attack
    optimizes and their gradients flowing back (dashed)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.0))
    nodes = {"x": (0.5, 1), "T(·, ω)": (2, 1), "+ δ": (3.5, 1), "clip [-1, 1]": (5, 1), "f_θ": (6.5, 1),
             "L(·, y)": (8, 1), "ω": (2, 2.2), "δ": (3.5, 2.2)}
    for name, (cx, cy) in nodes.items():
        variable = name in ("ω", "δ")
        ax.add_patch(plt.Rectangle((cx - 0.55, cy - 0.28), 1.1, 0.56, fill=True, lw=1.2,
                                   fc="#fde9c9" if variable else "#e8eef7", ec="#555"))
        ax.text(cx, cy, name, ha="center", va="center", fontsize=10)
    forward = [("x", "T(·, ω)"), ("T(·, ω)", "+ δ"), ("+ δ", "clip [-1, 1]"), ("clip [-1, 1]", "f_θ"),
               ("f_θ", "L(·, y)")]
    for a, b in forward:
        (x0, y0), (x1, y1) = nodes[a], nodes[b]
        ax.annotate("", (x1 - 0.57, y1), (x0 + 0.57, y0), arrowprops=dict(arrowstyle="->", lw=1.3))
    lx, ly = nodes["L(·, y)"]
    for level, (v, target) in zip((2.75, 3.05), (("δ", "+ δ"), ("ω", "T(·, ω)")), strict=True):
        (x0, y0), (x1, y1) = nodes[v], nodes[target]
        ax.annotate("", (x1, y1 + 0.3), (x0, y0 - 0.3), arrowprops=dict(arrowstyle="->", lw=1.3))
        # the gradient: up from L, left along `level`, down onto the variable
        ax.plot([lx, lx, x0], [ly + 0.28, level, level], ls="--", color="#c0392b", lw=1.1)
        ax.annotate("", (x0, y0 + 0.3), (x0, level), arrowprops=dict(arrowstyle="->", lw=1.1, ls="--",
                                                                     color="#c0392b"))
        label = r"$\nabla_\omega L$" if v == "ω" else r"$\nabla_\delta L$"
        ax.text((x0 + lx) / 2, level + 0.04, label,
                color="#c0392b", fontsize=10, ha="center", va="bottom")
    ax.set_xlim(-0.2, 8.8)
    ax.set_ylim(0.5, 3.4)
    ax.axis("off")
    ax.set_title("Fig. 2: the joint attack optimizes ω and δ, not x (forward: solid; gradients: dashed)",
                 fontsize=10)
    return ax.figure
