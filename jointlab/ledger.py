"""The claims ledger: each claim of the paper, tested on the shipped lesson models at a sample size that
can decide it, with the paper's numbers, ours with their intervals, the strong suite's beside the
paper-style ones, and a verdict.

    python -m jointlab.ledger results      # `make results`: the reference results (resumable pieces)
    python -m jointlab.ledger table        # the ledger as Markdown (README, notebook 07)
    python -m jointlab.ledger figures      # models/ledger-{scale,flow-budget,pixel-budget}.png

Reference results (`models/results.json`, computed once, read by the notebooks and the README): on the
first `IMAGES` test images of the quick profile's test subset, per image and per column, whether each
shipped model classifies the attacked image correctly: the paper's columns (10-step attacks) and the
strong suite at `STRONG` settings (cheaper than its defaults; `make test-heavy` compares the two on 200
images, and has not yet run to the end for every model). Keeping the per-image records lets a difference
between two models (or two columns) carry a paired bootstrap interval. Beside them: the black-box
transfer of Table 5, the scale experiment (Madry, joint and natural models trained on `SCALE_SIZES`
images), the accuracy of the Table 1 models against the test pixel budget (`PIXEL_BUDGETS`, Fig. 3) and
of four models against the test flow budget (`FLOW_BUDGETS`), and the strong suite's union at the
smaller budgets of `UNION_SCALES` for the Madry and joint models (notebook 06's union curves).

Verdicts (`VERDICTS`), from the 95 % paired bootstrap interval [lo, hi] of our effect, signed so that
the paper's claim is a positive effect: *reproduced* when lo > 0; *not reproduced* when hi <
`MIN_EFFECT` (an effect of that size in the paper's direction is ruled out); *inconclusive at this
size* otherwise; *not tested* where the kit has no measurement.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .evaluation import (
    PAPER_TABLE1,
    PAPER_TABLE3,
    attack_suite,
    evaluate_per_image,
    noise_word,
    paired_difference,
    provenance,
    scaled_budgets,
    standard_error,
    strong_evaluate,
    write_json,
)
from .profiles import get_profile
from .train import load_or_train, models_dir
from .zoo import lesson_configs, read_manifest

__all__ = ["IMAGES", "STRONG", "MODELS", "SCALE_SIZES", "FLOW_BUDGETS", "VERDICTS", "MIN_EFFECT", "CLAIMS",
           "Claim", "results_path", "load_results", "compute", "ledger_rows", "ledger_markdown", "verdict",
           "accuracy_of", "compare", "table_rows", "PAPER_ONLY", "scale_gaps", "flow_curves", "figures",
           "PIXEL_BUDGETS", "UNION_MODELS", "UNION_SCALES", "pixel_curves", "union_curves", "describes",
           "main"]

IMAGES = 1000
# the strong suite of the reference runs: notebook 06's quick settings (APGD 10 iterations, 2 targets,
# 100 gradient-free queries) without the diagnostics' extra attacks, a few minutes per model per 1,000
# images on 2 cores; tests/test_strong.py holds them to the defaults within two standard errors on 200
# images, and the diagnostics silent there
STRONG = dict(apgd_steps=10, top_k=2, queries=100, suite="quick", diagnostics=False)
# the strong suite, 1,000 images: the five Table 1 models (8-13 min each on 2 cores: natural 460 s, Madry
# 775 s measured); the training-attack models of Tables 2-3 get the paper's columns only
MODELS = ("natural", "madry", "bilateral", "spatial", "joint")
PAPER_ONLY = ("bilateral", "spatial", "joint", "cascade", "one-pass", "joint-ps")
SCALE_METHODS = ("natural", "madry", "joint")
SCALE_SIZES = (3000, 6000, 12000)  # training images, 4 epochs each: 4x in images x epochs
FLOW_MODELS = ("natural", "madry", "spatial", "joint")
FLOW_BUDGETS = (0.0, 0.14, 0.28, 0.5, 0.75, 1.0)  # test eps_w, pixels (0.28 = 1 % of the 28-pixel side)
PIXEL_BUDGETS = (0, 2, 4, 8, 12, 16)  # test eps_x, 0-255 levels (Fig. 3; PGD with the paper's step eps_x / 4)
UNION_MODELS = ("madry", "joint")
UNION_SCALES = (4,)  # eps_x of extra strong runs, eps_w scaled with it (eps_x = 8 is strong/<model>)
VERDICTS = ("reproduced", "not reproduced", "inconclusive at this size", "not tested")
MIN_EFFECT = 2.0  # accuracy points: an effect the ledger can rule out is one below this


def results_path() -> Path:
    folder = models_dir() or Path(__file__).resolve().parents[1] / "models"
    return folder / "results.json"


def load_results(path: str | Path | None = None) -> dict:
    path = Path(path) if path else results_path()
    if not path.is_file():
        raise FileNotFoundError(f"no reference results at {path}: `make results` computes them")
    return json.loads(path.read_text())


def describes(results: dict, P) -> bool:
    """Whether the reference results measure the models and budgets of profile `P` (the quick profile
    with its defaults), so that a notebook may read them in place of a large live run."""
    s = results.get("settings", {})
    ours = dict(dataset=P.dataset, arch=P.arch, epochs=P.epochs, train_images=P.limit, eps_x=P.eps_x,
                eps_w=P.eps_w, steps=P.attack_steps, test_seed=P.seed + 1)
    return all(s.get(k) == v for k, v in ours.items())


def _bits(mask: torch.Tensor) -> str:
    return "".join("1" if v else "0" for v in mask.tolist())


def _unbits(text: str) -> torch.Tensor:
    return torch.tensor([c == "1" for c in text])


# ----------------------------------------------------------------------------------------- computing


def _pieces(P, x, y) -> dict[str, Callable[[], dict]]:
    """Every piece of the reference results, by key, as a function computing it."""
    eps = dict(eps_x=P.eps_x, eps_w=P.eps_w, steps=P.attack_steps)
    configs = lesson_configs()
    suite = attack_suite("quick", **eps)

    def columns(*names):  # the paper's attacks of these columns
        return {k: v for k, v in suite.items() if k in names}

    def shipped(name):  # a lesson model of models/ (trained into the cache when missing)
        return load_or_train(configs[name][0], P.cache, device=P.device, progress=False).model

    def strong(name, scale=None):   # scale: the test eps_x, eps_w in proportion (None: the profile's)
        def run():
            torch.manual_seed(0)
            budgets = eps | scaled_budgets(P.eps_x, P.eps_w, P.eps_x if scale is None else scale)
            r = strong_evaluate(shipped(name), (x, y), **budgets, **STRONG, progress=False)
            return {"columns": {c: _bits(torch.tensor(v, dtype=torch.bool))
                                for c, v in r.records["correct"].items()},
                    "fired": [d.name for d in r.fired], "ensemble": r.settings["ensemble"]}
        return run

    def transfer(source):
        def run():
            table5 = columns("FGSM", f"PGD{P.attack_steps}", "Spatial", "Joint-SP")
            torch.manual_seed(0)
            got = evaluate_per_image(shipped("joint"), (x, y), table5, source=shipped(source), progress=False)
            return {"columns": {c: _bits(v) for c, v in got.items()}}
        return run

    def scale(method, size):
        def run():
            model = P.model(method, limit=size, progress=False)
            four = columns("Pristine", f"PGD{P.attack_steps}", "Spatial", "Joint-SP")
            torch.manual_seed(0)
            return {"columns": {c: _bits(v) for c, v in evaluate_per_image(model, (x, y), four,
                                                                             progress=False).items()}}
        return run

    def flow(name):
        def run():
            from .attacks import spatial

            model, out = shipped(name), {}
            for e in FLOW_BUDGETS:  # Alg. 1 with the paper's step ε_ω / 2 (ε_ω = 0: the clean images)
                kw = dict(eps_w=e, step_w=e / 2, steps=P.attack_steps)
                torch.manual_seed(0)
                got = evaluate_per_image(model, (x, y), {"acc": (spatial, kw) if e else (None, {})},
                                         progress=False)
                out[f"{e:g}"] = _bits(got["acc"])
            return {"columns": out}
        return run

    def pixel(name):
        def run():
            from .attacks import pgd

            model, out = shipped(name), {}
            for e in PIXEL_BUDGETS:  # PGD with the paper's step ε_x / 4 (ε_x = 0: the clean images)
                kw = dict(eps_x=e, step_x=e / 4, steps=P.attack_steps)
                torch.manual_seed(0)
                attack = {"acc": (pgd, kw) if e else (None, {})}
                out[f"{e:g}"] = _bits(evaluate_per_image(model, (x, y), attack, progress=False)["acc"])
            return {"columns": out}
        return run

    def paper(name):  # the paper's CE columns (the margin-loss ones only where the strong suite runs)
        def run():
            ce = columns(*(k for k in suite if not k.endswith("-CW")))
            torch.manual_seed(0)
            got = evaluate_per_image(shipped(name), (x, y), ce, progress=False)
            return {"columns": {c: _bits(v) for c, v in got.items()}}
        return run

    # the cheap pieces first, the strong suite last
    pieces = {f"paper/{m}": paper(m) for m in PAPER_ONLY}
    pieces |= {f"transfer/{s}": transfer(s) for s in ("natural", "joint-seed1")}
    pieces |= {f"scale/{m}/{n}": scale(m, n) for m in SCALE_METHODS for n in SCALE_SIZES if n != P.limit}
    pieces |= {f"flow/{m}": flow(m) for m in FLOW_MODELS}
    pieces |= {f"pixel/{m}": pixel(m) for m in MODELS}
    pieces |= {f"strong/{m}": strong(m) for m in MODELS}
    pieces |= {f"union/{m}/{s:g}": strong(m, s) for m in UNION_MODELS for s in UNION_SCALES}
    return pieces


def _settings(P) -> dict:
    return dict(images=IMAGES, test_seed=P.seed + 1, dataset=P.dataset, arch=P.arch, epochs=P.epochs,
                train_images=P.limit,
                eps_x=P.eps_x, eps_w=P.eps_w, steps=P.attack_steps, strong=STRONG, models=list(MODELS),
                paper_only=list(PAPER_ONLY), scale_sizes=list(SCALE_SIZES), flow_budgets=list(FLOW_BUDGETS),
                pixel_budgets=list(PIXEL_BUDGETS),
                union_models=list(UNION_MODELS), union_scales=list(UNION_SCALES))


def compute(path: str | Path | None = None, *, only: list[str] | None = None, images: int = IMAGES,
            progress: bool = True) -> dict:
    """Compute the missing pieces of the reference results (all of them, or those whose key starts with
    one of `only`), writing the file after each piece: a killed run continues where it stopped."""
    path = Path(path) if path else results_path()
    P = get_profile("quick", test_limit=max(images, 64), progress=False)
    x, y = P.test_batch(images)
    settings = _settings(P) | {"images": images}
    results = json.loads(path.read_text()) if path.is_file() else {}
    # the lists of what to compute may grow; what a piece measures (images, budgets, attacks) may not
    lists = ("models", "paper_only", "scale_sizes", "flow_budgets", "pixel_budgets", "union_models",
             "union_scales")
    old = {k: v for k, v in results.get("settings", {}).items() if k not in lists}
    if old != {k: v for k, v in settings.items() if k not in lists}:
        results = {"settings": settings, "pieces": {}}
    results["settings"] = settings
    results["labels"] = y.tolist()
    for key, run in _pieces(P, x, y).items():
        if key in results["pieces"] or (only and not any(key.startswith(o) for o in only)):
            continue
        start = time.perf_counter()
        if progress:
            print(f"[results] {key} ...", flush=True)
        piece = run() | {"seconds": round(time.perf_counter() - start, 1)}
        results["pieces"][key] = piece
        results["provenance"] = provenance(0, P.device)
        write_json(path, results)
        if progress:
            print(f"[results] {key}: {piece['seconds']:.0f} s", flush=True)
    return results


# ----------------------------------------------------------------------------------------- reading


def _column(results: dict, key: str, column: str) -> torch.Tensor:
    piece = results["pieces"].get(key)
    if piece is None or column not in piece["columns"]:
        raise KeyError(f"{key}: {column}")
    return _unbits(piece["columns"][column])


def _records(results: dict, model: str, column: str) -> torch.Tensor:
    """Per image, right (1) or wrong (0), of a shipped model (or "scale/<method>/<size>") in a column."""
    if model.startswith("scale/"):
        _, method, size = model.split("/")
        if int(size) == results["settings"]["train_images"]:  # the shipped lesson model
            return _records(results, method, column)
        return _column(results, model, column)
    if model.startswith(("transfer/", "flow/", "pixel/", "union/", "strong/")):  # a piece key already
        return _column(results, model, column)
    key = f"strong/{model}" if f"strong/{model}" in results["pieces"] else f"paper/{model}"
    return _column(results, key, column)


def table_rows(results: dict, models, columns) -> dict[str, dict[str, float]]:
    """Accuracy (%) per model and column of the reference results (columns a model lacks left out)."""
    rows = {}
    for m in models:
        rows[m] = {}
        for c in columns:
            try:
                rows[m][c] = accuracy_of(results, m, c)[0]
            except KeyError:
                continue
    return rows


def compare(results: dict, a: tuple[str, str], b: tuple[str, str]) -> dict:
    """The paired difference (points) of two (model, column) records of the reference results, e.g.
    `compare(r, ("flow/madry", "0.28"), ("flow/spatial", "0.28"))`, with its 95 % bootstrap interval and
    a word: "within noise" when the interval holds 0."""
    d = paired_difference(_records(results, *a), _records(results, *b))
    return d | {"word": noise_word(d)}


def accuracy_of(results: dict, model: str, column: str) -> tuple[float, float]:
    """Accuracy (%) and its standard error."""
    r = _records(results, model, column)
    acc = 100.0 * int(r.sum()) / len(r)
    return acc, standard_error(acc, len(r))


@dataclass(frozen=True)
class Claim:
    """One claim: the paper's effect (a − b in accuracy points, the claim being that it is positive) and
    ours, measured on the same images. `a` and `b` are (model, column) pairs of the reference results;
    `strong` the same pair in the strong suite's columns (None: no strong counterpart)."""

    claim: str
    source: str
    paper: tuple[float, float]  # the paper's a and b (CIFAR-10, %)
    a: tuple[str, str]
    b: tuple[str, str]
    strong: tuple[tuple[str, str], tuple[str, str]] | None = None


