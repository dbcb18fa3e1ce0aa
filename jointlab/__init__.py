"""jointlab: Joint Adversarial Training (Zhang & Wang) as a small, readable reference kit.

Modules, in the order of the paper:
    warp      T(x, ω) (Eq. 4), ‖ω‖_{2,∞} and its projection (Eq. 6), vector sign (Eq. 8)
    threats   PixelBall (ℓ∞) and FlowBall (ℓ2,∞) threat models
    attacks   fgsm, pgd (Eq. 3), spatial (Alg. 1), joint (Alg. 2), one_pass, cascade; apgd
    train     joint adversarial training (Alg. 3) and every method of Table 1
    evaluate  attack suites, budget sweeps, transfer, tables
    strong    beyond the paper: APGD ensembles, per-image worst case and union, masking diagnostics
    models, data, losses, viz, cli
    notebooks, sweep   the papermill runner; sweeps of a notebook on a process pool or Ray
"""

__version__ = "0.1.0"
