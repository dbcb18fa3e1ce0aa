"""Any PyTorch classifier, in the ecosystem's conventions, judged in the paper's units.

Inside the kit images are in [-1, 1], ε_x is in 0–255 intensity levels of the full range and ε_ω in
pixels. Most models elsewhere take [0, 1] images (torchvision, RobustBench, torchattacks), often
normalized by a mean and std, sometimes outside the model. `wrap` meets them at this boundary:

    from jointlab import wrap
    net = wrap(model, input_range=(0, 1), mean=(0.4914, 0.4822, 0.4465), std=(0.247, 0.243, 0.261))
    jointlab.attacks.joint(net, x * 2 - 1, y, eps_x=8, eps_w=0.32)     # x: the usual [0, 1] batch

The wrapped model takes [-1, 1] images, maps them to the model's range, normalizes and returns the
model's logits, so every attack, `evaluate` and `strong_evaluate` run unchanged and the budgets keep
their meaning: ε_x = 8 is 8/255 of the model's range whatever that range is. `model` may be any
callable that returns logits (a plain function too, as AutoAttack's maintainers recommend for
models with their own preprocessing).

For code written against torchattacks, `Spatial`, `Joint`, `APGDSpatial` and `APGDJoint` take the
model once and [0, 1] images, return [0, 1] adversarial images, and run inside
`torchattacks.MultiAttack` beside torchattacks' own attacks (they subclass `torchattacks.Attack`
when it is installed: `pip install torchattacks --no-deps`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .. import attacks as A

__all__ = ["wrap", "ModelAdapter", "check_logits", "check_eps_x", "Spatial", "Joint", "APGDSpatial",
           "APGDJoint"]


class _Function(nn.Module):
    """A plain callable as a module (no parameters): eval_mode, devices and PassCounter work on it."""

    def __init__(self, fn: Callable[[Tensor], Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)


def _per_channel(name: str, value, channels: int | None) -> Tensor | None:
    if value is None:
        return None
    t = torch.as_tensor(value, dtype=torch.float32).flatten()
    if t.numel() == 0 or not torch.isfinite(t).all() or (name == "std" and (t <= 0).any()):
        raise ValueError(f"{name} must be finite numbers, one per channel{' and > 0' * (name == 'std')}; "
                         f"got {value!r}")
    if channels is not None and t.numel() not in (1, channels):
        raise ValueError(f"{name} must have 1 or {channels} values (one per channel); got {t.numel()}")
    return t.view(1, -1, 1, 1)


class ModelAdapter(nn.Module):
    """`model` (images in `input_range`, normalized by `mean`/`std`) as a jointlab model on [-1, 1]."""

    def __init__(self, model: Callable[[Tensor], Tensor], input_range: Sequence[float] = (0.0, 1.0),
                 mean=None, std=None, channels: int | None = None):
        super().__init__()
        if not callable(model):
            raise ValueError(f"model must be an nn.Module or a callable returning logits; got "
                             f"{type(model).__name__}")
        try:
            lo, hi = (float(v) for v in input_range)
        except (TypeError, ValueError):
            raise ValueError(f"input_range must be two numbers (low, high), e.g. (0, 1); got "
                             f"{input_range!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"input_range must be (low, high) with low < high; got {input_range!r}")
        if (mean is None) != (std is None):
            raise ValueError("mean and std go together: give both, or neither")
        self.model = model if isinstance(model, nn.Module) else _Function(model)
        self.input_range = (lo, hi)
        self.register_buffer("mean", _per_channel("mean", mean, channels), persistent=False)
        self.register_buffer("std", _per_channel("std", std, channels), persistent=False)
        # a parameterless callable still has a device: the buffers' (move the adapter with .to())
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        lo, hi = self.input_range
        z = lo + (x + 1.0) * ((hi - lo) / 2.0)
        if self.mean is not None:
            z = (z - self.mean.to(z.dtype)) / self.std.to(z.dtype)
        return self.model(z)

    def to_model_range(self, x: Tensor) -> Tensor:
        """[-1, 1] images as the model's unnormalized input range (for saving and showing them)."""
        lo, hi = self.input_range
        return lo + (x + 1.0) * ((hi - lo) / 2.0)

    def from_model_range(self, z: Tensor) -> Tensor:
        """Images in the model's input range (unnormalized) as [-1, 1] images."""
        lo, hi = self.input_range
        return ((z - lo) * (2.0 / (hi - lo)) - 1.0).clamp(-1.0, 1.0)

    def extra_repr(self) -> str:
        if self.mean is None:
            return f"input_range={self.input_range}"
        mean, std = (", ".join(f"{v:.4g}" for v in t.flatten().tolist()) for t in (self.mean, self.std))
        return f"input_range={self.input_range}, mean=({mean}), std=({std})"


