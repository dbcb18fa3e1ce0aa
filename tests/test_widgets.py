"""The slider panels, driven through their widget objects the way a browser drives them: setting a
slider's `.value` fires the same observer as a released handle."""

import io

import pytest
import torch
from torch import nn

from jointlab.widgets import KINDS, AttackPanel, run_attack

pytest.importorskip("ipywidgets")
from PIL import Image  # noqa: E402

CLASSES = [f"c{i}" for i in range(10)]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(4, 1, 12, 12, generator=g) * 2 - 1, torch.tensor([0, 1, 2, 3])


def panel_for(model, batch, kind, tmp_path, **kw):
    panel = AttackPanel(model, *batch, CLASSES, kind=kind, steps=4, save_dir=tmp_path, **kw)
    assert panel.widget is not None  # builds the sliders and draws the first position
    return panel


def column_titles(panel):
    fig = panel.figure()
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    import matplotlib.pyplot as plt

    plt.close(fig)
    return titles


@pytest.mark.parametrize("kind", ["pixel", "spatial", "joint"])
def test_each_panel_has_its_sliders_and_draws(tiny_model, batch, kind, tmp_path):
    panel = panel_for(tiny_model, batch, kind, tmp_path)
    expected = {"pixel": {"eps_x"}, "spatial": {"eps_w"}, "joint": {"eps_x", "eps_w"}}[kind]
    assert set(panel.sliders) == expected
    assert bytes(panel.picture.image.value).startswith(PNG) and panel.error is None
    titles = column_titles(panel)
    assert ("ω (colour)" in titles) == (kind != "pixel")  # the flow field is shown when there is one
    assert ("δ (amplified)" in titles) == (kind != "spatial")
    assert "accuracy" in panel.numbers.value and "measured" in panel.numbers.value


@pytest.mark.parametrize("kind", ["pixel", "spatial", "joint"])
def test_zero_budget_shows_the_clean_image_and_prediction(tiny_model, batch, kind, tmp_path):
    panel = panel_for(tiny_model, batch, kind, tmp_path)
    for s in panel.sliders.values():
        s.value = 0.0
    v = panel.shown
    torch.testing.assert_close(v["x_adv"], batch[0], atol=1e-5, rtol=0)  # ω = 0 warps up to rounding
    assert torch.equal(v["pred"], v["clean_pred"]) and v["accuracy"] == v["clean_accuracy"]
    assert "changed on 0 of 4" in panel.numbers.value
    assert ("‖δ‖∞ = 0.00/255" in panel.numbers.value) == (kind != "spatial")
    assert ("‖ω‖₂,∞ = 0.000 px" in panel.numbers.value) == (kind != "pixel")


@pytest.mark.parametrize("kind", ["pixel", "spatial", "joint"])
def test_moving_a_slider_redraws_and_reaches_the_budget(tiny_model, batch, kind, tmp_path):
    panel = panel_for(tiny_model, batch, kind, tmp_path)
    for name, value, shown, text in (("eps_x", 12.0, "delta_levels", "‖δ‖∞ = 12.00/255"),
                                     ("eps_w", 0.4, "flow_norm", "‖ω‖₂,∞ = 0.400 px")):
        if name not in panel.sliders:
            continue
        before = bytes(panel.picture.image.value)
        panel.sliders[name].value = value
        assert panel.eps[name] == value and panel.shown[name] == value
        assert bytes(panel.picture.image.value) != before  # the picture was redrawn
        # 4 steps of 2.5·ε/4 saturate the budget: the measured size equals the slider value
        assert panel.shown[shown] == pytest.approx(value, rel=1e-3) and panel.shown[shown] <= value + 1e-4
        assert text in panel.numbers.value


@pytest.mark.parametrize("kind", KINDS)
def test_extreme_slider_values_never_raise(tiny_model, batch, kind, tmp_path):
    panel = panel_for(tiny_model, batch, kind, tmp_path)
    for s in panel.sliders.values():
        for value in (s.min, s.max, s.max / 3, s.min):
            s.value = value
            assert panel.error is None, panel.error
    assert len(panel._cache) >= 3  # visited positions are cached: moving back is instant


def test_save_figure_writes_the_png_shown(tiny_model, batch, tmp_path):
    panel = panel_for(tiny_model, batch, "joint", tmp_path / "figs")
    panel.sliders["eps_x"].value = 4.0
    panel.picture.button.click()
    path = panel.picture.saved
    assert path.parent == tmp_path / "figs" and path.name == "joint_ex4_ew0.3_steps4.png"
    with Image.open(io.BytesIO(path.read_bytes())) as img:
        assert img.format == "PNG" and img.width > 300  # drawn again at the saving resolution
    assert "saved" in panel.picture.status.value and "download" in panel.picture.status.value


def test_a_failing_save_is_shown_not_raised(tiny_model, batch, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    panel = panel_for(tiny_model, batch, "pixel", tmp_path / "a-file")
    panel.picture.button.click()
    assert panel.picture.saved is None and "jl-error" in panel.picture.status.value
    panel.sliders["eps_x"].value = 2.0
    assert panel.picture.status.value == ""  # the message belonged to the previous picture


def test_a_failing_attack_is_shown_in_the_panel(tiny_model, batch, tmp_path):
    panel = panel_for(tiny_model, batch, "pixel", tmp_path)

    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("the model failed")

    panel.model = Broken()
    panel.sliders["eps_x"].value = 3.0  # not cached: runs the broken model
    assert isinstance(panel.error, RuntimeError)
    assert 'class="jl-error"' in panel.numbers.value and "the model failed" in panel.numbers.value
    panel.model = tiny_model
    panel.sliders["eps_x"].value = 8.0  # cached position: recovers
    assert panel.error is None and "jl-error" not in panel.numbers.value


def test_run_attack_checks_its_arguments(tiny_model, batch):
    with pytest.raises(ValueError, match="kind must be one of"):
        run_attack("rotation", tiny_model, *batch)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        run_attack("pixel", tiny_model, *batch, steps=0)


def test_bad_panel_arguments(tiny_model, batch):
    with pytest.raises(ValueError, match="kind must be one of"):
        AttackPanel(tiny_model, *batch, CLASSES, kind="rotation")
    with pytest.raises(ValueError, match="x must be a batch"):
        AttackPanel(tiny_model, batch[0][0], batch[1], CLASSES)


def test_static_html_precomputes_every_slider_position(tiny_model, batch, tmp_path):
    import json
    import re

    panel = AttackPanel(tiny_model, *batch, CLASSES, kind="joint", steps=2, save_dir=tmp_path)
    positions = panel.static_positions(4)
    assert positions["eps_x"][0] == 0 and positions["eps_x"][-1] == panel.limits["eps_x"]
    assert 8.0 in positions["eps_x"]  # the panel's own budget is one of the positions
    assert set(positions) == {"eps_x", "eps_w"}
    page = panel.static_html(4, dpi=30)
    data = json.loads(re.search(r"data = (\{.*\});", page).group(1))
    # a cross through the panel's budgets: one frame per position of each slider, shared centre
    assert len(data["frames"]) == sum(len(v) for v in positions.values()) - (len(positions) - 1)
    assert page.count('class="jl-static-slider"') == len(positions)
    texts = {f["text"] for f in data["frames"].values()}
    assert all(t.startswith("accuracy ") for t in texts)
    assert len({f["src"] for f in data["frames"].values()}) == len(data["frames"])  # each picture differs
    assert "http" not in page  # self-contained: nothing to fetch
    with pytest.raises(ValueError, match="n must be"):
        panel.static_html(1)
