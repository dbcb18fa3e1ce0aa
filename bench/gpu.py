"""The GPU acceptance run: every GPU check of the kit in one command and one report.

    bash bench/gpu.sh                 # on the card, ≤ 8 min on one H100/H200: runs/bench-gpu/report.*
    bash bench/gpu.sh --tiny          # the CPU dress rehearsal (WRN-10-1, a few batches, ≤ 60 s)
    bash bench/gpu.sh --out DIR --sections train,ddp --limit train=300

Sections, each in a process of its own with its own time limit, so that a failure, a crash of the
CUDA context or a time-out is reported and the other sections still run:

    env          the card, torch / CUDA / cuDNN / NCCL versions, TF32 settings
    train        s/epoch of natural, madry (PGD-7) and one-step joint training (Alg. 3) through the
                 trainer's own `train_step`, WRN-28-10, batch 128, CIFAR-10-shaped data, with and
                 without bf16 autocast and channels_last: ≥ 100 timed batches after a warm-up,
                 s/epoch = 390 batches (50,000 images, drop_last) × s/batch; peak memory of each
    bf16_flow    the share of pixels whose 0.05 px flow change T(x, ω + Δ) − T(x, ω) vanishes under
                 bf16 where fp32 sees it: why the trainer runs its attacks in fp32
    attack_cost  one PGD and one APGD step (pixel, spatial, joint) against a plain forward/backward,
                 and one batch of the strong suite (time per counted pass against forward/backward)
    ddp          `train` under torchrun on every visible GPU (NCCL; gloo on the CPU), a few steps,
                 against the same run in one process: the losses must match

The data is CIFAR-10 when it is on disk (`python -m jointlab.data prepare cifar10 --download`
beforehand, online) and otherwise random CIFAR-10-shaped batches made on the device: the card has
no internet, and the cost of a step does not depend on the pixels. Exit status 0 when every section
passed, 1 otherwise. bench/README.md has the runbook and the measured numbers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("env", "train", "bf16_flow", "attack_cost", "ddp")
# the settings of the run on the card, and of the CPU rehearsal (the same code, a toy size)
FULL = dict(arch="wrn-28-10", batch=128, warmup=10, batches=100, methods=["joint", "natural", "madry"],
            attack_batch=128, attack_steps=4, attack_rounds=3, suite=dict(steps=10, apgd_steps=20, top_k=3),
            ddp_steps=5, flow_images=64, loader_batches=50)
TINY = dict(arch="wrn-10-1", batch=8, warmup=1, batches=2, methods=["joint", "natural", "madry"],
            attack_batch=8, attack_steps=2, attack_rounds=2, suite=dict(steps=2, apgd_steps=2, top_k=2),
            ddp_steps=3, flow_images=8, loader_batches=3)
# seconds per section: the card's add up to 7.5 min, the rehearsal's are caps far above its ~30 s
LIMITS = {"env": 30, "train": 240, "bf16_flow": 30, "attack_cost": 60, "ddp": 90}
TINY_LIMITS = {"env": 30, "train": 60, "bf16_flow": 30, "attack_cost": 60, "ddp": 90}
VARIANTS = {"bf16 + channels_last": (True, True), "fp32 + channels_last": (False, True),
            "bf16": (True, False), "fp32": (False, False)}
EPOCH_IMAGES = 50_000  # CIFAR-10's training set
GOAL_S_PER_EPOCH = 40.0  # one-step joint, WRN-28-10, one H100/H200 (the FLOP limit is about 10 s)
FLOW_CHANGE_PX = 0.05


# --------------------------------------------------------------------------- helpers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> float:
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float | None:
    """Peak GPU memory allocated since the last reset (None on the CPU: see the section's host RSS)."""
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _host_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _cifar_pool(device: torch.device, batch: int, count: int = 8) -> tuple[list, str]:
    """`count` CIFAR-10 training batches on `device` in [-1, 1], or random ones of that shape."""
    from jointlab.data import DatasetNotFoundError, load_dataset

    try:
        x, y = load_dataset("cifar10", "train", limit=batch * count, seed=0).batch()
        source = "CIFAR-10 (from disk)"
    except DatasetNotFoundError:
        g = torch.Generator(device=device).manual_seed(0)
        x = torch.rand(batch * count, 3, 32, 32, device=device, generator=g) * 2 - 1
        y = torch.randint(0, 10, (batch * count,), device=device, generator=g)
        source = "random CIFAR-10-shaped images made on the device (CIFAR-10 is not on disk)"
    x, y = x.to(device), y.to(device)
    return [(x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)], source


class _Writer:
    """Writes the section's result after every piece, so a time-out still leaves what was measured."""

    def __init__(self, path: Path):
        self.path, self.result = path, {}

    def __setitem__(self, key, value):
        self.result[key] = value
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.result, indent=1, default=str))
        os.replace(tmp, self.path)


