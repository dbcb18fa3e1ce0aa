"""The GPU acceptance run's CPU dress rehearsal (`bench/gpu.py --tiny`): every section runs, the report
has every field, and a section that fails or overruns its limit is reported without stopping the rest."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu.py"


def _run(tmp_path, *args, timeout=300):
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else None
    return done, report, out


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("gpu-bench"))


@pytest.mark.slow  # the whole GPU benchmark rehearsed on the CPU, ~60 s
def test_rehearsal_runs_every_section(rehearsal):
    done, report, out = rehearsal
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    sec = report["sections"]
    assert list(sec) == ["env", "train", "bf16_flow", "attack_cost", "ddp"]
    assert all(e["status"] == "ok" for e in sec.values()), {n: e.get("log_tail") for n, e in sec.items()}
    meta = {"tiny", "device", "date", "commit", "command", "settings", "limits", "seconds"}
    assert meta <= set(report["meta"])

    info = sec["env"]["result"]["info"]
    assert {"card", "torch", "cuda", "cudnn", "visible_gpus", "tf32_conv"} <= set(info)

    train = sec["train"]["result"]
    s = report["meta"]["settings"]
    runs = {(r["method"], r["variant"]) for r in train["runs"]}
    assert len(runs) == len(s["methods"]) * 4  # every method, with and without bf16 and channels_last
    assert all(r["s_per_epoch"] > 0 and r["timed_batches"] == s["batches"] for r in train["runs"])
    assert train["loader"]["s_per_epoch"] > 0
    assert report["goal"]["s_per_epoch"] > 0 and report["goal"]["goal_s_per_epoch"] == 40

    flow = sec["bf16_flow"]["result"]["result"]
    for v in flow["sets"].values():
        assert v["changed_fp32"] > 0.9 * v["pixels"]  # a 0.05 px change moves nearly every pixel in fp32
        assert 0 <= v["lost_autocast_input"] <= 1
        # bf16 grid coordinates step by 1/8 px near the far edge: many 0.05 px changes vanish
        assert v["lost_bf16_tensors"] > 0.1
    assert flow["bf16_coordinate_spacing_px"] == 0.125

    cost = sec["attack_cost"]["result"]
    assert set(cost["steps"]["ms"]) == {"forward+backward", "PGD step (pixel)", "APGD step (pixel)",
                                        "APGD step (spatial)", "APGD step (joint, two passes)"}
    assert cost["strong_batch"]["passes_per_image"] > 0 and cost["strong_batch"]["seconds"] > 0

    check = sec["ddp"]["result"]["check"]
    assert check == check | {"world_size": 1, "backend": "gloo", "matches": True}

    text = (out / "report.md").read_text()
    for heading in ("## Training", "## bf16 and small flow changes", "## Attack cost", "## DDP"):
        assert heading in text
    assert "Failures" not in text and text in done.stdout  # the report is printed as well as written


@pytest.mark.slow  # a benchmark subprocess, ~12 s
def test_a_section_that_raises_is_reported_and_the_rest_still_run(tmp_path):
    done, report, out = _run(tmp_path, "--sections", "bf16_flow,env", "--raise-in", "bf16_flow")
    assert done.returncode == 1
    sec = report["sections"]
    assert sec["bf16_flow"]["status"] == "failed" and "rehearsed failure" in sec["bf16_flow"]["log_tail"]
    assert sec["env"]["status"] == "ok" and sec["env"]["result"]["info"]["torch"]
    assert "## Failures" in (out / "report.md").read_text()


@pytest.mark.slow  # a benchmark subprocess, ~11 s
def test_a_section_past_its_limit_is_stopped_and_reported(tmp_path):
    done, report, _ = _run(tmp_path, "--sections", "env,train", "--limit", "train=1")
    assert done.returncode == 1
    sec = report["sections"]
    assert sec["train"]["status"] == "timeout" and sec["train"]["seconds"] < 30
    assert "limit of 1 s" in sec["train"]["error"]
    assert sec["env"]["status"] == "ok"


@pytest.fixture(scope="module")
def gpu_bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("args,message", [
    (["--tiny", "--sections", "env,warp"], "unknown section 'warp'"),
    (["--tiny", "--limit", "train"], "--limit takes SECTION=SECONDS"),
    (["--tiny", "--limit", "nope=3"], "--limit: unknown section 'nope'"),
    (["--device", "cuda"], "no CUDA device is visible"),
])
def test_bad_options_get_one_clear_error(gpu_bench, args, message, capsys, monkeypatch):
    monkeypatch.setattr(gpu_bench.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as e:
        gpu_bench.main(args)
    assert e.value.code == 2
    assert message in capsys.readouterr().err