P_ = PAPER_TABLE1  # Pristine, FGSM, PGD20, Spatial, Joint
CLAIMS = (
    Claim("Pixel (Madry) training is fragile to the joint attack", "Table 1, Fig. 1",
          (P_["madry"][2], P_["madry"][4]), ("madry", "PGD10"), ("madry", "Joint-SP"),
          (("madry", "Pixel (worst)"), ("madry", "Joint (worst)"))),
    Claim("Spatial training beats pixel training under the spatial attack", "Table 1",
          (P_["spatial"][3], P_["madry"][3]), ("spatial", "Spatial"), ("madry", "Spatial"),
          (("spatial", "Spatial (worst)"), ("madry", "Spatial (worst)"))),
    Claim("The joint attack is stronger than the pixel attack alone (joint model)", "Table 1",
          (P_["joint"][2], P_["joint"][4]), ("joint", "PGD10"), ("joint", "Joint-SP"),
          (("joint", "Pixel (worst)"), ("joint", "Joint (worst)"))),
    Claim("The joint attack is stronger than the spatial attack alone (joint model)", "Table 1",
          (P_["joint"][3], P_["joint"][4]), ("joint", "Spatial"), ("joint", "Joint-SP"),
          (("joint", "Spatial (worst)"), ("joint", "Joint (worst)"))),
    Claim("Joint training beats Madry training under the joint attack", "Table 1",
          (P_["joint"][4], P_["madry"][4]), ("joint", "Joint-SP"), ("madry", "Joint-SP"),
          (("joint", "Joint (worst)"), ("madry", "Joint (worst)"))),
    Claim("Joint training beats Bilateral AT (one-step pixel) under the joint attack", "Table 1",
          (P_["joint"][4], P_["bilateral"][4]), ("joint", "Joint-SP"), ("bilateral", "Joint-SP"),
          (("joint", "Joint (worst)"), ("bilateral", "Joint (worst)"))),
    Claim("The double pass beats one-pass as a training attack (joint attack)", "Table 2",
          (P_["joint"][4], P_["one-pass"][4]), ("joint", "Joint-SP"), ("one-pass", "Joint-SP"),
          (("joint", "Joint (worst)"), ("one-pass", "Joint (worst)"))),
    Claim("The double pass beats the cascade as a training attack (joint attack)", "Table 2",
          (P_["joint"][4], P_["cascade"][4]), ("joint", "Joint-SP"), ("cascade", "Joint-SP"),
          (("joint", "Joint (worst)"), ("cascade", "Joint (worst)"))),
    Claim("PS-order training beats SP-order training under the SP joint attack", "Table 3",
          (PAPER_TABLE3["joint-ps"][3], PAPER_TABLE3["joint"][3]),
          ("joint-ps", "Joint-SP"), ("joint", "Joint-SP"),
          (("joint-ps", "Joint (worst)"), ("joint", "Joint (worst)"))),
    Claim("Black-box: the joint attack transferred from a natural model is weaker than white-box", "Table 5",
          (90.5, P_["joint"][4]), ("transfer/natural", "Joint-SP"), ("joint", "Joint-SP")),
    Claim("Black-box: the joint attack transferred from a siamese joint model is weaker", "Table 5",
          (79.8, P_["joint"][4]), ("transfer/joint-seed1", "Joint-SP"), ("joint", "Joint-SP")),
)


