"""The lesson models shipped in models/: every model the notebooks, the explorer and the tests load
in the quick profile, trained once so that a learner gets them in seconds instead of minutes.

    python -m jointlab.zoo build                 # `make models`: retrain all, measure, write models/
    python -m jointlab.zoo build --only joint    # retrain one (the others keep their files)
    python -m jointlab.zoo verify                # every file against its sha256 in the manifest
    python -m jointlab.zoo table                 # the measured table (Table 1 layout, CE and CW columns)

`load_or_train` finds a shipped model by its config key (models/manifest.json) and copies it into the
cache; change anything of the config (arch, epochs, a budget) and that model is trained as before.
Checkpoints hold weights and plain data only (loaded with `torch.load(weights_only=True)`).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from .data import load_dataset
from .evaluation import evaluate, markdown_table, standard_error
from .profiles import get_profile, runs_dir
from .train import (
    CheckpointError,
    TrainConfig,
    file_sha256,
    load_checkpoint,
    load_model,
    models_dir,
    save_checkpoint,
    train,
)

__all__ = ["LESSONS", "TABLE_ROWS", "lesson_configs", "build", "verify", "read_manifest", "table_markdown",
           "main"]

# name -> (method, overrides of the quick profile, who loads it)
LESSONS = {
    "natural": ("natural", {}, "notebooks 01, 02, 05, 06; the explorer"),
    "madry": ("madry", {}, "notebooks 03, 04, 05, 06; tests/test_strong.py (AutoAttack cross-check)"),
    "bilateral": ("bilateral", {}, "notebooks 05, 06"),
    "spatial": ("spatial", {}, "notebooks 05, 06"),
    "joint": ("joint", {}, "notebooks 05, 06, 07; the explorer"),
    "joint-seed1": ("joint", {"seed": 1}, "notebook 06 (Table 5: the siamese source of transfer attacks)"),
    "joint-1k": ("joint", {"limit": 1000}, "notebook 05 (label smoothing δ_s = 0.5)"),
    "joint-1k-onehot": ("joint", {"limit": 1000, "smoothing": "none"}, "notebook 05 (δ_s = 0, one-hot)"),
    # the training attacks of Tables 2 and 3, for the claims ledger (jointlab.ledger, notebook 07)
    "cascade": ("cascade", {}, "notebook 07 and the ledger (Table 2)"),
    "one-pass": ("one-pass", {}, "notebook 07 and the ledger (Table 2)"),
    "joint-ps": ("joint", {"order": "ps"}, "notebook 07 and the ledger (Table 3)"),
}
TABLE_ROWS = ("natural", "madry", "bilateral", "spatial", "joint")  # the Table 1 rows of the README
# tests/conftest.py's `trained_model`: a small natural model whose attack accuracies sit mid-range
TEST_FIXTURE = TrainConfig(method="natural", arch="wrn-10-2", limit=4000, epochs=3, eval_limit=0, seed=0)
TABLE_IMAGES = 500  # test images of the measured table


def lesson_configs() -> dict[str, tuple[TrainConfig, str]]:
    """Every shipped model's training config and who uses it, by name."""
    P = get_profile("quick")
    configs = {name: (P.train_config(method, **overrides), used) for name, (method, overrides, used)
               in LESSONS.items()}
    return configs | {"tests": (TEST_FIXTURE, "tests/conftest.py (trained_model)")}


def read_manifest(folder: str | Path | None = None) -> dict:
    folder = Path(folder) if folder else models_dir()
    path = folder / "manifest.json" if folder else None
    if path is None or not path.is_file():
        raise FileNotFoundError(f"no manifest at {path}; `make models` builds the lesson models")
    return json.loads(path.read_text())


def table_markdown(manifest: dict) -> str:
    """The measured rows in the Table 1 layout, with the standard error of the hardest column."""
    rows = {m["name"]: m["accuracy"] for m in manifest["models"] if m.get("accuracy")}
    t = manifest["table"]
    caption = (f"Lesson models (quick profile: {t['dataset']}, {t['arch']}, {t['train_images']} training "
               f"images, {t['epochs']} epochs): accuracy (%) on {t['images']} test images, "
               f"ε_x = {t['eps_x']:g}, ε_ω = {t['eps_w']:g} px, {t['steps']}-step attacks; ± ≤ "
               f"{standard_error(50.0, t['images']):.1f} pt (one standard error)")
    return markdown_table(rows, caption)


def _slim(src: Path, dst: Path) -> Path:
    """The finished checkpoint without optimizer, scheduler and RNG state (what loading needs)."""
    ckpt = load_checkpoint(src)
    keep = {k: ckpt[k] for k in ("config", "epoch", "model", "history", "torch_version")}
    return save_checkpoint(dst, keep)


