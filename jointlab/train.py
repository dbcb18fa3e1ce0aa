"""Adversarial training: Alg. 3 (joint adversarial training) and every row of the paper's Table 1
as a named preset, with checkpoints that resume exactly, bf16 autocast on GPUs and DDP (torchrun).

    from jointlab.train import TrainConfig, train
    result = train(TrainConfig(method="joint", dataset="fashion-mnist", arch="wrn-16-2",
                               epochs=2, limit=2000, out="runs/joint"))

Methods (paper §6). One-step methods attack towards a wrong label ŷ (Alg. 3: a random one) with a
random start and step = budget, and train on smoothed labels; multi-step methods are untargeted
PGD-style with random start and train on hard labels, as Madry et al.:

    method         training attack                       target          labels     epochs, lr decay
    natural        none                                  -               hard       100, at 60 %, 90 %
    madry          multi-step pixel: PGD 7 steps, step 2 untargeted      hard       100, 60 %, 90 %
    bilateral      one-step pixel (Bilateral AT)         most-confusing  bilateral  100, 60 %, 90 %
    spatial        one-step spatial (Alg. 1, 1 step)     random          simple     300, at 1/3, 1/2
    spatial-multi  multi-step spatial: 5 steps, α = 0.1  untargeted      hard       300, 1/3, 1/2
    joint          one-step joint (Alg. 2 in Alg. 3)     random          simple     300, 1/3, 1/2
    joint-multi    multi-step joint: 5 steps, α 0.1, β 2 untargeted      hard       300, 1/3, 1/2
    cascade        one-step cascade (Table 2)            random          simple     300, 1/3, 1/2
    one-pass       one-step one-pass (Table 2)           random          simple     300, 1/3, 1/2

Targets: "random" = uniform over the wrong classes (Alg. 3); "most-confusing" = argmax of the clean
logits over the wrong classes (Bilateral AT). Labels: "simple" = 1 − δ on the true class, δ/(C − 1)
elsewhere (δ = 0.5); "bilateral" = Bilateral AT's adversarial labels from the clean logits (γ = 0.01,
multi = 9); `TrainConfig.target` and `.smoothing` override the preset's.

The paper does not say how many epochs its one-step pixel model (Bilateral) trained; we use the
pixel schedule. Attacks run with the model in eval mode (BatchNorm uses running statistics while
the perturbation is generated) and in fp32 even when the weight update runs under bf16 autocast.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import attacks as A
from .data import get_spec, load_dataset, make_loader
from .losses import (
    bilateral_labels,
    most_confusing_labels,
    random_wrong_labels,
    smooth_labels,
    soft_cross_entropy,
)
from .models import accuracy, build_model, parse_arch

__all__ = ["Method", "METHODS", "TrainConfig", "TrainResult", "train", "train_step", "load_or_train",
           "shipped_checkpoint", "perturb_batch", "clean_logits", "save_checkpoint", "load_checkpoint",
           "load_model", "CheckpointError", "SMOOTHINGS", "TARGETS"]

CHECKPOINT_FORMAT = "jointlab-checkpoint"
SMOOTHINGS = ("simple", "bilateral", "none")
TARGETS = ("random", "most-confusing")


@dataclass(frozen=True)
class Method:
    """A row of the paper's tables: which attack perturbs the training batch and how."""

    attack: str | None  # None, or a name of jointlab.attacks.ATTACKS: the training attack
    steps: int = 1
    target: str | None = "random"  # one of TARGETS (one-step: towards ŷ ≠ y, Alg. 3); None: untargeted
    smoothing: str = "simple"  # labels of the weight update, one of SMOOTHINGS
    step_x: float | None = None  # None: the budget (one-step)
    step_w: float | None = None
    epochs: int = 300
    milestones: tuple[float, ...] = (1 / 3, 1 / 2)  # fractions of the epochs

    @property
    def targeted(self) -> bool:
        return self.target is not None


_PIXEL_SCHEDULE = dict(epochs=100, milestones=(0.6, 0.9))
_HARD = dict(target=None, smoothing="none")  # untargeted attack, hard labels
_MULTI = dict(_HARD, steps=5, step_x=2.0, step_w=0.1)
METHODS: dict[str, Method] = {
    "natural": Method(None, steps=0, **_HARD, **_PIXEL_SCHEDULE),
    "madry": Method("pixel", steps=7, step_x=2.0, **_HARD, **_PIXEL_SCHEDULE),
    # Bilateral AT (Wang & Zhang 2019): towards the most-confusing class, on its adversarial labels
    "bilateral": Method("pixel", target="most-confusing", smoothing="bilateral", **_PIXEL_SCHEDULE),
    "spatial": Method("spatial"),
    "spatial-multi": Method("spatial", **_MULTI),
    "joint": Method("joint"),
    "joint-multi": Method("joint", **_MULTI),
    "cascade": Method("cascade"),
    "one-pass": Method("one-pass"),
}


