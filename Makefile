# make repro: set up .venv (if needed) and run the DVC pipeline on the embedded default data
#             (SCALE=paper: the paper's scale, scales/paper.yaml, for a GPU).
# make test:  set up .venv (if needed) and run the test suite (what .ci/run calls).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install repro exps test bench clean-venv
install: $(STAMP)

# Re-runs only when the pins change; the package itself is an editable install.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $(STAMP)

# check-params first: a bad value stops here, before DVC empties any stage's outputs.
# SCALE=paper runs the paper's scale (scales/paper.yaml) as a DVC experiment.
SCALE ?=
repro: install
ifeq ($(SCALE),)
	$(BIN)/efficientnext check-params
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro
else
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc exp run $$($(BIN)/efficientnext set-args scales/$(SCALE).yaml)
endif

# dvc exp show in 120 columns: the test metrics that matter, then only the trained values that differ.
EXPS_VIEW := ^(?!(Experiment$$|dvclive/params\.yaml:(model|train)\.|(metrics/test\.json:)?(accuracy|macro_f1|ece)$$)).*
exps: install
	$(BIN)/dvc exp show --only-changed --drop '$(EXPS_VIEW)'

test: install
	# One torch thread per xdist worker: OpenMP threads oversubscribing the cores stall badly.
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n auto --dist loadgroup

bench: install
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

clean-venv:
	rm -rf $(VENV)
