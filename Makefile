# remediator: the two commands a user needs are `make run` and `make test`.
# Every install path takes exactly what uv.lock says (uv sync --frozen); `make lock` refreshes it.
PYTHON ?= python3
PORT ?= 8080
# `make run` binds loopback unless make's command line says `HOST=...`: an exported HOST
# (tcsh sets it to the machine's name) would open it to the network unasked.
ifneq ($(origin HOST),command line)
HOST := 127.0.0.1
endif
# `make image`: IMAGE (default localhost/remediator:<pyproject's version>) on BASE (default:
# the Dockerfile's, else a local Debian base; see scripts/image.sh).
IMAGE ?=
BASE ?=
# The development environment (test, lint and docs groups), and the runtime-only one of `make run`.
VENV ?= .venv
RUN_VENV ?= .venv-run
PY := $(VENV)/bin/python
# uv itself, pinned and hashed in scripts/uv-requirements.txt, lives in its own small venv.
TOOLS := .tools
UV := $(TOOLS)/bin/uv
# uv uses the interpreter make was given, never one it downloads.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)

.PHONY: run test test-unit test-latest lint docs docs-gen lock system-deps deploy-sync bench demo image clean

$(UV): scripts/uv-requirements.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
		-r scripts/uv-requirements.txt
	touch $@

$(VENV)/.installed: pyproject.toml uv.lock $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --quiet --locked --no-default-groups --group test --group lint --group docs
	touch $@

$(RUN_VENV)/.installed: pyproject.toml uv.lock $(UV)
	UV_PROJECT_ENVIRONMENT=$(RUN_VENV) $(UV) sync --quiet --locked --no-default-groups
	touch $@

## run: start the service on $(HOST):$(PORT) with the shipped rules, the memory store and dry-run on
run: $(RUN_VENV)/.installed
	@HOST=$(HOST) PORT=$(PORT) bash scripts/run.sh $(RUN_VENV)/bin/python

## lock: resolve today's newest versions within pyproject's bounds into uv.lock
lock: $(UV)
	$(UV) lock --upgrade

## system-deps: the servers the tests start (redis, clickhouse, zookeeper, alertmanager, promtool)
system-deps:
	bash scripts/system-deps.sh

## test: install what the tests need, then run the whole suite
test: $(VENV)/.installed system-deps
	$(PY) -m pytest

## test-unit: the fast tests (rules, worker gates, API, CLI, console, the memory store, Slack's
## messages, the generated docs' freshness): no server process (tests marked `server` are left to
## `make test`), the memory store's waits on looptime's clock; the fuzz runs (schemathesis, hypothesis) are left to `make test`
UNIT_TESTS := tests/unit tests/rules tests/worker tests/api tests/cli tests/console/test_console.py \
	tests/store/test_store_contract.py tests/notify/test_slack_transports.py tests/docs/test_generated.py
test-unit: $(VENV)/.installed
	NO_TEST_SERVERS=1 $(PY) -m pytest -m "not server and not slow" \
		--ignore tests/api/test_openapi.py --ignore tests/api/test_fuzz_routes.py \
		-p no:cacheprovider -p no:schemathesis -p no:hypothesispytest -p no:kmock -p no:anyio $(UNIT_TESTS)

## test-latest: lint and the unit tests against the newest release of every dependency, bounds ignored
test-latest: $(UV)
	bash scripts/test-latest.sh $(UV)

## deploy-sync: write deploy/'s generated files: each overlay's rbac.yaml (a Role per namespace of its
## settings), the torghut rules copy, the ClusterRoles (cluster-rbac, node-rbac), the PrometheusRules,
## pyproject's version (tests fail while stale)
deploy-sync: $(VENV)/.installed
	$(PY) scripts/sync_deploy.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check remediator handlers tests demo scripts/gen_docs.py
	$(VENV)/bin/ruff format --check remediator handlers tests demo scripts/gen_docs.py
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

## docs: build the docs site (mkdocs.yml, docs/) into site/; a broken link or a page left out of nav fails it
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

## docs-gen: write what the docs generate from the code: rules.schema.json (`remediator schema`) and the
## tables of docs/reference/ (settings, metrics, rule keys, handler params, CLI, HTTP routes); tests fail while stale
docs-gen: $(VENV)/.installed
	$(PY) scripts/gen_docs.py

## image: build the Dockerfile with podman (on a local Debian base when the official one cannot be pulled)
image:
	IMAGE=$(IMAGE) BASE=$(BASE) PYTHON=$(PYTHON) bash scripts/image.sh

clean:
	rm -rf $(VENV) $(RUN_VENV) $(TOOLS) site .pytest_cache .mypy_cache .ruff_cache

## bench: intake vs baseline, alert storm, overhead and memory (needs redis-server and wrk)
bench: $(VENV)/.installed system-deps
	$(PY) bench/run.py

## demo: the torghut incident, replayed end to end
demo: $(VENV)/.installed system-deps
	$(PY) -m demo
