"""jointlab: Joint Adversarial Training (Zhang & Wang) as a small, readable reference kit.

Modules, in the order of the paper:
    warp      T(x, ω) (Eq. 4), ‖ω‖_{2,∞} and its projection (Eq. 6), vector sign (Eq. 8)
    threats   PixelBall (ℓ∞) and FlowBall (ℓ2,∞) threat models
    attacks   fgsm, pgd (Eq. 3), spatial (Alg. 1), joint (Alg. 2), one_pass, cascade; apgd
    train     joint adversarial training (Alg. 3) and every method of Table 1
    models, data, losses
    evaluation  the paper's suites and tables; beyond the paper: the strong (AutoAttack-style) suite
              with its per-image worst case and union, gradient-free members, masking diagnostics,
              reports; `wrap` for any PyTorch classifier in the ecosystem's conventions
    notebooks, sweep, widgets, explorer, book, zoo, viz, cli   the face: the papermill runner, sweeps
              of a notebook on a process pool or Ray, sliders, the site, the lesson models
"""

__version__ = "0.1.0"


def __getattr__(name):  # `jointlab.wrap` without importing torch on `import jointlab`
    if name in ("wrap", "ModelAdapter"):
        from .evaluation import interop

        return getattr(interop, name)
    raise AttributeError(f"module 'jointlab' has no attribute {name!r}")
