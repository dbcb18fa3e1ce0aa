"""APGD on every threat model, the worst-case ("strong") suite and the gradient-masking diagnostics."""

import copy
import json
import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jointlab import attacks as A
from jointlab.evaluation import (
    MASKING_THRESHOLDS,
    WORST_COLUMNS,
    diagnose,
    scaled_budgets,
    significant,
    strong_evaluate,
    union_curve,
)
from jointlab.losses import dlr_loss, targeted_dlr_loss
from jointlab.threats import levels_to_unit
from jointlab.warp import flow_norm, warp


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(threat=st.sampled_from(A.THREATS), n=st.integers(1, 3), side=st.integers(4, 9),
       eps_x=st.one_of(st.just(0.0), st.floats(1e-20, 16)),
       eps_w=st.one_of(st.just(0.0), st.floats(1e-20, 2)),
       steps=st.integers(1, 6), loss=st.sampled_from(["ce", "dlr", "cw"]),
       order=st.sampled_from(["sp", "ps"]),
       dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**16))
def test_apgd_respects_every_budget_exactly(tiny_model, threat, n, side, eps_x, eps_w, steps, loss, order,
                                            dtype, seed):
    torch.manual_seed(seed)
    model = copy.deepcopy(tiny_model).to(dtype).train()
    x = (torch.rand(n, 1, side, side, dtype=dtype) * 2 - 1)
    x[0, 0, 0, :2] = torch.tensor([-1.0, 1.0], dtype=dtype)  # saturated pixels
    y = torch.randint(0, 10, (n,))
    res = A.apgd(model, x, y, eps_x, eps_w, steps, threat, order, loss=loss)
    assert model.training and all(m.training for m in model.modules())  # the caller's mode is back
    assert all(p.grad is None for p in model.parameters())
    assert res.x_adv.dtype == dtype and res.x_adv.min() >= -1 and res.x_adv.max() <= 1
    base = x
    if threat != "pixel":
        assert torch.all(flow_norm(res.flow) <= eps_w)
        base = warp(x, res.flow)
    if threat != "spatial":
        assert res.delta.abs().max() <= levels_to_unit(eps_x)
        torch.testing.assert_close(res.x_adv, (base + res.delta).clamp(-1, 1))
    else:
        torch.testing.assert_close(res.x_adv, base)


def test_apgd_checkpoints_follow_the_papers_schedule():
    # p = 0, .22, .41, .57, .70, .80, .87, .93, .99 (then 1.05 > 1): the reference AutoAttack's checkpoints
    # for N = 100 (its integer schedule 22, +19, +16, +13, +10, +7, +6, +6)
    assert A.apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert A.apgd_checkpoints(1000)[:3] == [220, 410, 570]
    assert A.apgd_checkpoints(1) == [1]


