"""Slider panels for notebooks: move ε_x / ε_ω and see the attacked images, the perturbation, the
flow field and the predictions. Attack results are computed when a slider is released
(`continuous_update=False`) and cached per slider position, so moving back is instant; models are
never retrained here (they come from `jointlab.train.load_or_train`).

    panel = AttackPanel(model, x[:8], y[:8], classes, kind="joint")
    panel            # in a notebook: the sliders, the picture, the numbers and a "save figure" button

The pieces are shared with the attack explorer (`jointlab.explorer`): `run_attack` (one attack of
`ATTACK_KINDS` at given budgets) and `FigureBox` (a figure shown as a PNG with a save button).
"""

from __future__ import annotations

import base64
import html
import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

from . import attacks as A
from .models import predict
from .viz import amplify, flow_to_rgb, plot_image_grid
from .warp import flow_norm, warp

__all__ = ["AttackKind", "ATTACK_KINDS", "KINDS", "attack_kind", "run_attack", "measure", "measured_text",
           "figure_png", "FigureBox", "AttackPanel"]


AttackKind = A.AttackInfo
# the slider kinds: every attack of the registry that has a step count to slide (not FGSM)
ATTACK_KINDS: dict[str, AttackKind] = {k: v for k, v in A.ATTACKS.items() if k != "fgsm"}
KINDS = tuple(ATTACK_KINDS)


def attack_kind(kind: str) -> AttackKind:
    """The entry of `ATTACK_KINDS`, or a clear error naming the choices."""
    if kind not in ATTACK_KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    return ATTACK_KINDS[kind]


def run_attack(kind: str, model: nn.Module, x: Tensor, y: Tensor, eps_x: float = 8.0, eps_w: float = 0.3,
               steps: int = 10, seed: int = 0, random_start: bool = True) -> A.AttackResult:
    """One attack of `ATTACK_KINDS` at budgets (ε_x in levels, ε_ω in pixels), with step sizes
    2.5·ε/steps (Madry et al.'s rule: any number of steps can reach the boundary) and a seeded
    random start, so the same slider position always shows the same result."""
    k = attack_kind(kind)
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer; got {steps!r}")
    kw = dict(k.extra, steps=steps, random_start=random_start)
    if k.uses_x:
        kw.update(eps_x=float(eps_x), step_x=min(2.5 * eps_x / steps, eps_x))
    if k.uses_w:
        kw.update(eps_w=float(eps_w), step_w=min(2.5 * eps_w / steps, eps_w))
    torch.manual_seed(seed)
    return k.fn(model, x, y, **kw)


def measure(x: Tensor, res: A.AttackResult) -> dict:
    """What a panel shows of an attack's result: the warped image T(x, ω) and the measured
    ‖δ‖∞ (0–255 levels) and ‖ω‖₂,∞ (pixels) over the batch (0 for a part the attack lacks)."""
    return {"x_adv": res.x_adv, "delta": res.delta, "flow": res.flow,
            "warped": x if res.flow is None else warp(x, res.flow),
            "delta_levels": 0.0 if res.delta is None else res.delta.abs().max().item() * 255 / 2,
            "flow_norm": 0.0 if res.flow is None else flow_norm(res.flow).max().item()}


def measured_text(kind: str, v: dict, with_budgets: bool = False) -> str:
    """"‖δ‖∞ = …/255, ‖ω‖₂,∞ = … px" for the parts this kind of attack has (and the budgets)."""
    k = attack_kind(kind)
    parts = []
    if k.uses_x:
        parts.append(f"‖δ‖∞ = {v['delta_levels']:.2f}/255" + (f" (ε_x = {v['eps_x']:g})" * with_budgets))
    if k.uses_w:
        parts.append(f"‖ω‖₂,∞ = {v['flow_norm']:.3f} px" + (f" (ε_ω = {v['eps_w']:g})" * with_budgets))
    return ", ".join(parts)


