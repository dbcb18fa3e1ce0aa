"""Shared fixtures: tiny untrained models for property tests and one small Fashion-MNIST model,
trained once and cached in pytest's cache folder (delete .pytest_cache to retrain)."""

from __future__ import annotations

import pytest
import torch

from jointlab.data import load_dataset
from jointlab.models import wrn
from jointlab.train import TrainConfig, train

TRAINED = TrainConfig(method="natural", arch="wrn-10-2", limit=4000, epochs=3, eval_limit=0, seed=0)


@pytest.fixture
def tiny_model():
    """An untrained WRN-10-1 on 1-channel images, with BatchNorm statistics from one pass."""
    torch.manual_seed(0)
    model = wrn(10, 1, num_classes=10, in_channels=1)
    with torch.no_grad():
        model.train()(torch.rand(16, 1, 12, 12) * 2 - 1)
    return model.eval()


@pytest.fixture(scope="session")
def fmnist_test_batch():
    return load_dataset("fashion-mnist", "test", limit=256, seed=1).batch()


@pytest.fixture(scope="session")
def trained_model(request):
    """WRN-10-2 naturally trained for 3 epochs on 4000 Fashion-MNIST images (~20 s on 2 cores)."""
    key = f"{TRAINED.key()}-{torch.__version__}"
    path = request.config.cache.mkdir("jointlab-models") / f"wrn-fmnist-{key}.pt"
    model = wrn(10, 2, num_classes=10, in_channels=1)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
    else:
        model = train(TRAINED, device="cpu", progress=False).model
        torch.save(model.state_dict(), path)
    return model.eval()


@pytest.fixture(scope="session")
def quick_runs(tmp_path_factory):
    """A runs folder whose cache holds the quick profile's natural model (~15 s to train once):
    shared by the notebook, explorer and browser tests."""
    from jointlab.explorer import prepare

    runs = tmp_path_factory.mktemp("runs")
    prepare(runs / "cache", methods=["natural"], profile="quick")
    return runs
