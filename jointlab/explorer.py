"""The attack explorer: one image (from the test set, or uploaded), any trained model of the cache,
any attack of the paper, sliders for ε_x, ε_ω and steps; panels for the clean image, the attacked
image, the perturbation, the flow field and the top-3 predictions, each with a "save figure"
button. It is the app of `notebooks/explorer.ipynb`, served standalone by Voilà:

    make explore                              # prepare the models if missing, then serve the app
    python -m jointlab.explorer prepare       # train the quick models into runs/cache (<1 min, CPU)

In Python, `Explorer().widget` is the app; `Explorer.compute(...)` returns what it shows as data.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from .data import get_spec, load_dataset, to_unit_range
from .profiles import get_profile, runs_dir
from .train import CheckpointError, TrainConfig, load_checkpoint, load_model
from .viz import amplify, flow_to_rgb, plot_flow_arrows, show_image
from .warp import flow_norm
from .widgets import ATTACK_KINDS, FigureBox, error_html, measure, measured_text, run_attack

__all__ = ["CachedModel", "find_models", "image_from_bytes", "top_k", "Explorer", "PANELS", "main"]

PANELS = ("clean", "attacked", "perturbation", "flow field", "top-3 predictions")
PREPARED_METHODS = ("natural", "joint")  # a plain model and a jointly trained one, to compare


@dataclass(frozen=True)
class CachedModel:
    """A finished training run in the cache."""

    path: Path
    method: str
    dataset: str
    arch: str
    epochs: int

    @property
    def label(self) -> str:
        key = self.path.parent.name[-12:]
        return f"{self.method} · {self.arch} · {self.dataset} · {self.epochs} ep · {key}"


def find_models(cache_dir: str | Path) -> list[CachedModel]:
    """Finished runs under `cache_dir` (`<method>-<key>/last.pt`), sorted by method; partial runs
    and files that are not jointlab checkpoints are left out."""
    found = []
    for path in sorted(Path(cache_dir).glob("*/last.pt")):
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError:
            continue
        cfg = TrainConfig.from_dict(ckpt["config"]).resolved()
        if ckpt["epoch"] >= cfg.epochs:
            found.append(CachedModel(path, cfg.method, get_spec(cfg.dataset).name, cfg.arch, cfg.epochs))
    return sorted(found, key=lambda m: (m.method != "natural", m.method, m.label))


def image_from_bytes(data: bytes, channels: int, size: int) -> Tensor:
    """An uploaded image file (PNG, JPEG, ...) -> (channels, size, size) in [-1, 1]: converted to
    grey or RGB, centre-cropped to a square and resized to the model's input."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(bytes(data)))
        img.load()
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError("the uploaded file could not be read as an image (PNG, JPEG, GIF, BMP, ...)") from e
    img = ImageOps.fit(img.convert("L" if channels == 1 else "RGB"), (size, size), Image.Resampling.BILINEAR)
    pixels = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    return to_unit_range(pixels.view(size, size, channels).permute(2, 0, 1).contiguous())


@torch.no_grad()
def top_k(model, x: Tensor, k: int = 3) -> list[tuple[int, float]]:
    """The k most probable classes of one image (1, C, H, W) as (class, probability) pairs."""
    prob = model(x).float().softmax(1)[0]
    p, i = prob.topk(min(k, prob.numel()))
    return list(zip(i.tolist(), p.tolist(), strict=True))


# --------------------------------------------------------------------------- the panels' figures


def _image_figure(img: Tensor, title: str):
    fig, ax = plt.subplots(figsize=(2.6, 2.8))
    show_image(ax, img, title)
    return fig


def _perturbation_figure(s: dict):
    """Each part of x̄ − x, amplified so its largest change is full grey-scale (grey = 0)."""
    parts = {}
    if s["flow"] is not None:
        parts["warp: T(x, ω) − x"] = s["warped"] - s["x"]
    if s["delta"] is not None:
        parts["pixel: δ"] = s["delta"]
    if len(parts) != 1:
        parts["total: x̄ − x"] = s["x_adv"] - s["x"]
    fig, axes = plt.subplots(1, len(parts), figsize=(2.6 * len(parts), 2.9), squeeze=False)
    for ax, (name, d) in zip(axes[0], parts.items(), strict=True):
        peak = d.abs().max().item() * 255 / 2  # in 0-255 levels
        show_image(ax, amplify(d[0], max(peak, 1e-9)), f"{name}\nmax |·| = {peak:.1f}/255", fontsize=8)
    fig.tight_layout()
    return fig


