"""The gradient-free members' cost per image beside one APGD run, on a quick lesson model.

Forward passes are counted at the model (every image of every batch), so a member's early stop (an
image leaves the search once misclassified) shows in its count; APGD makes `steps` + 1 forward and
`steps` backward passes whatever happens. Accuracies are on the model and on its quantized twin
(input rounded to 4 grey levels, zero input gradient), where white-box APGD is blind.

    python bench/gradient_free.py                      # quick Madry model, 128 test images, 2 threads
    python bench/gradient_free.py --method joint --queries 1000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from jointlab import attacks as A
from jointlab.data import load_dataset
from jointlab.evaluation import gradient_free as G
from jointlab.profiles import get_profile


class Quantized(torch.nn.Module):
    """The input rounded to 4 grey levels of [-1, 1]: zero input gradient almost everywhere."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round((x + 1) * 1.5) / 1.5 - 1)


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="madry", help="a quick-profile lesson model")
    p.add_argument("--images", type=int, default=128)
    p.add_argument("--queries", type=int, default=G.DEFAULT_QUERIES)
    p.add_argument("--apgd-steps", type=int, default=100)
    p.add_argument("--eps-x", type=float, default=8.0)
    p.add_argument("--eps-w", type=float, default=0.28)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    tmp = tempfile.mkdtemp()
    bare = get_profile("quick", cache_dir=f"{tmp}/cache", out_dir=f"{tmp}/out", device="cpu").model(
        args.method, progress=False).eval()
    x, y = load_dataset("fashion-mnist", "test", limit=args.images, seed=1).batch()
    forwards = [0]
    bare.register_forward_pre_hook(lambda _m, inp: forwards.__setitem__(0, forwards[0] + len(inp[0])))
    masked = Quantized(bare).eval()
    ex, ew, q = args.eps_x, args.eps_w, args.queries
    runs = {
        "square": lambda m: G.square(m, x, y, ex, queries=q, seed=0),
        "flow_search": lambda m: G.flow_search(m, x, y, ew, queries=q, seed=0),
        "joint_search": lambda m: G.joint_search(m, x, y, ex, ew, queries=q, seed=0),
        **{f"apgd-dlr {t}": (lambda m, t=t: A.apgd(m, x, y, ex, ew, args.apgd_steps, t, loss="dlr"))
           for t in A.THREATS},
    }
    rows = []
    print("member | s/image, forwards/image, accuracy % on the model | the same on its quantized twin")
    for name, run in runs.items():
        row = {"member": name}
        for label, model in (("bare", bare), ("quantized", masked)):
            torch.manual_seed(0)
            forwards[0] = 0
            t = time.perf_counter()
            res = run(model)
            row[f"s/image {label}"] = (time.perf_counter() - t) / len(x)
            row[f"forwards/image {label}"] = forwards[0] / len(x)
            with torch.no_grad():
                row[f"accuracy {label}"] = 100 * (model(res.x_adv).argmax(1) == y).float().mean().item()
        rows.append(row)
        print(" | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"settings": vars(args), "rows": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
