"""Attacks against a small naturally trained Fashion-MNIST model (fixture, cached): each lowers the
accuracy, and the joint attack is at least as strong as each of its parts."""

import pytest
import torch

from jointlab import attacks as A

# moderate budgets keep accuracies in the middle of the range, so the comparisons can fail
KW = dict(eps_x=8, step_x=2, eps_w=0.15, step_w=0.05, steps=10)


# 128 of the session's 256 test images: enough to keep each comparison a few images away from a tie
N = 128


def accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


@pytest.fixture(scope="module")
def accuracies(trained_model, fmnist_test_batch):
    x, y = fmnist_test_batch[0][:N], fmnist_test_batch[1][:N]
    torch.manual_seed(0)
    px = dict(eps_x=KW["eps_x"], step_x=KW["step_x"], steps=KW["steps"])
    sw = dict(eps_w=KW["eps_w"], step_w=KW["step_w"], steps=KW["steps"])
    return {
        "clean": accuracy(trained_model, x, y),
        "fgsm": accuracy(trained_model, A.fgsm(trained_model, x, y, eps_x=KW["eps_x"]).x_adv, y),
        "pgd": accuracy(trained_model, A.pgd(trained_model, x, y, **px).x_adv, y),
        "spatial": accuracy(trained_model, A.spatial(trained_model, x, y, **sw).x_adv, y),
        "joint_sp": accuracy(trained_model, A.joint(trained_model, x, y, **KW).x_adv, y),
        "joint_ps": accuracy(trained_model, A.joint(trained_model, x, y, order="ps", **KW).x_adv, y),
        "one_pass": accuracy(trained_model, A.one_pass(trained_model, x, y, **KW).x_adv, y),
        "cascade": accuracy(trained_model, A.cascade(trained_model, x, y, **KW).x_adv, y),
        "pgd_cw": accuracy(trained_model, A.pgd(trained_model, x, y, loss="cw", **px).x_adv, y),
    }


def test_fixture_model_learned_something(accuracies):
    assert accuracies["clean"] > 0.7, accuracies


ATTACKS = ["fgsm", "pgd", "spatial", "joint_sp", "joint_ps", "one_pass", "cascade", "pgd_cw"]


@pytest.mark.parametrize("name", ATTACKS)
def test_every_attack_lowers_accuracy(accuracies, name):
    assert accuracies[name] < accuracies["clean"] - 0.05, accuracies


def test_joint_is_at_least_as_strong_as_each_part(accuracies):
    for order in ("joint_sp", "joint_ps"):
        assert accuracies[order] <= min(accuracies["pgd"], accuracies["spatial"]), accuracies
    assert accuracies["pgd"] <= accuracies["fgsm"], accuracies


def test_more_steps_and_larger_budgets_are_stronger(trained_model, fmnist_test_batch):
    x, y = fmnist_test_batch[0][:N], fmnist_test_batch[1][:N]
    torch.manual_seed(0)
    one = accuracy(trained_model, A.spatial(trained_model, x, y, eps_w=0.3, steps=1).x_adv, y)
    many = accuracy(trained_model, A.spatial(trained_model, x, y, eps_w=0.3, steps=10).x_adv, y)
    big = accuracy(trained_model, A.spatial(trained_model, x, y, eps_w=0.6, steps=10).x_adv, y)
    assert big <= many <= one


def test_targeted_attack_moves_predictions_towards_the_target(trained_model, fmnist_test_batch):
    x, y = fmnist_test_batch[0][:N], fmnist_test_batch[1][:N]
    target = (y + 1) % 10
    res = A.joint(trained_model, x, target, eps_x=8, eps_w=0.3, steps=10, targeted=True)
    with torch.no_grad():
        before, after = trained_model(x), trained_model(res.x_adv)
    ce = torch.nn.functional.cross_entropy
    assert ce(after, target) < ce(before, target) - 0.5  # the target's loss was descended
    hits = [(z.argmax(1) == target).float().mean().item() for z in (before, after)]
    assert hits[1] > hits[0] + 0.05, hits
