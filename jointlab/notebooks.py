"""Run the notebook sequence headless with papermill.

    python -m jointlab.notebooks run                          # quick profile -> runs/notebooks
    python -m jointlab.notebooks run --only 03 04 -p arch wrn-16-2
    python -m jointlab.notebooks run --profile full --out runs/full   # GPU, paper scale

Executed notebooks, their figures (`figures/`) and `timings.json` land in the output folder.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .profiles import PROFILES, repo_root, runs_dir

__all__ = ["sequence", "run", "main"]


def sequence(folder: Path | None = None) -> list[Path]:
    """The numbered notebooks, in order (helpers such as run_experiment.ipynb are not part of it)."""
    folder = folder or repo_root() / "notebooks"
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def run(only: list[str] | None = None, profile: str = "quick", out: str | Path | None = None,
        parameters: dict | None = None, cache: str | Path | None = None) -> list[dict]:
    """Execute the sequence (or the notebooks whose names start with one of `only`) in order."""
    import papermill as pm

    out = Path(out) if out else runs_dir() / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    notebooks = [nb for nb in sequence() if not only or any(nb.name.startswith(o) for o in only)]
    if not notebooks:
        raise ValueError(f"no notebook matches {only}; the sequence is {[nb.name for nb in sequence()]}")
    # solutions=True: the exercise cells run the library's reference, so CI checks the checkers;
    # progress=False: no frozen progress bars or epoch logs in the executed notebooks
    params = {"profile": profile, "out_dir": str(out.resolve()), "solutions": True,
              "progress": False} | (parameters or {})
    if cache:
        params["cache_dir"] = str(Path(cache).resolve())
    timings = []
    for nb in notebooks:
        print(f"running {nb.name} ...", flush=True)
        start = time.perf_counter()
        pm.execute_notebook(str(nb), str(out / nb.name), parameters=params, cwd=str(nb.parent),
                            kernel_name="python3", progress_bar=False)
        timings.append({"notebook": nb.name, "seconds": round(time.perf_counter() - start, 1)})
        print(f"  done in {timings[-1]['seconds']:.0f} s -> {out / nb.name}", flush=True)
    (out / "timings.json").write_text(json.dumps(timings, indent=2))
    print(f"\nexecuted notebooks: {out}/\nfigures: {out / 'figures'}/")
    for t in timings:
        print(f"  {t['notebook']:34s} {t['seconds']:7.1f} s")
    return timings


def _value(text: str):
    """-p values: numbers and None/True/False as Python values, anything else as a string."""
    try:
        return json.loads({"None": "null", "True": "true", "False": "false"}.get(text, text))
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jointlab.notebooks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="execute the notebook sequence with papermill")
    r.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    r.add_argument("--out", help="output folder (default: runs/notebooks)")
    r.add_argument("--cache", help="model cache shared by the notebooks (default: runs/cache)")
    r.add_argument("--only", nargs="+", help="notebook name prefixes, e.g. 03 04")
    r.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="override a parameter of every notebook, e.g. -p arch wrn-16-2")
    args = parser.parse_args(argv)
    try:
        run(args.only, args.profile, args.out, {k: _value(v) for k, v in args.parameter}, args.cache)
    except ValueError as e:
        parser.exit(2, f"error: {e}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
