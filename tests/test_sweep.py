"""The sweep runner: a 2 x 2 grid over run_experiment.ipynb on the local pool and on a local Ray
gives one table; a failing job is reported and the others finish; a killed driver loses nothing.
Every job loads the quick profile's natural model from the shared `quick_runs` cache (no training)
and attacks with one step."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from jointlab.sweep import expand_grid, load_config, make_jobs, sweep

GRID = {"eps_x": [4, 8], "eps_w": [0.1, 0.28]}
FAILING = {"profile": "no-such-profile"}  # fails in the notebook's second code cell


def common(quick_runs) -> dict:
    return {"method": "natural", "attack_steps": 1, "cache_dir": str(quick_runs / "cache")}


@pytest.fixture(scope="module")
def local(quick_runs, tmp_path_factory):
    """The 2 x 2 grid and a failing job from a YAML file through the CLI on 2 workers, the driver
    killed (with its workers) once a job has finished, then the same sweep again in-process."""
    tmp = tmp_path_factory.mktemp("sweep")
    config = tmp / "sweep.yaml"
    config.write_text(yaml.safe_dump({"parameters": common(quick_runs), "grid": GRID, "jobs": [FAILING],
                                      "out": str(tmp / "local"), "workers": 2}))
    out = tmp / "local"
    driver = subprocess.Popen([sys.executable, "-m", "jointlab.notebooks", "sweep", "--config", str(config)],
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not _done(out) and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        finished = _done(out)
    finally:  # the driver, its pool workers and whatever else runs in its session
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    mtimes = {k: (out / k / "run_experiment.ipynb").stat().st_mtime_ns for k in finished}
    spec = load_config(config)
    result = sweep(spec["jobs"], spec["parameters"], out=spec["out"], workers=2, progress=False)
    return SimpleNamespace(result=result, finished=finished, mtimes=mtimes, config=config)


def _done(out: Path) -> list[str]:
    """Keys of the finished jobs (status files are replaced atomically, so always whole)."""
    return [p.parent.name for p in out.glob("*/status.json") if json.loads(p.read_text())["state"] == "done"]


def test_grid_and_bad_input(tmp_path):
    assert expand_grid({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    with pytest.raises(ValueError, match="not in the parameters cell"):
        make_jobs([{"eps_z": 1}])
    with pytest.raises(ValueError, match="set by the sweep"):
        make_jobs([{"result_json": "x.json"}])
    with pytest.raises(ValueError, match="executor must be one of"):
        sweep([{"eps_x": 4}], executor="dask")
    cfg = tmp_path / "s.yaml"
    cfg.write_text("parameters: {profile: quick}\ngrid: {method: [natural, joint]}\n"
                   "jobs: [{method: madry}]\n")
    assert [j["method"] for j in load_config(cfg)["jobs"]] == ["madry", "natural", "joint"]
    jobs = make_jobs(load_config(cfg)["jobs"], {"profile": "quick"}, out=tmp_path)
    assert len({j.key for j in jobs}) == 3 and all(Path(j.dir).parent == tmp_path for j in jobs)


@pytest.mark.slow  # the shared sweep fixture: five notebook jobs through the CLI, ~70 s
def test_a_failing_job_is_reported_and_the_others_finish(local):
    local = local.result
    states = {j["label"]: j["state"] for j in local.jobs}
    assert sorted(states.values()) == ["done"] * 4 + ["failed"], states
    (bad,) = local.failed
    assert bad["params"]["profile"] == "no-such-profile"
    assert bad["error"]["ename"] == "ValueError" and "profile must be one of" in bad["error"]["evalue"]
    assert bad["error"]["cell"] is not None and "get_profile" in bad["error"]["source"]
    assert "Jobs not finished" in local.markdown and bad["key"] in local.markdown
    assert len(local.table) == 4 and all(len(row) >= 5 for row in local.table.values())
    # eps_x only moves the pixel columns: the pristine accuracy is the same model's everywhere
    assert len({row["Pristine"] for row in local.table.values()}) == 1
    saved = json.loads((local.out / "results.json").read_text())
    assert saved["table"] == local.table and (local.out / "results.png").stat().st_size > 5000
    for job in local.jobs:
        d = Path(job["dir"])
        assert job["attempts"] >= 1 and (d / "run_experiment.ipynb").is_file()
        assert (d / "result.json").is_file() == (job["state"] == "done")


@pytest.mark.slow  # on the slow sweep fixture
def test_rerun_skips_finished_jobs_and_retries_failed_ones_only_when_asked(local, quick_runs):
    out, local = local.result.out, local.result
    jobs = expand_grid(GRID) + [FAILING]  # the same jobs as the YAML file, in another order
    again = sweep(jobs, common(quick_runs), out=out, progress=False)
    assert again.ran == [] and again.table == local.table
    retried = sweep(jobs, common(quick_runs), out=out, retry_failed=True, progress=False)
    (bad,) = retried.failed
    assert retried.ran == [bad["key"]] and bad["attempts"] == 2


@pytest.mark.slow  # a local Ray cluster, ~50 s
def test_ray_gives_the_same_table(local, quick_runs, tmp_path):
    pytest.importorskip("ray", reason="jointlab[cluster] (in dev) installs Ray")
    res = sweep(expand_grid(GRID), common(quick_runs), out=tmp_path / "ray", executor="ray", num_cpus=2,
                progress=False)
    assert not res.failed and res.table == local.result.table


@pytest.mark.slow  # on the slow sweep fixture
def test_killing_the_driver_loses_nothing(local):
    assert 1 <= len(local.finished) < 4, "the driver must be killed mid-sweep"
    res = local.result
    assert not set(local.finished) & set(res.ran)
    for job in res.jobs:
        if job["key"] in local.finished:  # not executed again
            assert job["attempts"] == 1
            assert Path(job["dir"], "run_experiment.ipynb").stat().st_mtime_ns == local.mtimes[job["key"]]
    assert len(res.table) == 4


def test_output_paths_do_not_depend_on_the_working_directory(monkeypatch):
    from jointlab.profiles import repo_root, resolve_path, runs_dir

    root = repo_root()
    monkeypatch.chdir(root / "notebooks")  # where JupyterLab and papermill run the notebooks
    monkeypatch.setenv("JOINTLAB_RUNS", "runs-elsewhere")
    assert runs_dir() == root / "runs-elsewhere"
    monkeypatch.delenv("JOINTLAB_RUNS")
    assert runs_dir() == root / "runs" and resolve_path("/abs/x") == Path("/abs/x")
    assert make_jobs([{"method": "natural"}])[0].dir.startswith(str(root / "runs" / "sweeps"))