def verdict(low: float, high: float) -> str:
    """The verdict of an effect's interval (the paper's claim: a positive effect)."""
    if low > 0:
        return VERDICTS[0]
    if high < MIN_EFFECT:
        return VERDICTS[1]
    return VERDICTS[2]


def _reason(v: str, d: dict, paper_effect: float) -> str:
    interval = f"{d['difference']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}] pt on {d['images']} images"
    if v == VERDICTS[0]:
        size = "as large as" if d["high"] >= paper_effect else "smaller than"
        return f"{interval}: above zero, {size} the paper's {paper_effect:+.1f}"
    if v == VERDICTS[1]:
        return f"{interval}: an effect of {MIN_EFFECT:g} pt or more is ruled out (paper {paper_effect:+.1f})"
    return f"{interval}: neither above zero nor below {MIN_EFFECT:g} pt (paper {paper_effect:+.1f})"


def ledger_rows(results: dict | None = None) -> list[dict]:
    """One row per claim: the paper's numbers, ours (± standard error), the difference with its paired
    bootstrap interval, the strong suite's difference, the verdict and its reason; then the scale row."""
    results = results if results is not None else load_results()
    rows = []
    for c in CLAIMS:
        row = {"claim": c.claim, "source": c.source, "paper": f"{c.paper[0]:.1f} vs {c.paper[1]:.1f}",
               "paper_effect": c.paper[0] - c.paper[1]}
        try:
            a, b = _records(results, *c.a), _records(results, *c.b)
        except KeyError as e:
            rows.append(row | {"ours": "–", "difference": "–", "strong": "–", "verdict": VERDICTS[3],
                               "reason": f"no reference result for {e.args[0]}"})
            continue
        (aa, sa), (ab, sb) = accuracy_of(results, *c.a), accuracy_of(results, *c.b)
        d = paired_difference(a, b)
        v = verdict(d["low"], d["high"])
        row |= {"ours": f"{aa:.1f} ± {sa:.1f} vs {ab:.1f} ± {sb:.1f}",
                "difference": f"{d['difference']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]",
                "interval": d, "verdict": v, "reason": _reason(v, d, row["paper_effect"])}
        row["strong"] = "–"
        if c.strong is not None:
            try:
                ds = paired_difference(_records(results, *c.strong[0]), _records(results, *c.strong[1]))
                row["strong"] = f"{ds['difference']:+.1f} [{ds['low']:+.1f}, {ds['high']:+.1f}]"
                row["strong_verdict"] = verdict(ds["low"], ds["high"])
            except KeyError:
                pass
        rows.append(row)
    rows.append(scale_row(results))
    rows.append(cost_row())
    return rows


