"""Datasets: one registry for CIFAR-10/100, SVHN and the embedded Fashion-MNIST.

Images come out as float tensors (C, H, W) in [-1, 1] (the paper's range) with integer labels.
`synthetic-cifar` (random CIFAR-10-shaped images, random labels) serves benchmarks on machines
without the real data.
Each dataset carries the paper's defaults: image side, channels, classes, the test flow budget
ε_ω = 1 % of the side, the augmentation (random crop with 4-pixel padding + horizontal flip for
CIFAR, none for SVHN and Fashion-MNIST) and the initial learning rate.

Fashion-MNIST is the embedded default and works offline: it is read from `<root>/FashionMNIST/raw`,
else gunzipped there from the Debian package `dataset-fashion-mnist`
(/usr/share/datasets/fashion-mnist), else downloaded by torchvision when `download=True`.
The other datasets use torchvision's loaders and download when asked to and online.

Command line: `python -m jointlab.data prepare fashion-mnist [--root data] [--download]`.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "DatasetSpec",
    "DATASETS",
    "DatasetNotFoundError",
    "ImageDataset",
    "get_spec",
    "load_dataset",
    "load_imagefolder",
    "imagefolder_classes",
    "make_loader",
    "default_root",
    "prepare",
    "FASHION_MNIST_SYSTEM_DIR",
]

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
_FMNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class DatasetSpec:
    """Per-dataset defaults of the paper (§6)."""

    name: str
    image_size: int
    channels: int
    num_classes: int
    eps_w: float  # test-time flow budget: 1 % of the image side, in pixels
    augment: bool  # random crop (4-px padding) + horizontal flip in training
    lr: float  # initial learning rate of the paper's schedules
    classes: tuple[str, ...]


_CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                    "dog", "frog", "horse", "ship", "truck")
_FMNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec("cifar10", 32, 3, 10, 0.3, True, 0.1, _CIFAR10_CLASSES),
    "cifar100": DatasetSpec("cifar100", 32, 3, 100, 0.3, True, 0.1,
                            tuple(f"class {i}" for i in range(100))),
    "svhn": DatasetSpec("svhn", 32, 3, 10, 0.3, False, 0.01, tuple(str(i) for i in range(10))),
    "fashion-mnist": DatasetSpec("fashion-mnist", 28, 1, 10, 0.28, False, 0.1, _FMNIST_CLASSES),
    # random CIFAR-shaped images with random labels: for timing on machines without the real data
    "synthetic-cifar": DatasetSpec("synthetic-cifar", 32, 3, 10, 0.3, True, 0.1, _CIFAR10_CLASSES),
}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is neither cached nor installed, and was not (or could not be) downloaded."""


def get_spec(name: str) -> DatasetSpec:
    """The registry entry of `name` (one of DATASETS)."""
    key = str(name).lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar-100": "cifar100"}.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}; got {name!r}")
    return DATASETS[key]


def default_root() -> Path:
    """$JOINTLAB_DATA, else the repository's `data/` folder, else ./data."""
    env = os.environ.get("JOINTLAB_DATA")
    if env:
        return Path(env)
    repo_data = Path(__file__).resolve().parents[1] / "data"
    return repo_data if repo_data.is_dir() else Path.cwd() / "data"


def to_unit_range(images_uint8: Tensor) -> Tensor:
    """uint8 0–255 -> float32 in [-1, 1]."""
    return images_uint8.float().mul_(2.0 / 255.0).sub_(1.0)


class ImageDataset(Dataset):
    """In-memory images (uint8, N×C×H×W) and labels; items are (float [-1, 1] image, label).

    `augment=True` applies the paper's CIFAR augmentation per item: random crop of the image
    padded by 4 black pixels, and a horizontal flip with probability 1/2.
    """

    def __init__(self, images: Tensor, labels: Tensor, spec: DatasetSpec, augment: bool = False):
        if images.dim() != 4 or images.dtype != torch.uint8:
            raise ValueError(
                f"images must be a uint8 tensor (N, C, H, W); got {images.dtype} {tuple(images.shape)}"
            )
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},); got {tuple(labels.shape)}")
        self.images, self.labels = images, labels.long()
        self.spec, self.augment = spec, augment

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        x = to_unit_range(self.images[i])
        if self.augment:
            x = _crop_flip(x)
        return x, int(self.labels[i])

    def batch(self, n: int | None = None, start: int = 0) -> tuple[Tensor, Tensor]:
        """Images start..start+n as one tensor batch (no augmentation), for notebooks and tests."""
        end = len(self) if n is None else start + n
        return to_unit_range(self.images[start:end]), self.labels[start:end].clone()

    def __repr__(self) -> str:
        return (f"ImageDataset({self.spec.name}, n={len(self)}, "
                f"shape={tuple(self.images.shape[1:])}, augment={self.augment})")


