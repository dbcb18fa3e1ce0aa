"""Per-job overhead of the sweep runner (scheduler + papermill start) against running the same
notebook directly, in one run.

The same N small jobs (run_experiment.ipynb, quick profile, the cached natural model, one-step
attacks; the model is trained once first if missing) run three ways, one after another:
  code     the time the notebook's cells take inside the kernel (papermill's cell durations)
  direct   papermill.execute_notebook called directly: kernel start + code
  local    jointlab.sweep.sweep(executor="local", workers=1): + process pool, status files, table
  ray      (--ray) the same on a new local Ray (num_cpus=1); Ray's start is timed separately
Overheads per job: papermill start = direct - code, sweep = local - direct; goal: local - code <= 10 s.

    python bench/sweep.py                  # 3 jobs each way
    python bench/sweep.py --jobs 4 --ray --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from jointlab.profiles import get_profile, repo_root
from jointlab.sweep import make_jobs, run_job, sweep


def _code_seconds(notebook: Path) -> float:
    nb = json.loads(notebook.read_text())
    return sum(c["metadata"].get("papermill", {}).get("duration") or 0 for c in nb["cells"])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=3, help="jobs per way")
    p.add_argument("--ray", action="store_true", help="also time the Ray executor (jointlab[cluster])")
    p.add_argument("--cache", help="model cache (default: runs/cache)")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)

    P = get_profile("quick", cache_dir=args.cache)
    P.train("natural")  # trained once, outside the timings
    common = {"method": "natural", "attack_steps": 1, "cache_dir": str(P.cache)}
    grid = [{"eps_x": float(i + 1)} for i in range(args.jobs)]  # distinct jobs, the same work
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    run_job(make_jobs([{"eps_x": 0.5}], common, out=tmp / "warmup")[0])  # disk caches, first imports

    t0 = time.perf_counter()
    direct = [run_job(job) for job in make_jobs(grid, common, out=tmp / "direct")]
    t_direct = (time.perf_counter() - t0) / args.jobs
    codes = [_code_seconds(tmp / "direct" / s["key"] / "run_experiment.ipynb") for s in direct]
    t_code = sum(codes) / len(codes)
    assert all(s["state"] == "done" for s in direct), [s.get("error") for s in direct]

    t0 = time.perf_counter()
    res = sweep(grid, common, out=tmp / "local", workers=1, progress=False)
    t_local = (time.perf_counter() - t0) / args.jobs
    assert not res.failed, res.markdown
    result = {"jobs": args.jobs, "code_s": t_code, "direct_s": t_direct, "local_s": t_local,
              "papermill_start_s": t_direct - t_code, "sweep_overhead_s": t_local - t_direct,
              "total_overhead_s": t_local - t_code}
    print(f"run_experiment.ipynb (quick, natural, 1-step attacks on {P.test_limit} images), "
          f"{args.jobs} jobs per way, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, {repo_root()}")
    print(f"  code in the kernel     {t_code:6.1f} s/job")
    print(f"  papermill directly     {t_direct:6.1f} s/job  (kernel start etc. {t_direct - t_code:+.1f} s)")
    print(f"  sweep, local executor  {t_local:6.1f} s/job  (sweep {t_local - t_direct:+.1f} s, "
          f"total overhead {t_local - t_code:.1f} s; goal <= 10 s)")
    if args.ray:
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
        result["ray_start_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = sweep(grid, common, out=tmp / "ray", executor="ray", progress=False)
        result["ray_s"] = (time.perf_counter() - t0) / args.jobs
        ray.shutdown()
        assert not res.failed and res.table == sweep(grid, common, out=tmp / "local", progress=False).table
        result["ray_total_overhead_s"] = result["ray_s"] - t_code

    if args.ray:
        print(f"  sweep, local Ray       {result['ray_s']:6.1f} s/job  (total overhead "
              f"{result['ray_total_overhead_s']:.1f} s; Ray's start {result['ray_start_s']:.1f} s, once)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