# --------------------------------------------------------------------------- sections (child processes)


def section_env(s: dict, dev: torch.device, w: _Writer) -> None:
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": _version("torchvision"), "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "device": str(dev), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
            "tf32_conv": torch.backends.cudnn.allow_tf32,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        info |= {"card": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
                 "capability": f"{p.major}.{p.minor}", "multiprocessors": p.multi_processor_count,
                 "visible_gpus": torch.cuda.device_count(), "bf16_supported": torch.cuda.is_bf16_supported(),
                 "nccl": _nccl_version()}
    else:
        info |= {"card": f"CPU ({platform.processor() or platform.machine()})", "visible_gpus": 0}
    w["info"] = info


def _nccl_version() -> str | None:
    try:
        v = torch.cuda.nccl.version()
    except (AttributeError, RuntimeError):
        return None
    return ".".join(map(str, v)) if isinstance(v, tuple) else str(v)


def _version(package: str) -> str | None:
    try:
        return __import__(package).__version__
    except ImportError:
        return None


def section_train(s: dict, dev: torch.device, w: _Writer) -> None:
    from jointlab.models import build_model
    from jointlab.train import TrainConfig, train_step

    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the trainer does
    pool, source = _cifar_pool(dev, s["batch"])
    w["data"] = source
    w["loader"] = _loader_speed(s)  # first: it is cheap, and a time-out later keeps it
    batches_per_epoch = EPOCH_IMAGES // s["batch"]
    runs = []
    for variant, (amp, channels_last) in VARIANTS.items():
        if amp and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
            continue
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        data = [(x.contiguous(memory_format=fmt), y) for x, y in pool]
        for method in s["methods"]:
            cfg = TrainConfig(method=method, dataset="cifar10", arch=s["arch"], batch_size=s["batch"],
                              amp=amp, channels_last=channels_last).resolved()
            torch.manual_seed(0)
            model = build_model(cfg.arch, 10, 3).to(dev, memory_format=fmt).train()
            opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                  weight_decay=cfg.weight_decay)

            def steps(k, model=model, opt=opt, cfg=cfg, data=data, amp=amp):
                for i in range(k):
                    x, y = data[i % len(data)]
                    train_step(model, model, x, y, opt, cfg, 10, amp)

            _timed(lambda: steps(s["warmup"]), dev)  # cuDNN autotuning, allocator
            _reset_peak(dev)
            seconds = _timed(lambda: steps(s["batches"]), dev)
            per_batch = seconds / s["batches"]
            runs.append({"method": method, "variant": variant, "amp": amp, "channels_last": channels_last,
                         "timed_batches": s["batches"], "s_per_batch": per_batch,
                         "images_per_s": s["batch"] / per_batch, "s_per_epoch": per_batch * batches_per_epoch,
                         "peak_mib": _peak_mib(dev)})
            w["runs"] = runs
            del model, opt
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    w["host_peak_rss_mib"] = _host_rss_mib()


