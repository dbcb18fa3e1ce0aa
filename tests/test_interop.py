"""Any model, any convention: the adapter, the CLI's --model SPEC and --dataset imagefolder:PATH, the
torchattacks-style attack objects, and one clear error for each kind of bad input."""

import copy
import json
import sys
import types
import warnings

import pytest
import torch
from model_factories import MEAN, STD, FromNormalized, ZeroOne, madry_path
from PIL import Image
from torch import nn

from jointlab import attacks as A
from jointlab import wrap
from jointlab.cli import main
from jointlab.evaluation import APGDJoint, Joint, Spatial, check_logits
from jointlab.models import model_device
from jointlab.threats import levels_to_unit
from jointlab.warp import warp


@pytest.fixture(scope="module")
def madry():
    from jointlab.train import load_model

    return load_model(madry_path())


@pytest.fixture(scope="module")
def batch(fmnist_test_batch):
    return fmnist_test_batch[0][:48], fmnist_test_batch[1][:48]


def test_wrapped_model_is_the_same_function_on_minus_one_one(madry, batch):
    x, _ = batch
    outside = FromNormalized(madry)  # a [0, 1], normalized-outside model, as torchvision users build them
    net = wrap(outside, input_range=(0, 1), mean=MEAN, std=STD)
    with torch.no_grad():
        torch.testing.assert_close(net(x), madry(x), atol=1e-4, rtol=1e-4)
    # a plain function (no parameters, no .eval()) works too, on the adapter's device
    fn = wrap(lambda z: outside(z), input_range=(0, 1), mean=MEAN, std=STD)
    assert model_device(fn) == torch.device("cpu")
    res = A.pgd(fn, x[:8], batch[1][:8], eps_x=8, steps=2)
    assert res.delta.abs().max() <= levels_to_unit(8)


def test_budgets_keep_the_papers_units_in_the_models_range(madry, batch):
    x, y = batch
    # a model that takes 0-255 images: 8 levels must be 8 of its units, whatever the kit's range
    seen = []
    model255 = wrap(lambda z: seen.append(z) or madry(z / 127.5 - 1), input_range=(0, 255))
    res = A.joint(model255, x[:8], y[:8], eps_x=8, eps_w=0.28, steps=2)
    base = (warp(x[:8], res.flow) + 1) * 127.5
    adv = (res.x_adv + 1) * 127.5
    assert (adv - base).abs().max() <= 8 + 1e-3  # 8 of 255 levels, in the model's units
    assert max(z.max().item() for z in seen) > 100  # the model saw its own range


def test_a_zero_one_batch_gets_one_clear_error_naming_the_adapter(madry, batch):
    x, y = batch
    message = r"lies entirely in \[0, 1\].*jointlab.wrap\(model, input_range=\(0, 1\)"
    with pytest.raises(ValueError, match=message):
        A.pgd(madry, (x[:8] + 1) / 2, y[:8])
    with pytest.raises(ValueError, match="wrap a plain function first"):
        A.spatial(lambda z: madry(z), x[:8], y[:8])


def test_bad_models_get_one_clear_error_each(madry, batch):
    x, _ = batch
    with pytest.raises(ValueError, match="logits, not probabilities"):
        check_logits(nn.Sequential(madry, nn.Softmax(1)), x)
    with pytest.raises(ValueError, match="must return 10 logits per image"):
        check_logits(nn.Sequential(madry, nn.Linear(10, 7)), x, num_classes=10)
    with pytest.raises(ValueError, match="input_range must be"):
        wrap(madry, input_range=(1, 0))
    with pytest.raises(ValueError, match="mean and std go together"):
        wrap(madry, mean=0.5)
    with pytest.raises(ValueError, match="std must be"):
        wrap(madry, mean=0.5, std=0)
    with pytest.warns(UserWarning, match="eps_x is in 0–255 intensity levels"):
        Spatial(madry, eps_x=0.03)


def _eval(*args, capsys=None):
    rc = main(["eval", *args, "--no-progress"])
    out = capsys.readouterr() if capsys else None
    return rc, out


def test_one_model_two_ways_gives_the_same_table(tmp_path, capsys, monkeypatch):
    """As a jointlab checkpoint on [-1, 1], and as your own [0, 1] model with normalization outside it
    through --model module.path:factory: the same table (within 0.5 points)."""
    common = ["--suite", "quick", "--steps", "2", "--limit", "64", "--seed", "3"]
    assert _eval("--model", str(madry_path()), "--out", str(tmp_path / "a.json"), *common)[0] == 0
    rc, _ = _eval("--model", "model_factories:madry_normalized", "--dataset", "fashion-mnist",
                  "--input-range", "0", "1", "--mean", str(MEAN), "--std", str(STD),
                  "--out", str(tmp_path / "b.json"), *common)
    assert rc == 0
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a["accuracy"].keys() == b["accuracy"].keys()
    assert all(abs(a["accuracy"][c] - b["accuracy"][c]) <= 0.5 for c in a["accuracy"]), (a["accuracy"],
                                                                                          b["accuracy"])
    assert b["conventions"].startswith("images in [0.0, 1.0], normalized by mean")
    p = b["provenance"]
    assert {"jointlab", "torch", "torchvision", "git_commit", "seed", "device", "command"} <= set(p)
    assert p["seed"] == 3


