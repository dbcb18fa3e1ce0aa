"""The notebook sequence: stored clean, and every notebook executes top to bottom in the quick
profile, cell by cell through nbval (tests/conftest.py; each notebook asserts its own sanity, so a
broken library fails there); here the lessons' structure and the executed outputs. Models come from
the shipped lesson models (models/), copied once into a cache the notebooks share."""

import json
from pathlib import Path

import conftest
import pytest
from conftest import NOTEBOOK_RUNS, PER_NOTEBOOK, TEST_PARAMETERS

from jointlab.notebooks import run, sequence

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ALL = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_the_sequence_is_complete():
    names = [nb.name[:2] for nb in sequence(NOTEBOOKS)]
    assert names == ["00", "01", "02", "03", "04", "05", "06", "07", "08"]


@pytest.mark.parametrize("path", ALL, ids=[p.name for p in ALL])
def test_notebook_is_stored_clean(path):
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert not any(c.get("outputs") or c.get("execution_count") for c in code), "strip the outputs"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and "profile = " in "".join(tagged[0]["source"])
    assert len({c["id"] for c in nb["cells"]}) == len(nb["cells"]), "every cell needs an id of its own"
    # narrative, parameters, calls and plots: the algorithms live in jointlab (autograd is the learner's
    # own in the exercise cells only)
    lesson = "".join("".join(c["source"]) for c in code if "exercise" not in c["metadata"].get("tags", []))
    for forbidden in ("autograd.grad", "class ", ".backward(", "grid_sample"):
        assert forbidden not in lesson, forbidden
    source = "".join("".join(c["source"]) for c in code)
    assert "assert " in source, "each notebook checks its own sanity"


def executed(prefix: str, runs: Path) -> Path:
    """The executed copy of one notebook: nbval's run of this session (conftest.py writes it to
    NOTEBOOK_RUNS), else a papermill run of it with the same test parameters (a test run alone)."""
    done = sorted(NOTEBOOK_RUNS.glob(f"{prefix}_*.ipynb")) if conftest.PREPARED else []
    if done:
        return done[0]
    out = runs / "notebooks"
    extra = next((v for k, v in PER_NOTEBOOK.items() if prefix.startswith(k)), {})
    timings = run([prefix], "quick", out, cache=runs / "cache", parameters=TEST_PARAMETERS | extra)
    return out / timings[0]["notebook"]


def test_the_notebooks_run_through_nbval():
    """Issue 19: `make test` executes the sequence through nbval, each cell an item of its own (the
    cells run first, conftest.pytest_collection_modifyitems), into executed copies with outputs."""
    copies = conftest.PREPARED
    if not copies:
        pytest.skip("the notebooks were not collected in this session (run `pytest` or `pytest tests`)")
    assert [c.name for c in copies] == [nb.name for nb in sequence(NOTEBOOKS)]
    for copy in copies:
        cells = json.loads(copy.read_text())["cells"]
        injected = [c for c in cells if "injected-parameters" in c["metadata"].get("tags", [])]
        assert len(injected) == 1 and "test_limit = 32" in "".join(injected[0]["source"])
        ran = NOTEBOOK_RUNS / copy.name
        assert ran.is_file(), f"{copy.name} was prepared but not executed"
        code = [c for c in json.loads(ran.read_text())["cells"] if c["cell_type"] == "code"]
        assert all(c["execution_count"] for c in code), f"{copy.name}: a cell did not run"