def _loader_speed(s: dict) -> dict:
    """The trainer's loader over synthetic CIFAR-10 with augmentation: can it feed the card in time?"""
    from jointlab.data import load_dataset, make_loader

    data = load_dataset("synthetic-cifar", "train", limit=s["batch"] * s["loader_batches"], augment=True)
    loader = make_loader(data, s["batch"], shuffle=True, drop_last=True, seed=0)
    t = time.perf_counter()
    n = sum(1 for _ in loader)
    per_batch = (time.perf_counter() - t) / n
    return {"batches": n, "workers": 0, "s_per_batch": per_batch,
            "s_per_epoch": per_batch * (EPOCH_IMAGES // s["batch"])}


def section_bf16_flow(s: dict, dev: torch.device, w: _Writer) -> None:
    """T(x, ω + Δ) − T(x, ω) for a 0.05 px vector Δ at every pixel: the share of the pixels that change
    in fp32 but not in bf16, (a) with bf16 tensors (x and ω: the grid's coordinates are rounded) and
    (b) under bf16 autocast, where the warp stays fp32 but the first convolution casts x̄ to bf16."""
    from jointlab.threats import FlowBall
    from jointlab.warp import vector_sign, warp

    torch.manual_seed(0)
    pool, source = _cifar_pool(dev, s["flow_images"], count=1)
    n = len(pool[0][0])
    # natural images are smooth, random pixels are not: a pixel's change under a small flow is its
    # local gradient times the flow, so smooth images lose more to rounding. Both are measured.
    smooth = torch.nn.functional.interpolate(torch.rand(n, 3, 8, 8, device=dev) * 2 - 1, size=32,
                                             mode="bilinear", align_corners=True)
    sets = {source: pool[0][0].float(), "smooth images (8×8 noise, bilinear to 32×32)": smooth}
    flow = FlowBall(0.32).random_init(smooth)  # inside the paper's budget, 1 % of the side
    change = FLOW_CHANGE_PX * vector_sign(torch.randn_like(flow))  # a 0.05 px vector at every pixel

    def seen(a, b):  # per pixel: did any channel change?
        return (b.float() - a.float()).abs().amax(1) > 0

    out = {}
    for name, x in sets.items():
        a, b = warp(x, flow), warp(x, flow + change)
        ref = seen(a, b)
        tensors = seen(warp(x.bfloat16(), flow.bfloat16()), warp(x.bfloat16(), (flow + change).bfloat16()))
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            a16, b16 = warp(x, flow), warp(x, flow + change)
        cast = seen(a16.bfloat16(), b16.bfloat16())  # what the model's first layer sees under autocast
        changed = max(int(ref.sum()), 1)
        out[name] = {"pixels": ref.numel(), "changed_fp32": int(ref.sum()),
                     "lost_bf16_tensors": int((ref & ~tensors).sum()) / changed,
                     "lost_autocast_input": int((ref & ~cast).sum()) / changed,
                     "warp_dtype_under_autocast": str(a16.dtype).replace("torch.", "")}
    side = smooth.shape[-1]
    w["result"] = {"images": n, "flow_change_px": FLOW_CHANGE_PX, "eps_w": 0.32, "sets": out,
                   # bf16 keeps 8 significant bits: coordinates in [16, 32) become multiples of 1/8 px
                   "bf16_coordinate_spacing_px": torch.finfo(torch.bfloat16).eps * 2 ** math.floor(
                       math.log2(side - 1))}


def section_attack_cost(s: dict, dev: torch.device, w: _Writer) -> None:
    from jointlab import attacks as A
    from jointlab.evaluation import strong_evaluate
    from jointlab.models import build_model

    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model = build_model(s["arch"], 10, 3).to(dev).eval()
    pool, source = _cifar_pool(dev, s["attack_batch"], count=1)
    x, _ = pool[0]
    with torch.no_grad():
        y = model(x).argmax(1)  # every image starts correct, so every attack runs on the whole batch

    def bare(k):
        for _ in range(k):
            xg = x.clone().requires_grad_(True)
            torch.autograd.grad(torch.nn.functional.cross_entropy(model(xg), y, reduction="sum"), xg)

    calls = {"forward+backward": bare,
             "PGD step (pixel)": lambda k: A.pgd(model, x, y, 8, 2, k),
             "APGD step (pixel)": lambda k: A.apgd(model, x, y, 8, 0.32, k, "pixel"),
             "APGD step (spatial)": lambda k: A.apgd(model, x, y, 8, 0.32, k, "spatial"),
             "APGD step (joint, two passes)": lambda k: A.apgd(model, x, y, 8, 0.32, k, "joint")}
    for fn in calls.values():  # warm-up
        fn(1)
    _reset_peak(dev)
    n = s["attack_steps"]
    times = {k: [] for k in calls}
    for _ in range(s["attack_rounds"]):  # per step: (1 + n steps) − (1 step), interleaved rounds
        for k, fn in calls.items():
            times[k].append((_timed(lambda fn=fn: fn(1 + n), dev) - _timed(lambda fn=fn: fn(1), dev)) / n)
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    base = ms["forward+backward"]
    w["steps"] = {"data": source, "batch": len(x), "ms": ms,
                  "vs_forward_backward": {k: v / base for k, v in ms.items()}}
    done = {}

    def suite():
        done["report"] = strong_evaluate(model, (x, y), eps_x=8, eps_w=0.32, progress=False,
                                         diagnostics=False, batch_size=len(x), **s["suite"])

    seconds = _timed(suite, dev)
    report = done["report"]
    passes = report.passes["Union"] * report.images  # forward/backward images the suite counted
    per_pass_ms = 1000 * seconds / passes * len(x)  # per batch-sized pass
    w["strong_batch"] = {"settings": s["suite"], "images": report.images, "seconds": seconds,
                         "passes_per_image": report.passes["Union"],
                         "ms_per_counted_pass": per_pass_ms, "vs_forward_backward": per_pass_ms / base,
                         "accuracy": report.accuracy}
    w["peak_mib"] = _peak_mib(dev)
    w["host_peak_rss_mib"] = _host_rss_mib()


def section_ddp(s: dict, dev: torch.device, w: _Writer, out: Path) -> None:
    """`train` (one-step joint, a few steps) under torchrun on every visible GPU, and in one process."""
    world = torch.cuda.device_count() if dev.type == "cuda" else 1
    common = ["--ddp-worker", "--settings", json.dumps(s), "--device", dev.type]
    env = _child_env()
    if dev.type == "cpu":
        env["OMP_NUM_THREADS"] = "1"
    runs = {}
    for name, launcher in (("single", [sys.executable]),
                           ("ddp", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                    f"--nproc_per_node={world}"])):
        folder = out / f"ddp-{name}"
        cmd = [*launcher, str(Path(__file__).resolve()), *common, "--child-out", str(folder)]
        t = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=LIMITS["ddp"])
        if done.returncode:
            log = (done.stdout + done.stderr)[-3000:]
            raise RuntimeError(f"{name} run failed (exit {done.returncode}):\n{log}")
        runs[name] = json.loads((folder / "worker.json").read_text()) | {"seconds": time.perf_counter() - t}
        w["runs"] = runs
    a, b = runs["single"]["loss"], runs["ddp"]["loss"]
    rel = max(abs(p - q) / max(abs(p), 1e-12) for p, q in zip(a, b, strict=True))
    # one process: the same batches, random starts and weights; only cuDNN's algorithm choice may
    # differ. Several: other shards and per-GPU BatchNorm statistics, so only the same ballpark
    tol = 1e-3 if world == 1 else 5e-2
    w["check"] = {"world_size": world, "backend": runs["ddp"]["backend"], "max_relative_loss_difference": rel,
                  "tolerance": tol, "matches": rel <= tol}
    if rel > tol:
        raise AssertionError(f"DDP loss differs from the single-process run by {rel:.2e} (> {tol:g}): "
                             f"{a} vs {b}")


