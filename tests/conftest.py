"""Shared fixtures: tiny untrained models for property tests and small Fashion-MNIST models, loaded
from the shipped lesson models (models/, trained when missing)."""

from __future__ import annotations

import pytest
import torch

from jointlab.data import load_dataset
from jointlab.models import wrn
from jointlab.train import load_or_train
from jointlab.zoo import TEST_FIXTURE


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
def trained_model(tmp_path_factory):
    """WRN-10-2 naturally trained for 3 epochs on 4000 Fashion-MNIST images: shipped in models/ (the
    lesson models, `make models`), else trained once (~20 s on 2 cores)."""
    return load_or_train(TEST_FIXTURE, tmp_path_factory.mktemp("cache"), device="cpu", progress=False).model


@pytest.fixture(scope="session")
def quick_runs(tmp_path_factory):
    """A runs folder whose cache holds the quick profile's natural model (shipped; else trained once):
    shared by the notebook, explorer and browser tests."""
    from jointlab.explorer import prepare

    runs = tmp_path_factory.mktemp("runs")
    prepare(runs / "cache", methods=["natural"], profile="quick")
    return runs
