# jointlab: `make demo` runs the main job, `make test` runs the checks, `make lab` opens the notebooks.
# Each target creates the virtual environment under .venv on first use (pip install -e '.[dev]').

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= runs/notebooks
BOOK ?= runs/book

PORT ?= 8866
# Jupyter servers refuse to run as root without this flag (CI and containers run as root)
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: help venv data lint test test-slow test-heavy demo models results book lab explore bench bench-gpu tensorboard clean

help:
	@echo "make demo   execute the notebook sequence (quick profile) into $(OUT): notebooks, figures, tables"
	@echo "make test   lint (ruff) + unit, notebook (nbval, cell by cell) and browser tests (pytest), ~14 min on 2 CPU cores"
	@echo "make test-slow  the AutoAttack cross-check and the kill/resume, sweep and GPU-rehearsal tests (~9 min); CI runs it after make test"
	@echo "make test-heavy the strong suite's default settings on 200 images per lesson model (~65 min; not in CI)"
	@echo "make models retrain and re-measure the shipped lesson models in models/ (~30 min on 2 CPU cores)"
	@echo "make results  the claims ledger's reference results, models/results.json (~2 h on 2 CPU cores, resumable)"
	@echo "make book   the static site of the notebooks make demo executed: $(BOOK)/html/index.html"
	@echo "make lab    open JupyterLab on notebooks/"
	@echo "make explore  serve the attack explorer app with Voila on http://localhost:$(PORT)/"
	@echo "make bench  time attack steps against a bare forward/backward (bench/README.md)"
	@echo "make bench-gpu  the GPU acceptance run on a card (<= 8 min; bench/gpu.sh --tiny rehearses it)"
	@echo "make tensorboard  training curves of every cached model (runs/cache)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	# torchattacks (the AutoAttack cross-check in tests/test_strong.py) pins requests~=2.25, which clashes
	# with Jupyter's requests>=2.31; it needs none of its pinned versions, so it goes in without them
	$(BIN)/python -m pip install --no-deps 'torchattacks==3.5.1'
	touch $(STAMP)

venv: $(STAMP)

data: venv
	$(BIN)/python -m jointlab.data prepare fashion-mnist

lint: venv
	$(BIN)/ruff check jointlab tests bench

# tests marked slow (the AutoAttack cross-check, the subprocess tests; ~9 min) run in `make test-slow`; CI runs both
test: lint data
	$(BIN)/python -m pytest -m "not slow and not heavy"

test-slow: data
	$(BIN)/python -m pytest -m slow

# the strong suite with its default settings on 200 images of every Table 1 lesson model (9-15 min each,
# ~65 min in all, measured; one at a time: .venv/bin/python -m pytest -m heavy -k madry; reports in runs/test-heavy/)
test-heavy: data
	$(BIN)/python -m pytest -m heavy

demo: data
	$(BIN)/python -m jointlab.notebooks run --out $(OUT)

# the quick profile's models, shipped in models/ so that notebooks and tests load them in seconds:
# retrains each one, measures the README's table, writes checkpoints + manifest.json (sha256, command)
models: data
	$(BIN)/python -m jointlab.zoo build --no-progress

# the claims ledger's reference results (jointlab/ledger.py): every shipped model on 1,000 test images,
# the scale experiment (trains 3,000- and 12,000-image models into runs/cache), the flow-budget curves;
# pieces already in models/results.json are kept (delete the file to start over), then the figures
results: data
	$(BIN)/python -m jointlab.ledger results
	$(BIN)/python -m jointlab.ledger figures

# needs the executed notebooks of `make demo` in $(OUT); builds offline, nothing is re-executed
book: venv
	$(BIN)/python -m jointlab.book build --notebooks $(OUT) --out $(BOOK)

lab: data
	$(BIN)/jupyter lab notebooks/ $(ROOT_FLAG)

# trains the explorer's two small models on first use (< 1 min on a CPU), then serves the app offline
explore: data
	$(BIN)/python -m jointlab.explorer prepare
	$(BIN)/voila notebooks/explorer.ipynb --port=$(PORT) $(VOILA_FLAGS)

bench: data
	$(BIN)/python bench/attacks.py

# every GPU check in one command and one report (bench/README.md, runbook); on the card itself run
# `bash bench/gpu.sh`, which needs no venv
bench-gpu: venv
	PYTHON=$(BIN)/python bash bench/gpu.sh $(BENCH_FLAGS)

# training curves of every cached model (the trainer writes TensorBoard scalars beside metrics.jsonl)
tensorboard: venv
	$(BIN)/tensorboard --logdir $(or $(JOINTLAB_RUNS),runs)/cache

clean:
	rm -rf $(VENV) runs tests/notebooks .pytest_cache .hypothesis