def ddp_worker(s: dict, device: str, out: Path) -> None:
    """One process of the DDP check (or the single-process reference): train, then report the loss."""
    import torch.distributed as dist

    from jointlab.train import TrainConfig, train

    cfg = TrainConfig(method="joint", dataset="synthetic-cifar", arch=s["arch"], batch_size=s["batch"],
                      epochs=1, limit=s["batch"] * s["ddp_steps"], eval_limit=0)
    dev = torch.device(device)
    result = train(cfg, out, device=device, progress=False)
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    peak = _peak_mib(dev)
    backend = dist.get_backend() if dist.is_initialized() else None
    rank = dist.get_rank() if dist.is_initialized() else 0
    if dist.is_initialized():
        dist.destroy_process_group()
    if rank == 0:
        (out / "worker.json").write_text(json.dumps({
            "loss": [h["loss"] for h in result.history], "images_per_s": result.history[-1]["images_per_s"],
            "backend": backend, "steps": s["ddp_steps"], "peak_mib": peak}))


def run_child(name: str, s: dict, device: str, out_file: Path, raise_in: str | None) -> None:
    dev = torch.device(device)
    w = _Writer(out_file)
    t = time.perf_counter()
    if name == raise_in:
        raise RuntimeError(f"rehearsed failure in section {name!r} (--raise-in)")
    fn = {"env": section_env, "train": section_train, "bf16_flow": section_bf16_flow,
          "attack_cost": section_attack_cost}.get(name)
    if fn is not None:
        fn(s, dev, w)
    else:
        section_ddp(s, dev, w, out_file.parent)
    w["section_seconds"] = time.perf_counter() - t