def build(names: list[str] | None = None, folder: str | Path | None = None, *, images: int = TABLE_IMAGES,
          device: str | None = None, progress: bool = True) -> dict:
    """Train the lesson models (resuming in runs/models-build), measure them, write the checkpoints,
    manifest.json and README.md into `folder` (default: models/)."""
    configs = lesson_configs()
    unknown = set(names or ()) - set(configs)
    if unknown:
        raise ValueError(f"names must be among {sorted(configs)}; got {sorted(unknown)}")
    folder = Path(folder) if folder else Path(__file__).resolve().parents[1] / "models"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        old = {m["name"]: m for m in read_manifest(folder)["models"]}
    except FileNotFoundError:
        old = {}
    P = get_profile("quick", device=device)
    x, y = load_dataset(P.dataset, "test", limit=images, seed=P.seed + 1).batch()
    entries = {}
    for name, (cfg, used) in configs.items():
        if names and name not in names and name in old:
            entries[name] = old[name]
            continue
        key = f"{cfg.method}-{cfg.key()}"
        print(f"[{name}] training {key} ...", flush=True)
        start = time.perf_counter()
        # a build folder apart from the cache: `make models` retrains, it never copies a shipped file back
        result = train(cfg, runs_dir() / "models-build" / key, resume=True, device=P.device,
                       progress=progress)
        seconds = time.perf_counter() - start
        file = _slim(result.checkpoint, folder / f"{key}.pt")
        entry = {"name": name, "file": file.name, "sha256": file_sha256(file), "bytes": file.stat().st_size,
                 "used_by": used, "config": result.config.to_dict(),
                 "command": f"python -m jointlab.zoo build --only {name}",
                 "train_seconds": round(seconds, 1), "device": str(P.device),
                 "final_test_acc": result.history[-1].get("test_acc")}
        if name in TABLE_ROWS:
            model = load_model(file, P.device)
            torch.manual_seed(0)
            entry["accuracy"] = evaluate(model, (x, y), "quick", eps_x=P.eps_x, eps_w=P.eps_w,
                                         steps=P.attack_steps, progress=progress)
            row = {k: round(v, 1) for k, v in entry["accuracy"].items()}
            print(f"[{name}] {json.dumps(row)}", flush=True)
        entries[name] = entry
    manifest = {
        "about": "jointlab lesson models: `make models` (python -m jointlab.zoo build) rebuilds this folder",
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch_version": str(torch.__version__),
        "table": {"dataset": P.dataset, "arch": P.arch, "train_images": P.limit, "epochs": P.epochs,
                  "images": images, "test_seed": P.seed + 1, "eps_x": P.eps_x, "eps_w": P.eps_w,
                  "steps": P.attack_steps, "suite": "quick"},
        "models": [entries[n] for n in configs],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (folder / "README.md").write_text(_readme(manifest))
    print(table_markdown(manifest))
    return manifest


def _readme(manifest: dict) -> str:
    lines = ["# Lesson models", "",
             "Small checkpoints of every model the notebooks, the explorer and the tests load in the quick "
             "profile. `load_or_train` copies one into the model cache when a run asks for its exact config "
             "(sha256-checked, loaded with `weights_only=True`); any other config is trained as usual. "
             "`make models` retrains and re-measures them all (about 25 minutes on 2 CPU cores); "
             "`python -m jointlab.zoo verify` checks the files.", "",
             "| name | file | MB | clean (%) | trained in | used by | rebuild |",
             "|---|---|---|---|---|---|---|"]
    for m in manifest["models"]:
        acc = m["final_test_acc"]
        clean = "–" if acc is None else f"{100 * acc:.1f}"
        lines.append(f"| {m['name']} | `{m['file']}` | {m['bytes'] / 1e6:.2f} | {clean} | "
                     f"{m['train_seconds']:.0f} s ({m['device']}) | {m['used_by']} | `{m['command']}` |")
    lines += ["", "Clean accuracy: on the first images of the test set the trainer evaluates each epoch "
              "(none for the test fixture).", "", table_markdown(manifest)]
    return "\n".join(lines) + "\n"


def verify(folder: str | Path | None = None) -> list[str]:
    """Problems with the shipped files (empty: every file is present, loads safely and matches)."""
    folder = Path(folder) if folder else models_dir()
    problems = []
    for m in read_manifest(folder)["models"]:
        path = folder / m["file"]
        if not path.is_file():
            problems.append(f"{m['name']}: {path} is missing")
        elif file_sha256(path) != m["sha256"]:
            problems.append(f"{m['name']}: {path} does not match its sha256")
        else:
            try:
                load_checkpoint(path)
            except CheckpointError as e:
                problems.append(f"{m['name']}: {e}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jointlab.zoo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="retrain and measure the lesson models, write models/")
    b.add_argument("--only", nargs="+", metavar="NAME", help=f"some of {sorted(lesson_configs())}")
    b.add_argument("--out", help="folder (default: models/ of the checkout)")
    b.add_argument("--images", type=int, default=TABLE_IMAGES, help="test images of the table")
    b.add_argument("--device", help="cpu, cuda, ... (default: cuda if available)")
    b.add_argument("--no-progress", action="store_true")
    sub.add_parser("verify", help="check every shipped file against the manifest")
    sub.add_parser("table", help="print the measured table")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(args.only, args.out, images=args.images, device=args.device, progress=not args.no_progress)
        elif args.command == "verify":
            problems = verify()
            print("\n".join(problems) or "every shipped model matches its manifest")
            return 1 if problems else 0
        else:
            print(table_markdown(read_manifest()))
    except (ValueError, FileNotFoundError) as e:
        parser.exit(2, f"error: {e}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