def wrap(model: Callable[[Tensor], Tensor], input_range: Sequence[float] = (0.0, 1.0), mean=None, std=None,
         *, channels: int | None = None) -> ModelAdapter:
    """`model` in the ecosystem's conventions (images in `input_range`, default [0, 1]; `mean` and
    `std` per channel when its normalization is outside it) as a jointlab model on [-1, 1] images."""
    return ModelAdapter(model, input_range, mean, std, channels)


def check_logits(model: Callable[[Tensor], Tensor], x: Tensor, num_classes: int | None = None) -> None:
    """Raise a clear error unless `model(x)` returns finite logits of shape (N, classes), not
    probabilities (attacks and the DLR loss need logits)."""
    n = min(len(x), 8)
    with torch.no_grad(), A.eval_mode(model):
        out = model(x[:n])
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != n:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"model must return logits of shape (N, classes); got {shape} for N = {n}")
    if num_classes is not None and out.shape[1] != num_classes:
        raise ValueError(f"model must return {num_classes} logits per image (the dataset's classes); got "
                         f"{out.shape[1]}")
    if not torch.isfinite(out).all():
        raise ValueError("model must return finite logits; it returned NaN or infinite values")
    ones = torch.ones(len(out), device=out.device, dtype=out.dtype)
    if out.min() >= 0 and out.max() <= 1 and torch.allclose(out.sum(1), ones, atol=1e-4):
        raise ValueError("model must return logits, not probabilities (its outputs are in [0, 1] and sum to "
                         "1): remove the final softmax")


def check_eps_x(eps_x: float) -> float:
    """Warn when ε_x looks like a fraction of the range (0.03, 8/255) instead of 0–255 levels."""
    if 0 < eps_x < 1:
        warnings.warn(f"eps_x is in 0–255 intensity levels of the model's input range (the paper's 8 is "
                      f"8/255 of it); got {eps_x:g}, i.e. {eps_x:g}/255. For 8/255 pass eps_x=8.",
                      UserWarning, stacklevel=3)
    return eps_x


# --------------------------------------------------------------------------- torchattacks' calling style

try:  # the eval extra: subclass torchattacks' base so that MultiAttack and its tools accept ours
    from torchattacks.attack import Attack as _Base
except ImportError:  # the same calling convention without it
    class _Base:
        def __init__(self, name: str, model: nn.Module):
            self.attack, self.model = name, model

        def __call__(self, images: Tensor, labels: Tensor) -> Tensor:
            with A.eval_mode(self.model):
                return self.forward(images, labels)


class _FlowAttack(_Base):
    """torchattacks-style: `atk = Spatial(model, eps_w=0.3)`, `adv = atk(images, labels)` with images in
    [0, 1] (the model takes [0, 1] images; its normalization inside it), adversarial images out."""

    threat = "spatial"
    rule = "pgd"

    def __init__(self, model: nn.Module, eps_x: float = 8, eps_w: float | None = None, steps: int = 20,
                 **kwargs):
        super().__init__(type(self).__name__, model)
        self.eps_x, self.eps_w, self.steps, self.kwargs = check_eps_x(eps_x), eps_w, steps, kwargs
        self.adapted = wrap(model)

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        if images.min() < 0 or images.max() > 1:
            raise ValueError(f"images must be in [0, 1] (torchattacks' convention); got min "
                             f"{images.min().item():.3g}, max {images.max().item():.3g}")
        x = images.detach() * 2 - 1
        eps_w = 0.01 * x.shape[-1] if self.eps_w is None else self.eps_w  # 1 % of the side (paper)
        if self.rule == "apgd":
            res = A.apgd(self.adapted, x, labels, self.eps_x, eps_w, self.steps, self.threat, **self.kwargs)
        elif self.threat == "spatial":
            res = A.spatial(self.adapted, x, labels, eps_w, eps_w / 2, self.steps, **self.kwargs)
        else:
            res = A.joint(self.adapted, x, labels, self.eps_x, eps_w, 2, eps_w / 2, self.steps, **self.kwargs)
        return ((res.x_adv + 1) / 2).clamp(0, 1).to(images.dtype)


class Spatial(_FlowAttack):
    """Alg. 1 (ε_ω in pixels, 1 % of the side by default; step ε_ω / 2) in torchattacks' calling style."""


class Joint(_FlowAttack):
    """Alg. 2, x̄ = T(x, ω) + δ (ε_x in 0–255 levels, ε_ω in pixels), in torchattacks' calling style."""

    threat = "joint"


class APGDSpatial(_FlowAttack):
    """APGD (Croce & Hein 2020) in the ℓ2,∞ flow ball, torchattacks' calling style (`loss="dlr"`, ...)."""

    rule = "apgd"

    def __init__(self, model: nn.Module, eps_x: float = 8, eps_w: float | None = None, steps: int = 100,
                 **kwargs):
        super().__init__(model, eps_x, eps_w, steps, **kwargs)


class APGDJoint(APGDSpatial):
    """APGD on the joint threat (double passes), torchattacks' calling style."""

    threat = "joint"


# --------------------------------------------------------------------------- models named on the command line