@dataclass
class TrainConfig:
    """Everything that determines a training run (its hash names the load-or-train cache)."""

    method: str = "joint"
    dataset: str = "fashion-mnist"
    arch: str = "wrn-16-2"
    epochs: int | None = None  # None: the method's paper schedule
    milestones: tuple[int, ...] | None = None  # epochs where lr × 0.1; None: the method's fractions
    lr: float | None = None  # None: the dataset's (0.1 CIFAR / Fashion-MNIST, 0.01 SVHN)
    momentum: float = 0.9
    weight_decay: float = 2e-4
    batch_size: int = 128  # global: split across processes under torchrun
    eps_x: float = 8.0  # training pixel budget, 0–255 levels
    eps_w: float | None = None  # training flow budget in pixels; None: 1 % of the image side
    order: str = "sp"  # joint attack pass order, Table 3
    target: str | None = None  # one-step training attack target, one of TARGETS; None: the preset's
    smoothing: str | None = None  # labels of the weight update, one of SMOOTHINGS; None: the preset's
    smoothing_delta: float = 0.5  # the mass moved off the true class by "simple"
    limit: int | None = None  # train on a fixed random subset of this many images
    eval_limit: int = 1000  # test images for the per-epoch clean accuracy (0: none)
    seed: int = 0
    amp: bool | None = None  # bf16 autocast of the weight update; None: on for CUDA with bf16 support
    channels_last: bool | None = None  # NHWC model and batches (memory layout only); None: on for CUDA
    augment: bool | None = None  # None: the dataset's paper default
    download: bool = False

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}; got {self.method!r}")
        get_spec(self.dataset)
        parse_arch(self.arch)
        if self.order not in ("sp", "ps"):
            raise ValueError(f"order must be 'sp' or 'ps'; got {self.order!r}")
        if self.smoothing is not None and self.smoothing not in SMOOTHINGS:
            raise ValueError(f"smoothing must be one of {SMOOTHINGS} or None; got {self.smoothing!r}")
        if self.target is not None and self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS} or None; got {self.target!r}")
        if self.target is not None and not self.preset.targeted:
            raise ValueError(f"target applies to one-step (targeted) methods; {self.method!r} attacks "
                             f"untargeted (leave target unset)")
        for name in ("eps_x", "eps_w", "lr", "weight_decay"):
            v = getattr(self, name)
            if v is not None and (not math.isfinite(v) or v < 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {v}")
        if self.eps_x > 255:
            raise ValueError(f"eps_x is in 0–255 intensity levels and must be <= 255; got {self.eps_x}")
        if self.eps_w is not None and self.eps_w > 32:
            raise ValueError(f"eps_w is in pixels (paper: 0.3); got {self.eps_w}, which is out of range")
        for name in ("epochs", "batch_size", "limit"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive integer; got {v!r}")
        if self.milestones is not None:
            self.milestones = tuple(int(m) for m in self.milestones)

    # the values that are resolved from the method and dataset when left as None
    @property
    def preset(self) -> Method:
        return METHODS[self.method]

    def resolved(self) -> TrainConfig:
        spec, m = get_spec(self.dataset), self.preset
        epochs = self.epochs or m.epochs
        milestones = self.milestones
        if milestones is None:
            milestones = tuple(sorted({max(1, round(f * epochs)) for f in m.milestones}))
        return dataclasses.replace(
            self, epochs=epochs, milestones=milestones, lr=spec.lr if self.lr is None else self.lr,
            eps_w=spec.eps_w if self.eps_w is None else self.eps_w,
            target=self.target or m.target, smoothing=self.smoothing or m.smoothing)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["milestones"] = list(d["milestones"]) if d["milestones"] is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def key(self) -> str:
        """A short hash of the resolved config: identical runs share a cache entry."""
        d = self.resolved().to_dict()
        d.pop("download")
        d.pop("channels_last")  # a memory layout: the same model either way
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict]
    checkpoint: Path | None
    config: TrainConfig = field(repr=False, default=None)


class CheckpointError(RuntimeError):
    """A file that is missing or is not a jointlab checkpoint."""


# --------------------------------------------------------------------------- Alg. 3, one batch


def clean_logits(model: nn.Module, x: Tensor) -> Tensor:
    """The model's logits on the clean batch, in eval mode and without gradients (Bilateral AT's
    target and labels are computed from them)."""
    with torch.no_grad(), A.eval_mode(model):
        return model(x).float()


def perturb_batch(model: nn.Module, x: Tensor, y: Tensor, cfg: TrainConfig, num_classes: int,
                  logits: Tensor | None = None) -> Tensor:
    """The training attack of `cfg.method` on a batch: for one-step methods, the attack of Alg. 3
    towards a wrong label ŷ ≠ y (`cfg.target`: random, or the most-confusing class of the clean
    `logits`, computed here if not given) with step = budget; for multi-step ones, untargeted."""
    cfg = cfg.resolved()
    m = cfg.preset
    if m.attack is None:
        return x
    if cfg.target == "random":
        target = random_wrong_labels(y, num_classes)
    elif cfg.target == "most-confusing":
        target = most_confusing_labels(clean_logits(model, x) if logits is None else logits, y)
    else:
        target = y
    eps_x, eps_w = cfg.eps_x, cfg.eps_w
    step_x = eps_x if m.step_x is None else m.step_x
    step_w = eps_w if m.step_w is None else m.step_w
    info = A.ATTACKS[m.attack]
    kw = dict(info.extra, steps=m.steps, targeted=cfg.target is not None, random_start=True)
    if info.fn is A.joint:
        kw["order"] = cfg.order  # Table 3: SP or PS training
    return info.fn(model, x, target, **info.budgets(eps_x, eps_w, step_x, step_w), **kw).x_adv


def _train_loss(model, x_train, y, cfg: TrainConfig, num_classes: int, clean: Tensor | None):
    """Loss on the perturbed batch: CE on hard labels, or on smoothed labels (`cfg.smoothing`;
    "bilateral" needs the clean logits `clean`)."""
    logits = model(x_train)
    if cfg.smoothing == "none":
        return logits, F.cross_entropy(logits.float(), y)
    if cfg.smoothing == "simple":
        target = smooth_labels(y, num_classes, cfg.smoothing_delta)
    else:  # Bilateral AT: from the clean image's probabilities
        target = bilateral_labels(clean, y)
    return logits, soft_cross_entropy(logits, target)


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write atomically: a temporary file in the same folder, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"format": CHECKPOINT_FORMAT, "version": 1, **state}, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load with `torch.load(weights_only=True)`: tensors and plain data only, never pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # UnpicklingError for pickled objects, RuntimeError for non-torch files
        raise CheckpointError(
            f"{path} is not a jointlab checkpoint (it could not be loaded with weights_only=True: "
            f"{type(e).__name__})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a jointlab checkpoint (no '{CHECKPOINT_FORMAT}' marker)")
    return ckpt


