"""The paper's evaluation: its attack suite (Table 1 columns plus margin-loss versions), budget sweeps
(Figs. 1a and 3), black-box transfer (Table 5), and the paper's own numbers (Tables 1 and 4).

Data is either a pair of tensors (x, y) or an iterable of (x, y) batches such as a DataLoader.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import attacks as A
from ..models import model_device, predict
from .interop import check_logits
from .metrics import batches, num_batches

__all__ = ["attack_suite", "SUITES", "evaluate", "evaluate_per_image", "transfer", "sweep", "paper_column",
           "TABLE1_COLUMNS", "PAPER_TABLE1", "PAPER_TABLE3", "PAPER_TABLE4"]

SUITES = ("paper", "quick")  # the per-image worst case over stronger attacks: evaluation.strong

# The paper's Table 1 (CIFAR-10, accuracy %): Pristine / FGSM / PGD20 / Spatial / Joint
PAPER_TABLE1 = {
    "natural": (95.6, 36.9, 0.0, 0.1, 0.0),
    "madry": (85.7, 54.9, 44.9, 45.6, 11.6),
    "spatial-multi": (91.0, 57.0, 18.7, 70.8, 13.4),
    "joint-multi": (76.4, 55.8, 50.4, 60.2, 29.6),
    "bilateral": (91.1, 90.5, 58.4, 53.7, 35.8),
    "spatial": (94.1, 73.2, 35.8, 65.7, 30.5),
    "joint": (92.1, 88.7, 64.0, 68.0, 53.1),
    "cascade": (92.3, 92.2, 48.7, 49.4, 31.8),
    "one-pass": (91.8, 95.5, 32.6, 44.9, 23.8),
}

# The paper's Table 3 (CIFAR-10, one-step joint training with either pass order): Pristine / PGD20 /
# Spatial / Joint-SP / Joint-PS
PAPER_TABLE3 = {
    "joint": (92.1, 64.0, 68.0, 53.1, 48.5),       # trained with the SP order (Alg. 2 as written)
    "joint-ps": (90.4, 64.9, 67.6, 59.8, 62.1),    # trained with the PS order
}

# The paper's Table 4 (CIFAR-10, joint training at budgets (eps_x, eps_w)): accuracy % per test attack
PAPER_TABLE4 = {
    (ex, ew): dict(zip(("Pristine", "PGD", "PGD100", "Spatial", "Joint"), row, strict=True))
    for (ex, ew), row in zip([(ex, ew) for ex in (2, 4, 6, 8) for ew in (0.1, 0.2, 0.3)], zip(
        (92.2, 90.5, 90.2, 91.3, 89.1, 88.0, 90.1, 88.7, 87.3, 94.2, 92.5, 92.1),  # Pristine
        (68.7, 65.9, 61.6, 65.4, 61.4, 57.8, 64.5, 59.2, 57.5, 65.2, 62.3, 64.0),  # PGD20
        (67.5, 65.3, 60.3, 64.7, 60.7, 57.0, 64.0, 58.5, 57.1, 54.4, 50.2, 52.7),  # PGD100
        (68.0, 67.5, 67.2, 64.0, 64.0, 63.2, 62.7, 61.4, 61.7, 68.0, 69.1, 68.0),  # Spatial
        (61.5, 62.8, 57.3, 59.4, 57.1, 53.6, 58.8, 54.0, 53.5, 46.4, 46.7, 53.1), strict=True), strict=True)
}


def paper_column(threat: str, steps: int = 20, loss: str = "ce") -> str:
    """The column of the paper's table that attacks `threat` (Table 1: PGD{steps}, Spatial, Joint
    = Joint-SP), with "-CW" for the margin loss."""
    if threat not in A.THREATS:
        raise ValueError(f"threat must be one of {A.THREATS}; got {threat!r}")
    name = {"pixel": f"PGD{steps}", "spatial": "Spatial", "joint": "Joint-SP"}[threat]
    return name if loss == "ce" else ("Joint" if threat == "joint" else name) + "-CW"


# Table 1 of the paper: its column -> the column of our suite that measures it
TABLE1_COLUMNS = {"Pristine": "Pristine", "FGSM": "FGSM", "PGD": "PGD{steps}", "Spatial": "Spatial",
                  "Joint": "Joint-SP"}


def attack_suite(name: str = "paper", eps_x: float = 8, eps_w: float = 0.3, steps: int = 20) -> dict:
    """The test-time attacks of the paper (§6): name -> (attack, kwargs).

    Untargeted with random start (FGSM: none), pixel step 2, flow step ε_ω / 2 (0.15 for 0.3),
    `steps` steps; "-CW" columns use the margin loss, which one-step label-smoothed models cannot
    mask. "paper" adds PGD100; "quick" leaves it out.
    """
    if name not in ("paper", "quick"):
        raise ValueError(f"suite must be one of ('paper', 'quick') (the strong suite: "
                         f"jointlab.evaluation.strong_evaluate); got {name!r}")
    sw = dict(eps_w=eps_w, step_w=eps_w / 2, steps=steps)
    px = dict(eps_x=eps_x, step_x=2, steps=steps)
    both = px | sw
    col = paper_column
    suite = {
        "Pristine": (None, {}),
        "FGSM": (A.fgsm, dict(eps_x=eps_x)),
        col("pixel", steps): (A.pgd, px),
        "PGD100": (A.pgd, px | dict(steps=100)),
        col("spatial"): (A.spatial, sw),
        col("joint"): (A.joint, both),
        "Joint-PS": (A.joint, both | dict(order="ps")),
        col("pixel", steps, "cw"): (A.pgd, px | dict(loss="cw")),
        col("spatial", loss="cw"): (A.spatial, sw | dict(loss="cw")),
        col("joint", loss="cw"): (A.joint, both | dict(loss="cw")),
    }
    if name == "quick" and steps != 100:  # with steps == 100 the "PGD100" key is the PGD{steps} column
        suite.pop("PGD100")
    return suite


def evaluate(model: nn.Module, data, suite: str | dict = "paper", *, eps_x: float = 8, eps_w: float = 0.3,
             steps: int = 20, batch_size: int = 256, progress: bool = True,
             source: nn.Module | None = None) -> dict[str, float]:
    """Accuracy (%) of `model` under every attack of `suite` (a name or a dict from `attack_suite`).

    With `source`, the attacks are computed on `source` and evaluated on `model` (black-box
    transfer, Table 5). `evaluate_per_image` gives the same per image.
    """
    correct = evaluate_per_image(model, data, suite, eps_x=eps_x, eps_w=eps_w, steps=steps,
                                 batch_size=batch_size, progress=progress, source=source)
    return {name: 100.0 * int(c.sum()) / len(c) for name, c in correct.items()}


def evaluate_per_image(model: nn.Module, data, suite: str | dict = "paper", *, eps_x: float = 8,
                       eps_w: float = 0.3, steps: int = 20, batch_size: int = 256, progress: bool = True,
                       source: nn.Module | None = None) -> dict[str, Tensor]:
    """Per attack of `suite`, a bool tensor over the images (in the order of `data`): does `model`
    classify the attacked image correctly? The records behind paired comparisons of two models."""
    if isinstance(suite, str) and suite not in SUITES:
        raise ValueError(f"suite must be one of {SUITES}; got {suite!r}")
    attacks_ = attack_suite(suite, eps_x, eps_w, steps) if isinstance(suite, str) else suite
    attacker = source if source is not None else model
    device = model_device(model)
    correct: dict[str, list[Tensor]] = {name: [] for name in attacks_}
    for i, (x, y) in enumerate(tqdm(batches(data, batch_size), total=num_batches(data, batch_size),
                                    desc="evaluate", leave=False, disable=not progress)):
        x, y = x.to(device), y.to(device)
        if i == 0:
            check_logits(model, x)  # logits, not probabilities: one clear error before any attack
        for name, (attack, kw) in attacks_.items():
            x_eval = x if attack is None else attack(attacker, x, y, **kw).x_adv
            correct[name].append(predict(model, x_eval, batch_size) == y.cpu())
    if not any(correct.values()) or not sum(len(c) for c in next(iter(correct.values()))):
        raise ValueError("data must hold at least one image")
    return {name: torch.cat(c) for name, c in correct.items()}


def transfer(source: nn.Module, target: nn.Module, data, suite: str | dict = "quick", **kwargs) -> dict:
    """Table 5: accuracy (%) of `target` on attacks generated on `source`."""
    return evaluate(target, data, suite, source=source, **kwargs)


def sweep(model: nn.Module, data, attack: Callable, param: str, values: Sequence[float], *,
          batch_size: int = 256, progress: bool = True, **fixed) -> list[float]:
    """Accuracy (%) for each value of one attack argument, e.g. Fig. 1a:
    `sweep(model, (x, y), spatial, "eps_w", [0, .1, .2, .3], steps=20, step_w=0.15)`.
    A step size given as a callable of the value (e.g. `step_w=lambda e: e / 2`) follows it."""
    accs = []
    for v in tqdm(values, desc=f"sweep {param}", leave=False, disable=not progress):
        kw = {k: (f(v) if callable(f) else f) for k, f in fixed.items()} | {param: v}
        result = evaluate(model, data, {"acc": (attack, kw)}, batch_size=batch_size, progress=False)
        accs.append(result["acc"])
    return accs
