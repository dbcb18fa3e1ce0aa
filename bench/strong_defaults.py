"""The strong suite's default settings beside notebook 06's cheap ones, per lesson model, as one Markdown
table: reads the reports `make test-heavy` writes to runs/test-heavy/<method>.json (which checks fired,
the worst-case columns of both settings with their standard errors, and the minutes each took).

    python bench/strong_defaults.py [--folder runs/test-heavy] [--out bench/results/strong-defaults/README.md]

With --out, the reports are also copied beside the table (<out folder>/<method>.json: runs/ is not
committed), and those already there for models the folder lacks stay in the table, so that models run
in different sessions add up to one table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jointlab.evaluation import WORST_COLUMNS
from jointlab.ledger import MODELS

COLUMNS = (*WORST_COLUMNS.values(), "Union")


def read(folder: Path) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def table(reports: dict) -> str:
    names = sorted(reports, key=lambda m: (MODELS.index(m) if m in MODELS else len(MODELS), m))
    lines = ["# The strong suite's default settings beside notebook 06's, per lesson model", "",
             "Written by `python bench/strong_defaults.py` from the reports of `make test-heavy`. "
             "Accuracies in % ± binomial standard error on the same test images; the test passes when no "
             "diagnostic fires with the defaults but those `FIRE_AT_DEFAULTS` in tests/test_strong.py names "
             "(and explains), and every column differs by at most the last one (2 s.e., at least 2 points).",
             "",
             "| model | images | column | default | notebook 06 | default − nb06 | 2 s.e. |",
             "|---|---|---|---|---|---|---|"]
    notes = []
    for m in names:
        d, c = reports[m]["default"], reports[m]["notebook_06"]
        for col in COLUMNS:
            a, b = d["accuracy"][col], c["accuracy"][col]
            se_a, se_b = d["stderr"][col], c["stderr"][col]
            lines.append(f"| {m} | {d['images']} | {col} | {a:.1f} ± {se_a:.1f} | {b:.1f} ± {se_b:.1f} "
                         f"| {a - b:+.1f} | {2 * max(se_a, se_b, 1.0):.1f} |")
        fired = [f"{x['name']} ({x['detail']})" for x in d["diagnostics"] if x["fired"]]
        seconds = reports[m].get("seconds")
        took = (f"; {seconds['default'] / 60:.1f} min with the defaults, "
                f"{seconds['notebook_06'] / 60:.1f} min with notebook 06's settings" if seconds else "")
        notes.append(f"- {m}: {d['settings']['ensemble']}; fired: {', '.join(fired) or 'none'}; "
                     f"{d['passes_per_image']['Union']:.0f} passes per image (Union){took}")
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("runs/test-heavy"))
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    reports = read(args.folder)
    if args.out:  # keep the reports beside the table, adding to those an earlier session kept there
        reports = {**read(args.out.parent), **reports}
    if not reports:
        raise SystemExit(f"no reports in {args.folder}: run `make test-heavy` (pytest -m heavy -k METHOD)")
    text = table(reports)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        for method, report in reports.items():
            (args.out.parent / f"{method}.json").write_text(json.dumps(report, indent=1))
        args.out.write_text(text)
    return text


if __name__ == "__main__":
    main()
