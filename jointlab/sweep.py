"""Sweeps of a parameterized notebook: one papermill job per parameter set, on a local process pool
or on a Ray cluster, resumable, gathered into one results table.

    from jointlab.sweep import sweep, expand_grid
    res = sweep(expand_grid({"method": ["natural", "joint"], "train_eps_x": [4, 8]}),
                common={"profile": "quick"}, out="runs/sweeps/demo", executor="local", workers=2)
    print(res.markdown)

    python -m jointlab.notebooks sweep --grid method=natural,madry,joint --grid eps_x=4,8
    python -m jointlab.notebooks sweep --config sweeps/table1.yaml --executor ray --address auto

Each job runs in `OUT/<hash of notebook and parameters>/`: `status.json` (written atomically:
running, done or failed, with the failing cell and error, attempts, seconds), the executed notebook
and, when the notebook has a `result_json` parameter, its metrics `result.json` (`out_dir`, when
the notebook has one, also points at the job folder). A rerun skips finished jobs and failed ones
(unless `retry_failed`), and runs the rest again: a job killed mid-way restarts its notebook, whose
`load_or_train` resumes training from the checkpoint in the shared model cache. A failing job
never stops the others. `OUT/results.json`, `results.md` and `results.png` hold the table.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .evaluation import PAPER_TABLE1, PAPER_TABLE4, TABLE1_COLUMNS, markdown_table
from .profiles import resolve_path, runs_dir

__all__ = ["Job", "SweepResult", "expand_grid", "load_config", "make_jobs", "run_job", "sweep",
           "results_tables", "plot_results", "visible_gpus", "EXECUTORS", "DEFAULT_NOTEBOOK"]

EXECUTORS = ("local", "ray")
DEFAULT_NOTEBOOK = "notebooks/run_experiment.ipynb"
# parameters the runner sets itself when the notebook declares them (they do not name the job)
INJECTED = ("result_json", "out_dir")


@dataclass
class Job:
    """One notebook execution: `params` go to papermill; `dir` holds everything it writes."""

    notebook: str
    params: dict
    dir: str
    key: str
    inject: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.params.get("_label") or self.key


@dataclass
class SweepResult:
    jobs: list[dict]  # one status per job (params, state, attempts, seconds, error, metrics, dir)
    table: dict  # label -> {column: accuracy %} of every finished job with metrics
    markdown: str
    out: Path
    figure: Path | None = None
    ran: list[str] = field(default_factory=list)  # keys of the jobs executed by this call

    @property
    def failed(self) -> list[dict]:
        return [j for j in self.jobs if j["state"] != "done"]


# --------------------------------------------------------------------------- the jobs


def expand_grid(grid: dict[str, list]) -> list[dict]:
    """The cartesian product of a grid {name: [values]} as a list of parameter sets, in order."""
    for name, values in grid.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"grid[{name!r}] must be a non-empty list of values; got {values!r}")
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(grid[n] for n in names))]


def load_config(path: str | Path) -> dict:
    """A sweep file (YAML or JSON): `notebook`, `parameters` (shared by every job), `grid`
    ({name: [values]}) and/or `jobs` (a list of parameter sets), and optionally `out`, `executor`,
    `workers`, `cpus_per_job`, `gpus_per_job`, `address`."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config must be a YAML or JSON sweep file; {path} does not exist")
    spec = yaml.safe_load(path.read_text()) or {}
    known = {"notebook", "parameters", "grid", "jobs", "out", "executor", "workers", "cpus_per_job",
             "gpus_per_job", "address"}
    if not isinstance(spec, dict) or set(spec) - known:
        raise ValueError(f"config {path}: expected a mapping with keys from {sorted(known)}; "
                         f"got {sorted(spec) if isinstance(spec, dict) else type(spec).__name__}")
    spec["jobs"] = list(spec.get("jobs") or []) + (expand_grid(spec["grid"]) if spec.get("grid") else [])
    if not spec["jobs"]:
        raise ValueError(f"config {path} names no job: give `grid` and/or `jobs`")
    return spec