# --------------------------------------------------------------------------- the parent: run, report


def _run_section(name: str, s: dict, device: str, work: Path, limit: float, raise_in: str | None) -> dict:
    out_file = work / f"section-{name}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--settings", json.dumps(s),
           "--device", device, "--child-out", str(out_file)] + (["--raise-in", raise_in] if raise_in else [])
    env = _child_env()
    t = time.perf_counter()
    # a session of its own, so that a time-out also ends the section's children (torchrun's workers)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=limit)
        status = "ok" if proc.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
        status = "timeout"
    seconds = time.perf_counter() - t
    result = json.loads(out_file.read_text()) if out_file.exists() else {}
    entry = {"status": status, "seconds": round(seconds, 1), "limit_s": limit, "result": result}
    if status != "ok":
        entry["error"] = (f"no result after the section's limit of {limit:g} s"
                          if status == "timeout" else f"exit status {proc.returncode}")
        entry["log_tail"] = "\n".join(log.strip().splitlines()[-25:])
    return entry


def _child_env() -> dict:
    """The environment of a child process: this checkout first on PYTHONPATH (no install needed)."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return os.environ | {"PYTHONPATH": path}


def _memory(gpu_mib, host_mib) -> str:
    if gpu_mib is not None:
        return f"{gpu_mib:.0f} MiB GPU"
    return "– (no GPU)" if host_mib is None else f"{host_mib:.0f} MiB host RSS (no GPU)"


def _fmt(v, spec=".1f", none="–"):
    return none if v is None else format(v, spec)


def markdown(report: dict) -> str:
    meta, sec = report["meta"], report["sections"]
    info = sec.get("env", {}).get("result", {}).get("info", {})
    lines = [f"# GPU acceptance run ({'CPU rehearsal, --tiny' if meta['tiny'] else 'full'}): "
             f"{info.get('card', meta['device'])}", "",
             f"{meta['date']}, jointlab {meta['commit']}, torch {info.get('torch', torch.__version__)}"
             f" (CUDA {info.get('cuda')}, cuDNN {info.get('cudnn')}, NCCL {info.get('nccl', '–')}), "
             f"{meta['settings']['arch']}, batch {meta['settings']['batch']}. "
             f"Command: `{meta['command']}`", "",
             "| section | status | seconds | limit (s) |", "|---|---|---|---|"]
    lines += [f"| {n} | {e['status']} | {e['seconds']:.1f} | {e['limit_s']:g} |" for n, e in sec.items()]
    train = sec.get("train", {}).get("result", {})
    if train.get("runs"):
        s = meta["settings"]
        variants = list(dict.fromkeys(r["variant"] for r in train["runs"]))
        lines += ["", f"## Training: s/epoch (390 batches of {s['batch']}; {s['batches']} timed batches "
                  f"after {s['warmup']} warm-up; data: {train.get('data')})", "",
                  "| method | " + " | ".join(variants) + " | peak GPU memory (MiB) |",
                  "|---" * (len(variants) + 2) + "|"]
        for m in s["methods"]:
            by = {r["variant"]: r for r in train["runs"] if r["method"] == m}
            if by:
                peak = max((r["peak_mib"] or 0) for r in by.values()) or None
                lines.append(f"| {m} | " + " | ".join(_fmt(by[v]["s_per_epoch"]) if v in by else "–"
                                                      for v in variants) + f" | {_fmt(peak, '.0f')} |")
        if train.get("loader"):
            ld = train["loader"]
            lines += ["", f"The trainer's data loader alone (synthetic CIFAR-10 with augmentation, "
                      f"{ld['workers']} workers, {ld['batches']} batches): {ld['s_per_epoch']:.1f} s/epoch, "
                      f"outside the timed steps above."]
        if train.get("host_peak_rss_mib") and not any(r["peak_mib"] for r in train["runs"]):
            lines += ["", f"Peak memory: {_memory(None, train['host_peak_rss_mib'])}."]
        goal = report.get("goal", {})
        if goal:
            note = " (a CPU rehearsal: not a measurement of the goal)" if meta["tiny"] else ""
            lines += ["", f"Goal (one-step joint, bf16 + channels_last, ≤ {GOAL_S_PER_EPOCH:g} s/epoch on "
                      f"one H100/H200): {_fmt(goal['s_per_epoch'])} s/epoch, "
                      f"{'met' if goal['met'] else 'NOT met'}{note}."]
    flow = sec.get("bf16_flow", {}).get("result", {}).get("result")
    if flow:
        lines += ["", "## bf16 and small flow changes", "",
                  f"Share of the pixels whose T(x, ω + Δ) differs from T(x, ω) in fp32 (|Δ| = "
                  f"{flow['flow_change_px']} px at every pixel, ω in the {flow['eps_w']} px ball, "
                  f"{flow['images']} images) that show no change in bf16:", "",
                  "| images | bf16 tensors (x, ω) | bf16 autocast: the model's input | warp under autocast |",
                  "|---|---|---|---|"]
        lines += [f"| {name} | {100 * v['lost_bf16_tensors']:.1f} % | {100 * v['lost_autocast_input']:.1f} "
                  f"% | {v['warp_dtype_under_autocast']} |" for name, v in flow["sets"].items()]
        lines += ["", f"bf16 keeps 8 significant bits, so grid coordinates near the far edge of a 32-pixel "
                  f"image are multiples of {flow['bf16_coordinate_spacing_px']:g} px. The trainer "
                  f"therefore runs its attacks in fp32 and autocasts only the weight update."]
    cost = sec.get("attack_cost", {}).get("result", {})
    if cost.get("steps"):
        st = cost["steps"]
        lines += ["", f"## Attack cost (batch {st['batch']}, ms; ratio to a plain forward/backward)", "",
                  "| | ms | × forward/backward |", "|---|---|---|"]
        lines += [f"| {k} | {v:.2f} | {st['vs_forward_backward'][k]:.2f} |" for k, v in st["ms"].items()]
        sb = cost.get("strong_batch")
        if sb:
            lines += ["", f"Strong suite on one batch ({sb['settings']}, untrained model, labels = its own "
                      f"predictions): {sb['seconds']:.2f} s, {sb['passes_per_image']:.0f} counted passes per "
                      f"image, {sb['ms_per_counted_pass']:.2f} ms per batch-sized pass = "
                      f"{sb['vs_forward_backward']:.2f} × a forward/backward. Peak memory: "
                      f"{_memory(cost.get('peak_mib'), cost.get('host_peak_rss_mib'))}."]
    ddp = sec.get("ddp", {}).get("result", {})
    if ddp.get("check"):
        c, r = ddp["check"], ddp["runs"]
        loss = {k: ", ".join(f"{v:.5f}" for v in r[k]["loss"]) for k in r}
        lines += ["", f"## DDP ({c['backend']}, {c['world_size']} process(es), "
                  f"{meta['settings']['ddp_steps']} steps of one-step joint training)", "",
                  f"Epoch loss {loss['ddp']} under torchrun vs {loss['single']} in one process: max "
                  f"relative difference {c['max_relative_loss_difference']:.1e} "
                  f"(tolerance {c['tolerance']:g}): "
                  f"{'matches' if c['matches'] else 'DIFFERS'}. Peak memory (rank 0): "
                  f"{_memory(r['ddp'].get('peak_mib'), None)}."]
    failed = {n: e for n, e in sec.items() if e["status"] != "ok"}
    if failed:
        lines += ["", "## Failures", ""]
        for n, e in failed.items():
            lines += [f"### {n}: {e['status']} ({e['error']})", "", "```", e.get("log_tail", ""), "```", ""]
    return "\n".join(lines) + "\n"


def _commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="the CPU dress rehearsal: WRN-10-1, a few batches")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-gpu"), help="report folder (runs/bench-gpu)")
    p.add_argument("--sections", help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    p.add_argument("--limit", action="append", default=[], metavar="SECTION=SECONDS",
                   help="override a section's time limit (repeatable)")
    p.add_argument("--device", help="default: cuda (cpu with --tiny)")
    p.add_argument("--raise-in", metavar="SECTION", help="rehearse a failure: that section raises at once")
    # internal: one section in a child process, or one process of the DDP check
    p.add_argument("--child", choices=SECTIONS, help=argparse.SUPPRESS)
    p.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    p.add_argument("--settings", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child or args.ddp_worker:
        s = json.loads(args.settings)
        if args.ddp_worker:
            ddp_worker(s, args.device, Path(args.child_out))
        else:
            run_child(args.child, s, args.device, Path(args.child_out), args.raise_in)
        return 0

    sections = SECTIONS if not args.sections else tuple(x.strip() for x in args.sections.split(","))
    for name in [*sections, *([args.raise_in] if args.raise_in else [])]:
        if name not in SECTIONS:
            p.error(f"unknown section {name!r}; sections are {', '.join(SECTIONS)}")
    limits = dict(TINY_LIMITS if args.tiny else LIMITS)
    for item in args.limit:
        name, _, value = item.partition("=")
        try:
            limits[name] = float(value) if name in SECTIONS else p.error(f"--limit: unknown section {name!r}")
        except ValueError:
            p.error(f"--limit takes SECTION=SECONDS, e.g. train=300; got {item!r}")
    device = args.device or ("cpu" if args.tiny else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        p.error("no CUDA device is visible: run this on the GPU machine, or rehearse on the CPU with --tiny")
    s = TINY if args.tiny else FULL
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now().isoformat(" ", "seconds")
    report = {"meta": {"tiny": args.tiny, "device": device, "date": now,
                       "commit": _commit(), "host": platform.node(),
                       "command": shlex.join(["bench/gpu.py", *(argv if argv is not None else sys.argv[1:])]),
                       "settings": s, "limits": limits},
              "sections": {}}
    t0 = time.perf_counter()
    # the sections' own files and the DDP check's checkpoints go to a scratch folder: out/ keeps
    # the two report files alone (a device machine returns only a few files)
    with tempfile.TemporaryDirectory(prefix="jointlab-gpu-bench-") as work:
        for name in sections:
            print(f"[{time.perf_counter() - t0:6.1f} s] {name} (limit {limits[name]:g} s) ...", flush=True)
            entry = _run_section(name, s, device, Path(work), limits[name], args.raise_in)
            report["sections"][name] = entry
            print(f"[{time.perf_counter() - t0:6.1f} s] {name}: {entry['status']} in {entry['seconds']:.1f} s"
                  + (f" ({entry['error']})" if entry["status"] != "ok" else ""), flush=True)
    joint = [r for r in report["sections"].get("train", {}).get("result", {}).get("runs", [])
             if r["method"] == "joint" and r["amp"] and r["channels_last"]]
    if joint:
        report["goal"] = {"s_per_epoch": joint[0]["s_per_epoch"], "goal_s_per_epoch": GOAL_S_PER_EPOCH,
                          "met": joint[0]["s_per_epoch"] <= GOAL_S_PER_EPOCH}
    report["meta"]["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    text = markdown(report)
    (out / "report.md").write_text(text)
    print(text)
    print(f"report: {out / 'report.json'}, {out / 'report.md'} ({report['meta']['seconds']:.0f} s in all)")
    return 0 if all(e["status"] == "ok" for e in report["sections"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
