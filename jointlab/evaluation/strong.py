"""Is the robustness real? A worst-case ("strong") evaluation for the pixel, spatial and joint threats,
and gradient-masking diagnostics.

The paper evaluates with fixed-step PGD / Alg. 1 / Alg. 2 on cross-entropy. One-step, label-smoothed
training (this method family) is known to fool such attacks: its siblings by the same authors lose half
their reported robustness under AutoAttack (RobustBench: Feature Scattering 60.6 → 36.6 %, Bilateral AT
58.6 → 29.4 %). This module gives every threat model an AutoAttack-style ensemble and reports, per image,
the worst case:

    Pixel (worst)    robust to the paper's pixel columns and to APGD-CE, APGD-DLR and APGD-T in the ℓ∞ ball
    Spatial (worst)  the same in the ℓ2,∞ flow ball (Alg. 1's threat)
    Joint (worst)    the same for x̄ = T(x, ω) + δ (double passes, SP and PS)
    Union            robust to every attack of every threat model: the joint threat's worst case, since
                     its set x̄ = T(x, ω) + δ contains the pixel ball (ω = 0) and the flow ball (δ = 0)

Every adversarial example found inside the nominal budget counts, the diagnostics' too (one more
APGD-DLR restart, a random point of the threat set, the attack transferred from `source`), as
AutoAttack counts every image any member broke; the huge-budget check lies outside and does not.

As AutoAttack does, each attack of an ensemble runs only on the images that are still robust, so the
suite costs little more than its strongest member. `passes` counts the forward/backward passes (per
image) that each column cost.

    report = strong_evaluate(model, (x, y), eps_x=8, eps_w=0.28)
    print(report.markdown("joint"))          # table, passes and the diagnostics that fired

The gradient-masking diagnostics run with it (`jointlab.evaluation.diagnostics`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import attacks as A
from ..models import eval_mode, model_device
from . import gradient_free as gf
from .diagnostics import HUGE_MAX_STEP_W, diagnose, zero_gradients
from .interop import check_logits
from .metrics import batches, num_batches, standard_error
from .paper import attack_suite, paper_column
from .reports import RobustnessReport, write_json

__all__ = ["PassCounter", "strong_members", "strong_evaluate", "union_curve", "scaled_budgets",
           "ensemble_name", "WORST_COLUMNS", "ENSEMBLE_VERSION"]

WORST_COLUMNS = {"pixel": "Pixel (worst)", "spatial": "Spatial (worst)", "joint": "Joint (worst)"}


class PassCounter(nn.Module):
    """Wraps a model and counts the images it sees: with gradients on (a forward/backward pass of an
    attack) and without (predictions, loss checks)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.grad_images = 0
        self.forward_images = 0

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            self.grad_images += x.shape[0]
        else:
            self.forward_images += x.shape[0]
        return self.model(x)


def strong_members(eps_x: float = 8, eps_w: float = 0.3, steps: int = 100, top_k: int = 9,
                   restarts: int = 1, queries: int = gf.DEFAULT_QUERIES
                   ) -> dict[str, list[tuple[str, Callable, dict]]]:
    """The ensemble of each threat model: APGD-CE and APGD-DLR (`restarts` runs each, new random
    starts), then APGD-T towards the `top_k` most likely wrong classes; the joint threat adds APGD-DLR
    with the PS order. `steps` is APGD's N_iter. Last, a gradient-free member (`queries` forward passes
    per image; 0: none): Square for the pixel ball, the flow random search for the flow ball, both
    for the joint threat (`jointlab.gradient_free`): what masks gradients cannot mask these."""
    members = {}
    search = {"pixel": ("Square", gf.square), "spatial": ("Flow search", gf.flow_search),
              "joint": ("Joint search", gf.joint_search)}
    for threat in A.THREATS:
        kw = dict(eps_x=eps_x, eps_w=eps_w, steps=steps, threat=threat)
        m = []
        for r in range(restarts):
            tag = f" #{r + 1}" if restarts > 1 else ""
            m.append((f"APGD-CE{tag}", A.apgd, kw | dict(loss="ce")))
            m.append((f"APGD-DLR{tag}", A.apgd, kw | dict(loss="dlr")))
        if threat == "joint":
            m.append(("APGD-DLR (PS)", A.apgd, kw | dict(loss="dlr", order="ps")))
        m.append(("APGD-T", A.apgd_targeted, kw | dict(top_k=top_k)))
        if queries:
            name, fn = search[threat]
            budgets = ({"eps_x": eps_x} if threat != "spatial" else {}) | (
                {"eps_w": eps_w} if threat != "pixel" else {})
            m.append((name, fn, budgets | dict(queries=queries)))
        members[threat] = m
    return members


