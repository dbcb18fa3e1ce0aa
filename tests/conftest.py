"""Shared fixtures: tiny untrained models for property tests and small Fashion-MNIST models, loaded
from the shipped lesson models (models/, trained when missing)."""

from __future__ import annotations

import shutil
from pathlib import Path

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


# ---- the notebook sequence through nbval (`--nbval-lax` in pyproject's addopts): each cell a test item
#
# At start-up the sequence is copied into tests/notebooks/ with the test parameters injected (papermill's
# parameterization, nothing executed; the folder is generated and git-ignored); nbval then runs each copy
# cell by cell, so a failure names its notebook and cell. `make demo` runs the quick profile as the
# lessons read it (64 test images; notebook 06 on all five models over 32 of them, its live worst case
# on the joint model, its curves from the reference results; notebook 07's live sweep on the joint model
# over 32, beside the whole ledger); here the same cells run on 32 images, notebook 06 on the two models
# its Table 5 needs (natural, joint) with 16 images for the worst case, and notebook 07's sweep on the
# natural model, to keep
# `make test` within 15 minutes on 2 cores: every line and every sanity check still executes, except
# notebook 06's live curves for profiles the shipped reference results do not describe (their
# functions, `sweep` and `union_curve`, have unit tests). Cells
# tagged `nbval-check-output` must print exactly their metadata's `jointlab.expect` (the exercise
# checkers' verdicts). The executed copies are written to NOTEBOOK_RUNS for the tests that read outputs.

NOTEBOOK_COPIES = Path(__file__).resolve().parent / "notebooks"
NOTEBOOK_RUNS = Path(__file__).resolve().parents[1] / "runs" / "pytest-notebooks"
TEST_PARAMETERS = {"test_limit": 32}
PER_NOTEBOOK = {"06": {"methods": ["natural", "joint"], "strong_images": 16}, "07": {"methods": ["natural"]}}
PREPARED: list[Path] = []  # the copies this session prepared (empty: the notebooks are not collected)


def _runs_notebooks(config) -> bool:
    if not config.getoption("nbval_lax", False):
        return False
    targets = [Path(str(a).split("::")[0]).resolve() for a in config.args]
    return any(t == NOTEBOOK_COPIES or t in NOTEBOOK_COPIES.parents or NOTEBOOK_COPIES in t.parents
               for t in targets)


def pytest_configure(config):
    if _runs_notebooks(config) and not hasattr(config, "workerinput"):
        from jointlab.notebooks import prepare

        for folder in (NOTEBOOK_COPIES, NOTEBOOK_RUNS):
            shutil.rmtree(folder, ignore_errors=True)
        PREPARED[:] = prepare(NOTEBOOK_COPIES, out=NOTEBOOK_RUNS, cache=NOTEBOOK_RUNS / "cache",
                              parameters=TEST_PARAMETERS, per_notebook=PER_NOTEBOOK, expected_outputs=True)


def _is_cell(item) -> bool:
    return type(item).__name__ == "IPyNbCell"


def pytest_collection_modifyitems(config, items):
    """The notebook cells first: the tests that read executed outputs then find them in NOTEBOOK_RUNS."""
    items.sort(key=lambda item: not _is_cell(item))


def pytest_runtest_teardown(item, nextitem):
    """Keep each cell's outputs; after a notebook's last cell, write the executed copy."""
    if not _is_cell(item):
        return
    item.cell.outputs = list(item.test_outputs or [])
    item.cell.execution_count = item.cell_num + 1
    if nextitem is None or nextitem.parent is not item.parent:
        import nbformat

        NOTEBOOK_RUNS.mkdir(parents=True, exist_ok=True)
        nbformat.write(item.parent.nb, NOTEBOOK_RUNS / item.parent.path.name)