def cost_row() -> dict:
    """One-step joint training (3 passes per batch) against Madry's PGD-7 (8): the shipped models'
    training times (models/manifest.json, one timed run each on the machine that built them)."""
    row = {"claim": "One-step joint training costs a fraction of multi-step (Madry) training",
           "source": "§5 (3 passes per batch vs 8)", "paper": "3 vs 8 passes", "paper_effect": float("nan"),
           "strong": "–", "difference": "–"}
    try:
        seconds = {m["name"]: m["train_seconds"] for m in read_manifest()["models"]}
        joint, madry, natural = seconds["joint"], seconds["madry"], seconds["natural"]
    except (FileNotFoundError, KeyError) as e:
        return row | {"ours": "–", "verdict": VERDICTS[3], "reason": f"no training times ({e})"}
    ratio = madry / joint
    return row | {"ours": f"{joint:.0f} s vs {madry:.0f} s (natural {natural:.0f} s)",
                  "difference": f"Madry / joint = {ratio:.1f}×",
                  "verdict": VERDICTS[0] if ratio > 1.5 else VERDICTS[2],
                  "reason": f"one timed run each: joint {joint / natural:.1f}× natural, Madry "
                            f"{madry / natural:.1f}× natural (passes 3 and 8: the rest is the weight update)"}


