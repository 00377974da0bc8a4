# ecgcohort — the two commands a user needs:
#   make run    set up .venv if missing, run the workflow on config/config.yaml, write results/report.html
#   make test   set up .venv if missing, then run the whole test suite
#   make report only the HTML report of the last run (results/report.html)
#   make docs   the documentation site (docs/_build/html), warnings as errors
CORES ?= $(shell nproc)
SNAKEMAKE_ARGS ?=
# one pytest-xdist worker per core, a module per worker at a time (module fixtures built once)
PYTEST_ARGS ?= -n $(CORES) --dist loadfile
VENV := .venv
# the workflow's Python jobs forked from one process that has their libraries imported
# (src/ecgcohort/worker.py); `make run WORKER=` runs each job in its own interpreter instead
WORKER ?= $(VENV)/bin/python -m ecgcohort.worker run --

.PHONY: run test report env lock lint docs clean-results

run: env
	$(WORKER) $(VENV)/bin/snakemake --profile profiles/local --cores $(CORES) $(SNAKEMAKE_ARGS)
	$(VENV)/bin/snakemake --profile profiles/local --cores 1 $(SNAKEMAKE_ARGS) --report results/report.html

test: env
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

report: env
	$(VENV)/bin/snakemake --profile profiles/local --cores 1 $(SNAKEMAKE_ARGS) --report results/report.html

env:
	@tools/setup-env.sh

lock:
	tools/lock.sh

lint: env
	$(VENV)/bin/snakemake --lint

# The generated pages are written first (config reference, results tables), then the site is
# built with every warning an error; tests/test_docs.py checks both stay as their sources give.
docs: env
	$(VENV)/bin/python -m ecgcohort.config workflow/schemas/config.schema.yaml > docs/config.md
	$(VENV)/bin/python -m ecgcohort.reruns workflow/rerun_matrix.yaml > docs/reference/reruns.md
	$(VENV)/bin/python -m ecgcohort.readme_results update
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

clean-results:
	rm -rf results .snakemake
