# Two commands on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
CORES ?= all

.PHONY: demo test test-slurm clean-results

$(BIN)/activate: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps -e .
	touch $(BIN)/activate

demo: $(BIN)/activate
	$(BIN)/snakemake --cores $(CORES)
	@echo "Summary: results/$$($(BIN)/python -c 'import yaml; print(yaml.safe_load(open("config.yaml"))["dataset"]["name"])')/summary.tsv"

test: $(BIN)/activate
	$(BIN)/python -m pytest -q

# The pipeline through profiles/slurm on a throw-away local SLURM (needs root; apt-installs it).
test-slurm: $(BIN)/activate
	WSSS_SLURM=1 $(BIN)/python -m pytest -q -m slurm tests/test_slurm.py

clean-results:
	rm -rf results .snakemake