def _flow_figure(s: dict):
    """Arrows over the image (lengths scaled up to be seen) and the colour code of Fig. 4."""
    if s["flow"] is None:
        fig, ax = plt.subplots(figsize=(2.6, 2.8))
        ax.text(0.5, 0.5, "no flow field:\na pixel attack\nmoves no pixel", ha="center", va="center",
                fontsize=9)
        ax.axis("off")
        return fig
    flow, eps_w = s["flow"][0], s["eps_w"]
    size = flow.shape[-1]
    stride = max(1, size // 14)
    longest = max(flow_norm(s["flow"]).max().item(), 1e-9)
    scale = stride / longest  # the longest arrow spans one grid cell
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(5.2, 2.9))
    plot_flow_arrows(a1, flow, s["x"][0], stride=stride, scale=scale)
    a1.set_title(f"ω as arrows (×{scale:.1f})\nlongest {longest:.3f} px", fontsize=8)
    show_image(a2, flow_to_rgb(s["flow"], max(eps_w, 1e-9))[0],
               f"ω as colour (Fig. 4)\nfull colour = ε_ω = {eps_w:g} px", fontsize=8)
    fig.tight_layout()
    return fig


def _top3_figure(s: dict, classes: list[str]):
    fig, axes = plt.subplots(1, 2, figsize=(5.6, 2.2))
    for ax, key, name in ((axes[0], "top_clean", "clean"), (axes[1], "top_adv", "attacked")):
        ks, ps = zip(*s[key], strict=True)
        colours = ["tab:green" if k == s["label"] else "tab:gray" for k in ks]
        ax.barh(range(len(ks))[::-1], [100 * p for p in ps], color=colours)
        ax.set_yticks(range(len(ks))[::-1], [classes[k] for k in ks], fontsize=8)
        ax.set_xlim(0, 100)
        ax.set_xlabel("probability (%)", fontsize=8)
        ax.set_title(name, fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    green = "the label" if s["source"] == "test" else "the clean prediction (the attacked label)"
    fig.suptitle(f"green: {green}", fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- the app


class Explorer:
    """The attack explorer (see the module docstring). `cache_dir`: where trained models are found
    (default: runs/cache); `save_dir`: where "save figure" writes (default: runs/explorer)."""

    def __init__(self, cache_dir: str | Path | None = None, save_dir: str | Path | None = None, *,
                 device: str | None = None, n_images: int = 100):
        self.cache_dir = Path(cache_dir) if cache_dir else runs_dir() / "cache"
        self.save_dir = Path(save_dir) if save_dir else runs_dir() / "explorer"
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.n_images = n_images
        self.models = find_models(self.cache_dir)
        if not self.models:
            raise FileNotFoundError(
                f"no trained model in {self.cache_dir}: run `python -m jointlab.explorer prepare` (trains "
                f"{' and '.join(PREPARED_METHODS)} models on Fashion-MNIST, under a minute on a CPU), or "
                f"any notebook of the sequence, or pass cache_dir=")
        self._loaded: dict[Path, torch.nn.Module] = {}
        self._test: dict[str, tuple[Tensor, Tensor]] = {}
        self._widget = None
        self.state: dict | None = None
        self.error: BaseException | None = None
        self.select_model(0)

    # ------------------------------------------------------------------ data
    def select_model(self, which: int | str = 0) -> None:
        """Use the model at this index of `models` (or with this label); loads its test images."""
        labels = [m.label for m in self.models]
        if isinstance(which, str):
            if which not in labels:
                raise ValueError(f"model must be one of {labels}; got {which!r}")
            which = labels.index(which)
        self.current = self.models[which]
        if self.current.path not in self._loaded:
            self._loaded[self.current.path] = load_model(self.current.path, self.device)
        self.model = self._loaded[self.current.path]
        self.spec = get_spec(self.current.dataset)
        if self.spec.name not in self._test:
            # the same fixed subset as the notebooks' test batches (seed 1)
            data = load_dataset(self.spec.name, "test", limit=self.n_images, seed=1)
            self._test[self.spec.name] = data.batch()
        self.images, self.labels = self._test[self.spec.name]
        self.upload: Tensor | None = None

    def use_upload(self, data: bytes, name: str = "upload.png") -> Tensor:
        """Attack an uploaded image file from now on (its label is the clean prediction)."""
        self.upload = image_from_bytes(data, self.spec.channels, self.spec.image_size)
        self.upload_name = Path(name).stem or "upload"
        return self.upload

    def compute(self, kind: str = "joint", eps_x: float = 8.0, eps_w: float | None = None, steps: int = 10,
                index: int = 0, source: str = "test", random_start: bool = True) -> dict:
        """Attack one image (test image `index`, or the upload with `source="upload"`) and return
        what the panels show: images, perturbation parts, flow, top-3 predictions, measured sizes."""
        eps_w = self.spec.eps_w if eps_w is None else eps_w
        if source == "upload":
            if self.upload is None:
                raise ValueError("source='upload' needs an uploaded image first (use_upload)")
            x, name = self.upload[None], self.upload_name
        elif source == "test":
            if not 0 <= index < len(self.images):
                raise ValueError(f"index must be in [0, {len(self.images) - 1}]; got {index!r}")
            x, name = self.images[index: index + 1], f"test{index}"
        else:
            raise ValueError(f"source must be 'test' or 'upload'; got {source!r}")
        x = x.to(self.device)
        top_clean = top_k(self.model, x)
        # a test image is attacked against its label, an upload against the model's own prediction
        label = int(self.labels[index]) if source == "test" else top_clean[0][0]
        y = torch.tensor([label], device=self.device)
        t = time.perf_counter()
        res = run_attack(kind, self.model, x, y, eps_x, eps_w, int(steps), random_start=random_start)
        seconds = time.perf_counter() - t
        return measure(x, res) | {
            "kind": kind, "eps_x": float(eps_x), "eps_w": float(eps_w), "steps": int(steps), "source": source,
            "name": name, "x": x, "label": label, "top_clean": top_clean,
            "top_adv": top_k(self.model, res.x_adv), "seconds": seconds,
        }

    def figures(self, s: dict) -> dict:
        """Panel name -> a function drawing its figure (the save button draws it again, larger)."""
        c = self.spec.classes
        (kc, pc), (ka, pa) = s["top_clean"][0], s["top_adv"][0]
        head = f"label: {c[s['label']]}" if s["source"] == "test" else f"uploaded: {s['name']}"
        return {
            "clean": lambda: _image_figure(
                s["x"][0], f"clean ({head})\npredicted {c[kc]} ({100 * pc:.0f} %)"),
            "attacked": lambda: _image_figure(
                s["x_adv"][0], f"{ATTACK_KINDS[s['kind']].label}\npredicted {c[ka]} ({100 * pa:.0f} %)"),
            "perturbation": lambda: _perturbation_figure(s),
            "flow field": lambda: _flow_figure(s),
            "top-3 predictions": lambda: _top3_figure(s, c),
        }

    def summary(self, s: dict) -> str:
        c = self.spec.classes
        fooled = s["top_adv"][0][0] != s["label"]
        return (f"{ATTACK_KINDS[s['kind']].label}, {s['steps']} steps, {s['seconds']:.2f} s: "
                f"{c[s['top_clean'][0][0]]} → <b>{c[s['top_adv'][0][0]]}</b> "
                f"({'fooled' if fooled else 'not fooled'}); measured {measured_text(s['kind'], s, True)}")

    # ------------------------------------------------------------------ widget
    @property
    def widget(self):
        """The app: controls on the left, the five panels (each with "save figure") on the right."""
        if self._widget is None:
            self._widget = self._build()
            self.refresh()
        return self._widget

    def _build(self):
        import ipywidgets as W

        style = {"description_width": "90px"}
        wide = W.Layout(width="330px")
        self.controls = {
            "model": W.Dropdown(options=[(m.label, i) for i, m in enumerate(self.models)], value=0,
                                description="model", style=style, layout=wide),
            "source": W.ToggleButtons(options=[("test image", "test"), ("upload", "upload")], value="test",
                                      description="image", style={"button_width": "110px", **style}),
            "index": W.IntSlider(value=0, min=0, max=len(self.images) - 1, description="test image #",
                                 continuous_update=False, style=style, layout=wide),
            "upload": W.FileUpload(accept="image/*", multiple=False, description="upload image"),
            "kind": W.Dropdown(options=[(k.label, name) for name, k in ATTACK_KINDS.items()], value="joint",
                               description="attack", style=style, layout=wide),
            "eps_x": W.FloatSlider(value=8, min=0, max=32, step=1, description="ε_x (/255)",
                                   continuous_update=False, style=style, layout=wide),
            "eps_w": W.FloatSlider(value=self.spec.eps_w, min=0, max=1.5, step=0.02, description="ε_ω (px)",
                                   continuous_update=False, readout_format=".2f", style=style, layout=wide),
            "steps": W.IntSlider(value=10, min=1, max=50, description="steps", continuous_update=False,
                                 style=style, layout=wide),
            "random_start": W.Checkbox(value=True, indent=False, layout=wide,
                                       description="random start (off: ω stays on the object)"),
        }
        self.status = W.HTML(layout=W.Layout(width="330px"))
        self.panels = {name: FigureBox(self.save_dir) for name in PANELS}
        for name, ctl in self.controls.items():
            ctl.observe(self._on_control(name), names="value")
        left = W.VBox([*self.controls.values(), self.status],
                      layout=W.Layout(width="350px", min_width="350px", margin="0 16px 0 0"))
        boxes = [W.VBox([W.HTML(f"<b>{name}</b>"), p.widget], layout=W.Layout(margin="0 12px 12px 0"))
                 for name, p in self.panels.items()]
        right = W.Box(boxes, layout=W.Layout(flex_flow="row wrap", flex="1 1 auto"))
        return W.HBox([left, right])

    def _on_control(self, name):
        def handler(change):
            try:
                if name == "model":
                    self.select_model(change["new"])
                    self.controls["index"].max = len(self.images) - 1
                    self.controls["source"].value = "test"  # an upload was sized for the old model
                elif name == "upload":
                    files = change["new"]
                    if not files:
                        return
                    f = files[0]
                    self.use_upload(f["content"], f["name"])
                    if self.controls["source"].value != "upload":
                        self.controls["source"].value = "upload"  # fires refresh itself
                        return
                elif name == "index" and self.controls["source"].value != "test":
                    self.controls["source"].value = "test"
                    return
                elif name == "kind":
                    k = ATTACK_KINDS[change["new"]]
                    self.controls["eps_x"].disabled = not k.uses_x
                    self.controls["eps_w"].disabled = not k.uses_w
            except Exception as e:
                self._fail(e)
                return
            self.refresh()

        return handler

    def _fail(self, e: BaseException) -> None:
        self.error = e
        self.status.value = error_html(e)

    def refresh(self) -> dict | None:
        """Recompute with the controls' values and redraw every panel."""
        v = {k: c.value for k, c in self.controls.items()}
        try:
            if v["source"] == "upload" and self.upload is None:
                self.status.value = "choose an image file with <i>upload image</i>"
                return None
            s = self.compute(v["kind"], v["eps_x"], v["eps_w"], v["steps"], v["index"], v["source"],
                             v["random_start"])
            stem = f"{s['name']}_{s['kind']}_ex{s['eps_x']:g}_ew{s['eps_w']:g}_s{s['steps']}"
            stem += "" if v["random_start"] else "_norand"
            for name, draw in self.figures(s).items():
                self.panels[name].show(draw, f"{stem}_{name.split()[0].replace('-', '')}.png")
            self.state, self.error = s, None
            self.status.value = self.summary(s)
        except Exception as e:  # shown in the app, never a silent log entry
            self._fail(e)
        return self.state

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


# --------------------------------------------------------------------------- command line


def prepare(cache_dir: str | Path | None = None, methods=PREPARED_METHODS,
            profile: str = "quick") -> list[Path]:
    """Train (or find in the cache) the explorer's models under a notebook profile."""
    P = get_profile(profile, cache_dir=str(cache_dir) if cache_dir else None)
    paths = []
    for method in methods:
        print(f"{method}: {P.dataset}, {P.arch}, {P.epochs} epochs ({P.cache})", flush=True)
        paths.append(P.train(method).checkpoint)
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jointlab.explorer", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("prepare", help="train the explorer's models into the cache when missing")
    pr.add_argument("--cache", help="model cache (default: runs/cache)")
    pr.add_argument("--methods", nargs="+", default=list(PREPARED_METHODS), help="training methods")
    pr.add_argument("--profile", default="quick", help="notebook profile (default: quick)")
    ls = sub.add_parser("list", help="list the trained models the explorer can use")
    ls.add_argument("--cache", help="model cache (default: runs/cache)")
    args = p.parse_args(argv)
    try:
        if args.command == "prepare":
            for path in prepare(args.cache, args.methods, args.profile):
                print(path)
        else:
            for m in find_models(args.cache or runs_dir() / "cache"):
                print(f"{m.label}\t{m.path}")
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