def _crop_flip(x: Tensor, pad: int = 4) -> Tensor:
    _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=-1.0)
    i, j = torch.randint(0, 2 * pad + 1, (2,)).tolist()
    x = padded[:, i:i + h, j:j + w]
    return x.flip(-1) if torch.rand(()) < 0.5 else x


def _ensure_fashion_mnist(root: Path, download: bool) -> None:
    raw = root / "FashionMNIST" / "raw"
    if all((raw / f).exists() for f in _FMNIST_FILES):
        return
    if all((FASHION_MNIST_SYSTEM_DIR / f"{f}.gz").exists() for f in _FMNIST_FILES):
        raw.mkdir(parents=True, exist_ok=True)
        for f in _FMNIST_FILES:
            tmp = raw / f"{f}.part"
            with gzip.open(FASHION_MNIST_SYSTEM_DIR / f"{f}.gz", "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.replace(raw / f)  # atomic: a half-written file never looks complete
        return
    if not download:
        raise DatasetNotFoundError(
            f"Fashion-MNIST was not found in {raw} nor in {FASHION_MNIST_SYSTEM_DIR}. Install the "
            "Debian package with `sudo apt-get install dataset-fashion-mnist`, or download it "
            "(online) with `python -m jointlab.data prepare fashion-mnist --download` "
            "(download=True in Python)."
        )


def _raw_arrays(spec: DatasetSpec, split: str, root: Path, download: bool) -> tuple[Tensor, Tensor]:
    import torchvision.datasets as tvd

    train = split == "train"
    try:
        if spec.name == "synthetic-cifar":  # CIFAR-10's size, fixed by the split
            g = torch.Generator().manual_seed(0 if train else 1)
            n = 50_000 if train else 10_000
            return (torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
                    torch.randint(0, 10, (n,), generator=g))
        if spec.name == "fashion-mnist":
            _ensure_fashion_mnist(root, download)
            ds = tvd.FashionMNIST(str(root), train=train, download=download)
            return ds.data.unsqueeze(1), torch.as_tensor(ds.targets)
        if spec.name in ("cifar10", "cifar100"):
            cls = tvd.CIFAR10 if spec.name == "cifar10" else tvd.CIFAR100
            ds = cls(str(root), train=train, download=download)
            images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2)
            return images.contiguous(), torch.as_tensor(ds.targets)
        ds = tvd.SVHN(str(root / "svhn"), split=split, download=download)
        return torch.from_numpy(ds.data), torch.as_tensor(ds.labels)
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted ..."
        if download:
            raise
        raise DatasetNotFoundError(
            f"{spec.name} was not found under {root} ({e}). Download it while online with "
            f"`python -m jointlab.data prepare {spec.name} --download` (download=True in Python)."
        ) from e


def load_dataset(
    name: str = "fashion-mnist",
    split: str = "train",
    *,
    root: str | Path | None = None,
    download: bool = False,
    limit: int | None = None,
    augment: bool | None = None,
    seed: int = 0,
) -> ImageDataset:
    """Load a dataset of the registry as an `ImageDataset` of [-1, 1] images.

    Args:
        name: "fashion-mnist" (embedded default), "cifar10", "cifar100" or "svhn".
        split: "train" or "test".
        root: cache folder (default: `default_root()`, the repository's data/).
        download: let torchvision download missing files (needs the internet).
        limit: keep a fixed random subset of this many images (seeded by `seed`), for quick runs.
        augment: crop+flip per item; default: the dataset's paper default on the train split.
    """
    spec = get_spec(name)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None; got {limit!r}")
    root = Path(root) if root is not None else default_root()
    images, labels = _raw_arrays(spec, split, root, download)
    if limit is not None and limit < len(labels):
        keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:limit]
        images, labels = images[keep], labels[keep]
    if augment is None:
        augment = spec.augment and split == "train"
    return ImageDataset(images.contiguous(), labels, spec, augment)


