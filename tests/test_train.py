"""The trainer: every method learns, checkpoints resume exactly, DDP runs, loading is safe."""

import argparse
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from jointlab import attacks as A
from jointlab.losses import (
    bilateral_labels,
    most_confusing_labels,
    random_wrong_labels,
    smooth_labels,
    soft_cross_entropy,
)
from jointlab.train import (
    METHODS,
    CheckpointError,
    TrainConfig,
    load_checkpoint,
    load_model,
    load_or_train,
    perturb_batch,
    save_checkpoint,
    train,
    train_step,
)

TINY = dict(dataset="fashion-mnist", arch="wrn-10-1", limit=512, batch_size=64, epochs=3, eval_limit=0,
            lr=0.05)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_and_its_loss_goes_down(method):
    result = train(TrainConfig(method=method, **TINY), device="cpu", progress=False)
    losses = [h["loss"] for h in result.history]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0], losses
    assert not result.model.training


def test_presets_follow_the_paper():
    assert METHODS["madry"].steps == 7 and METHODS["madry"].step_x == 2 and not METHODS["madry"].targeted
    assert METHODS["joint"].steps == 1 and METHODS["joint"].target == "random"
    assert METHODS["joint"].smoothing == "simple"
    assert METHODS["joint-multi"].steps == 5 and METHODS["joint-multi"].step_w == 0.1
    cfg = TrainConfig(method="joint", dataset="cifar10").resolved()
    assert (cfg.epochs, cfg.milestones, cfg.lr, cfg.eps_w) == (300, (100, 150), 0.1, 0.3)
    cfg = TrainConfig(method="madry", dataset="svhn").resolved()
    assert (cfg.epochs, cfg.milestones, cfg.lr) == (100, (60, 90), 0.01)


@pytest.mark.parametrize("kwargs,message", [
    (dict(method="trades"), "method must be one of"),
    (dict(dataset="mnist"), "dataset must be one of"),
    (dict(eps_x=-1), "eps_x must be"),
    (dict(eps_x=300), "eps_x is in 0–255"),
    (dict(eps_w=100.0), "eps_w is in pixels"),
    (dict(order="xy"), "order must be"),
    (dict(smoothing="soft"), "smoothing must be one of"),
    (dict(target="worst"), "target must be one of"),
    (dict(method="madry", target="random"), "target applies to one-step"),
    (dict(epochs=0), "epochs must be a positive integer"),
])
def test_bad_config_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_label_targets():
    y = torch.tensor([0, 3, 9, 9])
    for _ in range(20):
        assert torch.all(random_wrong_labels(y, 10) != y)
    s = smooth_labels(y, 10, 0.5)
    torch.testing.assert_close(s.sum(1), torch.ones(4))
    assert s[1, 3] == 0.5 and s[1, 0] == pytest.approx(0.5 / 9)
    logits = torch.randn(4, 10)
    b = bilateral_labels(logits, y)
    torch.testing.assert_close(b.sum(1), torch.ones(4))
    # the wrong class the model finds least likely gets γ-proportional mass, the likeliest the most
    nll = -torch.log_softmax(logits, 1)
    wrong = [k for k in range(10) if k != 3]
    assert b[1, wrong].argmax() == nll[1, wrong].argmax()


def test_target_and_labels_resolve_from_the_preset():
    def resolved(method, **kw):
        cfg = TrainConfig(method=method, **kw).resolved()
        return cfg.target, cfg.smoothing

    assert resolved("bilateral") == ("most-confusing", "bilateral")  # what Bilateral AT does
    for method in ("spatial", "joint", "cascade", "one-pass"):  # the paper's Alg. 3
        assert resolved(method) == ("random", "simple"), method
    for method in ("natural", "madry", "spatial-multi", "joint-multi"):
        assert resolved(method) == (None, "none"), method
    both = ("most-confusing", "bilateral")
    assert resolved("joint", target=both[0], smoothing=both[1]) == both
    assert resolved("bilateral", target="random", smoothing="simple") == ("random", "simple")
    assert resolved("madry", smoothing="simple") == (None, "simple")
    assert TrainConfig(method="joint").key() == TrainConfig(method="joint", target="random",
                                                             smoothing="simple").key()
    assert TrainConfig(method="joint").key() != TrainConfig(method="joint", target="most-confusing").key()


def test_most_confusing_target_is_the_likeliest_wrong_class():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 10, generator=g)
    y = torch.randint(0, 10, (200,), generator=g)
    y[:50] = logits[:50].argmax(1)  # correctly classified images, where the argmax is y itself
    target = most_confusing_labels(logits, y)
    assert torch.all(target != y)
    for i in range(len(y)):
        others = [k for k in range(10) if k != y[i]]
        assert logits[i, target[i]] == logits[i, others].max()
    with pytest.raises(ValueError, match="logits must have shape"):
        most_confusing_labels(logits[:, :1], y)


