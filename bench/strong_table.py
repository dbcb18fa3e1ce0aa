"""The README's strong-evaluation table: notebook 06's worst-case settings on the shipped lesson models
(quick profile: 48 test images, 10-step paper attacks, APGD 10 iterations, APGD-T on 2 targets, 100
gradient-free queries), with what each report's diagnostics say. Prints Markdown.

    python bench/strong_table.py                 # ~2 min on 2 cores
    python bench/strong_table.py --images 500    # the closing-note size (~25 min)
"""

from __future__ import annotations

import argparse
import time

from jointlab.evaluation import markdown_table, strong_evaluate
from jointlab.profiles import get_profile

METHODS = ("natural", "madry", "bilateral", "spatial", "joint")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=48)
    p.add_argument("--queries", type=int, default=100)
    args = p.parse_args(argv)
    P = get_profile("quick", test_limit=max(args.images, 64), progress=False)
    x, y = P.test_batch()
    xs, ys = x[:args.images], y[:args.images]
    settings = dict(eps_x=P.eps_x, eps_w=P.eps_w, steps=P.attack_steps, apgd_steps=10, top_k=2, suite="quick",
                    queries=args.queries, progress=False)
    steps = P.attack_steps
    cols = ["Pristine", f"PGD{steps}", "Spatial", "Joint-SP", "Pixel (worst)", "Spatial (worst)",
            "Joint (worst)", "Union"]
    rows, notes = {}, []
    for m in METHODS:
        t = time.perf_counter()
        r = strong_evaluate(P.model(m, progress=False), (xs, ys), **settings)
        rows[m] = {c: r.accuracy[c] for c in cols}
        fired = ", ".join(d.name for d in r.fired) or "none"
        notes.append(f"- {m}: {time.perf_counter() - t:.0f} s; diagnostics fired: {fired}; huge-budget "
                     f"survivors " + ", ".join(f"{k} {v:.1f} %" for k, v in r.probes["huge"].items()))
    print(markdown_table(rows, f"Accuracy (%) on {args.images} test images, {settings}"))
    print("\n".join(notes))


if __name__ == "__main__":
    main()
