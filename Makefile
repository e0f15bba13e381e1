# The two commands of the quick start: `make demo` and `make test`. Each bootstraps what it needs.
SHELL := /bin/bash
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test lint unit molecule bootstrap

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	relpromote demo --workdir relpromote-demo

lint: bootstrap
	ruff check relpromote tests benchmarks
	mypy
	ansible-lint -q --profile production roles playbooks

unit: bootstrap
	pytest -q tests/unit tests/cli

molecule: bootstrap
	@for scenario in $$(ls molecule); do molecule test -s $$scenario || exit 1; done

test:
	@scripts/bootstrap.sh --system
	$(MAKE) --no-print-directory lint
	pytest -q -n 2 --durations=10 tests
	$(MAKE) --no-print-directory molecule
