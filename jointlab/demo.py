"""The quick demo: train a small WRN on the embedded Fashion-MNIST, attack it with every attack of
the paper, and write the table and figures (Figs. 1, 3, 4 in the quick profile).

    python -m jointlab demo --out runs/demo
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: the demo runs headless

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from . import attacks as A  # noqa: E402
from .data import load_dataset  # noqa: E402
from .evaluate import attack_suite, evaluate, markdown_table, predict, sweep  # noqa: E402
from .train import TrainConfig, load_or_train  # noqa: E402
from .viz import amplify, flow_to_rgb, plot_curves, plot_flow_arrows, plot_image_grid  # noqa: E402
from .warp import warp  # noqa: E402


def run_demo(out: str | Path = "runs/demo", *, dataset: str = "fashion-mnist", arch: str = "wrn-10-2",
             train_limit: int = 6000, test_limit: int = 300, sweep_limit: int = 200, epochs: int = 3,
             seed: int = 0, device: str | None = None, cache: str | Path = "runs/cache",
             progress: bool = True) -> dict:
    """Train (or load from `cache`) a natural model, attack it, write table, JSON and figures."""
    out = Path(out)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(method="natural", dataset=dataset, arch=arch, epochs=epochs, limit=train_limit,
                      seed=seed, eval_limit=0)
    trained = load_or_train(cfg, cache, device=device, progress=progress)
    model = trained.model
    print(f"model: {trained.checkpoint} (last epoch: loss {trained.history[-1]['loss']:.3f}, "
          f"train accuracy {100 * trained.history[-1]['train_acc']:.1f} %)")
    test = load_dataset(dataset, "test", limit=test_limit, seed=seed + 1)
    spec = test.spec
    x, y = test.batch()
    eps_w = spec.eps_w

    # Table 1 layout (plus the baselines of Table 2 and margin-loss columns) for one natural model
    torch.manual_seed(seed)
    suite = attack_suite("quick", eps_x=8, eps_w=eps_w)
    both = dict(eps_x=8, step_x=2, eps_w=eps_w, step_w=eps_w / 2, steps=20)
    suite |= {"One-pass": (A.one_pass, both), "Cascade": (A.cascade, both)}
    table = evaluate(model, (x, y), suite, progress=progress)
    md = markdown_table({f"natural {arch}": table}, caption=(
        f"Accuracy (%) on {len(x)} {dataset} test images; eps_x = 8, eps_w = {eps_w}, "
        f"20 steps (pixel step 2, flow step {eps_w / 2:g}), random start (FGSM: none)."))
    (out / "table.md").write_text(md)
    print("\n" + md)

    # Fig. 1a: accuracy vs eps_w for several step counts; Fig. 3: accuracy vs eps_x (PGD20)
    data = (x[:sweep_limit], y[:sweep_limit])
    eps_ws = [0.0, 0.1, 0.2, eps_w, 0.4, 0.6]
    curves_w = {}
    for k in (1, 5, 20):  # one step goes the whole budget; more steps take half of it each
        step_w = (lambda e: e) if k == 1 else (lambda e: e / 2)
        curves_w[f"{k} step{'s' if k > 1 else ''}"] = sweep(
            model, data, A.spatial, "eps_w", eps_ws, steps=k, step_w=step_w, progress=progress)
    eps_xs = [0, 1, 2, 4, 8, 12, 16]
    curve_x = sweep(model, data, A.pgd, "eps_x", eps_xs, steps=20, step_x=lambda e: e / 4, progress=progress)
    fig = plot_curves(eps_ws, curves_w, xlabel="test flow budget ε_ω (pixels)",
                      title=f"Fig. 1a: spatial attack vs ε_ω ({arch}, natural)",
                      vlines={"paper ε_ω (1% of side)": eps_w})
    fig.savefig(figs / "fig1a_accuracy_vs_eps_w.png", dpi=120)
    fig = plot_curves(eps_xs, {"natural (PGD20)": curve_x}, xlabel="test pixel budget ε_x (0–255 levels)",
                      title="Fig. 3: accuracy vs pixel budget")
    fig.savefig(figs / "fig3_accuracy_vs_eps_x.png", dpi=120)

    def labels(images):
        return [spec.classes[p] for p in predict(model, images)]

    # Fig. 1b: one image at rising eps_w
    k = 6
    rising = [0.0, 0.2, 0.4, 0.6, 1.0, 1.5]
    cols, caps = {}, {}
    for e in rising:
        res = A.spatial(model, x[:k], y[:k], eps_w=e, step_w=e / 2, steps=20)
        cols[f"ε_ω={e:g}"] = res.x_adv
        caps[f"ε_ω={e:g}"] = labels(res.x_adv)
    fig = plot_image_grid(cols, caps, title="Fig. 1b: spatially attacked images at rising ε_ω")
    fig.savefig(figs / "fig1b_images_vs_eps_w.png", dpi=120)

    # Fig. 4: original, spatially attacked, flow as colour and as arrows. No random start here:
    # background pixels get no gradient, and their random start would hide the attack's pattern.
    res = A.spatial(model, x[:k], y[:k], eps_w=eps_w, step_w=eps_w / 2, steps=20, random_start=False)
    attacked = f"spatial ε_ω={eps_w:g}"
    fig = plot_image_grid(
        {"original": x[:k], attacked: res.x_adv, "flow (colour)": flow_to_rgb(res.flow, eps_w)},
        {"original": labels(x[:k]), attacked: labels(res.x_adv)},
        title="Fig. 4: spatial attack (no random start) and its flow")
    fig.savefig(figs / "fig4_flow_fields.png", dpi=120)
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    for i, ax in enumerate(axes):
        plot_flow_arrows(ax, res.flow[i], x[i], stride=2, scale=4 / eps_w)
        ax.set_title(f"flow ×{4 / eps_w:.0f} over the image", fontsize=9)
    fig.tight_layout()
    fig.savefig(figs / "fig4_flow_arrows.png", dpi=120)

    # Alg. 2: the joint attack's parts
    res = A.joint(model, x[:k], y[:k], eps_x=8, eps_w=eps_w, step_w=eps_w / 2, steps=20)
    warped = warp(x[:k], res.flow)
    cols = {"original": x[:k], "T(x, ω)": warped, "δ (amplified)": amplify(res.delta, 8),
            "T(x, ω) + δ": res.x_adv, "ω (colour)": flow_to_rgb(res.flow, eps_w)}
    caps = {"original": labels(x[:k]), "T(x, ω)": labels(warped), "T(x, ω) + δ": labels(res.x_adv)}
    fig = plot_image_grid(cols, caps, title=f"Joint attack (Alg. 2): ε_x = 8, ε_ω = {eps_w:g}")
    fig.savefig(figs / "joint_attack.png", dpi=120)
    plt.close("all")

    results = {"config": cfg.resolved().to_dict(), "test_images": len(x), "eps_w": eps_w, "table": table,
               "sweep_eps_w": {"eps_w": eps_ws, **curves_w},
               "sweep_eps_x": {"eps_x": eps_xs, "pgd20": curve_x}}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"results: {out / 'results.json'}, {out / 'table.md'}")
    print(f"figures: {figs}/")
    for f in sorted(figs.glob("*.png")):
        print(f"  {f.name}")
    return results