@pytest.mark.parametrize("target", ["random", "most-confusing"])
def test_one_batch_trains_with_each_target(target, monkeypatch):
    seen, labels = [], []
    real_perturb, real_pgd, real_labels = perturb_batch, A.pgd, bilateral_labels

    def spy_perturb(model, x, y, *args):
        seen.append({"y": y.clone()})
        return real_perturb(model, x, y, *args)

    def spy_pgd(model, x, y, *args, **kwargs):
        with torch.no_grad(), A.eval_mode(model):
            seen[-1].update(clean=model(x), target=y.clone(), targeted=kwargs["targeted"])
        return real_pgd(model, x, y, *args, **kwargs)

    monkeypatch.setattr("jointlab.train.perturb_batch", spy_perturb)
    monkeypatch.setitem(A.ATTACKS, "pixel", dataclasses.replace(A.ATTACKS["pixel"], fn=spy_pgd))
    monkeypatch.setattr("jointlab.train.bilateral_labels", lambda z, y: labels.append(z) or real_labels(z, y))
    cfg = TrainConfig(method="bilateral", target=target, **(TINY | dict(limit=64, epochs=1)))
    result = train(cfg, device="cpu", progress=False)
    assert len(result.history) == 1 and math.isfinite(result.history[0]["loss"])
    (batch,) = seen  # one batch, one targeted attack, towards a wrong class
    assert batch["targeted"] and len(batch["target"]) == 64 and not torch.any(batch["target"] == batch["y"])
    if target == "most-confusing":
        assert torch.equal(batch["target"], most_confusing_labels(batch["clean"], batch["y"]))
    # trained on Bilateral AT's labels, from the same clean logits the target came from
    assert len(labels) == 1 and torch.allclose(labels[0], batch["clean"], atol=1e-5)


def test_amp_autocasts_the_weight_update_but_not_the_attack(monkeypatch):
    seen = {}
    real_perturb, real_loss = perturb_batch, soft_cross_entropy

    def spy_perturb(*args):
        seen["attack_autocast"] = torch.is_autocast_enabled("cpu")
        seen["attack_dtype"] = (x_train := real_perturb(*args)).dtype
        return x_train

    def spy_loss(logits, target):
        seen["update_autocast"], seen["logits_dtype"] = torch.is_autocast_enabled("cpu"), logits.dtype
        return real_loss(logits, target)

    monkeypatch.setattr("jointlab.train.perturb_batch", spy_perturb)
    monkeypatch.setattr("jointlab.train.soft_cross_entropy", spy_loss)
    for amp in (True, False):
        with torch.autocast("cpu", dtype=torch.bfloat16):  # even inside the caller's autocast
            train(TrainConfig(method="joint", amp=amp, **(TINY | dict(limit=64, epochs=1))), device="cpu",
                  progress=False)
        assert not seen["attack_autocast"] and seen["attack_dtype"] == torch.float32, seen
        assert seen["update_autocast"] == amp, seen
        assert seen["logits_dtype"] == (torch.bfloat16 if amp else torch.float32), seen


def test_channels_last_is_a_memory_layout_not_another_model(monkeypatch):
    keys = {TrainConfig(channels_last=c).key() for c in (True, False, None)}
    assert len(keys) == 1  # the shipped models' names stay valid
    layouts, real_step = [], train_step

    def spy_step(net, model, x, *args):
        layouts.append(x.stride(1) == 1)  # NHWC: the channels of a pixel side by side
        return real_step(net, model, x, *args)

    monkeypatch.setattr("jointlab.train.train_step", spy_step)
    losses = {}
    for channels_last in (True, False):  # three channels: with one, both layouts are the same
        cfg = TrainConfig(method="joint", channels_last=channels_last,
                          **(TINY | dict(dataset="synthetic-cifar", limit=128, epochs=1)))
        losses[channels_last] = train(cfg, device="cpu", progress=False).history[0]["loss"]
        assert set(layouts) == {channels_last}
        layouts.clear()
    assert math.isclose(losses[True], losses[False], rel_tol=1e-4), losses


