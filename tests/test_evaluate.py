import copy
import json
import math

import pytest
import torch

from jointlab import attacks as A
from jointlab.evaluation import attack_suite, evaluate, markdown_table, standard_error, sweep, transfer
from jointlab.train import load_checkpoint


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    return torch.rand(6, 1, 8, 8, generator=g) * 2 - 1, torch.randint(0, 10, (6,), generator=g)


def test_paper_suite_has_every_column(tiny_model, data):
    table = evaluate(tiny_model, data, "paper", steps=2, batch_size=4, progress=False)
    assert list(table) == ["Pristine", "FGSM", "PGD2", "PGD100", "Spatial", "Joint-SP", "Joint-PS",
                           "PGD2-CW", "Spatial-CW", "Joint-CW"]
    assert all(0 <= v <= 100 for v in table.values())
    assert "PGD100" not in attack_suite("quick")
    with pytest.raises(ValueError, match="suite must be one of"):
        attack_suite("full")


def test_evaluate_accepts_a_loader_and_matches_tensors(tiny_model, data):
    loader = [(data[0][:4], data[1][:4]), (data[0][4:], data[1][4:])]
    suite = {"clean": (None, {}), "fgsm": (A.fgsm, {"eps_x": 8})}  # deterministic attacks only
    assert evaluate(tiny_model, loader, suite, progress=False) == evaluate(tiny_model, data, suite,
                                                                           progress=False)


def test_transfer_uses_the_source_models_gradients(tiny_model, data):
    other = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(-1)  # a different model
    suite = {"fgsm": (A.fgsm, {"eps_x": 16})}
    white = evaluate(tiny_model, data, suite, progress=False)
    black = transfer(other, tiny_model, data, suite, progress=False)
    x_src = A.fgsm(other, *data, eps_x=16).x_adv
    expected = 100 * (tiny_model(x_src).argmax(1) == data[1]).float().mean().item()
    assert black["fgsm"] == pytest.approx(expected) and set(white) == set(black)


def test_sweep_and_table(tiny_model, data):
    accs = sweep(tiny_model, data, A.pgd, "eps_x", [0, 8], steps=2, step_x=lambda e: e / 2, progress=False)
    clean = evaluate(tiny_model, data, {"c": (None, {})}, progress=False)["c"]
    assert len(accs) == 2 and accs[0] == pytest.approx(clean)
    md = markdown_table({"a": {"X": 50.0, "Y": 12.34}, "b": {"X": 1.0}}, caption="cap")
    assert md.splitlines()[2] == "| model | X | Y |"
    assert "| a | 50.0 | 12.3 |" in md and "| b | 1.0 | – |" in md
    with_error = markdown_table({"ours": {"X": 50.0}, "paper": {"X": 53.1}}, images={"ours": 100})
    assert "| ours | 50.0 ± 5.0 |" in with_error and "| paper | 53.1 |" in with_error


@pytest.mark.parametrize("name", ["paper", "quick"])
def test_a_hundred_step_suite_keeps_its_pgd_column(name):
    suite = attack_suite(name, steps=100)
    assert suite["PGD100"] == (A.pgd, dict(eps_x=8, step_x=2, steps=100))
    assert suite["PGD100-CW"][1]["steps"] == 100 and suite["Spatial"][1]["steps"] == 100
    assert "PGD20" not in attack_suite(name, steps=100)
    assert {"PGD20", "PGD100"} <= set(attack_suite("paper", steps=20))


def test_eval_cli_defaults_to_the_whole_test_set_and_prints_standard_errors(tmp_path, capsys):
    from jointlab.cli import build_parser, main

    assert build_parser().parse_args(["eval", "--checkpoint", "x.pt"]).limit is None  # the paper's 10,000
    run = tmp_path / "run"
    assert main(["train", "--method", "natural", "--arch", "wrn-10-1", "--limit", "128", "--batch-size", "64",
                 "--epochs", "1", "--eval-limit", "0", "--no-amp", "--no-progress", "--out", str(run)]) == 0
    assert load_checkpoint(run / "last.pt")["config"]["amp"] is False
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run / "last.pt"), "--suite", "quick", "--steps", "1",
                 "--limit", "40", "--no-progress", "--out", str(tmp_path / "eval.json")]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["images"] == 40 and "on 40 fashion-mnist test images" in out
    assert set(result["standard_error"]) == set(result["accuracy"])
    for column, acc in result["accuracy"].items():
        p = acc / 100
        assert result["standard_error"][column] == pytest.approx(100 * math.sqrt(p * (1 - p) / 40))
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| model | Pristine | FGSM | PGD1 |") and rows[2].startswith("| ± s.e. | ")
    assert rows[2].split(" | ")[1] == f"{result['standard_error']['Pristine']:.1f}"
    with pytest.raises(ValueError, match="n must be a positive integer"):
        standard_error(50.0, 0)
