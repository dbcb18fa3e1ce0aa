"""Slider panels for notebooks: move ε_x / ε_ω and see the attacked images, the perturbation, the
flow field and the predictions. Attack results are computed when a slider is released
(`continuous_update=False`) and cached per slider position, so moving back is instant; models are
never retrained here (they come from `jointlab.train.load_or_train`).

    panel = AttackPanel(model, x[:8], y[:8], classes, kind="joint")
    panel            # in a notebook: the sliders and the picture
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

from . import attacks as A
from .evaluate import predict
from .viz import amplify, flow_to_rgb, plot_image_grid
from .warp import flow_norm, warp

__all__ = ["AttackPanel", "KINDS"]

KINDS = ("pixel", "spatial", "joint")


class AttackPanel:
    """ε sliders over one attack (`kind`: "pixel" = PGD, "spatial" = Alg. 1, "joint" = Alg. 2).

    `view(eps_x, eps_w)` returns what the panel shows as data (images, predictions, measured
    budgets); `figure(...)` draws it; the widget calls both on slider release.
    """

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, classes, kind: str = "joint", *,
                 eps_x: float = 8.0, eps_w: float = 0.3, steps: int = 10, max_eps_x: float = 32.0,
                 max_eps_w: float = 1.5, seed: int = 0):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
        self.model, self.x, self.y, self.classes = model, x, y, list(classes)
        self.kind, self.steps, self.seed = kind, steps, seed
        self.limits = {"eps_x": max_eps_x, "eps_w": max_eps_w}
        self.eps = {"eps_x": eps_x if kind != "spatial" else 0.0, "eps_w": eps_w if kind != "pixel" else 0.0}
        self._cache: dict[tuple[float, float], dict] = {}
        self._widget = None

    # ------------------------------------------------------------------ data
    def view(self, eps_x: float | None = None, eps_w: float | None = None) -> dict:
        """The attack at these budgets: images, perturbation parts, predictions and measured sizes."""
        eps_x = self.eps["eps_x"] if eps_x is None else float(eps_x)
        eps_w = self.eps["eps_w"] if eps_w is None else float(eps_w)
        key = (round(eps_x, 6), round(eps_w, 6))
        if key not in self._cache:
            torch.manual_seed(self.seed)  # the same random start at every position of the sliders
            kw = dict(steps=self.steps)
            if self.kind == "pixel":
                res = A.pgd(self.model, self.x, self.y, eps_x=eps_x, step_x=eps_x / 4, **kw)
            elif self.kind == "spatial":
                res = A.spatial(self.model, self.x, self.y, eps_w=eps_w, step_w=eps_w / 2, **kw)
            else:
                res = A.joint(self.model, self.x, self.y, eps_x=eps_x, eps_w=eps_w, step_x=eps_x / 4,
                              step_w=eps_w / 2, **kw)
            warped = self.x if res.flow is None else warp(self.x, res.flow)
            pred = predict(self.model, res.x_adv)
            self._cache[key] = {
                "eps_x": eps_x, "eps_w": eps_w, "x_adv": res.x_adv, "delta": res.delta, "flow": res.flow,
                "warped": warped, "clean_pred": predict(self.model, self.x), "pred": pred,
                "accuracy": (pred == self.y.cpu()).float().mean().item(),
                "delta_levels": 0.0 if res.delta is None else res.delta.abs().max().item() * 255 / 2,
                "flow_norm": 0.0 if res.flow is None else flow_norm(res.flow).max().item(),
            }
        return self._cache[key]

    def figure(self, eps_x: float | None = None, eps_w: float | None = None):
        """Columns: clean, warped (spatial/joint), δ amplified (pixel/joint), attacked, flow colour."""
        v = self.view(eps_x, eps_w)
        cols = {"clean": self.x}
        caps = {"clean": [self.classes[p] for p in v["clean_pred"]]}
        if v["flow"] is not None and self.kind == "joint":
            cols["T(x, ω)"] = v["warped"]
        if v["delta"] is not None:
            cols["δ (amplified)"] = amplify(v["delta"], max(v["eps_x"], 1e-9))
        cols["attacked"] = v["x_adv"]
        caps["attacked"] = [self.classes[p] for p in v["pred"]]
        if v["flow"] is not None:
            cols["ω (colour)"] = flow_to_rgb(v["flow"], max(v["eps_w"], 1e-9))
        title = (f"{self.kind} attack, {self.steps} steps: ε_x = {v['eps_x']:g}, ε_ω = {v['eps_w']:g}  →  "
                 f"accuracy {100 * v['accuracy']:.0f} % (‖δ‖∞ = {v['delta_levels']:.2f}/255, "
                 f"‖ω‖₂,∞ = {v['flow_norm']:.3f} px)")
        return plot_image_grid(cols, caps, size=1.3, title=title)

    # ------------------------------------------------------------------ widget
    @property
    def widget(self):
        if self._widget is None:
            import ipywidgets as W

            def slider(name, step, description):
                return W.FloatSlider(value=self.eps[name], min=0, max=self.limits[name], step=step,
                                     description=description, continuous_update=False)

            self.sliders = {}
            if self.kind != "spatial":
                self.sliders["eps_x"] = slider("eps_x", 1, "ε_x (/255)")
            if self.kind != "pixel":
                self.sliders["eps_w"] = slider("eps_w", 0.02, "ε_ω (px)")
            self.output = W.Output()
            for s in self.sliders.values():
                s.observe(self._on_change, names="value")
            self._widget = W.VBox([W.HBox(list(self.sliders.values())), self.output])
            self._on_change()
        return self._widget

    def _on_change(self, change=None):
        from IPython.display import display

        for name, s in self.sliders.items():
            self.eps[name] = s.value
        self.shown = self.view()  # what the panel displays now (tests and callers can read it)
        fig = self.figure()
        with self.output:
            self.output.clear_output(wait=True)
            display(fig)
        plt.close(fig)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