SCHEMES = ("torchvision", "robustbench")  # besides a checkpoint path and module.path:factory


def _state_dict(path: str | None, what: str) -> dict | None:
    if path is None:
        return None
    from pathlib import Path

    if not Path(path).is_file():
        raise ValueError(f"weights file not found: {path} (--weights: a state_dict saved with "
                         f"torch.save(model.state_dict(), PATH))")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):  # common checkpoint layouts around the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds no state_dict for {what}")
    return state


def _load_weights(model: nn.Module, path: str, spec: str) -> None:
    try:
        model.load_state_dict(_state_dict(path, spec))
    except RuntimeError as e:  # missing / unexpected keys, shape mismatches
        raise ValueError(f"--weights {path} does not fit --model {spec}: {str(e).splitlines()[-1].strip()}"
                         + (" (--num-classes?)" if "size mismatch" in str(e) else "")) from None


def load_model_spec(spec: str, *, weights: str | None = None, num_classes: int | None = None,
                    dataset: str = "cifar10") -> tuple[nn.Module, dict]:
    """A model named by SPEC, and what is known of its conventions:

        path/to/last.pt            a jointlab checkpoint (images in [-1, 1]; its config names its dataset)
        torchvision:NAME           torchvision.models.get_model(NAME), weights from `weights` (no download)
        module.path:factory        your code: factory() returns the model (`weights` loaded into it if given)
        robustbench:[DATASET/THREAT/]NAME   RobustBench's load_model (online, or a local file in their
                                   layout: `weights` is their model_dir, DATASET/THREAT/NAME.pt under it)

    Returns (model, info) with info["input_range"] = the range the model expects (None: unknown,
    the caller's `--input-range` decides; jointlab checkpoints: (-1, 1)) and info["dataset"] when the
    checkpoint names one."""
    from pathlib import Path

    scheme, sep, rest = spec.partition(":")
    if not sep or (len(scheme) == 1 and Path(spec).exists()):  # a path (C:\\... on Windows too)
        from ..train import load_checkpoint, load_model

        if not Path(spec).is_file():
            raise ValueError(f"checkpoint not found: {spec} (--model SPEC is a jointlab checkpoint, "
                             f"torchvision:NAME, module.path:factory or robustbench:NAME)")
        cfg = load_checkpoint(spec)["config"]
        return load_model(spec), {"scheme": "jointlab", "name": spec, "input_range": (-1.0, 1.0),
                                  "dataset": cfg["dataset"], "config": cfg}
    if scheme == "torchvision":
        import torchvision

        if weights is None:
            raise ValueError(f"--model {spec}: torchvision models need --weights PATH (a state_dict; "
                             f"nothing is downloaded)")
        kw = {} if num_classes is None else {"num_classes": num_classes}
        try:
            model = torchvision.models.get_model(rest, weights=None, **kw)
        except ValueError as e:
            raise ValueError(f"--model {spec}: {e}") from None
        _load_weights(model, weights, spec)
        return model.eval(), {"scheme": scheme, "name": rest, "input_range": None, "weights": weights}
    if scheme == "robustbench":
        parts = rest.split("/")
        if len(parts) not in (1, 3) or not all(parts):
            raise ValueError(f"--model {spec}: use robustbench:NAME or robustbench:DATASET/THREAT/NAME "
                             f"(e.g. robustbench:cifar10/Linf/Standard)")
        ds, threat, name = parts if len(parts) == 3 else (dataset, "Linf", parts[0])
        try:
            from robustbench.utils import load_model as rb_load_model
        except ImportError:
            raise ValueError(f"--model {spec} needs the robustbench package (pip install "
                             f"git+https://github.com/RobustBench/robustbench)") from None
        model = rb_load_model(model_name=name, model_dir=weights or "models", dataset=ds, threat_model=threat)
        # RobustBench's models take [0, 1] images, normalization inside
        return model.eval(), {"scheme": scheme, "name": name, "input_range": (0.0, 1.0), "dataset": ds,
                              "threat_model": threat}
    if all(part.isidentifier() for part in scheme.split(".")) and rest.isidentifier():  # module:factory
        import importlib

        try:
            module = importlib.import_module(scheme)
        except ImportError as e:
            raise ValueError(f"--model {spec}: unknown scheme, and no module {scheme!r} to import ({e}); "
                             f"SPEC is a jointlab checkpoint, torchvision:NAME, module.path:factory or "
                             f"robustbench:NAME") from None
        factory = getattr(module, rest, None)
        if not callable(factory):
            raise ValueError(f"--model {spec}: {scheme} has no function {rest!r}")
        model = factory()
        if weights is not None:
            _load_weights(model, weights, spec)
        return model, {"scheme": "factory", "name": spec, "input_range": None}
    raise ValueError(f"--model {spec}: unknown scheme {scheme!r}; SPEC is a jointlab checkpoint, "
                     f"torchvision:NAME, module.path:factory or robustbench:NAME")