def _random_point(x: Tensor, threat: str, eps_x: float, eps_w: float) -> Tensor:
    """A uniformly random point of the threat model (the random start of its attacks), as an image."""
    threat_model = A.apgd_threat(threat, eps_x, eps_w)[0]
    return threat_model.compose(x, threat_model.start(x))


def _correct(model, x, y) -> Tensor:
    with torch.no_grad(), eval_mode(model):
        return model(x).argmax(1) == y


ENSEMBLE_VERSION = "jointlab-strong 2"  # members, their order and the diagnostics' folding


def ensemble_name(apgd_steps: int, top_k: int, restarts: int, queries: int) -> str:
    """The ensemble's name in reports: "standard" at the defaults (APGD 100, 9 targets, one run, 300
    gradient-free queries), as AutoAttack names its versions; else the settings."""
    if (apgd_steps, top_k, restarts, queries) == (100, 9, 1, gf.DEFAULT_QUERIES):
        return f"{ENSEMBLE_VERSION} (standard)"
    return (f"{ENSEMBLE_VERSION} (APGD {apgd_steps} iterations, {top_k} targets, {restarts} run(s), "
            f"{queries} gradient-free queries)")


class _Batch:
    """One batch of the strong evaluation: per image, whether each column and threat still holds, which
    attack broke it first, and (for the record) the first adversarial example found."""

    def __init__(self, x: Tensor, y: Tensor, clean: Tensor, threats, keep_examples: bool):
        self.x, self.y, n = x, y, len(y)
        self.robust = {t: clean.clone() for t in threats}  # per threat: robust to everything so far
        self.by = {t: [None if c else "clean" for c in clean.tolist()] for t in threats}
        self.keep = keep_examples
        if keep_examples:
            self.example = {"x_adv": x.clone(), "delta": torch.zeros_like(x),
                            "flow": x.new_zeros(n, 2, *x.shape[-2:])}
            self.example_by = [None if c else "clean" for c in clean.tolist()]

    def broke(self, threat: str, name: str, idx: Tensor, broken: Tensor, res=None) -> None:
        """`name` broke images `idx[broken]` of the batch in `threat` (res: its AttackResult on `idx`)."""
        hit = idx[broken]
        first = hit[self.robust[threat][hit]]
        for j in first.tolist():
            self.by[threat][j] = name
        self.robust[threat][hit] = False
        if self.keep and res is not None:
            pos = {j: k for k, j in enumerate(idx.tolist())}
            for j in hit.tolist():
                if self.example_by[j] is None:
                    k = pos[j]
                    self.example["x_adv"][j] = res.x_adv[k]
                    if res.delta is not None:
                        self.example["delta"][j] = res.delta[k]
                    if res.flow is not None:
                        self.example["flow"][j] = res.flow[k]
                    self.example_by[j] = f"{threat}: {name}"


