"""The shipped lesson models (models/): complete, small, safe to load, found by `load_or_train`, and
the README shows the table they were measured with."""

import json
import shutil
import time
from pathlib import Path

import pytest
import torch

from jointlab import train as T
from jointlab.profiles import get_profile
from jointlab.zoo import LESSONS, TABLE_ROWS, lesson_configs, main, read_manifest, table_markdown, verify

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def manifest():
    return read_manifest(ROOT / "models")


def test_every_lesson_model_ships_and_matches_its_sha256(manifest):
    assert verify(ROOT / "models") == []
    shipped = {m["name"]: m for m in manifest["models"]}
    for name, (cfg, _) in lesson_configs().items():
        # a config that drifted from the shipped one would silently retrain in every notebook
        assert shipped[name]["file"] == f"{cfg.method}-{cfg.key()}.pt", f"{name}: run `make models`"
    total = sum((ROOT / "models" / m["file"]).stat().st_size for m in manifest["models"])
    assert total <= 20e6, f"{total / 1e6:.1f} MB"


def test_checkpoints_hold_weights_and_plain_data_only(manifest):
    for m in manifest["models"]:
        ckpt = torch.load(ROOT / "models" / m["file"], weights_only=True)
        assert set(ckpt) == {"format", "version", "config", "epoch", "model", "history", "torch_version"}
        assert ckpt["epoch"] == T.TrainConfig.from_dict(m["config"]).epochs


def test_the_readme_shows_the_measured_table(manifest):
    table = table_markdown(manifest)
    assert table in (ROOT / "README.md").read_text(), "paste `python -m jointlab.zoo table` into README.md"
    assert table in (ROOT / "models" / "README.md").read_text()
    rows = {m["name"]: m["accuracy"] for m in manifest["models"] if m.get("accuracy")}
    assert list(rows) == list(TABLE_ROWS)
    for row in rows.values():
        assert {"Pristine", "PGD10", "PGD10-CW", "Spatial", "Spatial-CW", "Joint-SP", "Joint-CW"} <= set(row)
    # what the lessons rely on: a natural model that the joint attack breaks, a pixel-trained model that
    # resists PGD, and a joint attack stronger than either of its parts for every model (Table 1's shape)
    natural, madry = rows["natural"], rows["madry"]
    assert natural["Pristine"] >= 80 and natural["Joint-SP"] <= 20
    assert natural["PGD10"] <= natural["Pristine"] - 30
    assert madry["PGD10"] >= natural["PGD10"] + 20
    for row in rows.values():
        assert row["Joint-SP"] <= min(row["PGD10"], row["Spatial"]), row


def test_load_or_train_copies_the_shipped_model_instead_of_training(tmp_path, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained a model that ships in models/")

    monkeypatch.setattr(T, "train", no_training)
    start = time.perf_counter()
    P = get_profile("quick", cache_dir=str(tmp_path / "cache"), out_dir=str(tmp_path / "out"))
    run = P.train("joint", progress=False)
    assert time.perf_counter() - start < 10
    assert run.checkpoint.parent.parent == tmp_path / "cache"
    assert len(run.history) == P.epochs and (run.checkpoint.parent / "metrics.jsonl").is_file()
    x, y = P.test_batch(64)
    with torch.no_grad():
        assert (run.model(x).argmax(1) == y).float().mean() > 0.5


def test_a_corrupted_shipped_file_warns_and_trains(tmp_path, monkeypatch):
    cfg = T.TrainConfig(method="natural", arch="wrn-10-1", limit=64, epochs=1, batch_size=32, eval_limit=0)
    name = f"{cfg.method}-{cfg.key()}"
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / f"{name}.pt").write_bytes(b"version https://git-lfs.github.com/spec/v1\n")  # an LFS pointer
    (folder / "manifest.json").write_text(json.dumps({"models": [{"name": "x", "file": f"{name}.pt",
                                                                  "sha256": "0" * 64}]}))
    monkeypatch.setenv("JOINTLAB_MODELS", str(folder))
    with pytest.warns(UserWarning, match="does not match its sha256"):
        run = T.load_or_train(cfg, tmp_path / "cache", device="cpu", progress=False)
    assert len(run.history) == 1
    monkeypatch.setenv("JOINTLAB_MODELS", "none")  # off: no lookup at all
    assert T.shipped_checkpoint(name) is None


def test_verify_names_a_bad_file(tmp_path, manifest, capsys):
    folder = tmp_path / "models"
    shutil.copytree(ROOT / "models", folder)
    first = manifest["models"][0]
    (folder / first["file"]).write_bytes(b"not a checkpoint")
    assert verify(folder) == [f"{first['name']}: {folder / first['file']} does not match its sha256"]
    with pytest.raises(SystemExit):
        main(["build", "--only", "no-such-model", "--out", str(folder)])
    assert "names must be among" in capsys.readouterr().err


def test_the_lessons_cover_what_the_notebooks_load():
    notebooks = "".join((ROOT / "notebooks" / n).read_text() for n in ("05_joint_training.ipynb",
                                                                     "06_robustness_evaluation.ipynb"))
    assert 'P.model(\\"joint\\", seed=P.seed + 1)' in notebooks and LESSONS["joint-seed1"][1] == {"seed": 1}
    assert "smoothing_limit = 1000" in notebooks and LESSONS["joint-1k"][1] == {"limit": 1000}