def scale_gaps(results: dict, column: str = "Joint-SP") -> list[dict]:
    """The joint − Madry gap in `column` at each training size, with its paired bootstrap interval."""
    out = []
    for size in SCALE_SIZES:
        try:
            j = _records(results, f"scale/joint/{size}", column)
            m = _records(results, f"scale/madry/{size}", column)
        except KeyError:
            continue
        out.append({"train_images": size} | paired_difference(j, m))
    return out


def scale_row(results: dict) -> dict:
    """The README's hypothesis: the Madry ≈ joint tie is a matter of training scale. The effect is the
    change of the joint − Madry gap from the smallest to the largest training set (paired over images)."""
    row = {"claim": "The joint − Madry gap under the joint attack grows with training "
                    f"({SCALE_SIZES[0]:,} → {SCALE_SIZES[-1]:,} images)", "source": "our hypothesis (README)",
           "paper": "–", "paper_effect": float("nan"), "strong": "–"}
    small, large = SCALE_SIZES[0], SCALE_SIZES[-1]
    try:
        rec = {(m, n): _records(results, f"scale/{m}/{n}", "Joint-SP") for m in ("joint", "madry")
               for n in (small, large)}
    except KeyError as e:
        return row | {"ours": "–", "difference": "–", "verdict": VERDICTS[3],
                      "reason": f"no reference result for {e.args[0]}"}
    # (j_L − m_L) − (j_S − m_S) per image: a paired difference of two per-image differences
    gap_large = rec["joint", large].float() - rec["madry", large].float()
    gap_small = rec["joint", small].float() - rec["madry", small].float()
    d = paired_difference(gap_large, gap_small)  # per-image values in {-1, 0, 1}: the same resampling
    v = verdict(d["low"], d["high"])
    gaps = scale_gaps(results)
    return row | {"ours": ", ".join(f"{g['train_images'] // 1000}k: {g['difference']:+.1f}" for g in gaps),
                  "difference": f"{d['difference']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]",
                  "interval": d, "verdict": v,
                  "reason": f"gap change {d['difference']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}] pt"}