def _image_folder(root, classes=("cat", "dog"), per_class=3, size=20):
    g = torch.Generator().manual_seed(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            pixels = torch.randint(0, 256, (size, size + 4, 3), generator=g, dtype=torch.uint8).numpy()
            Image.fromarray(pixels).save(root / c / f"{i}.png")
    return root


def test_torchvision_model_on_an_image_folder(tmp_path, capsys):
    import torchvision

    torch.manual_seed(0)
    weights = tmp_path / "resnet.pt"
    torch.save(torchvision.models.get_model("resnet18", weights=None, num_classes=2).state_dict(), weights)
    folder = _image_folder(tmp_path / "images")
    rc, out = _eval("--model", "torchvision:resnet18", "--weights", str(weights), "--dataset",
                    f"imagefolder:{folder}", "--image-size", "16", "--mean", "0.5", "0.5", "0.5", "--std",
                    "0.25", "0.25", "0.25", "--suite", "quick", "--steps", "1", capsys=capsys)
    assert rc == 0, out.err
    assert "6 imagefolder:" in out.out and "eps_w = 0.16 px" in out.out  # 1 % of the 16-pixel side


def test_robustbench_models_load_from_a_local_file_in_their_layout(tmp_path, capsys, monkeypatch, madry):
    """RobustBench's load_model is called with their arguments and reads model_dir/DATASET/THREAT/NAME.pt
    (a stand-in package here: the real one downloads on first use)."""
    path = tmp_path / "rb" / "cifar10" / "Linf" / "Tiny2024.pt"
    path.parent.mkdir(parents=True)
    torch.save({"weight": torch.zeros(1)}, path)
    calls = []

    def load_model(model_name, model_dir="./models", dataset="cifar10", threat_model="Linf"):
        file = f"{model_dir}/{dataset}/{threat_model}/{model_name}.pt"
        calls.append(file)
        torch.load(file, weights_only=True)
        return FromNormalized(madry)  # [0, 1] in, as RobustBench's models

    utils = types.ModuleType("robustbench.utils")
    utils.load_model = load_model
    monkeypatch.setitem(sys.modules, "robustbench", types.ModuleType("robustbench"))
    monkeypatch.setitem(sys.modules, "robustbench.utils", utils)
    rc, out = _eval("--model", "robustbench:cifar10/Linf/Tiny2024", "--weights", str(tmp_path / "rb"),
                    "--dataset", "fashion-mnist", "--limit", "16", "--suite", "quick", "--steps", "1",
                    capsys=capsys)
    assert rc == 0, out.err
    assert calls == [str(path)]
    assert "images in [0.0, 1.0]" in out.out


@pytest.mark.parametrize("args,message", [
    (["--model", "hub:resnet18", "--dataset", "cifar10"], "unknown scheme"),
    (["--model", "torchvision:resnet18", "--dataset", "cifar10"], "need --weights PATH"),
    (["--model", "torchvision:resnet18", "--weights", "missing.pt", "--dataset", "cifar10"],
     "weights file not found: missing.pt"),
    (["--model", "nowhere/last.pt"], "checkpoint not found: nowhere/last.pt"),
    (["--model", "model_factories:madry_normalized"], "--dataset is needed"),
    (["--model", "robustbench:Standard", "--dataset", "cifar10"], "needs the robustbench package"),
])
def test_cli_bad_models_get_one_clear_error_each(args, message, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "robustbench", None)  # not installed, even where it is
    rc, out = _eval(*args, capsys=capsys)
    assert rc == 2 and message in out.err, out.err


def test_an_image_folder_with_one_class_is_refused(tmp_path, capsys):
    folder = _image_folder(tmp_path / "images", classes=("only",))
    rc, out = _eval("--model", "model_factories:madry_normalized", "--dataset", f"imagefolder:{folder}",
                    capsys=capsys)
    assert rc == 2 and "at least 2; found 1 (only)" in out.err


def test_attack_objects_in_torchattacks_style_and_inside_multiattack(madry, batch):
    torchattacks = pytest.importorskip("torchattacks")
    x01, y = (batch[0] + 1) / 2, batch[1]
    # [0, 1] images in, no normalization, as torchattacks expects; in train mode, as a caller may leave it
    model01 = ZeroOne(copy.deepcopy(madry)).train()
    # no random starts: each attack gives every image the same result alone and inside MultiAttack
    spatial = Spatial(model01, eps_w=0.28, steps=5, random_start=False)
    pgd = torchattacks.PGD(model01, eps=8 / 255, alpha=2 / 255, steps=5, random_start=False)
    assert isinstance(spatial, torchattacks.attack.Attack)

    def accuracy(adv):
        with torch.no_grad():
            return (madry(adv * 2 - 1).argmax(1) == y).float().mean().item()

    adv_s = spatial(x01, y)
    assert adv_s.shape == x01.shape and 0 <= adv_s.min() and adv_s.max() <= 1
    adv_p = pgd(x01, y)
    adv_m = torchattacks.MultiAttack([spatial, pgd])(x01, y)
    assert accuracy(adv_m) <= min(accuracy(adv_s), accuracy(adv_p)) + 1e-6
    assert accuracy(adv_m) < accuracy(x01)
    assert model01.training  # the caller's mode is back
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        joint = Joint(model01, eps_x=8, eps_w=0.28, steps=2)(x01[:8], y[:8])
        apgd = APGDJoint(model01, eps_x=8, eps_w=0.28, steps=2)(x01[:8], y[:8])
    assert joint.shape == apgd.shape == x01[:8].shape
    with pytest.raises(ValueError, match=r"images must be in \[0, 1\]"):
        spatial(batch[0], y)
