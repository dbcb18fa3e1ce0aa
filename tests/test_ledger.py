"""The claims ledger: every row carries the paper's value, ours with ±, a verdict from a fixed set and a
reason, and the shipped reference results agree with a fresh recomputation on a small subset."""

import pytest
import torch

from jointlab import ledger
from jointlab.evaluation import attack_suite, evaluate_per_image, paired_difference, standard_error


@pytest.fixture(scope="module")
def results():
    return ledger.load_results()


def test_verdict_rule():
    assert ledger.verdict(0.4, 6.0) == "reproduced"
    assert ledger.verdict(-4.0, 1.9) == "not reproduced"        # an effect of 2 pt is ruled out
    assert ledger.verdict(-9.0, -3.0) == "not reproduced"       # the other way round
    assert ledger.verdict(-1.0, 5.0) == "inconclusive at this size"
    assert set(ledger.VERDICTS) == {"reproduced", "not reproduced", "inconclusive at this size", "not tested"}


def test_paired_difference_resamples_images_not_models():
    a = torch.tensor([1, 0] * 250)
    same = paired_difference(a, a)
    assert same["difference"] == same["low"] == same["high"] == 0.0  # no noise where both agree
    b = a.clone()
    b[:50] = 0  # 25 images right for a only: +5 points, and only those 50 images differ
    d = paired_difference(a, b)
    assert d["difference"] == pytest.approx(5.0) and 0 < d["low"] < 5 < d["high"] < 10
    with pytest.raises(ValueError, match="same images"):
        paired_difference(a, b[:10])


def test_every_row_has_the_papers_value_ours_with_pm_a_verdict_and_a_reason(results):
    rows = ledger.ledger_rows(results)
    assert len(rows) == len(ledger.CLAIMS) + 2  # the claims, the scale row, the cost row
    assert results["settings"]["images"] >= 1000
    for row in rows:
        assert row["verdict"] in ledger.VERDICTS and row["reason"], row
        assert row["verdict"] != "not tested", row  # every row is measured in the shipped results
    for row, claim in zip(rows, ledger.CLAIMS, strict=False):
        assert row["paper"] == f"{claim.paper[0]:.1f} vs {claim.paper[1]:.1f}"
        assert row["ours"].count("±") == 2 and "[" in row["difference"], row
        lo, hi = row["interval"]["low"], row["interval"]["high"]
        assert lo <= row["interval"]["difference"] <= hi
    markdown = ledger.ledger_markdown(results)
    assert markdown.count("\n| ") == len(rows) + 1 and "Verdict rule" in markdown


def test_the_scale_experiment_spans_four_times_the_training(results):
    gaps = ledger.scale_gaps(results)
    sizes = [g["train_images"] for g in gaps]
    assert sizes == list(ledger.SCALE_SIZES) and sizes[-1] >= 4 * sizes[0]
    assert all(g["low"] <= g["difference"] <= g["high"] for g in gaps)


def test_shipped_results_match_a_fresh_recomputation(quick_runs, results):
    """One row, recomputed: the first claim (Madry, PGD10 vs Joint-SP) on the first 96 reference images.
    The clean column must match image for image; the attacked columns within two standard errors (the
    attacks' random starts differ with the batch)."""
    from jointlab.profiles import get_profile

    P = get_profile("quick", cache_dir=str(quick_runs / "cache"), test_limit=results["settings"]["images"])
    x, y = P.test_batch()
    n = 96
    assert y[:n].tolist() == results["labels"][:n]  # the same images, in the same order
    suite = attack_suite("quick", eps_x=P.eps_x, eps_w=P.eps_w, steps=P.attack_steps)
    suite = {k: v for k, v in suite.items() if k in ("Pristine", "PGD10", "Joint-SP")}
    torch.manual_seed(0)
    fresh = evaluate_per_image(P.model("madry", progress=False), (x[:n], y[:n]), suite, progress=False)
    for column, now in fresh.items():
        shipped = ledger._records(results, "madry", column)[:n]
        if column == "Pristine":
            assert torch.equal(now, shipped)
        a, b = 100 * now.float().mean().item(), 100 * shipped.float().mean().item()
        assert abs(a - b) <= 2 * max(standard_error(b, n), 100 / n), (column, a, b)


def test_reference_curves_draw_fig_3_and_the_union(results):
    """Notebook 06 draws its curves from these in the quick profile: PGD at every pixel budget for the
    five Table 1 models and the strong suite's union at the smaller budgets, on the same images as the
    rest of the reference results."""
    pixel = ledger.pixel_curves(results)
    assert list(pixel) == list(ledger.MODELS)
    for m, accs in pixel.items():
        assert len(accs) == len(ledger.PIXEL_BUDGETS)
        assert accs[0] == ledger.accuracy_of(results, m, "Pristine")[0]  # budget 0: the clean images
        assert all(b <= a + 2 for a, b in zip(accs, accs[1:], strict=False)), (m, accs)  # no rise
        at_8 = ledger.PIXEL_BUDGETS.index(8)  # the curve's ε_x = 8 point is Table 1's PGD10 column
        table = ledger.accuracy_of(results, m, "PGD10")[0]
        assert abs(accs[at_8] - table) <= 2 * standard_error(table, results["settings"]["images"]), m
    scales, union, pgd = ledger.union_curves(results)
    assert scales == [0.0, *ledger.UNION_SCALES, 8.0] and list(union) == list(ledger.UNION_MODELS)
    for m in union:
        assert all(u <= p for u, p in zip(union[m], pgd[m], strict=True)), m  # PGD is in the union
        assert union[m][0] == pgd[m][0] and union[m][-1] <= union[m][1], m


def test_reference_results_describe_only_their_own_profile(results):
    from jointlab.profiles import get_profile

    assert ledger.describes(results, get_profile("quick"))
    assert ledger.describes(results, get_profile("quick", test_limit=32))  # fewer live images: same models
    assert not ledger.describes(results, get_profile("quick", arch="wrn-16-2"))
    assert not ledger.describes(results, get_profile("quick", eps_w=0.5))
    assert not ledger.describes(results, get_profile("full"))
