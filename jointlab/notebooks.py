"""Run the notebook sequence headless with papermill.

    python -m jointlab.notebooks run                          # quick profile -> runs/notebooks
    python -m jointlab.notebooks run --only 03 04 -p arch wrn-16-2
    python -m jointlab.notebooks run --profile full --out runs/full   # GPU, paper scale

Executed notebooks, their figures (`figures/`) and `timings.json` land in the output folder.

    python -m jointlab.notebooks sweep --grid method=natural,madry,joint --grid eps_x=4,8 --workers 2
    python -m jointlab.notebooks sweep --config sweeps/table1.yaml --executor ray --address auto

`sweep` runs a parameterized notebook (default run_experiment.ipynb) once per parameter set,
resumably, and gathers one results table (jointlab.sweep).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .profiles import PROFILES, repo_root, runs_dir

__all__ = ["sequence", "run", "prepare", "main"]


def sequence(folder: Path | None = None) -> list[Path]:
    """The numbered notebooks, in order (helpers such as run_experiment.ipynb are not part of it)."""
    folder = folder or repo_root() / "notebooks"
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def _selected(only: list[str] | None) -> list[Path]:
    notebooks = [nb for nb in sequence() if not only or any(nb.name.startswith(o) for o in only)]
    if not notebooks:
        raise ValueError(f"no notebook matches {only}; the sequence is {[nb.name for nb in sequence()]}")
    return notebooks


def _parameters(nb: Path, profile: str, out: Path, parameters: dict | None, cache: str | Path | None) -> dict:
    """The runner's own settings, those of them `nb` declares (papermill warns of any other), then the
    user's `parameters` as given (so that papermill still warns of a mistyped name)."""
    import papermill as pm

    # solutions=True: the exercise cells run the library's reference, so CI checks the checkers;
    # progress=False: no frozen progress bars or epoch logs in the executed notebooks
    own = {"profile": profile, "out_dir": str(out.resolve()), "solutions": True, "progress": False}
    if cache:
        own["cache_dir"] = str(Path(cache).resolve())
    declared = pm.inspect_notebook(str(nb))
    return {k: v for k, v in own.items() if k in declared} | (parameters or {})


def run(only: list[str] | None = None, profile: str = "quick", out: str | Path | None = None,
        parameters: dict | None = None, cache: str | Path | None = None) -> list[dict]:
    """Execute the sequence (or the notebooks whose names start with one of `only`) in order."""
    import papermill as pm

    from .sweep import kernel_config

    out = Path(out) if out else runs_dir() / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    notebooks = _selected(only)
    timings = []
    for nb in notebooks:
        print(f"running {nb.name} ...", flush=True)
        start = time.perf_counter()
        params = _parameters(nb, profile, out, parameters, cache)
        pm.execute_notebook(str(nb), str(out / nb.name), parameters=params, cwd=str(nb.parent),
                            kernel_name="python3", progress_bar=False, config=kernel_config())
        timings.append({"notebook": nb.name, "seconds": round(time.perf_counter() - start, 1)})
        print(f"  done in {timings[-1]['seconds']:.0f} s -> {out / nb.name}", flush=True)
    (out / "timings.json").write_text(json.dumps(timings, indent=2))
    print(f"\nexecuted notebooks: {out}/\nfigures: {out / 'figures'}/")
    for t in timings:
        print(f"  {t['notebook']:34s} {t['seconds']:7.1f} s")
    return timings


