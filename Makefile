# llmfleet — every target sets up what it needs (environment, packages, Kafka jars, Triton).
SHELL := /bin/bash
UV_VERSION := 0.13.8
UV := .cache/uv/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
CHAOS_ARGS ?=
COMPOSE_ARGS ?=

.PHONY: setup install test test-unit test-integration lint demo up down status clean bench bench-triton \
	bench-router bench-allocator bench-scaler bench-monitor bench-simulator bench-fleet-loop bench-gateway chaos \
	helm-lint help test-compose

$(UV):
	python3 -m venv .cache/uv
	.cache/uv/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --python python3.11
	touch $@

setup: $(VENV)/.synced ## the locked Python environment

install: setup ## Kafka jars and the Triton binary, fetched once into .cache/
	$(PY) -m llmfleet.cli install

test: install ## the whole suite on a real Kafka, PostgreSQL and Triton (started and stopped here)
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-integration: install
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

help: ## these targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

helm-lint: setup ## the Helm chart (deploy/helm): helm lint --strict, helm template | kubeconform -strict, each values file (builds helm v4 and kubeconform into .cache/bin once)
	$(PY) -m deploy.helm.tools check

lint: setup ## ruff, mypy and the import contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared services deploy/local deploy/init.py deploy/kafka_acl.py deploy/settings_table.py llmfleet benchmarks
	$(VENV)/bin/lint-imports

demo: install ## the main job: replay the Azure LLM trace through the five services, write the report (reports/)
	$(PY) -m llmfleet.cli demo

up: install ## the platform: PostgreSQL, Kafka and the five services (Triton servers on demand)
	$(PY) -m llmfleet.cli up

down: setup ## stop the services, their Triton servers, Kafka and PostgreSQL
	$(PY) -m llmfleet.cli down

status: setup ## servers, models and tiers, queues, firing alerts, cost per hour
	$(PY) -m llmfleet.cli status

clean: down ## remove runtime data and logs (keeps downloads)
	$(PY) -m deploy.local.postgres remove-data
	rm -rf .cache/stack

bench-triton: install ## batching on the served model, on a real Triton server (last line: JSON)
	$(PY) -m benchmarks.triton_model

bench-router: install ## Kafka -> router -> Triton -> Kafka: rps, router overhead, batching gain (last line: JSON)
	$(PY) -m benchmarks.router

bench-gateway: install ## OpenAI HTTP -> gateway -> Kafka -> router -> Triton: rps, added latency (last line: JSON)
	$(PY) -m benchmarks.gateway

bench-allocator: setup ## MILP placement vs greedy at fleet scale (last line: JSON)
	$(PY) -m benchmarks.allocator

bench-scaler: setup ## forecasting 50 models, back-test on the Azure traces (last line: JSON)
	$(PY) -m benchmarks.scaler

bench-simulator: setup ## one simulated day at seed scale with the services' policies, vs baselines (last line: JSON)
	$(PY) -m benchmarks.simulator

bench-fleet-loop: setup ## the simulated day with MILP, plans, cost mix, spot reclaims each on and off (last line: JSON)
	$(PY) -m benchmarks.fleet_loop

bench-monitor: install ## metrics event -> alert event delay, scrape targets sustained (last line: JSON)
	$(PY) -m benchmarks.monitor

test-compose: install ## deploy/compose.yaml for real on a private Docker engine (root, docker.io, debootstrap): images built here, up, requests from the host, router x3, down -v; then with compose.secure.yaml (last line: JSON)
	deploy/compose/test_compose.sh $(COMPOSE_ARGS)

chaos: install ## kills, outages, poison records and overload against the request path and the allocator (<= 15 min; last line: JSON)
	$(PY) -m benchmarks.chaos $(CHAOS_ARGS)

bench: bench-triton bench-router bench-allocator bench-scaler bench-monitor bench-simulator bench-fleet-loop ## every benchmark
