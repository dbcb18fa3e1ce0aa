"""The strong evaluation remembers: a record per image (which column, which attack broke it), the
adversarial examples found, a resumable state file, and random numbers that depend on the seed alone."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from jointlab import attacks as A
from jointlab.evaluation import WORST_COLUMNS, strong_evaluate
from jointlab.threats import levels_to_unit
from jointlab.warp import flow_norm

TINY = dict(eps_x=8, eps_w=0.28, steps=2, apgd_steps=3, top_k=2, queries=20, suite="quick", progress=False)


@pytest.fixture(scope="module")
def evaluated(trained_model, fmnist_test_batch, tmp_path_factory):
    x, y = fmnist_test_batch[0][:24], fmnist_test_batch[1][:24]
    path = tmp_path_factory.mktemp("strong") / "adv.pt"
    torch.manual_seed(5)
    before = torch.get_rng_state()
    report = strong_evaluate(trained_model, (x, y), batch_size=12, save_adversarial=path, **TINY)
    assert torch.equal(torch.get_rng_state(), before), "the caller's random stream must be left alone"
    return report, (x, y), torch.load(path, weights_only=True)


def test_records_say_which_attack_broke_each_image(evaluated):
    report, (x, y), _ = evaluated
    rec = report.records
    assert rec["label"] == y.tolist() and len(rec["clean_prediction"]) == len(y)
    for c, values in rec["correct"].items():
        assert len(values) == len(y) and 100 * sum(values) / len(y) == pytest.approx(report.accuracy[c])
    names = {m for ms in report.settings["members"].values() for m in ms}
    names |= set(report.accuracy) | {"clean", "one more APGD-DLR restart", "random point"}
    for threat, by in rec["broken_by"].items():
        assert set(by) - {None} <= names
        # robust in the worst column exactly when no attack of that threat broke the image
        assert [b is None for b in by] == [bool(v) for v in rec["correct"][WORST_COLUMNS[threat]]]
    union = [all(rec["broken_by"][t][j] is None for t in rec["broken_by"]) for j in range(len(y))]
    assert union == [bool(v) for v in rec["correct"]["Union"]]
    assert any(b not in (None, "clean") for b in rec["broken_by"]["joint"])  # the natural model falls


def test_saved_examples_fool_the_model_within_the_budget(evaluated, trained_model):
    report, (x, y), saved = evaluated
    found = [j for j, by in enumerate(saved["found_by"]) if by not in (None, "clean")]
    assert found and len(saved["found_by"]) == len(y)
    idx = torch.tensor(found)
    with torch.no_grad():
        assert (trained_model(saved["x_adv"][idx]).argmax(1) != y[idx]).all()
    assert saved["delta"].abs().max() <= levels_to_unit(8) + 1e-6
    assert flow_norm(saved["flow"]).max() <= 0.28 + 1e-6
    for j in found:  # x̄ = clip(T(x, ω) + δ) (Eq. 10) for every example, whatever its threat
        torch.testing.assert_close(saved["x_adv"][j:j + 1],
                                   A.compose(x[j:j + 1], saved["flow"][j:j + 1], saved["delta"][j:j + 1]),
                                   atol=1e-5, rtol=0)


def test_the_seed_alone_decides_the_result(trained_model, fmnist_test_batch, evaluated):
    x, y = fmnist_test_batch[0][:24], fmnist_test_batch[1][:24]
    torch.manual_seed(123)  # another caller stream: the same report
    again = strong_evaluate(trained_model, (x, y), batch_size=12, **TINY)
    assert again.records == evaluated[0].records and again.accuracy == evaluated[0].accuracy


def _eval(cwd, model):
    return subprocess.Popen(
        [sys.executable, "-m", "jointlab", "eval", "--model", model, "--suite", "strong", "--base-suite",
         "quick", "--limit", "18", "--batch-size", "6", "--steps", "2", "--apgd-steps", "3", "--top-k", "2",
         "--queries", "20", "--no-progress", "--out", "res.json"], cwd=cwd, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
        # one thread each: two of these run side by side, and oversubscribed cores make the run 3x slower
        env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"})


def test_a_killed_eval_continues_and_ends_with_the_same_json(tmp_path):
    from model_factories import lesson_path

    model = str(lesson_path("natural"))
    (tmp_path / "once").mkdir()
    (tmp_path / "killed").mkdir()
    once = _eval(tmp_path / "once", model)
    killed = _eval(tmp_path / "killed", model)
    state = tmp_path / "killed" / "res.json.state.json"
    deadline = time.time() + 240
    while time.time() < deadline and killed.poll() is None:
        if state.exists() and json.loads(state.read_text())["batches_done"] >= 1:
            os.killpg(killed.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    killed.wait()
    done = json.loads(state.read_text())["batches_done"]
    assert 1 <= done < 3, f"the run was to be killed mid-way, after {done} of 3 batches"
    assert not (tmp_path / "killed" / "res.json").exists()
    out, _ = once.communicate(timeout=300)
    assert once.returncode == 0, out
    again = _eval(tmp_path / "killed", model)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    a, b = (json.loads((tmp_path / d / "res.json").read_text()) for d in ("once", "killed"))
    assert a == b  # provenance and command included: the two runs had the same arguments
    assert a["settings"]["ensemble"].startswith("jointlab-strong") and len(a["records"]["label"]) == 18
