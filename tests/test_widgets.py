import pytest
import torch

from jointlab.widgets import AttackPanel

CLASSES = [f"c{i}" for i in range(10)]


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(4, 1, 12, 12, generator=g) * 2 - 1, torch.tensor([0, 1, 2, 3])


def test_zero_budget_shows_the_clean_image(tiny_model, batch):
    x, y = batch
    v = AttackPanel(tiny_model, x, y, CLASSES, kind="joint").view(0.0, 0.0)
    torch.testing.assert_close(v["x_adv"], x, atol=1e-5, rtol=0)  # ω = 0 warps up to float rounding
    assert torch.equal(v["pred"], v["clean_pred"]) and v["delta_levels"] == 0 and v["flow_norm"] == 0


def test_shown_sizes_respect_and_reach_the_budgets(tiny_model, batch):
    x, y = batch
    v = AttackPanel(tiny_model, x, y, CLASSES, kind="joint", steps=4).view(8, 0.4)
    assert v["delta_levels"] <= 8 + 1e-4 and v["flow_norm"] <= 0.4
    assert v["flow_norm"] == pytest.approx(0.4, rel=1e-4)  # the steps saturate the flow budget
    assert v["delta_levels"] == pytest.approx(8, rel=1e-3)


def test_sliders_drive_the_panel_and_extremes_never_raise(tiny_model, batch):
    pytest.importorskip("ipywidgets")
    x, y = batch
    panel = AttackPanel(tiny_model, x, y, CLASSES, kind="joint", steps=2)
    widget = panel.widget
    assert set(panel.sliders) == {"eps_x", "eps_w"} and widget.children
    for name, s in panel.sliders.items():
        for value in (s.min, s.max, s.max / 3):
            s.value = value  # fires the observer: computes and draws
            assert panel.eps[name] == value and panel.shown[name] == value
    assert len(panel._cache) >= 4  # visited positions are cached


def test_bad_kind(tiny_model, batch):
    with pytest.raises(ValueError, match="kind must be one of"):
        AttackPanel(tiny_model, *batch, CLASSES, kind="rotation")
