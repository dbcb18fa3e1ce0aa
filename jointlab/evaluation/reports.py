"""Reports: the strong evaluation's result (accuracy ± standard error per column, passes, diagnostics,
per-image records), Markdown tables, and the provenance every saved result carries."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .metrics import standard_error

__all__ = ["Diagnostic", "RobustnessReport", "UNION_NOTE", "markdown_table", "provenance", "write_json"]

UNION_NOTE = ("Union is the worst case of the joint threat (its set contains the pixel and the flow "
              "balls), so Joint (worst) ≥ Union. Worst cases and Union count every image an attack inside "
              "the budget broke, the diagnostics' included (one more restart, a random point, a transferred "
              "attack).")


@dataclass
class Diagnostic:
    """One check of the gradient-masking checklist: fired or not, in plain words with its numbers."""

    name: str
    fired: bool
    detail: str

    def __str__(self) -> str:
        return f"[{'FIRED' if self.fired else 'ok'}] {self.name}: {self.detail}"


@dataclass
class RobustnessReport:
    """Accuracy (%) per column with its standard error, the forward/backward passes per image that
    each column cost, and the gradient-masking diagnostics; `probes` holds their measurements per
    threat (% of the images): accuracy at the huge budget, at a random point and under the transferred
    attack, and the share one more APGD-DLR restart broke."""

    accuracy: dict[str, float]
    stderr: dict[str, float]
    passes: dict[str, float]
    images: int
    diagnostics: list[Diagnostic] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    probes: dict[str, dict[str, float]] = field(default_factory=dict)
    # per image, in the order of the data: label, clean prediction, 1/0 per column, and per threat
    # which attack broke it first ("clean": misclassified already; None: robust)
    records: dict = field(default_factory=dict)

    @property
    def fired(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.fired]

    def markdown(self, name: str = "model") -> str:
        cols = list(self.accuracy)
        lines = [
            f"Accuracy (%) on {self.images} images ± standard error; passes: forward/backward passes per "
            "image.",
            "",
            "| model | " + " | ".join(cols) + " |",
            "|---" * (len(cols) + 1) + "|",
            f"| {name} | " + " | ".join(f"{self.accuracy[c]:.1f} ± {self.stderr[c]:.1f}" for c in cols)
            + " |",
            "| passes | " + " | ".join(f"{self.passes.get(c, 0):.0f}" for c in cols) + " |",
            "",
        ]
        fired = self.fired
        if "Union" in self.accuracy:
            lines += [UNION_NOTE, ""]
        lines.append(f"Gradient-masking diagnostics: {len(fired)} of {len(self.diagnostics)} fired"
                     + (":" if fired else "."))
        lines += [f"- **{d.name}**: {d.detail}" for d in fired]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "stderr": self.stderr, "passes_per_image": self.passes,
                "images": self.images, "settings": self.settings, "probes": self.probes,
                "diagnostics": [{"name": d.name, "fired": d.fired, "detail": d.detail}
                                for d in self.diagnostics], "records": self.records}


def _cell(accuracy: float, images: int | None) -> str:
    return f"{accuracy:.1f}" if images is None else f"{accuracy:.1f} ± {standard_error(accuracy, images):.1f}"


def markdown_table(rows: dict[str, dict[str, float]], caption: str | None = None,
                   images: int | dict[str, int] | None = None) -> str:
    """Rows (model name -> {column: accuracy %}) as a Markdown table in the paper's layout; with
    `images` (the number each accuracy was measured on, or a dict of it per row: rows it leaves out,
    such as the paper's, get none) every cell carries its standard error."""
    if not rows:
        raise ValueError("rows must hold at least one model")
    per_row = images if isinstance(images, dict) else dict.fromkeys(rows, images)
    columns = list(dict.fromkeys(c for r in rows.values() for c in r))
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(r[c], per_row.get(name)) if c in r and r[c] == r[c]
                                                 else "–" for c in columns) + " |")
    return (f"{caption}\n\n" if caption else "") + "\n".join(lines) + "\n"


def provenance(seed: int | None = None, device=None) -> dict:
    """What produced a result: versions of jointlab, torch and torchvision, the git commit of the
    checkout (when there is one), the seed, the device and the full command line."""
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    import torchvision

    from .. import __version__

    try:
        commit = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"jointlab": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "git_commit": commit, "seed": seed, "device": str(device) if device is not None else None,
            "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])}


def write_json(path, obj) -> None:
    """Write `obj` as JSON atomically (a killed run leaves the old file or the new one, never half)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)
