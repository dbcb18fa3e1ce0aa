"""The attack explorer app, driven through its widgets (the browser test in test_browser.py drives
the same app served by Voilà)."""

import io
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
import torch

pytest.importorskip("ipywidgets")
from PIL import Image  # noqa: E402

from jointlab.explorer import PANELS, Explorer, find_models, image_from_bytes, main  # noqa: E402

NOW = datetime.now(timezone.utc)
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explorer.ipynb"


@pytest.fixture
def app(quick_runs, tmp_path):
    app = Explorer(quick_runs / "cache", tmp_path / "saved", n_images=20)
    assert app.widget is not None and app.error is None, app.error
    return app


def png_bytes(array, mode="L") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG")
    return buf.getvalue()


def test_it_finds_finished_models_only(quick_runs, tmp_path):
    models = find_models(quick_runs / "cache")
    assert models[0].method == "natural"  # listed first; other tests may add more models to the cache
    assert all(m.dataset == "fashion-mnist" and m.path.is_file() for m in models)
    (tmp_path / "junk-123").mkdir()
    (tmp_path / "junk-123" / "last.pt").write_bytes(b"not a checkpoint")
    assert find_models(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="python -m jointlab.explorer prepare"):
        Explorer(tmp_path)


def test_the_first_view_respects_and_reaches_the_budgets(app):
    s = app.state
    assert s["kind"] == "joint" and s["source"] == "test" and s["label"] == int(app.labels[0])
    assert s["delta_levels"] == pytest.approx(8, rel=1e-3) and s["delta_levels"] <= 8 + 1e-4
    assert s["flow_norm"] == pytest.approx(app.spec.eps_w, rel=1e-3) and s["flow_norm"] <= app.spec.eps_w
    assert set(app.panels) == set(PANELS)
    assert all(bytes(p.image.value).startswith(b"\x89PNG") for p in app.panels.values())


def test_controls_drive_the_panels(app):
    c = app.controls
    before = {k: bytes(p.image.value) for k, p in app.panels.items()}
    c["eps_x"].value = 16
    assert app.state["eps_x"] == 16 and app.state["delta_levels"] == pytest.approx(16, rel=1e-3)
    after = {k: bytes(p.image.value) for k, p in app.panels.items()}
    assert after["attacked"] != before["attacked"] and after["perturbation"] != before["perturbation"]
    assert after["clean"] == before["clean"]  # the clean image did not change
    assert "ε_x = 16" in app.status.value

    c["kind"].value = "pixel"
    assert c["eps_w"].disabled and not c["eps_x"].disabled
    assert app.state["flow"] is None and app.state["flow_norm"] == 0
    assert "‖δ‖∞ = 16.00/255" in app.status.value and "‖ω‖" not in app.status.value

    c["kind"].value = "spatial"
    assert c["eps_x"].disabled and app.state["delta"] is None
    c["eps_w"].value = 0.0  # zero budget: the attacked image is the clean one
    torch.testing.assert_close(app.state["x_adv"], app.state["x"], atol=1e-5, rtol=0)
    assert app.state["top_adv"][0][0] == app.state["top_clean"][0][0]

    c["index"].value = 7
    assert app.state["name"] == "test7" and app.state["label"] == int(app.labels[7])
    c["steps"].value = 1
    c["random_start"].value = False
    assert app.state["steps"] == 1 and app.error is None


@pytest.mark.parametrize("kind", ["pixel", "spatial", "joint", "joint-ps", "one-pass", "cascade"])
def test_every_attack_kind_at_the_slider_extremes(app, kind):
    c = app.controls
    c["kind"].value = kind
    for name in ("eps_x", "eps_w", "steps"):
        for value in (c[name].max, c[name].min):
            c[name].value = value
            assert app.error is None, app.error


def test_upload_an_image(app):
    grey = png_bytes((torch.arange(64 * 48) % 256).to(torch.uint8).view(48, 64).numpy())
    x = image_from_bytes(grey, 1, 28)
    assert x.shape == (1, 28, 28) and x.min() >= -1 and x.max() <= 1
    rgb = image_from_bytes(png_bytes(torch.zeros(10, 10, 3, dtype=torch.uint8).numpy(), "RGB"), 3, 32)
    assert rgb.shape == (3, 32, 32) and torch.all(rgb == -1)

    app.controls["upload"].value = ({"name": "ramp.png", "type": "image/png", "size": len(grey),
                                     "content": memoryview(grey), "last_modified": NOW},)
    s = app.state
    assert app.controls["source"].value == "upload" and s["source"] == "upload" and s["name"] == "ramp"
    torch.testing.assert_close(s["x"][0], x)
    assert s["label"] == s["top_clean"][0][0]  # an upload is attacked against the model's prediction
    app.controls["index"].value = 3  # back to the test set
    assert app.state["source"] == "test"


def test_a_bad_upload_is_reported_in_the_app(app):
    with pytest.raises(ValueError, match="could not be read as an image"):
        image_from_bytes(b"hello", 1, 28)
    app.controls["upload"].value = ({"name": "notes.txt", "type": "text/plain", "size": 5,
                                     "content": memoryview(b"hello"), "last_modified": NOW},)
    assert isinstance(app.error, ValueError) and "jl-error" in app.status.value


def test_every_panel_saves_a_png(app, tmp_path):
    for name, panel in app.panels.items():
        panel.button.click()
        assert panel.saved is not None, (name, panel.status.value)
        assert panel.saved.parent == tmp_path / "saved" and panel.saved.name.startswith("test0_joint_ex8")
        with Image.open(panel.saved) as img:
            assert img.format == "PNG"
    assert len(list((tmp_path / "saved").glob("*.png"))) == len(PANELS)


def test_compute_checks_its_arguments(app):
    with pytest.raises(ValueError, match="index must be in"):
        app.compute(index=10_000)
    with pytest.raises(ValueError, match="source must be"):
        app.compute(source="camera")
    with pytest.raises(ValueError, match="needs an uploaded image"):
        app.compute(source="upload")
    with pytest.raises(ValueError, match="model must be one of"):
        app.select_model("no such model")


def test_cli_lists_models(quick_runs, capsys):
    assert main(["list", "--cache", str(quick_runs / "cache")]) == 0
    assert "natural · wrn-10-2 · fashion-mnist" in capsys.readouterr().out


def test_the_notebook_runs_headless(quick_runs, tmp_path):
    import papermill as pm

    nb = tmp_path / "explorer.ipynb"
    shutil.copy(NOTEBOOK, nb)
    pm.execute_notebook(str(nb), str(tmp_path / "out.ipynb"), cwd=str(tmp_path), kernel_name="python3",
                        progress_bar=False, parameters={"cache_dir": str(quick_runs / "cache"),
                                                        "save_dir": str(tmp_path / "saved")})
    out = json.loads((tmp_path / "out.ipynb").read_text())
    assert not [o for c in out["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