def prepare(folder: str | Path, only: list[str] | None = None, profile: str = "quick",
            out: str | Path | None = None, parameters: dict | None = None, cache: str | Path | None = None,
            per_notebook: dict[str, dict] | None = None, expected_outputs: bool = False) -> list[Path]:
    """Write the sequence into `folder` with the parameters injected and nothing executed (papermill's
    prepare-only), for `pytest --nbval-lax folder`: each cell becomes a test item. `per_notebook` maps
    a name prefix to extra parameters; `expected_outputs=True` stores, in every cell tagged
    `nbval-check-output`, the output its metadata `jointlab.expect` names, so that nbval checks it."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = Path(out) if out else runs_dir() / "notebooks"
    written = []
    for nb in _selected(only):
        extra = next((v for k, v in (per_notebook or {}).items() if nb.name.startswith(k)), {})
        params = _parameters(nb, profile, out, parameters, cache) | extra
        book = parameterize_notebook(load_notebook_node(str(nb)), params, kernel_name="python3")
        for i, cell in enumerate(book.cells):
            cell.setdefault("id", f"injected-{i}")  # papermill's parameters cell comes without one
            expect = cell.metadata.get("jointlab", {}).get("expect")
            checked = "nbval-check-output" in cell.metadata.get("tags", [])
            if expected_outputs and expect is not None and checked:
                cell.execution_count = 1
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=expect)]
        nbformat.write(book, folder / nb.name)
        written.append(folder / nb.name)
    return written


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
    w = sub.add_parser("sweep", help="run a notebook over a grid of parameters (local pool or Ray)")
    w.add_argument("--config", help="YAML sweep file: notebook, parameters, grid, jobs, executor, ...")
    w.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                   help="one axis of the grid, e.g. --grid method=natural,joint (repeat for more axes)")
    w.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a parameter shared by every job, e.g. -p profile full")
    w.add_argument("--notebook", help="the notebook to run (default: notebooks/run_experiment.ipynb)")
    w.add_argument("--out", help="the sweep folder (default: runs/sweeps/<notebook>)")
    w.add_argument("--executor", choices=("local", "ray"), help="default: local")
    w.add_argument("--workers", type=int, help="local: jobs at once (default: one per GPU, else 1)")
    w.add_argument("--address", help="ray: the cluster ('auto', 'ray://head:10001'; default: a local Ray)")
    w.add_argument("--num-cpus", type=int, help="ray: CPUs of the local Ray (default: all)")
    w.add_argument("--cpus-per-job", type=float, help="ray: CPUs per job (default: 1)")
    w.add_argument("--gpus-per-job", type=float, help="ray: GPUs per job (default: 1 if GPUs, else 0)")
    w.add_argument("--retry-failed", action="store_true", help="run failed jobs again")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            run(args.only, args.profile, args.out, {k: _value(v) for k, v in args.parameter}, args.cache)
        else:
            result = _sweep(args)
            print(f"\n{result.markdown}\nresults: {result.out}/results.md, results.json, results.png")
            return 1 if result.failed else 0
    except ValueError as e:
        parser.exit(2, f"error: {e}\n")
    return 0


def _sweep(args):
    from .sweep import load_config, sweep

    spec = load_config(args.config) if args.config else {"jobs": []}
    grid = {}
    for axis in args.grid:
        name, sep, values = axis.partition("=")
        if not sep or not name or not values:
            raise ValueError(f"--grid must look like NAME=V1,V2,...; got {axis!r}")
        grid[name] = [_value(v) for v in values.split(",")]
    if grid:
        from .sweep import expand_grid

        extra = expand_grid(grid)
        # a command-line grid crosses the config's jobs (or stands alone)
        spec["jobs"] = [j | e for j in spec["jobs"] for e in extra] if spec["jobs"] else extra
    if not spec["jobs"]:
        raise ValueError("give --grid NAME=V1,V2 (one or more) and/or --config FILE")
    common = dict(spec.get("parameters") or {}) | {k: _value(v) for k, v in args.parameter}
    options = {k: v for k, v in dict(
        notebook=args.notebook or spec.get("notebook"), out=args.out or spec.get("out"),
        executor=args.executor or spec.get("executor"), workers=args.workers or spec.get("workers"),
        address=args.address or spec.get("address"), num_cpus=args.num_cpus,
        cpus_per_job=args.cpus_per_job or spec.get("cpus_per_job"),
        gpus_per_job=args.gpus_per_job if args.gpus_per_job is not None else spec.get("gpus_per_job"),
    ).items() if v is not None}
    return sweep(spec["jobs"], common, retry_failed=args.retry_failed, **options)


if __name__ == "__main__":
    raise SystemExit(main())