class Recorder(torch.nn.Module):
    """Records every image the attack evaluates and the logits it got."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, x):
        logits = self.model(x)
        self.seen.append((x.detach().clone(), logits.detach().clone()))
        return logits


@pytest.mark.parametrize("threat", A.THREATS)
def test_apgd_returns_the_last_misclassified_iterate_else_the_best_point(tiny_model, threat):
    """As AutoAttack: for an image any iterate misclassified, the last such iterate; for the others the
    highest-loss one. The loss here (minus CE) climbs towards the label, so the two rules disagree."""
    torch.manual_seed(0)
    x = torch.rand(8, 1, 12, 12) * 2 - 1
    with torch.no_grad():
        y = tiny_model(x).argmax(1)
    y[4:] = (y[4:] + 1) % 10  # half the images start misclassified
    model = Recorder(tiny_model)

    def towards_the_label(z, y):
        return -torch.nn.functional.cross_entropy(z, y, reduction="none")

    res = A.apgd(model, x, y, eps_x=8, eps_w=0.5, steps=6, threat=threat, loss=towards_the_label)
    images = torch.stack([s[0] for s in model.seen])
    logits = torch.stack([s[1] for s in model.seen])
    wrong = logits.argmax(2) != y
    loss = torch.stack([towards_the_label(z, y) for z in logits])
    assert wrong.any(0).any() and (~wrong.any(0)).any(), "the batch holds both kinds of image"
    for i in range(len(x)):
        if wrong[:, i].any():
            expected = images[wrong[:, i].nonzero().max(), i]
        else:
            expected = images[loss[:, i].argmax(), i]
        torch.testing.assert_close(res.x_adv[i], expected.clamp(-1, 1), msg=f"image {i}")


class Brightness(torch.nn.Module):
    """Always predicts class 0, with a logit that grows with the mean brightness (linear in the image)."""

    def forward(self, x):
        z = torch.zeros(len(x), 10)
        z[:, 0] = 100 + x.mean((1, 2, 3))
        return z


def test_apgd_caps_the_flow_step_only_when_asked():
    # on a brightness ramp (slope 2/11 per pixel) the first flow step shifts the image by the step length
    x = torch.linspace(-1, 1, 12).expand(2, 1, 12, 12).contiguous()
    y = torch.zeros(2, dtype=torch.long)
    shift = {}
    for cap in (None, 1.0):
        model = Recorder(Brightness())
        A.apgd(model, x, y, eps_w=4.0, steps=10, threat="spatial", random_start=False, max_step_w=cap,
               loss=lambda z, y: z[:, 0])
        first, second = model.seen[0][0], model.seen[1][0]
        shift[cap] = ((second - first)[..., 3] / (2 / 11)).mean().item()
    assert shift[None] == pytest.approx(4.0) and shift[1.0] == pytest.approx(1.0)  # 2ε_ω projected onto ε_ω
    with pytest.raises(ValueError, match="max_step_w must be a number > 0"):
        A.apgd(Brightness(), x, y, max_step_w=0, steps=1, threat="spatial")


def test_dlr_losses_are_invariant_to_logit_scale_and_shift():
    torch.manual_seed(0)
    z, y, t = torch.randn(6, 10), torch.randint(0, 10, (6,)), torch.randint(0, 10, (6,))
    torch.testing.assert_close(dlr_loss(z, y), dlr_loss(7 * z + 3, y))
    torch.testing.assert_close(targeted_dlr_loss(z, y, t), targeted_dlr_loss(7 * z + 3, y, t))
    assert (dlr_loss(z, y) > 0).eq(z.argmax(1) != y).all()  # positive exactly when misclassified
    with pytest.raises(ValueError, match="at least 3 classes"):
        dlr_loss(torch.randn(2, 2), torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("threat", A.THREATS)
def test_apgd_is_at_least_as_strong_as_pgd_on_a_trained_model(trained_model, fmnist_test_batch, threat):
    x, y = fmnist_test_batch[0][:128], fmnist_test_batch[1][:128]
    budgets = dict(eps_x=6.0, eps_w=0.2)  # small enough that neither attack reaches 0 %
    steps = 10
    torch.manual_seed(0)
    if threat == "pixel":
        pgd = A.pgd(trained_model, x, y, budgets["eps_x"], step_x=budgets["eps_x"] / 4, steps=steps)
    elif threat == "spatial":
        pgd = A.spatial(trained_model, x, y, budgets["eps_w"], step_w=budgets["eps_w"] / 2, steps=steps)
    else:
        pgd = A.joint(trained_model, x, y, step_x=budgets["eps_x"] / 4, step_w=budgets["eps_w"] / 2,
                      steps=steps, **budgets)
    res = A.apgd(trained_model, x, y, steps=steps, threat=threat, **budgets)
    with torch.no_grad():
        acc_pgd = (trained_model(pgd.x_adv).argmax(1) == y).float().mean().item()
        acc_apgd = (trained_model(res.x_adv).argmax(1) == y).float().mean().item()
        clean = (trained_model(x).argmax(1) == y).float().mean().item()
    assert acc_pgd < clean - 0.1  # the comparison is not at a floor or a ceiling
    assert acc_apgd <= acc_pgd + 0.02, (threat, acc_apgd, acc_pgd)


def test_apgd_targeted_moves_towards_wrong_classes(trained_model, fmnist_test_batch):
    x, y = fmnist_test_batch[0][:64], fmnist_test_batch[1][:64]
    res = A.apgd_targeted(trained_model, x, y, eps_x=4, steps=10, threat="joint", eps_w=0.2, top_k=3)
    with torch.no_grad():
        attacked, clean = trained_model(res.x_adv).argmax(1), trained_model(x).argmax(1)
    assert (attacked == y).sum() < (clean == y).sum()
    assert torch.all(flow_norm(res.flow) <= 0.2) and res.delta.abs().max() <= levels_to_unit(4)


@pytest.fixture(scope="module")
def strong_report(trained_model, fmnist_test_batch):
    x, y = fmnist_test_batch[0][:48], fmnist_test_batch[1][:48]
    torch.manual_seed(0)
    return strong_evaluate(trained_model, (x, y), eps_x=6, eps_w=0.2, steps=5, apgd_steps=10, top_k=2,
                           queries=30, suite="quick", batch_size=24, progress=False)


def test_union_is_below_every_column(strong_report):
    acc = strong_report.accuracy
    assert list(acc)[0] == "Pristine" and list(acc)[-4:] == [*WORST_COLUMNS.values(), "Union"]
    for c, v in acc.items():
        assert acc["Union"] <= v, c
    assert acc["Joint (worst)"] >= acc["Union"]  # the joint threat contains the pixel and the flow balls
    for col, own in [("Pixel (worst)", ["FGSM", "PGD5", "PGD5-CW"]),
                     ("Spatial (worst)", ["Spatial", "Spatial-CW"]),
                     ("Joint (worst)", ["Joint-SP", "Joint-PS", "Joint-CW"])]:
        assert all(acc[col] <= acc[c] for c in own), col
    # the union costs the paper's columns and then the members, run on the images still robust
    paper = sum(strong_report.passes[c] for c in acc if c != "Pristine" and "worst" not in c and c != "Union")
    assert strong_report.passes["Union"] > paper
    assert 0 < strong_report.stderr["Pristine"] < 10
    md = strong_report.markdown("natural")
    assert "Union" in md and "diagnostics" in md and "±" in md
    assert "Union is the worst case of the joint threat" in md


def test_union_curve_scales_both_budgets_together(trained_model, fmnist_test_batch):
    x, y = fmnist_test_batch[0][:16], fmnist_test_batch[1][:16]
    light = dict(steps=3, apgd_steps=5, top_k=1, queries=0, suite="quick", diagnostics=False, progress=False)
    curve = union_curve(trained_model, (x, y), [0, 3, 6], eps_x=6, eps_w=0.2, **light)
    with torch.no_grad():
        clean = 100 * (trained_model(x).argmax(1) == y).float().mean().item()
    assert curve["union"][0] == curve["pgd"][0] == pytest.approx(clean)
    assert all(u <= p for u, p in zip(curve["union"], curve["pgd"], strict=True))
    # the last scale is the given budgets: the same report as strong_evaluate there, image by image
    at_budget = strong_evaluate(trained_model, (x, y), eps_x=6, eps_w=0.2, **light)
    assert curve["union"][2] == at_budget.accuracy["Union"]
    assert curve["records"][6] == at_budget.records["correct"]["Union"]
    assert scaled_budgets(8, 0.28, 4) == pytest.approx(dict(eps_x=4.0, eps_w=0.14))
    with pytest.raises(ValueError, match="eps_x"):
        scaled_budgets(0, 0.28, 4)


class Constant(torch.nn.Module):
    """Predicts class 0 whatever the image: every image survives every attack."""

    def __init__(self):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor([5.0] + [0.0] * 9))

    def forward(self, x):
        return self.logits + 0 * x.flatten(1)[:, :1]


def test_strong_evaluate_leaves_the_callers_random_stream_alone():
    """The extra restart must not reseed the global generator: what the caller draws afterwards still
    depends on the caller's seed."""
    x, y = torch.rand(4, 1, 8, 8) * 2 - 1, torch.zeros(4, dtype=torch.long)
    after = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        report = strong_evaluate(Constant(), (x, y), eps_x=8, eps_w=0.3, steps=1, apgd_steps=2, top_k=1,
                                 suite="quick", threats=("pixel",), progress=False)
        assert report.accuracy["Union"] == 100.0  # the restart ran on every image
        after.append(torch.rand(4))
    assert not torch.equal(*after)


