"""Run profiles for the notebooks: "quick" (embedded Fashion-MNIST, a small WRN, minutes on a
laptop CPU) and "full" (CIFAR-10, WRN-28-10, the paper's schedules, a GPU). A notebook's
`parameters` cell names a profile and may override any field.

    P = get_profile("quick", arch="wrn-16-2")
    model = P.model("joint")            # load-or-train through the shared cache
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import get_spec, load_dataset
from .train import TrainConfig, TrainResult, load_or_train

__all__ = ["Profile", "PROFILES", "get_profile", "repo_root", "resolve_path", "runs_dir"]


def repo_root() -> Path:
    """The checkout's root (the folder holding notebooks/): the package's own checkout, else the
    working directory or its nearest parent with notebooks/ (a kernel runs inside notebooks/)."""
    root = Path(__file__).resolve().parents[1]
    if (root / "notebooks").is_dir():
        return root
    cwd = Path.cwd().resolve()
    return next((d for d in (cwd, *cwd.parents) if (d / "notebooks").is_dir()), cwd)


def resolve_path(path: str | Path) -> Path:
    """An absolute path; a relative one is taken from the repository root, not from the working
    directory, so notebooks executed in notebooks/ write where the CLI does."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else repo_root() / path


def runs_dir() -> Path:
    """Where outputs go: $JOINTLAB_RUNS, else <repo>/runs (cache/, notebooks/, explorer/, sweeps/...)."""
    return resolve_path(os.environ.get("JOINTLAB_RUNS") or "runs")


@dataclass
class Profile:
    name: str
    dataset: str
    arch: str
    epochs: int | None  # None: each method's paper schedule
    limit: int | None  # training images (None: all)
    test_limit: int  # test images attacked in tables
    sweep_limit: int  # test images per point of a budget sweep
    attack_steps: int  # steps of the test-time attacks (paper: 20)
    milestones: tuple[int, ...] | None = None  # epochs where lr × 0.1 (None: each method's paper fractions)
    eval_limit: int = 500  # test images of the trainer's per-epoch clean accuracy
    batch_size: int = 128
    eps_x: float = 8.0
    eps_w: float | None = None  # None: 1 % of the image side
    device: str | None = None
    out_dir: str | None = None  # None: runs_dir()/notebooks
    cache_dir: str | None = None  # None: runs_dir()/cache
    seed: int = 0
    progress: bool = True  # progress bars while training; the headless runner turns them off

    def __post_init__(self):
        spec = get_spec(self.dataset)
        if self.eps_w is None:
            self.eps_w = spec.eps_w
        if self.device is None:
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.out = resolve_path(self.out_dir) if self.out_dir else runs_dir() / "notebooks"
        self.cache = resolve_path(self.cache_dir) if self.cache_dir else runs_dir() / "cache"
        self.figures = self.out / "figures"
        self.figures.mkdir(parents=True, exist_ok=True)
        self.spec = spec

    def train_config(self, method: str, **overrides) -> TrainConfig:
        base = {"method": method, "dataset": self.dataset, "arch": self.arch, "epochs": self.epochs,
                "limit": self.limit, "batch_size": self.batch_size, "seed": self.seed,
                "milestones": self.milestones, "eval_limit": self.eval_limit}
        return TrainConfig(**(base | overrides))

    def train(self, method: str, progress: bool | None = None, **overrides) -> TrainResult:
        """`load_or_train` for `method` under this profile: instant when cached (progress=None: the
        profile's setting)."""
        progress = self.progress if progress is None else progress
        return load_or_train(self.train_config(method, **overrides), self.cache, device=self.device,
                             progress=progress)

    def model(self, method: str, **overrides):
        return self.train(method, **overrides).model

    def test_batch(self, n: int | None = None):
        """The first n (default: test_limit) images of a fixed random test subset, on the device."""
        x, y = load_dataset(self.dataset, "test", limit=self.test_limit, seed=self.seed + 1).batch(n)
        return x.to(self.device), y.to(self.device)

    def savefig(self, fig, name: str) -> None:
        """Save a figure as PNG under the figures folder (returns nothing, so that a notebook cell
        ending with it shows no path, under Jupyter's trailing `;` rule or without it)."""
        fig.savefig(self.figures / name, dpi=120, bbox_inches="tight")


PROFILES = {
    # batch 64: with 3000 images and batch 128, two epochs are only 46 steps, too few for BatchNorm's
    # running statistics to catch up with the weights (a natural model then scores 38 % in eval mode
    # against 70 % with batch statistics); 92 steps of 64 give 73 % at the same cost
    # 6000 images x 4 epochs: long enough for the lessons (a natural model at 85 % clean that the joint
    # attack breaks, curves that flatten), too long to wait for: the models ship in models/ (jointlab.zoo).
    # One schedule for every method, lr x 0.1 after epoch 2 (the pixel methods' 60 %/90 % of 4 epochs):
    # the paper's one-step schedule (decay at 1/3 and 1/2 of 300 epochs) squeezed into 4 epochs would give
    # the one-step methods a single epoch at lr 0.1 against two for Madry, an unfair start for Table 1
    "quick": dict(dataset="fashion-mnist", arch="wrn-10-2", epochs=4, limit=6000, batch_size=64,
                  milestones=(2, 4), eval_limit=100,
                  # one image set for every table and figure of notebooks 01-06: the same 64 test images
                  test_limit=64, sweep_limit=64, attack_steps=10),
    "full": dict(dataset="cifar10", arch="wrn-28-10", epochs=None, limit=None, test_limit=10000,
                 sweep_limit=1000, attack_steps=20),
}


def get_profile(name: str = "quick", **overrides) -> Profile:
    """A profile by name; keyword arguments that are None keep the profile's value."""
    if name not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}; got {name!r}")
    fields = {f.name for f in dataclasses.fields(Profile)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"unknown profile fields {sorted(unknown)}; known: {sorted(fields - {'name'})}")
    values = PROFILES[name] | {k: v for k, v in overrides.items() if v is not None}
    return Profile(name=name, **values)