def _markdown(path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


@pytest.mark.parametrize("path", sequence(NOTEBOOKS), ids=[p.name for p in sequence(NOTEBOOKS)])
def test_notebook_teaches_a_lesson(path):
    """Issue 9's structure: goals, rendered equations, something to try, take-aways, questions."""
    cells = _markdown(path)
    text = "\n".join(cells)
    assert "## What you will learn" in text, "state the learning goals (and the run time)"
    assert any(c.lstrip().startswith("**Try this**") for c in cells), "give the learner something to try"
    assert "## Take-aways" in text
    assert "$" in text, "write the paper's equations in LaTeX"
    questions = text.split("## Check your understanding", 1)
    assert len(questions) == 2, "end with questions"
    answers = questions[1].count("<details><summary>Answer</summary>")
    assert 2 <= answers <= 3, "2-3 questions, each answer in a collapsed <details>"
    assert questions[1].count("</details>") == answers


EXERCISES = {"01": ("pgd",), "02": ("vector_sign", "project_flow"), "03": ("spatial_step", "spatial_attack"),
             "04": ("joint_step", "joint_attack"), "05": ("smooth_labels", "random_targets")}
LOOPS = {"01": "pgd", "03": "spatial_attack", "04": "joint_attack"}  # the learner computes the gradients


@pytest.mark.parametrize("prefix", sorted(EXERCISES))
def test_exercise_notebooks_carry_the_stub_and_the_checker(prefix):
    (path,) = [nb for nb in sequence(NOTEBOOKS) if nb.name.startswith(prefix)]
    nb = json.loads(path.read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    params = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    assert "solutions = False" in "".join(params["source"])
    source = "\n".join(code)
    assert "raise NotImplementedError" in source
    for name in EXERCISES[prefix]:
        assert f"check_{name}(" in source, name
    # the checker's verdict is checked by nbval (tests/conftest.py injects it as the expected output)
    checked = [c for c in nb["cells"] if "nbval-check-output" in c["metadata"].get("tags", [])]
    expected = "".join(c["metadata"]["jointlab"]["expect"] for c in checked)
    for name in EXERCISES[prefix]:
        assert f"{name}: " in expected and f"check_{name}(" in "".join("".join(c["source"]) for c in checked)
    # hints are folded away in the prose, not spelled out in the stub
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "<details><summary>Hint" in text
    stubs = [line for c in code for line in c.splitlines() if "YOUR CODE HERE" in line]
    assert all(line.strip() == "# YOUR CODE HERE" for line in stubs), stubs
    if prefix in LOOPS:  # a loop the learner writes with autograd, whose hint shows how
        assert "torch.autograd.grad" in text and f"SOLUTIONS[\"{LOOPS[prefix]}\"]" in source


# Percentages a lesson's prose may state without computing them: the paper's own numbers (its tables
# and the RobustBench re-evaluations it is compared with), budgets and thresholds quoted as definitions
# (1 % of the side, the diagnostics' 2 %, ~0 %, the 95 % of an interval), and the standard-error rule of
# thumb (50 %).
PAPER_NUMBERS = {95.6, 0.0, 0.1, 85.7, 44.9, 45.6, 11.6, 65.7, 53.1, 31.8, 23.8, 48.5, 59.8, 76.4, 94.1, 58.6,
                 29.4, 60.6, 36.6, 68.7, 88.0, 91.0, 90.5, 79.8}
DEFINITIONS = {1.0, 2.0, 50.0, 93.0, 95.0}
HYPOTHETICAL = {60.0, 35.0}  # the numbers of a question in "Check your understanding"


def _percentages(text: str) -> list[float]:
    import re

    return [float(m.group(1)) for m in re.finditer(r"(?<![\w.])(\d+(?:\.\d+)?)\s?%", text)]


@pytest.mark.parametrize("path", sequence(NOTEBOOKS)[1:8], ids=[p.name for p in sequence(NOTEBOOKS)[1:8]])
def test_prose_states_no_hand_typed_measurement(path):
    """Issue 19: every measured percentage a lesson reads out is formatted by code from the output it
    describes; the static prose holds only the allowed exceptions (the paper's numbers, definitions)."""
    cells = _markdown(path)
    questions = "\n".join(c for c in cells if "## Check your understanding" in c)
    prose = "\n".join(c for c in cells if "## Check your understanding" not in c)
    typed = [v for v in _percentages(prose) if v not in PAPER_NUMBERS | DEFINITIONS]
    typed += [v for v in _percentages(questions) if v not in PAPER_NUMBERS | DEFINITIONS | HYPOTHETICAL]
    assert not typed, f"hand-typed percentages in {path.name}: {typed}"


def test_notebook_4_draws_fig_2_and_writes_eq_11():
    (path,) = [nb for nb in sequence(NOTEBOOKS) if nb.name.startswith("04")]
    text = "\n".join(_markdown(path))
    cells = json.loads(path.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "Fig. 2" in text and "\\tag{Eq. 11}" in text and r"\min_{\theta}" in text
    assert "plot_computational_graph()" in code


@pytest.mark.parametrize("prefix", [nb.name[:2] for nb in sequence(NOTEBOOKS)[1:8]])
def test_every_accuracy_table_carries_its_error(prefix, quick_runs):
    """In the executed lessons 01-07, every Markdown table of accuracies carries ± (the paper's own
    tables and the table of forward/backward passes excepted)."""
    tables = []
    for cell in json.loads(executed(prefix, quick_runs).read_text())["cells"]:
        for o in cell.get("outputs", []):
            text = "".join(o.get("data", {}).get("text/markdown", ""))
            if "|---" in text and ("accuracy" in text.lower() or "acc (%)" in text):
                tables.append(text)
    assert tables or prefix in ("03",), f"notebook {prefix} shows no accuracy table"
    for text in tables:
        if "paper's" in text.split("\n\n")[0] or "passes" in text.split("\n\n")[0].lower():
            continue
        assert "±" in text, f"notebook {prefix}: a table without its standard error:\n{text[:400]}"


RAW_REPRS = ("DatasetSpec(", "PosixPath(", "<jointlab.", " object at 0x", "Profile(")
ABSOLUTE = ("/work/", "/tmp/", "/home/", "/root/", "/usr/", "site-packages")


def _output_texts(output: dict) -> list[str]:
    data = output.get("data", {})
    texts = [output.get("text", ""), data.get("text/plain", ""), data.get("text/markdown", "")]
    return ["".join(t) if isinstance(t, list) else t for t in texts]


@pytest.mark.parametrize("prefix", [nb.name[:2] for nb in sequence(NOTEBOOKS)])
def test_executed_outputs_are_clean(prefix, quick_runs):
    """Issue 19: no kernel warnings or stderr, no progress widgets, no absolute paths and no raw reprs in
    what a learner reads, and every static slider panel (the book's kernel-free copy) under 300 KB."""
    for i, cell in enumerate(json.loads(executed(prefix, quick_runs).read_text())["cells"]):
        for output in cell.get("outputs", []):
            where = f"notebook {prefix}, cell {i}"
            stderr = "".join(output.get("text", "")) if output.get("name") == "stderr" else ""
            assert not stderr, f"{where}: stderr output {stderr[:300]}"
            for text in _output_texts(output):
                assert "FloatProgress" not in text and "it/s]" not in text, f"{where}: a progress bar"
                for bad in RAW_REPRS + ABSOLUTE:
                    assert bad not in text, f"{where}: {bad!r} in {text[:300]!r}"
            html = "".join(output.get("data", {}).get("text/html", ""))
            if "jl-static-panel" in html:
                size = len(html.encode())
                assert size <= 300_000, f"{where}: a static slider panel of {size // 1000} KB"
