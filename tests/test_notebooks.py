"""The notebook sequence: stored clean, and every notebook executes top to bottom in the quick
profile (each asserts its own sanity, so a broken library fails here). Models are trained once
into a shared cache by the first notebook that needs them."""

import json
from pathlib import Path

import pytest

from jointlab.notebooks import run, sequence

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_the_sequence_is_complete():
    names = [nb.name[:2] for nb in sequence(NOTEBOOKS)]
    assert names == ["00", "01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", ALL, ids=[p.name for p in ALL])
def test_notebook_is_stored_clean(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert not any(c.get("outputs") or c.get("execution_count") for c in code), "strip the outputs"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and "profile = " in "".join(tagged[0]["source"])
    source = "".join("".join(c["source"]) for c in code)
    # narrative, parameters, calls and plots: the algorithms live in jointlab
    for forbidden in ("autograd.grad", "class ", ".backward(", "grid_sample"):
        assert forbidden not in source, forbidden
    assert "assert " in source, "each notebook checks its own sanity"


@pytest.mark.parametrize("prefix", [nb.name[:2] for nb in sequence(NOTEBOOKS)])
def test_notebook_executes_in_the_quick_profile(prefix, quick_runs):
    out = quick_runs / "notebooks"
    timings = run([prefix], "quick", out, cache=quick_runs / "cache")
    executed = json.loads((out / timings[0]["notebook"]).read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