def figure_png(fig, dpi: int = 100, colors: int | None = None) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it (widgets show bytes, not figures).
    `colors`: store a palette of that many colours instead of full RGBA (a third of the bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    if colors is None:
        return buf.getvalue()
    from PIL import Image

    small = io.BytesIO()
    Image.open(buf).convert("RGB").quantize(colors=colors).save(small, format="PNG", optimize=True)
    return small.getvalue()


def error_html(exc: BaseException) -> str:
    """A one-line error for a widget's status area (class `jl-error`, so tests can find it)."""
    return (f'<span class="jl-error" style="color:#b00020">{html.escape(type(exc).__name__)}: '
            f"{html.escape(str(exc))}</span>")


class FigureBox:
    """A figure shown as a PNG image widget, with a "save figure" button for slides.

    `show(draw, filename)` renders `draw()` (a function returning a matplotlib figure) on screen;
    the button draws it again at `save_dpi` into `save_dir/filename` and offers a download link.
    """

    def __init__(self, save_dir: str | Path, *, dpi: int = 100, save_dpi: int = 200):
        import ipywidgets as W

        self.save_dir, self.dpi, self.save_dpi = Path(save_dir), dpi, save_dpi
        self.image = W.Image(format="png")
        self.button = W.Button(description="save figure", icon="download",
                               tooltip=f"write this figure as a PNG into {self.save_dir}")
        self.status = W.HTML()
        self.button.on_click(lambda _: self.save())
        self.widget = W.VBox([self.image, self.button, self.status])
        self._draw: Callable | None = None
        self.filename = "figure.png"
        self.saved: Path | None = None

    def show(self, draw: Callable, filename: str) -> None:
        self._draw, self.filename = draw, filename
        png = figure_png(draw(), self.dpi)
        # pin the natural size: without it a front end stretches the picture to the row's width
        width = int.from_bytes(png[16:20], "big")
        self.image.width = str(width)
        self.widget.layout.width = f"{max(width, 200)}px"  # long status lines wrap instead of widening
        self.image.value = png
        self.status.value = ""  # a "saved" line belongs to the previous picture

    def save(self) -> Path | None:
        """Write the figure shown now as a PNG; returns its path (shown under the button)."""
        if self._draw is None:
            self.status.value = "nothing to save yet"
            return None
        try:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            path = self.save_dir / self.filename
            data = figure_png(self._draw(), self.save_dpi)
            path.write_bytes(data)
        except Exception as e:  # a read-only folder must not break the panel
            self.status.value = error_html(e)
            return None
        link = f"data:image/png;base64,{base64.b64encode(data).decode()}"
        self.status.value = (f'<div style="word-break: break-all; line-height: 1.4">saved '
                             f'<code title="{html.escape(str(path))}">{html.escape(path.name)}</code> '
                             f'(<a download="{html.escape(path.name)}" href="{link}">download</a>) '
                             f'in {html.escape(str(path.parent))}</div>')
        self.saved = path
        return path


class AttackPanel:
    """ε sliders over one attack (`kind`: one of `KINDS`, e.g. "pixel" = PGD, "spatial" = Alg. 1,
    "joint" = Alg. 2).

    `view(eps_x, eps_w)` returns what the panel shows as data (images, predictions, measured
    budgets); `figure(...)` draws it; the widget calls both on slider release. `save_dir` is where
    the "save figure" button writes (default: runs/figures).
    """

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, classes, kind: str = "joint", *,
                 eps_x: float = 8.0, eps_w: float = 0.3, steps: int = 10, max_eps_x: float = 32.0,
                 max_eps_w: float = 1.5, seed: int = 0, save_dir: str | Path | None = None):
        k = attack_kind(kind)
        if x.ndim != 4 or len(x) != len(y):
            raise ValueError(f"x must be a batch (N, C, H, W) with one label per image in y; got x "
                             f"{tuple(x.shape)} and y {tuple(y.shape)}")
        self.model, self.x, self.y, self.classes = model, x, y, list(classes)
        self.kind, self.steps, self.seed = kind, steps, seed
        self.uses = {"eps_x": k.uses_x, "eps_w": k.uses_w}
        self.limits = {"eps_x": max_eps_x, "eps_w": max_eps_w}
        self.eps = {"eps_x": eps_x if k.uses_x else 0.0, "eps_w": eps_w if k.uses_w else 0.0}
        if save_dir is None:
            from .profiles import runs_dir

            save_dir = runs_dir() / "figures"
        self.save_dir = Path(save_dir)
        self._cache: dict[tuple[float, float], dict] = {}
        self._clean_pred: Tensor | None = None  # the same at every slider position: computed once
        self._widget = None
        self.shown: dict | None = None
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ data
    def view(self, eps_x: float | None = None, eps_w: float | None = None) -> dict:
        """The attack at these budgets: images, perturbation parts, predictions and measured sizes."""
        eps_x = self.eps["eps_x"] if eps_x is None else float(eps_x)
        eps_w = self.eps["eps_w"] if eps_w is None else float(eps_w)
        key = (round(eps_x, 6), round(eps_w, 6))
        if key not in self._cache:
            res = run_attack(self.kind, self.model, self.x, self.y, eps_x, eps_w, self.steps, self.seed)
            if self._clean_pred is None:
                self._clean_pred = predict(self.model, self.x)
            pred, clean_pred, y = predict(self.model, res.x_adv), self._clean_pred, self.y.cpu()
            self._cache[key] = measure(self.x, res) | {
                "eps_x": eps_x, "eps_w": eps_w, "clean_pred": clean_pred, "pred": pred,
                "accuracy": (pred == y).float().mean().item(),
                "clean_accuracy": (clean_pred == y).float().mean().item(),
            }
        return self._cache[key]

    def summary(self, v: dict | None = None) -> str:
        """The numbers under the sliders: accuracy and the measured size of each perturbation."""
        v = v or self.view()
        flipped = int((v["pred"] != v["clean_pred"]).sum())
        return (f"accuracy {100 * v['accuracy']:.0f} % (clean {100 * v['clean_accuracy']:.0f} %); "
                f"prediction changed on {flipped} of {len(v['pred'])} images; "
                f"measured {measured_text(self.kind, v)}")

    def figure(self, eps_x: float | None = None, eps_w: float | None = None):
        """Columns: clean, warped (joint kinds), δ amplified (pixel/joint), attacked, flow colour."""
        v = self.view(eps_x, eps_w)
        cols = {"clean": self.x}
        caps = {"clean": [self.classes[p] for p in v["clean_pred"]]}
        if v["flow"] is not None and v["delta"] is not None:
            cols["T(x, ω)"] = v["warped"]
        if v["delta"] is not None:
            cols["δ (amplified)"] = amplify(v["delta"], max(v["eps_x"], 1e-9))
        cols["attacked"] = v["x_adv"]
        caps["attacked"] = [self.classes[p] for p in v["pred"]]
        if v["flow"] is not None:
            cols["ω (colour)"] = flow_to_rgb(v["flow"], max(v["eps_w"], 1e-9))
        budgets = ([f"ε_x = {v['eps_x']:g}/255"] if self.uses["eps_x"] else []) + (
            [f"ε_ω = {v['eps_w']:g} px"] if self.uses["eps_w"] else [])
        title = (f"{ATTACK_KINDS[self.kind].label}, {self.steps} steps: {', '.join(budgets)}  →  "
                 f"accuracy {100 * v['accuracy']:.0f} %")
        return plot_image_grid(cols, caps, size=1.3, title=title)

    # ------------------------------------------------------------------ widget
    @property
    def widget(self):
        """Sliders, the numbers, the picture (PNG) and a "save figure" button, built on first use."""
        if self._widget is None:
            import ipywidgets as W

            def slider(name, step, description):
                return W.FloatSlider(value=self.eps[name], min=0, max=self.limits[name], step=step,
                                     description=description, continuous_update=False, readout_format=".2f")

            self.sliders = {}
            if self.uses["eps_x"]:
                self.sliders["eps_x"] = slider("eps_x", 1, "ε_x (/255)")
            if self.uses["eps_w"]:
                self.sliders["eps_w"] = slider("eps_w", 0.02, "ε_ω (px)")
            self.picture = FigureBox(self.save_dir)
            self.numbers = W.HTML()
            for s in self.sliders.values():
                s.observe(self._on_change, names="value")
            # the numbers right under the sliders: they stay in view while the learner moves them
            self._widget = W.VBox([W.HBox(list(self.sliders.values())), self.numbers, self.picture.image,
                                   W.HBox([self.picture.button, self.picture.status])])
            self._on_change()
        return self._widget

    def _on_change(self, change=None):
        for name, s in self.sliders.items():
            self.eps[name] = s.value
        eps_x, eps_w = self.eps["eps_x"], self.eps["eps_w"]
        try:
            self.shown = self.view()  # what the panel displays now (tests and callers can read it)
            self.picture.show(lambda: self.figure(eps_x, eps_w),
                              f"{self.kind}_ex{eps_x:g}_ew{eps_w:g}_steps{self.steps}.png")
            self.numbers.value = html.escape(self.summary(self.shown))
            self.error = None
        except Exception as e:  # show it where the learner looks, instead of a silent log entry
            self.error = e
            self.numbers.value = error_html(e)

    def _ipython_display_(self):
        from IPython.display import HTML, display

        display(self.widget)
        # under the live sliders, a precomputed copy that still works in a rendered page (no kernel)
        display(HTML(self.static_html()))

    # ------------------------------------------------------------------ kernel-free copy
    def static_positions(self, n: int = 6) -> dict[str, list[float]]:
        """`n` budgets per slider this kind uses: 0 to the slider's maximum on the slider's grid
        (ε_x in whole levels, ε_ω in 0.02 px), plus the panel's own budget."""
        if not isinstance(n, int) or not 2 <= n <= 16:
            raise ValueError(f"n must be an integer number of positions per slider, 2 to 16; got {n!r}")
        grid = {"eps_x": 1.0, "eps_w": 0.02}
        out = {}
        for name, used in self.uses.items():
            if used:
                values = {round(round(self.limits[name] * i / (n - 1) / grid[name]) * grid[name], 6)
                          for i in range(n)} | {round(self.eps[name], 6)}
                out[name] = sorted(values)
        return out

    def static_html(self, n: int | None = None, dpi: int | None = None) -> str:
        """A self-contained HTML/JS copy of the panel (no kernel, no network): range sliders over
        `n` precomputed budgets each, swapping the picture (attacked images, flow colours) and the
        numbers. With two sliders (joint kinds) the positions form a cross through the panel's
        budgets: moving one slider puts the other back at its budget (n_x + n_ω − 1 attacks, not
        n_x·n_ω). Elements carry `jl-static-*` classes for tests. Defaults keep a panel under 300 KB
        in the executed notebook: 6 positions at 72 dpi with one slider, 4 at 54 dpi with two, and
        32-colour PNG frames."""
        two = sum(self.uses.values()) > 1
        n = n if n is not None else (4 if two else 6)
        dpi = dpi if dpi is not None else (54 if two else 72)
        positions = self.static_positions(n)
        start = {name: values.index(round(self.eps[name], 6)) for name, values in positions.items()}
        frames = {}
        for name, values in positions.items():
            for i in range(len(values)):
                index = dict(start, **{name: i})
                key = ",".join(str(index[k]) for k in positions)
                if key in frames:
                    continue
                budgets = {k: positions[k][index[k]] for k in positions}
                v = self.view(budgets.get("eps_x", 0.0), budgets.get("eps_w", 0.0))
                png = figure_png(self.figure(v["eps_x"], v["eps_w"]), dpi, colors=32)
                frames[key] = {"src": "data:image/png;base64," + base64.b64encode(png).decode(),
                               "text": self.summary(v)}
        uid = f"jl-static-{uuid.uuid4().hex[:12]}"
        labels = {"eps_x": ("ε_x", "/255"), "eps_w": ("ε_ω", "px")}
        sliders = "".join(
            f'<label style="margin-right:1.5em">{labels[name][0]} '
            f'<input class="jl-static-slider" type="range" data-name="{name}" min="0" '
            f'max="{len(values) - 1}" step="1" value="{start[name]}" style="vertical-align:middle"> '
            f'<span class="jl-static-readout">{values[start[name]]:g}</span> {labels[name][1]}</label>'
            for name, values in positions.items())
        first = frames[",".join(str(start[k]) for k in positions)]
        counts = ", ".join(f"{len(v)} values of {labels[k][0]}" for k, v in positions.items())
        note = (f"precomputed at {counts}"
                + (" (moving one slider puts the other back at its budget)" if len(positions) > 1 else "")
                + "; works without a kernel")
        data = json.dumps({"names": list(positions), "values": positions, "start": start, "frames": frames})
        return f"""<div class="jl-static-panel" id="{uid}" style="font-size:0.9em">
<div class="jl-static-note" style="color:#555;font-style:italic">{html.escape(note)}</div>
<div>{sliders}</div>
<div class="jl-static-text">{html.escape(first["text"])}</div>
<img class="jl-static-image" alt="{html.escape(ATTACK_KINDS[self.kind].label)} at the chosen budgets"
 src="{first["src"]}">
</div>
<script>
(function () {{
  const root = document.getElementById("{uid}"), data = {data};
  const sliders = Array.from(root.querySelectorAll(".jl-static-slider"));
  function show(moved) {{
    for (const s of sliders) if (s !== moved) s.value = data.start[s.dataset.name];
    for (const s of sliders) s.parentElement.querySelector(".jl-static-readout").textContent =
      data.values[s.dataset.name][Number(s.value)];
    const key = data.names.map(n => root.querySelector(`[data-name="${{n}}"]`).value).join(",");
    const frame = data.frames[key];
    root.querySelector(".jl-static-image").src = frame.src;
    root.querySelector(".jl-static-text").textContent = frame.text;
  }}
  for (const s of sliders) s.addEventListener("input", () => show(s));
}})();
</script>"""