def _key(notebook: Path, params: dict) -> str:
    text = json.dumps({"notebook": notebook.name, "params": params}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _labels(param_sets: list[dict]) -> list[str]:
    """Short row names: the parameters that differ between jobs ("joint, eps_x=4")."""
    varying = sorted({k for p in param_sets for k in p
                      if len({json.dumps(q.get(k), default=str) for q in param_sets}) > 1},
                     key=lambda k: (k != "method", k))  # the same names whatever the order given
    labels = []
    for p in param_sets:
        parts = [str(p[k]) if k == "method" else f"{k}={p.get(k)}" for k in varying if k in p]
        labels.append(", ".join(parts) or str(p.get("method", "job")))
    return labels


def make_jobs(param_sets: list[dict], common: dict | None = None, notebook: str | Path = DEFAULT_NOTEBOOK,
              out: str | Path | None = None) -> list[Job]:
    """One job per parameter set (with `common` underneath), checked against the notebook's
    `parameters` cell; jobs with identical parameters are one job."""
    from papermill.inspection import inspect_notebook

    nb = resolve_path(notebook)
    if not nb.is_file():
        raise ValueError(f"notebook must be a .ipynb file with a `parameters` cell; {nb} does not exist")
    declared = inspect_notebook(str(nb))
    if not declared:
        raise ValueError(f"notebook {nb.name} has no cell tagged `parameters`")
    if not param_sets:
        raise ValueError("param_sets must hold at least one parameter set (a grid or a list of jobs)")
    out = resolve_path(out) if out else runs_dir() / "sweeps" / nb.stem
    merged = [dict(common or {}) | dict(p) for p in param_sets]
    for p in merged:
        unknown = set(p) - set(declared)
        if unknown:
            raise ValueError(f"parameters {sorted(unknown)} are not in the parameters cell of {nb.name}; "
                             f"it declares {sorted(declared)}")
        taken = set(p) & set(INJECTED)
        if taken:
            raise ValueError(f"{sorted(taken)} are set by the sweep (the job's folder); leave them out")
    inject = tuple(n for n in INJECTED if n in declared)
    jobs: dict[str, Job] = {}
    for p, label in zip(merged, _labels(merged), strict=True):
        key = _key(nb, p)
        jobs.setdefault(key, Job(str(nb), p | {"_label": label}, str(out / key), key, inject))
    return list(jobs.values())


# --------------------------------------------------------------------------- one job (in a worker)


def _write_json(path: Path, data) -> None:
    """Atomically: readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def _read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def run_job(job: Job, kernel_name: str = "python3") -> dict:
    """Execute one job's notebook with papermill and record its status; never raises for a
    failing notebook (the status names the cell and the error)."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    d = Path(job.dir)
    d.mkdir(parents=True, exist_ok=True)
    previous = _read_json(d / "status.json") or {}
    params = {k: v for k, v in job.params.items() if k != "_label"}
    status = {"key": job.key, "label": job.label, "notebook": Path(job.notebook).name, "params": params,
              "state": "running", "attempts": previous.get("attempts", 0) + 1, "host": socket.gethostname(),
              "pid": os.getpid(), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"), "started": time.time()}
    _write_json(d / "status.json", status)
    result = d / "result.json"
    result.unlink(missing_ok=True)
    injected = {"result_json": str(result), "out_dir": str(d)}
    params = params | {k: injected[k] for k in job.inject}
    try:
        with _stderr_to(d / "kernel.log"):  # the job kernel's own log lines stay out of the caller's output
            pm.execute_notebook(job.notebook, str(d / Path(job.notebook).name), parameters=params,
                                cwd=str(Path(job.notebook).parent), kernel_name=kernel_name,
                                progress_bar=False, config=kernel_config())
    except PapermillExecutionError as e:
        status.update(state="failed", error={"cell": e.exec_count, "ename": e.ename, "evalue": e.evalue,
                                             "source": _failing_line(e)})
    except Exception as e:  # the kernel died, a missing kernel, ...
        status.update(state="failed", error={"cell": None, "ename": type(e).__name__, "evalue": str(e)})
    else:
        status["state"] = "done"
        if "result_json" in job.inject and not result.is_file():
            status.update(state="failed", error={"cell": None, "ename": "MissingResult",
                                                 "evalue": f"the notebook wrote no {result.name}"})
    status["seconds"] = round(time.time() - status["started"], 2)
    _write_json(d / "status.json", status)
    return status


def kernel_config():
    """Papermill's kernels talk over local IPC sockets, not TCP: nothing to eavesdrop on, and no
    "running over TCP without encryption" warning in every run's log. Each kernel gets its own socket
    prefix in the temporary folder (the default, a relative name in the working directory, collides
    when parallel jobs share one); the kernel manager removes the socket files on shutdown."""
    import tempfile
    import uuid

    from traitlets.config import Config

    config = Config()
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = str(Path(tempfile.gettempdir()) / f"jointlab-kernel-{uuid.uuid4().hex[:12]}")
    return config


@contextmanager
def _stderr_to(path: Path):
    """Point this process's file descriptor 2 at `path` (the kernels it starts inherit it): ipykernel's
    startup warnings ("Kernel is running over TCP ...") land there, not in a notebook that runs a sweep."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _failing_line(e) -> str:
    """The cell's line that raised, from IPython's traceback ("----> 6 P = get_profile(...)")."""
    import re

    for line in re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(e.traceback)).splitlines():
        if line.lstrip().startswith("---->"):
            return line.split("---->", 1)[1].strip()
    lines = [line for line in e.source.splitlines() if line.strip()]
    return lines[0] if lines else ""


# --------------------------------------------------------------------------- executors


def visible_gpus() -> list[str]:
    """The GPU ids a job may be given through CUDA_VISIBLE_DEVICES (respecting the caller's)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # no driver
        return []


def _init_worker(slots, threads: int | None) -> None:
    """Pool initializer: pin this worker (and the kernels it starts) to one GPU, or bound its threads."""
    gpu = slots.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)


def _run_local(jobs: list[Job], workers: int | None, kernel_name: str):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    gpus = visible_gpus()
    workers = workers or max(1, len(gpus))
    ctx = mp.get_context("spawn")  # the driver may hold threads (tqdm, torch); spawn is safe with them
    slots = ctx.Queue()
    for i in range(workers):
        slots.put(gpus[i % len(gpus)] if gpus else None)
    # on CPUs, split the cores between the jobs that run at once (torch would oversubscribe them)
    threads = None if gpus else max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(slots, threads)) as pool:
        futures = {pool.submit(run_job, job, kernel_name): job for job in jobs}
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except Exception as e:  # a worker process died
                yield _crashed(futures[fut], e)


def _run_ray(jobs: list[Job], address: str | None, cpus_per_job: float, gpus_per_job: float | None,
             num_cpus: int | None, kernel_name: str):
    try:
        import ray
    except ImportError as e:
        raise ImportError("executor='ray' needs Ray: pip install 'jointlab[cluster]'") from e

    started = not ray.is_initialized()
    if started:
        _start_ray(ray, address, num_cpus)
    try:
        if gpus_per_job is None:  # one GPU per job when the cluster has GPUs (the driver may have none)
            gpus_per_job = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
        task = ray.remote(num_cpus=cpus_per_job, num_gpus=gpus_per_job, max_retries=0)(run_job)
        refs = {task.remote(job, kernel_name): job for job in jobs}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                yield ray.get(done[0])
            except Exception as e:  # the worker (or its node) died
                yield _crashed(refs[done[0]], e)
    finally:
        if started:
            ray.shutdown()


def _start_ray(ray, address: str | None, num_cpus: int | None) -> None:
    """Join the cluster at `address` ("auto", "ray://head:10001"), or start a local Ray when None.
    Ray gives a local node 30 s to register, which a loaded machine can miss: then one more try."""
    for attempt in (1, 2):
        try:
            ray.init(address=address, num_cpus=num_cpus if address is None else None, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
            return
        except Exception as e:
            if address is not None or attempt == 2 or "timed out during startup" not in str(e):
                raise
            ray.shutdown()
            tqdm.write("the local Ray timed out while starting (a busy machine?); starting it again")


def _crashed(job: Job, e: Exception) -> dict:
    status = (_read_json(Path(job.dir) / "status.json") or {"key": job.key, "label": job.label,
                                                           "params": job.params, "attempts": 1})
    status.update(state="failed", error={"cell": None, "ename": type(e).__name__, "evalue": str(e)[:500]})
    Path(job.dir).mkdir(parents=True, exist_ok=True)
    _write_json(Path(job.dir) / "status.json", status)
    return status


# --------------------------------------------------------------------------- the sweep


def sweep(param_sets: list[dict], common: dict | None = None, *, notebook: str | Path = DEFAULT_NOTEBOOK,
          out: str | Path | None = None, executor: str = "local", workers: int | None = None,
          retry_failed: bool = False, address: str | None = None, cpus_per_job: float = 1,
          gpus_per_job: float | None = None, num_cpus: int | None = None, kernel_name: str = "python3",
          progress: bool = True) -> SweepResult:
    """Run `notebook` once per parameter set (`common` underneath each), skipping finished jobs,
    and gather the results into `out/results.{json,md,png}`.

    executor "local": a process pool of `workers` (default: one per visible GPU, else 1), each
    worker pinned to one GPU through CUDA_VISIBLE_DEVICES. executor "ray": one Ray task per job with
    `cpus_per_job` and `gpus_per_job` (default: 1 when the cluster has GPUs, else 0; Ray sets
    CUDA_VISIBLE_DEVICES) on the cluster at `address` ("auto", "ray://head:10001"), or on a new
    local Ray with `num_cpus` when `address` is None. `retry_failed` runs failed jobs again.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}; got {executor!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer; got {workers!r}")
    jobs = make_jobs(param_sets, common, notebook, out)
    out = Path(jobs[0].dir).parent
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "sweep.json", {"notebook": jobs[0].notebook,
                                     "jobs": [dict(j.params, _key=j.key) for j in jobs]})
    todo = []
    for job in jobs:
        state = (_read_json(Path(job.dir) / "status.json") or {}).get("state")
        if state == "done" or (state == "failed" and not retry_failed):
            continue
        todo.append(job)  # new, failed and retried, or "running" when a killed driver left it
    if not todo:
        stream = iter(())
    elif executor == "local":
        stream = _run_local(todo, workers, kernel_name)
    else:
        stream = _run_ray(todo, address, cpus_per_job, gpus_per_job, num_cpus, kernel_name)
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="sweep", unit="job", disable=not progress)
    with bar:
        for status in stream:
            bar.update()
            if status["state"] != "done":
                bar.write(f"FAILED {status.get('label')}: {_error_text(status)}")
    return gather(jobs, out, ran=[j.key for j in todo])


def _error_text(status: dict) -> str:
    e = status.get("error") or {}
    where = f"cell [{e['cell']}] ({e.get('source', '')!s:.60})" if e.get("cell") is not None else "job"
    return f"{where}: {e.get('ename')}: {str(e.get('evalue'))[:200]}"


def gather(jobs: list[Job], out: Path, ran: list[str] | None = None) -> SweepResult:
    """Read every job's status and metrics; write results.json, results.md and results.png."""
    statuses = []
    for job in jobs:
        s = _read_json(Path(job.dir) / "status.json") or {"state": "missing"}
        s = s | {"key": job.key, "label": job.label, "dir": job.dir,
                 "metrics": _read_json(Path(job.dir) / "result.json") if s.get("state") == "done" else None}
        statuses.append(s)
    table = {s["label"]: _row(s["metrics"]) for s in statuses if s["metrics"]}
    tables = results_tables(statuses)
    md = "\n".join(tables.values())
    failed = [s for s in statuses if s["state"] != "done"]
    if failed:
        md += "\nJobs not finished:\n\n" + "".join(
            f"- `{s['key']}` {s['label']}: {s['state']}, {_error_text(s)}\n" for s in failed)
    _write_json(out / "results.json", {"table": table, "jobs": statuses})
    (out / "results.md").write_text(md)
    figure = plot_results(statuses, out / "results.png") if table else None
    return SweepResult(statuses, table, md, out, figure, ran or [])


# --------------------------------------------------------------------------- tables and figure


def _row(metrics: dict) -> dict:
    """The accuracy columns of a result (run_experiment's `accuracy`), else its numeric fields."""
    if isinstance(metrics.get("accuracy"), dict):
        return metrics["accuracy"]
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _paper_columns(metrics: dict) -> dict:
    steps = metrics.get("steps", 20)
    acc = metrics["accuracy"]
    return {c: acc[ours.format(steps=steps)] for c, ours in TABLE1_COLUMNS.items()
            if ours.format(steps=steps) in acc}


def _paper_row(metrics: dict) -> dict:
    """The paper's Table 1 row for a run of one of its methods at its budgets (ε_x = 8), else {}."""
    paper = PAPER_TABLE1.get(metrics.get("method"))
    if paper is None or metrics.get("train_budgets") or metrics.get("eps_x", 8) != 8:
        return {}
    return dict(zip(TABLE1_COLUMNS, paper, strict=True))


def results_tables(statuses: list[dict]) -> dict[str, str]:
    """Markdown tables: every column of every finished job; Table 1 (methods at the default
    training budgets) and Table 4 (joint training budgets) beside the paper's CIFAR-10 numbers."""
    done = [s for s in statuses if s.get("metrics")]
    out = {}
    if done:
        out["all"] = markdown_table({s["label"]: _row(s["metrics"]) for s in done},
                                    "All columns, accuracy (%) ± one standard error",
                                    {s["label"]: s["metrics"].get("images") for s in done})
    exp = [s for s in done if isinstance(s["metrics"].get("accuracy"), dict) and "method" in s["metrics"]]
    t1 = [s for s in exp if not s["metrics"].get("train_budgets")]
    if t1:
        rows, images = {}, {}
        for s in t1:
            m = s["metrics"]
            rows[f"{s['label']} (ours)"] = _paper_columns(m)
            images[f"{s['label']} (ours)"] = m.get("images")
            if _paper_row(m):
                rows.setdefault(f"{m['method']} (paper)", _paper_row(m))
        steps = t1[0]["metrics"].get("steps")
        caption = (f"Table 1 layout (ours: PGD = PGD{steps}, Joint = Joint-SP; paper: CIFAR-10, WRN-28-10, "
                   "PGD20): compare orderings, not levels; ours ± one standard error")
        out["table1"] = markdown_table(rows, caption, images)
    t4 = [s for s in exp if {"eps_x", "eps_w"} <= set(s["metrics"].get("train_budgets") or {})]
    if t4:
        rows, images = {}, {}
        for col in ("Pristine", "PGD", "Spatial", "Joint"):
            ours, paper = {}, {}
            for s in t4:
                b = s["metrics"]["train_budgets"]
                name = f"{b['eps_x']:g} / {b['eps_w']:g}"
                ours[name] = _paper_columns(s["metrics"]).get(col, float("nan"))
                if (b["eps_x"], b["eps_w"]) in PAPER_TABLE4:
                    paper[name] = PAPER_TABLE4[(b["eps_x"], b["eps_w"])][col]
            rows[f"{col} (ours)"] = ours
            images[f"{col} (ours)"] = t4[0]["metrics"].get("images")
            if paper:
                rows[f"{col} (paper)"] = paper
        caption = ("Table 4 layout: joint training budgets ε_x / ε_ω (columns) against the test attacks "
                   "(rows); ours ± one standard error")
        out["table4"] = markdown_table(rows, caption, images)
    return out


def plot_results(statuses: list[dict], path: Path) -> Path:
    """Grouped bars of the Table 1 columns per finished job; the paper's numbers as black ticks."""
    import numpy as np
    from matplotlib.figure import Figure

    done = [s for s in statuses if s.get("metrics") and isinstance(s["metrics"].get("accuracy"), dict)]
    cols = list(TABLE1_COLUMNS)
    fig = Figure(figsize=(max(5.0, 1.3 * len(done) + 1.5), 3.4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(cols)
    for i, c in enumerate(cols):
        xs = np.arange(len(done)) + (i - (len(cols) - 1) / 2) * width
        ax.bar(xs, [_paper_columns(s["metrics"]).get(c, np.nan) for s in done], width, label=c)
        paper = [_paper_row(s["metrics"]).get(c, np.nan) for s in done]
        ax.scatter(xs, paper, marker="_", color="k", s=120, zorder=3,
                   label="paper (CIFAR-10)" if i == 0 else None)
    ax.set_xticks(np.arange(len(done)), [s["label"] for s in done], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    fig.legend(fontsize=7, loc="outside right upper")
    fig.savefig(path, dpi=120)
    return path