def flow_curves(results: dict) -> dict[str, list[float]]:
    """Accuracy (%) of each model of `FLOW_MODELS` at each test flow budget of `FLOW_BUDGETS`."""
    return {m: [accuracy_of(results, f"flow/{m}", f"{e:g}")[0] for e in FLOW_BUDGETS] for m in FLOW_MODELS
            if f"flow/{m}" in results["pieces"]}


def pixel_curves(results: dict) -> dict[str, list[float]]:
    """Accuracy (%) of each Table 1 model at each test pixel budget of `PIXEL_BUDGETS` (PGD, Fig. 3)."""
    return {m: [accuracy_of(results, f"pixel/{m}", f"{e:g}")[0] for e in PIXEL_BUDGETS] for m in MODELS
            if f"pixel/{m}" in results["pieces"]}


def union_curves(results: dict) -> tuple[list[float], dict[str, list[float]], dict[str, list[float]]]:
    """The budget scales (ε_x, with ε_ω scaled alike: 0, `UNION_SCALES`, the settings' ε_x) and, per
    model of `UNION_MODELS`, the strong suite's Union and the paper-style PGD column at each (%)."""
    scales = [0.0, *UNION_SCALES, float(results["settings"]["eps_x"])]
    steps = results["settings"]["steps"]
    union, pgd = {}, {}
    for m in UNION_MODELS:
        keys = [f"strong/{m}", *(f"union/{m}/{s:g}" for s in UNION_SCALES), f"strong/{m}"]
        if not all(k in results["pieces"] for k in keys):
            continue
        clean = accuracy_of(results, keys[0], "Pristine")[0]
        union[m] = [clean] + [accuracy_of(results, k, "Union")[0] for k in keys[1:]]
        pgd[m] = [clean] + [accuracy_of(results, k, f"PGD{steps}")[0] for k in keys[1:]]
    return scales, union, pgd


