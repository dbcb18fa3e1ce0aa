"""Build the static site ("book") of the executed notebook sequence with Sphinx + MyST-NB.

    python -m jointlab.book build                                  # runs/notebooks -> runs/book/html
    python -m jointlab.book build --notebooks /tmp/nb --out /tmp/book

Nothing is executed: the pages show the outputs `make demo` stored in the notebooks. The sources
(`book/`: conf.py, the landing page, the explorer page, screenshots) are staged with the executed
notebooks and a generated results page; MathJax is copied from the pip package
`django-static-mathjax`, so the site works offline and opens from disk (file://).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .notebooks import sequence
from .profiles import repo_root, runs_dir

__all__ = ["stage", "build", "main"]

LIVE_NOTE = ('<p class="jl-live-note"><em>A live slider panel is here when the notebook runs in Jupyter; '
             "the precomputed copy below works in this page.</em></p>")


def _static_notebook(nb: dict) -> dict:
    """Widget views need a kernel: replace each by a note, and drop the stored widget state."""
    nb["metadata"].pop("widgets", None)
    for cell in nb["cells"]:
        for i, out in enumerate(cell.get("outputs", [])):
            if "application/vnd.jupyter.widget-view+json" in out.get("data", {}):
                cell["outputs"][i] = {"output_type": "display_data", "metadata": {},
                                      "data": {"text/html": LIVE_NOTE}}
    return nb


def results_page(executed: Path) -> str:
    """The results of the run: timings, the tables the notebooks wrote, every saved figure."""
    lines = ["# Results of the executed run", "",
             f"Everything on this page was written by the notebooks into `{executed.name}/` "
             "(`make demo`: the quick profile on a CPU).", ""]
    timings = executed / "timings.json"
    if timings.exists():
        rows = json.loads(timings.read_text())
        lines += ["## Time per notebook", "", "| notebook | seconds |", "|---|---|"]
        lines += [f"| {t['notebook']} | {t['seconds']:.0f} |" for t in rows] + [""]
    for table in sorted(executed.glob("*.md")):
        lines += [f"## {table.stem}", "", table.read_text(), ""]
    figures = sorted((executed / "figures").glob("*.png"))
    if figures:
        lines += ["## Figures", ""]
        for fig in figures:
            lines += [f"### {fig.stem}", "", f"![{fig.stem}](_static/figures/{fig.name})", ""]
    return "\n".join(lines)


def stage(executed: str | Path, src: str | Path) -> Path:
    """Sphinx sources in `src`: book/, the executed notebooks 00-08, the results page, MathJax."""
    try:
        import mathjax  # the pip package django-static-mathjax
        import myst_nb  # noqa: F401
    except ImportError as e:
        raise ImportError(f"the book needs Sphinx, MyST-NB and MathJax: pip install -e '.[book]' "
                          f"({e})") from e
    executed, src = Path(executed), Path(src)
    notebooks = [executed / nb.name for nb in sequence()]
    missing = [nb.name for nb in notebooks if not nb.exists()]
    if missing:
        raise FileNotFoundError(f"executed notebooks missing in {executed}: {missing}; run `make demo` "
                                f"(or python -m jointlab.notebooks run --out {executed}) first")
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(repo_root() / "book", src)
    for nb in notebooks:
        (src / nb.name).write_text(json.dumps(_static_notebook(json.loads(nb.read_text()))))
    static = src / "_static"
    if (executed / "figures").exists():
        shutil.copytree(executed / "figures", static / "figures", dirs_exist_ok=True)
    (src / "results.md").write_text(results_page(executed))
    mj = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / "tex-svg-full.js"
    (static / "mathjax").mkdir(parents=True, exist_ok=True)
    shutil.copy(mj, static / "mathjax" / mj.name)
    return src


def build(executed: str | Path | None = None, out: str | Path | None = None) -> Path:
    """Stage the sources and run sphinx-build; returns the site's index.html."""
    executed = Path(executed) if executed else runs_dir() / "notebooks"
    out = Path(out) if out else runs_dir() / "book"
    start = time.perf_counter()
    src = stage(executed, out / "src")
    html = out / "html"
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-E", "-j", "auto",
           "-d", str(out / "doctrees"), str(src), str(html)]
    subprocess.run(cmd, check=True)
    size = sum(f.stat().st_size for f in html.rglob("*") if f.is_file())
    print(f"book built in {time.perf_counter() - start:.0f} s: {html / 'index.html'} ({size / 1e6:.1f} MB)")
    return html / "index.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jointlab.book", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the static site from executed notebooks")
    b.add_argument("--notebooks", help="folder of executed notebooks (default: runs/notebooks)")
    b.add_argument("--out", help="output folder; the site lands in OUT/html (default: runs/book)")
    args = parser.parse_args(argv)
    try:
        build(args.notebooks, args.out)
    except FileNotFoundError as e:
        parser.exit(2, f"error: {e}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
