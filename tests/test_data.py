import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar as tv_cifar
import torchvision.datasets.svhn as tv_svhn

from jointlab import data
from jointlab.data import DatasetNotFoundError, get_spec, load_dataset


def test_embedded_fashion_mnist_loads_in_unit_range():
    ds = load_dataset("fashion-mnist", "test", limit=500)
    assert len(ds) == 500 and ds.spec.eps_w == 0.28 and not ds.augment
    x, y = ds[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    xb, yb = ds.batch(64)
    assert xb.min() >= -1 and xb.max() <= 1 and xb.min() == -1  # black background maps to -1
    assert set(yb.tolist()) <= set(range(10)) and len(set(yb.tolist())) > 5  # a mixed subset


def test_limit_is_a_deterministic_subset():
    a = load_dataset("fashion-mnist", "test", limit=50, seed=3).labels
    b = load_dataset("fashion-mnist", "test", limit=50, seed=3).labels
    c = load_dataset("fashion-mnist", "test", limit=50, seed=4).labels
    assert torch.equal(a, b) and not torch.equal(a, c)


def _write_idx(path, array: np.ndarray):
    magic = {1: 0x0801, 3: 0x0803}[array.ndim]
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_is_gunzipped_from_the_system_package(tmp_path, monkeypatch):
    system = tmp_path / "system"
    system.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("t10k", 5)):
        _write_idx(system / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(system / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIR", system)
    ds = load_dataset("fashion-mnist", "train", root=tmp_path / "cache")
    assert len(ds) == 12 and (tmp_path / "cache/FashionMNIST/raw/train-images-idx3-ubyte").exists()
    assert len(load_dataset("fashion-mnist", "test", root=tmp_path / "cache")) == 5


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist") as e:
        load_dataset("fashion-mnist", root=tmp_path)
    assert "--download" in str(e.value)


def _skip_md5(monkeypatch):
    """Our small stand-in files cannot match torchvision's checksums of the real archives."""
    def exists(path, md5=None):
        return __import__("os").path.isfile(path)
    monkeypatch.setattr(tv_cifar, "check_integrity", exists)
    monkeypatch.setattr(tv_svhn, "check_integrity", exists)


def _write_cifar(root, name, n_train=6, n_test=4, classes=10):
    rng = np.random.default_rng(0)
    folder, train_files, test_files, meta, label_key, names_key = {
        "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                    "batches.meta", "labels", "label_names"),
        "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", "fine_labels", "fine_label_names"),
    }[name]
    d = root / folder
    d.mkdir(parents=True)
    for files, n in ((train_files, n_train), (test_files, n_test)):
        for f in files:
            entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                     label_key: rng.integers(0, classes, n).tolist()}
            (d / f).write_bytes(pickle.dumps(entry))
    (d / meta).write_bytes(pickle.dumps({names_key: [f"c{i}" for i in range(classes)]}))


@pytest.mark.parametrize("name,classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_loaders_on_small_stand_in_files(tmp_path, monkeypatch, name, classes):
    _skip_md5(monkeypatch)
    _write_cifar(tmp_path, name, classes=classes)
    train = load_dataset(name, "train", root=tmp_path)
    test = load_dataset(name, "test", root=tmp_path)
    assert len(train) == (30 if name == "cifar10" else 6) and len(test) == 4
    assert train.augment and not test.augment  # crop + flip for CIFAR training only
    x, _ = train[0]
    assert x.shape == (3, 32, 32) and x.min() >= -1 and x.max() <= 1
    xb, _ = test.batch()
    test_file = next(tmp_path.iterdir()) / ("test_batch" if name == "cifar10" else "test")
    raw = pickle.loads(test_file.read_bytes())
    expected = torch.from_numpy(raw["data"][0].reshape(3, 32, 32)).float() * 2 / 255 - 1
    torch.testing.assert_close(xb[0], expected)  # channel order and scaling preserved


def test_svhn_loader_on_a_small_stand_in_file(tmp_path, monkeypatch):
    scipy_io = pytest.importorskip("scipy.io")
    _skip_md5(monkeypatch)
    (tmp_path / "svhn").mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 7), ("test", 3)):
        scipy_io.savemat(tmp_path / "svhn" / f"{split}_32x32.mat",
                         {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                          "y": np.array([[10]] + [[i + 1] for i in range(n - 1)])})
    ds = load_dataset("svhn", "train", root=tmp_path)
    assert len(ds) == 7 and not ds.augment and ds.spec.lr == 0.01
    assert ds.labels[0] == 0  # SVHN's label 10 is the digit 0
    assert ds[0][0].shape == (3, 32, 32)


def test_missing_cifar_offline_says_to_download(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="--download"):
        load_dataset("cifar10", root=tmp_path)


def test_augmentation_keeps_shape_and_range():
    torch.manual_seed(0)
    ds = load_dataset("fashion-mnist", "test", limit=8, augment=True)
    xs = torch.stack([ds[0][0] for _ in range(20)])
    assert xs.shape == (20, 1, 28, 28) and xs.min() >= -1 and xs.max() <= 1
    assert len({x.sum().item() for x in xs}) > 1  # random crops differ


@pytest.mark.parametrize("kwargs,message", [
    (dict(name="mnist"), "dataset must be one of"),
    (dict(split="val"), "split must be 'train' or 'test'"),
    (dict(limit=0), "limit must be a positive integer"),
])
def test_bad_dataset_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_dataset(**kwargs)


def test_registry_has_the_papers_defaults():
    assert get_spec("cifar10").eps_w == 0.3 and get_spec("CIFAR-10").augment
    assert get_spec("svhn").lr == 0.01 and not get_spec("svhn").augment
    assert get_spec("fashion_mnist").image_size == 28


def test_synthetic_cifar_is_deterministic_and_cifar_shaped():
    a = load_dataset("synthetic-cifar", "test", limit=4)
    b = load_dataset("synthetic-cifar", "test", limit=4)
    assert torch.equal(a.images, b.images) and a.images.shape == (4, 3, 32, 32)
