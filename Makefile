# remediator: the two commands a user needs are `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
PORT ?= 8080

.PHONY: run test test-unit lint system-deps deploy-sync bench demo clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint]'
	touch $@

## run: start the service on :$(PORT) with the shipped rules, the memory store and dry-run on
run: $(VENV)/.installed
	@token=$${REMEDIATOR_WEBHOOK_TOKEN:-$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(24))')}; \
	echo "webhook token: $$token"; \
	echo "try: curl -H \"Authorization: Bearer $$token\" -H 'Content-Type: application/json' --data @examples/alertmanager/clickhouse-readonly-firing.json http://127.0.0.1:$(PORT)/webhooks/alertmanager"; \
	REMEDIATOR_WEBHOOK_TOKEN=$$token REMEDIATOR_LOG_FORMAT=$${REMEDIATOR_LOG_FORMAT:-console} \
	exec $(PY) -m remediator serve --rules rules.yaml --port $(PORT) --dry-run

## system-deps: the servers the tests start (redis, clickhouse, zookeeper, alertmanager, promtool)
system-deps:
	bash scripts/system-deps.sh

## test: install what the tests need, then run the whole suite
test: $(VENV)/.installed system-deps
	$(PY) -m pytest

## test-unit: the fast tests (no servers to start: rules, worker gates, API, CLI), under a minute
test-unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit tests/rules tests/worker tests/api tests/cli

## deploy-sync: refresh deploy/base/rules.yaml and deploy/prometheus/prometheusrule.yaml (tests fail while stale)
deploy-sync:
	bash scripts/sync-deploy.sh

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check remediator handlers tests demo
	$(VENV)/bin/ruff format --check remediator handlers tests demo
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

## bench: intake vs baseline, alert storm, overhead and memory (needs redis-server and wrk)
bench: $(VENV)/.installed system-deps
	$(PY) bench/run.py

## demo: the torghut incident, replayed end to end
demo: $(VENV)/.installed system-deps
	$(PY) -m demo
