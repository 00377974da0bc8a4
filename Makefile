# ecgcohort — the two commands a user needs:
#   make run    set up .venv if missing, run the workflow on config/config.yaml, write results/report.html
#   make test   set up .venv if missing, then run the whole test suite
#   make report only the HTML report of the last run (results/report.html)
CORES ?= $(shell nproc)
SNAKEMAKE_ARGS ?=
PYTEST_ARGS ?=
VENV := .venv

.PHONY: run test report env lock lint docs clean-results

run: env
	$(VENV)/bin/snakemake --profile profiles/local --cores $(CORES) $(SNAKEMAKE_ARGS)
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

docs: env
	$(VENV)/bin/python -m ecgcohort.config workflow/schemas/config.schema.yaml > docs/config.md

clean-results:
	rm -rf results .snakemake