class Quantized(torch.nn.Module):
    """Masks gradients: the input is rounded to 8 grey levels (zero gradient almost everywhere)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 4) / 4)


class Saturated(torch.nn.Module):
    """Masks cross-entropy gradients: logits × 1e4 saturate the softmax (margin losses still work)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x) * 1e4


def _fired(report):
    return {d.name for d in report.diagnostics if d.fired}


@pytest.mark.parametrize("wrapper, expected", [
    (Quantized, {"many input gradients are exactly zero", "a huge budget leaves accuracy above ~0 %"}),
    (Saturated, {"cross-entropy and margin losses disagree"}),
])
def test_masking_diagnostics_fire_on_a_masked_model(trained_model, fmnist_test_batch, wrapper, expected):
    x, y = fmnist_test_batch[0][:32], fmnist_test_batch[1][:32]
    torch.manual_seed(0)
    report = strong_evaluate(wrapper(trained_model).eval(), (x, y), eps_x=8, eps_w=0.28, steps=5,
                             apgd_steps=10, top_k=2, queries=50, suite="quick", progress=False)
    assert expected <= _fired(report), [str(d) for d in report.diagnostics]


def test_worst_case_and_union_count_what_the_transfer_attack_broke(trained_model, fmnist_test_batch):
    """On a gradient-masked model the white-box attacks miss images that the attack transferred from its
    unmasked twin breaks: those leave the worst columns and Union (the same random numbers otherwise)."""
    x, y = fmnist_test_batch[0][:32], fmnist_test_batch[1][:32]
    masked = Quantized(trained_model).eval()
    # no gradient-free members: they too break what the mask hides, and this test isolates the transfer
    kw = dict(eps_x=8, eps_w=0.28, steps=5, apgd_steps=5, top_k=1, queries=0, suite="quick",
              threats=("pixel", "joint"), progress=False)
    torch.manual_seed(0)
    alone = strong_evaluate(masked, (x, y), **kw)
    torch.manual_seed(0)
    folded = strong_evaluate(masked, (x, y), source=trained_model, **kw)
    a, b = alone.accuracy, folded.accuracy
    assert all(a[c] == b[c] for c in a if c not in (*WORST_COLUMNS.values(), "Union"))
    for threat in kw["threats"]:
        col = WORST_COLUMNS[threat]
        assert b[col] <= min(a[col], folded.probes["transfer"][threat]), col
    assert b["Union"] < a["Union"] and b["Joint (worst)"] < a["Joint (worst)"]
    assert all(b["Union"] <= v for v in b.values()) and b["Joint (worst)"] >= b["Union"]


