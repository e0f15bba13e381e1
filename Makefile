# The two commands of the quick start: `make demo` and `make test`. Each bootstraps what it needs.
SHELL := /bin/bash
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test lint unit molecule bootstrap mutate

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

# Mutation score of the modules that decide or protect ([tool.mutmut] in pyproject.toml), a few at a time:
# make mutate MODULES="relpromote.artifact relpromote.identity". Not part of `make test`: it takes minutes per module.
MODULES ?= relpromote.policy relpromote.ledger relpromote.artifact relpromote.identity relpromote.evidence relpromote.state \
	relpromote.rollback relpromote.masking roles.release_deploy.library.release_unpack roles.release_deploy.library.release_switch \
	roles.release_deploy.library.release_finish roles.release_deploy.action_plugins.release_unpack \
	roles.release_deploy.module_utils.release_hook roles.release_deploy.module_utils.release_integrity roles.release_rollback.library.release_rollback \
	roles.release_deploy.module_utils.release_live roles.release_deploy.module_utils.release_lease roles.release_deploy.library.release_live \
	roles.release_deploy.module_utils.release_download roles.release_deploy.module_utils.release_health \
	roles.release_deploy.module_utils.release_hostcall roles.release_deploy.module_utils.release_witness \
	roles.release_deploy.library.release_lock roles.release_deploy.library.release_verify
MUTATE_JOBS ?= 2
mutate: bootstrap
	@# mutmut copies the other files of relpromote/ and roles/ (templates, YAML) only once: drop the old copies so they are fresh.
	@[ ! -d mutants ] || find mutants/relpromote mutants/roles -type f ! -name '*.py' ! -name '*.py.meta' ! -name '*.py.spans' -delete
	mutmut run --max-children $(MUTATE_JOBS) $(foreach module,$(MODULES),'$(module).*')
	python tests/mutation_score.py $(MODULES)

molecule: bootstrap
	@for scenario in $$(ls molecule); do molecule test -s $$scenario || exit 1; done

test:
	@scripts/bootstrap.sh --system
	$(MAKE) --no-print-directory lint
	pytest -q -n 2 --dist loadscope --no-loadscope-reorder --durations=25 tests
	$(MAKE) --no-print-directory molecule