def test_checkpoint_loading_is_safe(tmp_path):
    bad = tmp_path / "pickled.pt"  # an arbitrary pickled object: its class could run code on load
    torch.save({"format": "jointlab-checkpoint", "payload": argparse.Namespace(x=1)}, bad)
    with pytest.raises(CheckpointError, match="not a jointlab checkpoint"):
        load_checkpoint(bad)
    other = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="marker"):
        load_checkpoint(other)
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a jointlab checkpoint"):
        load_checkpoint(tmp_path / "text.pt")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    good = save_checkpoint(tmp_path / "ok.pt", {"epoch": 1})
    assert load_checkpoint(good)["epoch"] == 1 and not list(tmp_path.glob(".*.tmp"))


def test_load_or_train_caches(tmp_path, monkeypatch):
    cfg = TrainConfig(method="natural", **(TINY | dict(epochs=1, limit=128)))
    first = load_or_train(cfg, tmp_path, device="cpu", progress=False)
    monkeypatch.setattr("jointlab.train.train", lambda *a, **k: pytest.fail("retrained a cached config"))
    second = load_or_train(cfg, tmp_path, device="cpu", progress=False)
    assert second.checkpoint == first.checkpoint
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def _cli(*args, **popen):
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "jointlab", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


TRAIN_ARGS = ["train", "--method", "joint", "--arch", "wrn-10-1", "--limit", "512", "--batch-size", "64",
              "--epochs", "4", "--eval-limit", "0", "--no-progress", "--seed", "3"]


def _weights(path):
    return load_checkpoint(path)["model"]


@pytest.mark.slow  # three training runs in subprocesses, ~50 s
def test_killed_run_resumes_to_the_same_weights(tmp_path):
    # the uninterrupted run and the one to kill side by side (one thread each, two cores)
    full = _cli(*TRAIN_ARGS, "--out", str(tmp_path / "full"))
    killed = tmp_path / "killed"
    proc = _cli(*TRAIN_ARGS, "--out", str(killed))
    deadline = time.time() + 240
    while not (killed / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.4)  # into the second epoch
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    out, _ = full.communicate(timeout=300)
    assert full.returncode == 0, out
    epoch_at_kill = load_checkpoint(killed / "last.pt")["epoch"]
    assert 1 <= epoch_at_kill < 4, "the run was not killed mid-training; make it longer"

    resumed = _cli(*TRAIN_ARGS, "--out", str(killed), "--resume")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert f"resumed {killed / 'last.pt'} after epoch {epoch_at_kill}/4" in out
    a, b = _weights(tmp_path / "full" / "last.pt"), _weights(killed / "last.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    lines = (killed / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]

    # and the evaluation CLI prints the table for the checkpoint
    ev = _cli("eval", "--checkpoint", str(killed / "last.pt"), "--suite", "quick", "--steps", "2",
              "--limit", "64", "--no-progress", "--out", str(tmp_path / "res.json"))
    out, _ = ev.communicate(timeout=300)
    assert ev.returncode == 0, out
    columns = "Pristine | FGSM | PGD2 | Spatial | Joint-SP | Joint-PS | PGD2-CW | Spatial-CW | Joint-CW"
    assert f"| {columns} |" in out
    assert set(json.loads((tmp_path / "res.json").read_text())["accuracy"]) >= {"Pristine", "Joint-CW"}
    assert not load_model(killed / "last.pt").training


@pytest.mark.slow  # two DDP processes, ~13 s
def test_ddp_with_gloo_on_two_processes(tmp_path):
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "jointlab", "train", "--method", "joint", "--arch", "wrn-10-1", "--limit", "256",
           "--batch-size", "64", "--epochs", "2", "--eval-limit", "0", "--no-progress", "--device", "cpu",
           "--out", str(tmp_path / "ddp")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    history = load_checkpoint(tmp_path / "ddp" / "last.pt")["history"]
    # two processes of 32 images a step see the whole 256-image subset each epoch
    assert len(history) == 2 and all(h["loss"] > 0 for h in history)
    assert "done: 2 epochs" in done.stdout


@pytest.mark.parametrize("args,message", [
    (["train", "--method", "trades", "--out", "x"], "invalid choice: 'trades'"),
    (["train", "--eps-x", "400", "--out", "x"], "must be in [0, 255]"),
    (["train", "--eps-w", "-1", "--out", "x"], "must be in [0, 32]"),
    (["train", "--dataset", "imagenet", "--out", "x"], "invalid choice: 'imagenet'"),
    (["eval", "--checkpoint", "nowhere/last.pt"], "checkpoint not found: nowhere/last.pt"),
])
def test_cli_bad_options_get_clear_errors(args, message, capsys):
    from jointlab.cli import main

    try:
        rc = main(args)
    except SystemExit as e:  # argparse
        rc = e.code
    assert rc == 2
    assert message in capsys.readouterr().err