def imagefolder_classes(path: str | Path) -> list[str]:
    """The class sub-folders of an ImageNet-style folder, in ImageFolder's (sorted) order."""
    folder = Path(path)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"imagefolder: {folder} is not a folder")
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def load_imagefolder(path: str | Path, *, image_size: int | None = None, channels: int = 3,
                     limit: int | None = None, seed: int = 0) -> ImageDataset:
    """An ImageNet-style folder (one sub-folder per class, classes in sorted order as torchvision's
    ImageFolder numbers them) as an `ImageDataset` of [-1, 1] images, resized (shorter side) and
    centre-cropped to `image_size` (default: the first image's shorter side). ε_ω defaults to 1 %
    of that side, as the paper's 0.3 px for 32 pixels."""
    import torchvision.datasets as tvd
    import torchvision.transforms.v2 as T

    folder = Path(path)
    classes = imagefolder_classes(folder)
    if len(classes) < 2:
        raise ValueError(f"imagefolder: {folder} must hold one sub-folder per class, at least 2; found "
                         f"{len(classes)} ({', '.join(classes) or 'none'})")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or image_size < 2):
        raise ValueError(f"image_size must be an integer >= 2 (pixels); got {image_size!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3; got {channels!r}")
    mode = "L" if channels == 1 else "RGB"
    raw = tvd.ImageFolder(str(folder), loader=lambda f: tvd.folder.default_loader(f).convert(mode))
    if image_size is None:
        image_size = min(raw[0][0].size)
    tf = T.Compose([T.PILToTensor(), T.Resize(image_size, antialias=True), T.CenterCrop(image_size)])
    index = torch.arange(len(raw))
    if limit is not None and limit < len(raw):
        index = torch.randperm(len(raw), generator=torch.Generator().manual_seed(seed))[:limit]
    images = torch.stack([tf(raw[i][0]) for i in index.tolist()])
    labels = torch.tensor([raw.targets[i] for i in index.tolist()])
    spec = DatasetSpec(f"imagefolder:{folder}", image_size, channels, len(raw.classes), 0.01 * image_size,
                       False, 0.1, tuple(raw.classes))
    return ImageDataset(images.contiguous(), labels, spec)


def make_loader(dataset: Dataset, batch_size: int = 128, *, shuffle: bool = False,
                drop_last: bool = False, seed: int | None = None, num_workers: int = 0,
                sampler=None) -> DataLoader:
    """A DataLoader with a seeded shuffle (so runs repeat) and pinned memory on CUDA hosts."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None,
                      sampler=sampler, drop_last=drop_last, num_workers=num_workers,
                      generator=generator, pin_memory=torch.cuda.is_available(),
                      persistent_workers=num_workers > 0)


def prepare(name: str = "fashion-mnist", root: str | Path | None = None,
            download: bool = False) -> Path:
    """Make `name` available under `root` (both splits); return the root."""
    root = Path(root) if root is not None else default_root()
    for split in ("train", "test"):
        ds = load_dataset(name, split, root=root, download=download)
        print(f"{name} {split}: {len(ds)} images of shape {tuple(ds.images.shape[1:])} in {root}")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jointlab.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["prepare"],
                        help="prepare: make a dataset available offline under the data root")
    parser.add_argument("name", nargs="?", default="fashion-mnist", choices=sorted(DATASETS), metavar="NAME",
                        help=f"one of {', '.join(sorted(DATASETS))} (default fashion-mnist)")
    parser.add_argument("--root", default=None, help="data folder (default: the repository's data/)")
    parser.add_argument("--download", action="store_true", help="download missing files (online)")
    args = parser.parse_args(argv)
    try:
        prepare(args.name, args.root, args.download)
    except DatasetNotFoundError as e:
        parser.exit(2, f"error: {e}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