def test_one_noise_rule_for_every_diagnostic():
    """An effect fires only beyond its threshold, two standard errors and `min_images` images: one image
    of 48 (2.1 %) fires nothing, whatever the check."""
    n, k = 48, MASKING_THRESHOLDS["min_images"]
    assert not significant(100 / n, n, 2.0)                    # one image: above the 2 % threshold only
    assert not significant(100 * (k - 1) / n, n, 0.0)          # fewer than min_images
    assert significant(100 * 6 / n, n, 2.0)                    # 12.5 % > 2 s.e. (9.5 %) and 6 images
    assert not significant(10.0, 10_000, 10.0)                 # the threshold still holds on many images
    assert significant(10.5, 10_000, 10.0) and significant(3.0, None, 2.0)  # a table alone: threshold only
    one = {th: 1 for th in A.THREATS}
    acc = {"Pristine": 80.0, "FGSM": 60 - 100 / n, "PGD10": 60.0, "Spatial": 60.0, "Joint-SP": 40.0,
           "PGD10-CW": 60 - 100 / n, "Spatial-CW": 60.0, "Joint-CW": 40 - 100 / n}
    counts = {"huge": one, "restart": one, "noise": {"pixel": 60 * n // 100 - 1, "spatial": 60 * n // 100,
              "joint": 40 * n // 100}, "transfer": one, "with_source": False, "zero_grad": 1}
    assert not [d for d in diagnose(acc, 10, counts, n) if d.fired]
    counts["huge"] = {th: 6 for th in A.THREATS}
    fired = [d.name for d in diagnose(acc, 10, counts, n) if d.fired]
    assert fired == ["a huge budget leaves accuracy above ~0 %"]
    # beside a natural model that keeps as many images at the huge budget, the same count is no finding
    counts |= {"with_reference": True, "huge_reference": {th: 6 for th in A.THREATS}}
    assert not [d for d in diagnose(acc, 10, counts, n) if d.fired]
    counts["huge_reference"] = {th: 0 for th in A.THREATS}
    fired = [d.name for d in diagnose(acc, 10, counts, n) if d.fired]
    assert fired == ["a huge budget leaves accuracy above ~0 % (above the natural model's)"]


def test_bad_input_gets_one_clear_error(trained_model, fmnist_test_batch):
    x, y = fmnist_test_batch[0][:4], fmnist_test_batch[1][:4]
    with pytest.raises(ValueError, match="threat must be one of"):
        A.apgd(trained_model, x, y, threat="rotation")
    with pytest.raises(ValueError, match="loss must be one of"):
        A.apgd(trained_model, x, y, loss="hinge")
    with pytest.raises(ValueError, match="top_k must be an integer"):
        A.apgd_targeted(trained_model, x, y, top_k=0)
    with pytest.raises(ValueError, match="apgd_steps must be an integer"):
        strong_evaluate(trained_model, (x, y), apgd_steps=2.5)
    with pytest.raises(ValueError, match="eps_x must be a finite number >= 0"):
        A.apgd(trained_model, x, y, eps_x=-1)
    probs = torch.nn.Sequential(trained_model, torch.nn.Softmax(dim=1))
    with pytest.raises(ValueError, match="logits, not probabilities"):
        strong_evaluate(probs, (x, y), progress=False)
    flat = torch.nn.Sequential(trained_model, torch.nn.Flatten(0))
    with pytest.raises(ValueError, match=r"logits of shape \(N, classes\)"):
        strong_evaluate(flat, (x, y), progress=False)


# notebook 06's worst-case settings in the quick profile and its image count: the numbers a learner reads
NOTEBOOK_06 = dict(eps_x=8, eps_w=0.28, steps=10, apgd_steps=10, top_k=2, suite="quick", queries=100)
NOTEBOOK_06_IMAGES = 32
AUTOATTACK_IMAGES = 48  # the cross-check below: 2 points are one image here


@pytest.fixture(scope="module")
def quick_profile(quick_runs, tmp_path_factory):
    """The quick profile, its models from the cache the notebook tests share (the shipped lesson models)."""
    from jointlab.profiles import get_profile

    out = tmp_path_factory.mktemp("out")
    return get_profile("quick", cache_dir=str(quick_runs / "cache"), out_dir=str(out))


@pytest.fixture(scope="module")
def madry_quick(quick_profile):
    """The quick profile's Madry model (multi-step PGD training) and its 64 test images."""
    return quick_profile.model("madry", progress=False), *quick_profile.test_batch()


# natural and joint (the two ends: no defence, the paper's) in `make test`, the others in `make test-slow`
SLOW = pytest.mark.slow


@pytest.mark.parametrize("method", ["natural", pytest.param("madry", marks=SLOW),
                                    pytest.param("bilateral", marks=SLOW),
                                    pytest.param("spatial", marks=SLOW), "joint"])
def test_masking_diagnostics_stay_silent_on_every_lesson_model(quick_profile, method):
    """The report a learner reads in notebook 06 must not cry wolf: no check fires on the shipped lesson
    models, the huge-budget check on the flow threats included (it fired on three of them when APGD's
    first flow step was 2ε_ω = 14 px and it ran the paper's steps)."""
    model = quick_profile.model(method, progress=False)
    x, y = quick_profile.test_batch()
    n = NOTEBOOK_06_IMAGES
    torch.manual_seed(0)
    report = strong_evaluate(model, (x[:n], y[:n]), **NOTEBOOK_06, progress=False)
    assert not report.fired, [str(d) for d in report.diagnostics]
    assert len(report.diagnostics) == 6
    assert report.accuracy["Joint (worst)"] >= report.accuracy["Union"]


@pytest.mark.slow  # `make test-slow` (CI runs it after `make test`)
def test_pixel_worst_case_agrees_with_autoattack(madry_quick):
    """Our pixel worst case, with notebook 06's quick settings (10-step paper columns, APGD 10 iterations,
    APGD-T on 2 targets), against the field's standard (torchattacks' AutoAttack, standard version:
    APGD-CE, APGD-T, FAB-T, Square; torchattacks runs the first three for 10 iterations, not 100) on the
    quick profile's Madry model, ε = 8/255, the same images."""
    import torchattacks  # installed with --no-deps by the Makefile (its requests pin clashes with Jupyter)

    # Square's 5000 queries on the images the gradient attacks leave robust are most of this test's ~2
    # minutes on 2 cores and hardly shrink with fewer images (measured: 116 s on 48, 102 s on 32); the
    # 2-point tolerance on 48 images means at most one image apart
    model, x, y = madry_quick
    x, y = x[:AUTOATTACK_IMAGES], y[:AUTOATTACK_IMAGES]
    torch.manual_seed(0)
    ours = strong_evaluate(model, (x, y), **NOTEBOOK_06, threats=("pixel",), diagnostics=False,
                           progress=False).accuracy

    class ZeroOne(torch.nn.Module):  # torchattacks works on [0, 1] images; jointlab on [-1, 1]
        def forward(self, x01):
            return model(x01 * 2 - 1)

    wrapped = ZeroOne().eval()
    aa = torchattacks.AutoAttack(wrapped, norm="Linf", eps=8 / 255, version="standard", n_classes=10, seed=0)
    adv = aa((x + 1) / 2, y)
    with torch.no_grad():
        theirs = 100 * (wrapped(adv).argmax(1) == y).float().mean().item()
    # neither at a floor nor at a ceiling (the lesson Madry model keeps most of its clean accuracy)
    assert 5 <= ours["Pixel (worst)"] < ours["Pristine"]
    assert abs(ours["Pixel (worst)"] - theirs) <= 2.0, (ours["Pixel (worst)"], theirs)


DEFAULT_IMAGES = 200  # issue 17: silent with the default settings on at least 200 images


@pytest.fixture(scope="module")
def default_reports(quick_profile):
    """The strong suite with its default settings ("standard": 20-step paper columns with PGD100, APGD
    100 iterations, APGD-T on 9 targets, 300 gradient-free queries) on 200 test images of a Table 1
    lesson model, with the natural model as the huge-budget reference; and notebook 06's cheap
    settings on the same images (the reference results of the claims ledger use them). Computed per
    model when its test asks (~15 min each on 2 cores), each report also written to
    runs/test-heavy/<method>.json, so that a long run shows its results as it goes."""
    from jointlab.data import load_dataset
    from jointlab.profiles import runs_dir

    x, y = load_dataset("fashion-mnist", "test", limit=DEFAULT_IMAGES, seed=quick_profile.seed + 1).batch()
    natural = quick_profile.model("natural", progress=False)
    folder = runs_dir() / "test-heavy"
    folder.mkdir(parents=True, exist_ok=True)
    done = {}

    def report(method):
        if method not in done:
            model = quick_profile.model(method, progress=False)
            start = time.perf_counter()
            default = strong_evaluate(model, (x, y), eps_x=8, eps_w=0.28, reference=natural, progress=False)
            middle = time.perf_counter()
            cheap = strong_evaluate(model, (x, y), **NOTEBOOK_06, progress=False)
            seconds = {"default": middle - start, "notebook_06": time.perf_counter() - middle}
            (folder / f"{method}.json").write_text(json.dumps(
                {"default": default.to_dict(), "notebook_06": cheap.to_dict(), "seconds": seconds}, indent=1))
            done[method] = default, cheap
        return done[method]

    return report


# The checks measured to fire with the defaults, and rightly so. The spatial lesson model is trained with
# one-step targeted flow attacks on smoothed labels (smoothing "simple"), the signature the CE-versus-
# margin check looks for: measured on 200 images, its CE joint column stayed put from 10 to 20 steps
# (46.0 % both) while the margin loss kept falling (42.0 → 38.5 %), and on the ledger's 1,000 images its
# paper-style joint number is 6.8 [5.2, 8.4] points above its worst case, the most of the five models.
# The worst-case columns also run margin losses (CW, APGD-DLR, APGD-T), so it warns about the paper's CE
# columns, not about the worst case.
FIRE_AT_DEFAULTS = {"spatial": {"cross-entropy and margin losses disagree"}}


@pytest.mark.heavy  # 9-15 min per model on 2 cores: `make test-heavy`, not in CI (see the README)
@pytest.mark.parametrize("method", ["natural", "madry", "bilateral", "spatial", "joint"])
def test_masking_diagnostics_stay_silent_with_the_default_settings(default_reports, method):
    """No masking check fires on a shipped lesson model with the suite's defaults either (the huge-budget
    check on the flow threats included), except the CE-versus-margin check on the label-smoothed spatial
    model (FIRE_AT_DEFAULTS: the "not converged" check, silent there too, says the margin-loss members
    of its worst case are done); and the cheap settings of notebook 06 and the ledger give the same worst
    cases within two standard errors: cheaper settings are a choice of cost, not of verdict."""
    default, cheap = default_reports(method)
    assert default.settings["ensemble"].endswith("(standard)")
    fired = {d.name for d in default.fired}
    assert fired <= FIRE_AT_DEFAULTS.get(method, set()), [str(d) for d in default.diagnostics]
    for column in (*WORST_COLUMNS.values(), "Union"):
        a, b = default.accuracy[column], cheap.accuracy[column]
        assert abs(a - b) <= 2 * max(default.stderr[column], cheap.stderr[column], 1.0), (column, a, b)