def models_dir() -> Path | None:
    """The shipped lesson models: $JOINTLAB_MODELS ("none": do not use them), else models/ of the checkout."""
    env = os.environ.get("JOINTLAB_MODELS")
    if env is not None and env.strip().lower() in ("", "none", "off", "0"):
        return None
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / "models"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shipped_checkpoint(name: str) -> Path | None:
    """The shipped checkpoint of cache entry `name` ("<method>-<config key>") when models/manifest.json
    lists it and its sha256 matches; None otherwise (a mismatch warns, and the model is trained)."""
    folder = models_dir()
    manifest = folder / "manifest.json" if folder else None
    if manifest is None or not manifest.is_file():
        return None
    entry = next((m for m in json.loads(manifest.read_text())["models"] if m["file"] == f"{name}.pt"), None)
    if entry is None:
        return None
    path = folder / entry["file"]
    if not path.is_file() or file_sha256(path) != entry["sha256"]:
        warnings.warn(f"{path} is missing or does not match its sha256 in {manifest} (a Git LFS pointer? "
                      f"an edited file?); training the model instead. `make models` rebuilds the shipped "
                      f"models.", stacklevel=3)
        return None
    return path


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The model stored in a checkpoint, built from its config, in eval mode."""
    ckpt = load_checkpoint(path)
    cfg = TrainConfig.from_dict(ckpt["config"])
    spec = get_spec(cfg.dataset)
    model = build_model(cfg.arch, spec.num_classes, spec.channels)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval()


# --------------------------------------------------------------------------- the loop


def _distributed() -> tuple[int, int]:
    """(rank, world size); joins the process group when started by torchrun (one process included:
    DDP over one GPU runs the same code path as over eight)."""
    torchrun = "LOCAL_RANK" in os.environ and "MASTER_ADDR" in os.environ
    if torchrun and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _device(device: str | None, world: int) -> torch.device:
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dist.is_initialized():
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    return dev


def train(config: TrainConfig, out: str | Path | None = None, *, resume: bool = False,
          device: str | None = None, progress: bool = True) -> TrainResult:
    """Alg. 3 for joint methods (and the same loop for every preset): for each batch, perturb it
    with the method's attack, smooth the labels if one-step, and take an SGD step on the
    perturbed batch only. Writes `out/last.pt` every epoch and `out/metrics.jsonl`."""
    cfg = config.resolved()
    rank, world = _distributed()
    dev = _device(device, world)
    if cfg.batch_size % world:
        raise ValueError(
            f"batch_size ({cfg.batch_size}) must be divisible by the number of processes ({world})")
    amp = cfg.amp if cfg.amp is not None else dev.type == "cuda" and torch.cuda.is_bf16_supported()
    channels_last = cfg.channels_last if cfg.channels_last is not None else dev.type == "cuda"
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    out = Path(out) if out is not None else None
    ckpt_path = out / "last.pt" if out is not None else None

    torch.manual_seed(cfg.seed)  # identical initial weights on every process
    spec = get_spec(cfg.dataset)
    train_set = load_dataset(cfg.dataset, "train", limit=cfg.limit, augment=cfg.augment,
                             seed=cfg.seed, download=cfg.download)
    test_x = test_y = None
    if cfg.eval_limit and rank == 0:
        test_x, test_y = load_dataset(cfg.dataset, "test", limit=cfg.eval_limit, seed=cfg.seed).batch()
    model = build_model(cfg.arch, spec.num_classes, spec.channels).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=0.1)
    history: list[dict] = []
    start = 0
    if resume and ckpt_path is not None and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        if TrainConfig.from_dict(ckpt["config"]).key() != cfg.key():
            raise CheckpointError(f"{ckpt_path} was written by a different config; use another --out")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start, history = ckpt["epoch"], ckpt["history"]
        torch.set_rng_state(ckpt["rng"]["torch"])
        if dev.type == "cuda" and ckpt["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], dev)
        if rank == 0:
            print(f"resumed {ckpt_path} after epoch {start}/{cfg.epochs}")
    else:
        torch.manual_seed(cfg.seed + 1 + rank)  # attacks and augmentation differ across processes

    sampler = None
    if world > 1:  # one process keeps the plain loader: the same batches as a run without torchrun
        from torch.utils.data.distributed import DistributedSampler
        sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
    loader = make_loader(train_set, cfg.batch_size // world, shuffle=True, drop_last=True, sampler=sampler,
                         seed=cfg.seed)
    if len(loader) == 0:
        raise ValueError(f"the training set ({len(train_set)} images) is smaller than one batch "
                         f"({cfg.batch_size // world}); lower batch_size or raise limit")
    distributed = dist.is_initialized()
    net = nn.parallel.DistributedDataParallel(model) if distributed else model  # attacks use `model`
    board = _tensorboard(out) if rank == 0 else None

    for epoch in range(start, cfg.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        else:
            loader.generator.manual_seed(cfg.seed * 100_003 + epoch)  # the same order after a resume
        lr = opt.param_groups[0]["lr"]
        stats = _train_epoch(net, model, loader, opt, cfg, spec.num_classes, dev, amp, channels_last,
                             desc=f"{cfg.method} {epoch + 1}/{cfg.epochs}", progress=progress and rank == 0)
        sched.step()
        if distributed:
            t = torch.tensor([stats["loss_sum"], stats["correct"], stats["n"]], device=dev,
                             dtype=torch.float64)
            dist.all_reduce(t)
            stats.update(loss_sum=t[0].item(), correct=t[1].item(), n=int(t[2].item()))
            stats["images_per_s"] *= world
        record = {"epoch": epoch + 1, "loss": stats["loss_sum"] / stats["n"],
                  "train_acc": stats["correct"] / stats["n"], "lr": lr,
                  "images_per_s": stats["images_per_s"], "seconds": stats["seconds"]}
        if test_x is not None:
            record["test_acc"] = accuracy(model, test_x, test_y)
        history.append(record)
        if rank == 0:
            if progress:
                tqdm.write("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                     for k, v in record.items()))
            if out is not None:
                rng = {"torch": torch.get_rng_state(),
                       "cuda": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None}
                save_checkpoint(ckpt_path, {
                    "config": cfg.to_dict(), "epoch": epoch + 1, "model": model.state_dict(),
                    "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rng,
                    "history": history, "torch_version": str(torch.__version__)})
                tmp = out / f".metrics.jsonl.{os.getpid()}.tmp"
                tmp.write_text("".join(json.dumps(r) + "\n" for r in history))
                os.replace(tmp, out / "metrics.jsonl")
            if board is not None:
                for k, v in record.items():
                    if k != "epoch":
                        board.add_scalar(k, v, record["epoch"])
                board.flush()
    if board is not None:
        board.close()
    if distributed:
        dist.barrier()
    return TrainResult(model.eval(), history, ckpt_path, cfg)


def _tensorboard(out: Path | None):
    """A TensorBoard writer into `out` (beside metrics.jsonl), when there is an `out` and the
    optional tensorboard package (`pip install 'jointlab[tensorboard]'`); else None."""
    if out is None:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out))


def train_step(net: nn.Module, model: nn.Module, x: Tensor, y: Tensor, opt: torch.optim.Optimizer,
               cfg: TrainConfig, num_classes: int, amp: bool = False) -> tuple[Tensor, Tensor]:
    """One batch of Alg. 3: perturb (x, y) with the method's attack, then one SGD step on the
    perturbed batch only. `net` is the module that is updated (`model`, or its DDP wrapper); the
    attack runs on `model` in fp32 (bf16 would round away small flow changes: bench/gpu.py measures
    how many), and only the update under bf16 autocast when `amp`. Returns (logits, loss)."""
    cfg = cfg.resolved()
    with torch.autocast(x.device.type, enabled=False), A.trusted_inputs():
        needs_clean = cfg.target == "most-confusing" or cfg.smoothing == "bilateral"
        clean = clean_logits(model, x) if needs_clean else None  # one pass for target and labels
        x_train = perturb_batch(model, x, y, cfg, num_classes, clean)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        logits, loss = _train_loss(net, x_train, y, cfg, num_classes, clean)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return logits, loss.detach()


def _train_epoch(net, model, loader, opt, cfg, num_classes, dev, amp, channels_last, desc, progress) -> dict:
    net.train()
    loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    n = 0
    t0 = time.perf_counter()
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress, mininterval=1.0)
    for i, (x, y) in enumerate(bar):
        x = x.to(dev, non_blocking=True)
        y = y.to(dev, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits, loss = train_step(net, model, x, y, opt, cfg, num_classes, amp)
        loss_sum += loss * len(y)
        correct += (logits.argmax(1) == y).sum()
        n += len(y)
        if progress and i % 50 == 49:  # the only host-device sync inside the epoch
            bar.set_postfix(loss=f"{loss_sum.item() / n:.3f}", acc=f"{correct.item() / n:.3f}",
                            img_s=f"{n / (time.perf_counter() - t0):.0f}")
    seconds = time.perf_counter() - t0
    return {"loss_sum": loss_sum.item(), "correct": correct.item(), "n": n, "seconds": seconds,
            "images_per_s": n / seconds}


def load_or_train(config: TrainConfig, cache_dir: str | Path = "runs/cache", *, device: str | None = None,
                  progress: bool = True) -> TrainResult:
    """The cached model for an identical config (instant), else the shipped lesson model of that
    config (models/, copied into the cache), else train it there (resuming a partial run)."""
    out = Path(cache_dir) / f"{config.method}-{config.key()}"
    ckpt = out / "last.pt"
    cfg = config.resolved()
    shipped = None if ckpt.exists() else shipped_checkpoint(out.name)
    if shipped is not None:
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".last.pt.{os.getpid()}.tmp"
        shutil.copyfile(shipped, tmp)
        os.replace(tmp, ckpt)
    if ckpt.exists():
        state = load_checkpoint(ckpt)
        if shipped is not None:  # the curves beside it, as a trained run leaves them
            (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in state["history"]))
        if state["epoch"] >= cfg.epochs:
            model = load_model(ckpt, device or ("cuda" if torch.cuda.is_available() else "cpu"))
            return TrainResult(model, state["history"], ckpt, cfg)
    return train(config, out, resume=True, device=device, progress=progress)