def figures(results: dict | None = None, folder: str | Path | None = None) -> dict[str, Path]:
    """The ledger's figures as PNG files: the joint − Madry gap against training size (with its paired
    95 % interval) and accuracy against the test flow and pixel budgets (± one standard error)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .viz import plot_curves

    results = results if results is not None else load_results()
    folder = Path(folder) if folder else results_path().parent
    n = results["settings"]["images"]
    out = {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, column in zip(axes, ("Joint-SP", "PGD10"), strict=True):
        gaps = scale_gaps(results, column)
        if not gaps:  # the scale pieces are not computed yet
            ax.set_axis_off()
            continue
        sizes = [g["train_images"] for g in gaps]
        label = f"joint − Madry ({column})"
        plot_curves(sizes, {label: [g["difference"] for g in gaps]},
                    bands={label: ([g["low"] for g in gaps], [g["high"] for g in gaps])},
                    xlabel="training images (4 epochs each)", ylabel="accuracy difference (points)",
                    ylim=None, ax=ax, title=f"{column}: joint minus Madry, 95 % paired interval, {n} images")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
    out["scale"] = folder / "ledger-scale.png"
    fig.savefig(out["scale"], dpi=110, bbox_inches="tight")
    plt.close(fig)
    curves = flow_curves(results)
    fig = plot_curves(list(FLOW_BUDGETS), curves, images=n, xlabel="test flow budget ε_ω (pixels)",
                      title=f"Alg. 1 (10 steps, step ε_ω / 2) on {n} test images, ± one standard error",
                      vlines={"training ε_ω": results["settings"]["eps_w"]})
    out["flow"] = folder / "ledger-flow-budget.png"
    fig.savefig(out["flow"], dpi=110, bbox_inches="tight")
    plt.close(fig)
    curves = pixel_curves(results)
    if curves:
        fig = plot_curves(list(PIXEL_BUDGETS), curves, images=n,
                          xlabel="test pixel budget ε_x (0–255 levels)",
                          title=f"Fig. 3: PGD (10 steps, step ε_x / 4) on {n} images, ± one standard error",
                          vlines={"training ε_x": results["settings"]["eps_x"]})
        out["pixel"] = folder / "ledger-pixel-budget.png"
        fig.savefig(out["pixel"], dpi=110, bbox_inches="tight")
        plt.close(fig)
    return out


def ledger_markdown(results: dict | None = None) -> str:
    results = results if results is not None else load_results()
    rows = ledger_rows(results)
    s = results["settings"]
    lines = [
        f"Claims ledger: our numbers on {s['images']} {s['dataset']} test images ({s['arch']}, "
        f"{s['epochs']} epochs, ε_x = {s['eps_x']:g}, ε_ω = {s['eps_w']:g} px, {s['steps']}-step attacks); "
        "paper: CIFAR-10. Accuracy (%) ± one standard error; differences a − b with a 95 % paired bootstrap "
        "interval; strong: the same difference in the strong suite's worst-case columns.",
        "",
        "| claim | source | paper (a vs b) | ours (a vs b) | a − b [95 %] | strong a − b | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['claim']} | {r['source']} | {r['paper']} | {r['ours']} | {r['difference']} | "
              f"{r['strong']} | **{r['verdict']}** |" for r in rows]
    lines += ["", f"Verdict rule: reproduced when the interval lies above 0; not reproduced when it lies "
              f"below {MIN_EFFECT:g} pt (an effect of that size in the paper's direction is ruled out); "
              "inconclusive at this size otherwise. Reasons:", ""]
    lines += [f"{i}. {r['claim']}: {r['reason']}." for i, r in enumerate(rows, 1)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jointlab.ledger", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("results", help="compute the missing reference results (models/results.json)")
    r.add_argument("--only", nargs="+", metavar="KEY",
                   help="piece keys (or prefixes), e.g. strong/joint scale/")
    r.add_argument("--images", type=int, default=IMAGES)
    r.add_argument("--out", help="results file (default: models/results.json)")
    t = sub.add_parser("table", help="the ledger as Markdown")
    t.add_argument("--results", help="results file (default: models/results.json)")
    f = sub.add_parser("figures", help="the scale and flow-budget figures, PNG beside the results")
    f.add_argument("--results", help="results file (default: models/results.json)")
    args = parser.parse_args(argv)
    if args.command == "results":
        compute(args.out, only=args.only, images=args.images)
    elif args.command == "figures":
        for path in figures(load_results(args.results)).values():
            print(path)
    else:
        print(ledger_markdown(load_results(args.results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