def _fingerprint(model: nn.Module, data_x: Tensor | None, settings: dict, total: int | None) -> str:
    """What a resumed run must share with the run that wrote the state file."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    with torch.no_grad():
        h.update(repr([round(float(p.double().sum()), 6) for p in model.parameters()][:64]).encode())
        if data_x is not None:
            h.update(repr((tuple(data_x.shape), round(float(data_x.double().sum()), 4))).encode())
    h.update(str(total).encode())
    return h.hexdigest()[:16]


def strong_evaluate(model: nn.Module, data, *, eps_x: float = 8, eps_w: float = 0.3, steps: int = 20,
                    apgd_steps: int = 100, top_k: int = 9, restarts: int = 1, threats=A.THREATS,
                    suite: str = "paper", batch_size: int = 256,
                    diagnostics: bool = True, huge_eps_x: float = 128, huge_eps_w: float | None = None,
                    source: nn.Module | None = None, reference: nn.Module | None = None,
                    queries: int = gf.DEFAULT_QUERIES, seed: int = 0,
                    state=None, save_adversarial=None, progress: bool = True) -> RobustnessReport:
    """The paper's columns (`attack_suite(suite)`: Pristine, FGSM, PGD, Spatial, Joint SP/PS, CW
    columns), then "Pixel (worst)", "Spatial (worst)", "Joint (worst)" and "Union" (see the module
    docstring), with gradient-masking diagnostics and a record of every image.

    Args: eps_x (0–255 levels), eps_w (pixels), steps of the paper's attacks (20), apgd_steps (APGD's
    N_iter, 100), top_k targets of APGD-T (9), restarts of APGD-CE/DLR (1), `threats`: the threat
    models to evaluate (default all three; the paper's columns and the union follow), `suite`: the
    paper's columns to start from ("paper", or "quick" without PGD100), huge budgets of the
    diagnostics (ε_x = 128 levels, ε_ω = a quarter of the side by default), `source`: a second model
    whose transferred attacks must not beat the white-box ones; `reference`: a naturally trained model
    of the same data, attacked at the huge budget too, so that the huge-budget check fires only where
    the model keeps significantly more images than that floor; `seed`: batch i draws its random
    numbers from seed and i alone (the caller's random stream is left as it was), so that `state`, a
    JSON file written after every batch, lets a killed run continue where it stopped and end with the
    same report; `save_adversarial`: a .pt file with each image's first adversarial example found
    (x_adv, delta, flow, and which attack found it), for a notebook to open.
    """
    for name, v in (("apgd_steps", apgd_steps), ("top_k", top_k), ("restarts", restarts), ("steps", steps)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {v!r}")
    if isinstance(queries, bool) or not isinstance(queries, int) or queries < 0:
        raise ValueError(f"queries must be an integer >= 0 (0: no gradient-free members); got "
                         f"{queries!r}")
    threats = tuple(threats)
    if not threats or any(t not in A.THREATS for t in threats):
        raise ValueError(f"threats must be a non-empty selection of {A.THREATS}; got {threats!r}")
    device = model_device(model)
    counter = PassCounter(model)
    paper = {k: v for k, v in attack_suite(suite, eps_x, eps_w, steps).items()
             if v[0] is not None and A.threat_of(v[0]) in threats}
    members = strong_members(eps_x, eps_w, apgd_steps, top_k, restarts, queries)
    members = {t: members[t] for t in threats}
    extra = {t: [m for m in members[t] if m[0].startswith("APGD-DLR")][:1] for t in threats}
    columns = ["Pristine", *paper, *(WORST_COLUMNS[t] for t in threats), "Union"]
    settings = dict(eps_x=eps_x, eps_w=eps_w, steps=steps, apgd_steps=apgd_steps, top_k=top_k,
                    restarts=restarts, queries=queries, threats=list(threats), suite=suite,
                    batch_size=batch_size, diagnostics=diagnostics, huge_eps_x=huge_eps_x,
                    huge_eps_w=huge_eps_w, source=source is not None, reference=reference is not None,
                    seed=seed,
                    ensemble=ensemble_name(apgd_steps, top_k, restarts, queries),
                    members={t: [m[0] for m in ms] for t, ms in members.items()})
    tensors = isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], Tensor)
    fingerprint = _fingerprint(model, data[0] if tensors else None, settings,
                               len(data[0]) if tensors else None)
    keep = save_adversarial is not None
    # what the batches add up: counts per column and threat, and one record per image
    acc = {"correct": dict.fromkeys(columns, 0), "passes": dict.fromkeys(columns, 0),
           "member_passes": dict.fromkeys(threats, 0), "total": 0,
           "diag": {"huge": dict.fromkeys(threats, 0), "huge_reference": dict.fromkeys(threats, 0),
                    "noise": dict.fromkeys(threats, 0),
                    "transfer": dict.fromkeys(threats, 0), "restart": dict.fromkeys(threats, 0),
                    "zero_grad": 0},
           "records": {"label": [], "clean_prediction": [], "correct": {c: [] for c in columns},
                       "broken_by": {t: [] for t in threats}}}
    done = 0
    state = Path(state) if state is not None else None
    chunks = Path(f"{state}.adversarial") if state is not None else None
    examples = []
    if state is not None and state.exists():
        saved = json.loads(state.read_text())
        if saved.get("fingerprint") == fingerprint:
            acc, done = saved["accumulated"], saved["batches_done"]
            if keep:
                examples = [torch.load(chunks / f"{k:05d}.pt", weights_only=True) for k in range(done)]
        elif progress:
            print(f"{state} was written by another evaluation (model, data or settings differ): "
                  "starting over")
    for i, (x, y) in enumerate(tqdm(batches(data, batch_size), total=num_batches(data, batch_size),
                                    desc="strong evaluation", leave=False, disable=not progress)):
        if i < done:
            continue
        x, y = x.to(device), y.to(device)
        if i == 0:
            check_logits(model, x)
        # batch i's random numbers come from (seed, i) alone: a resumed run repeats the same draws
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed * 1_000_003 + i)
            b = _strong_batch(model, counter, x, y, paper, members, extra, acc, threats, keep, diagnostics,
                              eps_x, eps_w, steps, apgd_steps, huge_eps_x, huge_eps_w, source, reference, i)
        rec = acc["records"]
        rec["label"] += y.tolist()
        for t in threats:
            rec["broken_by"][t] += b.by[t]
        if keep:
            examples.append({k: v.cpu() for k, v in b.example.items()} | {"by": b.example_by})
        if state is not None:
            if keep:
                chunks.mkdir(parents=True, exist_ok=True)
                torch.save(examples[-1], chunks / f"{i:05d}.pt")
            write_json(state, {"fingerprint": fingerprint, "batches_done": i + 1, "accumulated": acc})
    total = acc["total"]
    if total == 0:
        raise ValueError("data must hold at least one image")
    passes, member_passes, diag = acc["passes"], acc["member_passes"], acc["diag"]
    # a worst column costs the paper's columns of its threat plus its members; the union all of them
    for threat in threats:
        passes[WORST_COLUMNS[threat]] = member_passes[threat] + sum(
            passes[c] for c, (fn, _) in paper.items() if A.threat_of(fn) == threat)
    passes["Union"] = sum(passes[c] for c in paper) + sum(member_passes.values())
    accuracy = {c: 100.0 * acc["correct"][c] / total for c in columns}
    report = RobustnessReport(
        accuracy=accuracy, stderr={c: standard_error(a, total) for c, a in accuracy.items()},
        passes={c: passes[c] / total for c in columns}, images=total, settings=settings,
        records=acc["records"])
    if diagnostics:
        diag["with_source"], diag["with_reference"] = source is not None, reference is not None
        probes = (("huge", "noise", "restart") + (("transfer",) if source is not None else ())
                  + (("huge_reference",) if reference is not None else ()))
        report.probes = {k: {th: 100.0 * v / total for th, v in diag[k].items()} for k in probes}
        report.diagnostics = diagnose(accuracy, steps, diag, total, (
            huge_eps_x, "side/4" if huge_eps_w is None else f"{huge_eps_w:g}", apgd_steps))
    if keep:
        out = {k: torch.cat([e[k] for e in examples]) for k in ("x_adv", "delta", "flow")}
        out |= {"found_by": [s for e in examples for s in e["by"]],
                "label": torch.tensor(acc["records"]["label"]), "settings": settings}
        Path(save_adversarial).parent.mkdir(parents=True, exist_ok=True)
        torch.save(out, save_adversarial)
    return report


def scaled_budgets(eps_x: float, eps_w: float, scale: float) -> dict:
    """Both budgets scaled together, as on the union curve: ε_x = `scale` levels and ε_ω in proportion,
    eps_w · scale / eps_x (scale = eps_x gives the budgets (eps_x, eps_w) back)."""
    if not eps_x > 0:
        raise ValueError(f"eps_x must be > 0 levels to scale the budgets by; got {eps_x!r}")
    return dict(eps_x=float(scale), eps_w=eps_w * scale / eps_x)


def union_curve(model: nn.Module, data, scales, *, eps_x: float = 8, eps_w: float = 0.3,
                **settings) -> dict:
    """Fig. 3 for the worst case: `strong_evaluate`'s Union and its paper-style PGD column at each test
    budget of `scales` (0–255 levels, both budgets scaled together: `scaled_budgets`; 0 is clean
    accuracy). `settings` go to strong_evaluate. Returns {"union": [...], "pgd": [...], "records":
    {scale: per-image Union correctness}} in percent, one entry per scale."""
    x, y = data
    steps = settings.get("steps", 20)
    out = {"union": [], "pgd": [], "records": {}}
    for s in scales:
        if s == 0:
            correct = _correct(model, x, y).tolist()
            acc = 100.0 * sum(correct) / len(correct)
            out["union"].append(acc)
            out["pgd"].append(acc)
            out["records"][s] = correct
            continue
        r = strong_evaluate(model, (x, y), **(settings | scaled_budgets(eps_x, eps_w, s)))
        out["union"].append(r.accuracy["Union"])
        out["pgd"].append(r.accuracy[f"PGD{steps}"])
        out["records"][s] = r.records["correct"]["Union"]
    return out


def _run_member(model, fn, kw, x, y, idx):
    return fn(model, x, y, **kw)


def _strong_batch(model, counter, x, y, paper, members, extra, acc, threats, keep, diagnostics, eps_x, eps_w,
                  steps, apgd_steps, huge_eps_x, huge_eps_w, source, reference, i) -> _Batch:
    """One batch: the paper's columns, each threat's members on its survivors, the diagnostics; adds the
    counts to `acc` and returns the per-image state."""
    passes, diag = acc["passes"], acc["diag"]
    side = x.shape[-1]
    with torch.no_grad(), eval_mode(model):
        prediction = model(x).argmax(1)
    clean = prediction == y
    b = _Batch(x, y, clean, threats, keep)
    acc["records"]["clean_prediction"] += prediction.tolist()
    every = torch.arange(len(y), device=x.device)
    masks = {"Pristine": clean}
    for name, (fn, kw) in paper.items():
        before = counter.grad_images
        res = fn(counter, x, y, **kw)
        masks[name] = _correct(model, res.x_adv, y)
        passes[name] += counter.grad_images - before
        b.broke(A.threat_of(fn), name, every, ~masks[name], res)
    for threat, members_ in members.items():  # each member on the images no attack has broken yet
        before = counter.grad_images
        attempts = [partial(_run_member, counter, fn, kw) for _, fn, kw in members_]
        res, by = A.first_success(model, x, y, attempts, robust=b.robust[threat])
        for j, (name, _, _) in enumerate(members_):
            b.broke(threat, name, every, by == j, res)
        acc["member_passes"][threat] += counter.grad_images - before
    # The diagnostics' attacks, after every member so that the members draw the same random numbers
    # either way. Those inside the nominal budget (one more APGD-DLR restart on the survivors, a
    # random point, the transferred attack) count as members: what they break leaves the worst case
    # (AutoAttack counts every image any member broke). The huge budget lies outside; it is only counted.
    if diagnostics:
        for threat in threats:
            for _, fn, kw in extra[threat]:
                idx = b.robust[threat].nonzero().squeeze(1)
                if len(idx):  # a fresh start of its own
                    before = counter.grad_images
                    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
                        torch.manual_seed(10_000 + i)
                        res = fn(counter, x[idx], y[idx], **kw)
                    acc["member_passes"][threat] += counter.grad_images - before
                    broken = ~_correct(model, res.x_adv, y[idx])
                    diag["restart"][threat] += int(broken.sum())
                    b.broke(threat, "one more APGD-DLR restart", idx, broken, res)
            point = _random_point(x, threat, eps_x, eps_w)
            noise = _correct(model, point, y)
            diag["noise"][threat] += int(noise.sum())
            b.broke(threat, "random point", every, ~noise, A.AttackResult(point, None, None))
            huge_w = side / 4 if huge_eps_w is None else huge_eps_w
            ex, ew = (huge_eps_x if threat != "spatial" else 0), (huge_w if threat != "pixel" else 0)
            for key, net in (("huge", model), ("huge_reference", reference)):
                if net is not None:
                    res = A.apgd(net, x, y, eps_x=ex, eps_w=ew, steps=apgd_steps, threat=threat, loss="dlr",
                                 max_step_w=HUGE_MAX_STEP_W)
                    diag[key][threat] += int(_correct(net, res.x_adv, y).sum())
        if source is not None:  # last: with or without a source, the above draws the same random numbers
            for threat in threats:
                fn, kw = paper[paper_column(threat, steps)]
                res = fn(source, x, y, **kw)
                transferred = _correct(model, res.x_adv, y)
                diag["transfer"][threat] += int(transferred.sum())
                b.broke(threat, "transfer from source", every, ~transferred, res)
        diag["zero_grad"] += int(zero_gradients(model, x, y).sum())
    union = clean.clone()
    for threat in threats:
        masks[WORST_COLUMNS[threat]] = b.robust[threat]
        union &= b.robust[threat]
    masks["Union"] = union
    for c, m in masks.items():
        acc["correct"][c] += int(m.sum())
        acc["records"]["correct"][c] += m.int().tolist()
    acc["total"] += len(y)
    return b
