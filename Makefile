# Distillery: `make demo` sets up and distils the example task; `make test` runs the test suite.
SHELL := /bin/bash
CORE := .venvs/core/bin/python
TASK ?= examples/news-topic
PYTEST_ARGS ?=

.PHONY: setup protos check-protos demo test test-all test-reliability test-k8s bench bench-quality \
        bench-generation bench-validation bench-training bench-serving bench-traces lint k8s-check up down clean

setup:
	@scripts/setup.sh

protos: setup
	PYTHON=$(CORE) scripts/gen_protos.sh

check-protos: setup
	PYTHON=$(CORE) scripts/check_protos.sh

# The main job: set up, start the services as local processes, distil $(TASK) on the bundled
# tiny models (teacher gemma3-270m on vLLM, student smollm2-135m-instruct), serve the student,
# show a prediction and the report.
demo: setup
	$(CORE) -m services.pipeline.demo $(TASK)

up: setup
	.venvs/core/bin/distillery up

down:
	-.venvs/core/bin/distillery down

# The README's test command (CI runs exactly this): contract checks and lint, then every test but the
# long ones marked `slow` (the end-to-end distillation with a pipeline kill is NOT slow-marked:
# every CI run distils a task through all six real services).
test: setup check-protos lint
	$(CORE) -m pytest -q -ra -m "not slow and not k8s" --durations=15 $(PYTEST_ARGS)

# Everything, the slow tests too (generator ≥50-row runs and kill -9, trainer kill/resume, the
# 60 s serving soak, vllm serve): about an hour on 2 cores.
test-all: setup check-protos lint
	$(CORE) -m pytest -q -ra -m "not k8s" --durations=25 $(PYTEST_ARGS)

test-reliability: setup
	$(CORE) -m pytest -q -ra tests/reliability $(PYTEST_ARGS)

test-k8s: setup
	scripts/build-kube-apiserver.sh
	DISTILLERY_KUBE_APISERVER_BIN=$${DISTILLERY_KUBE_APISERVER_BIN:-.cache/kube/kube-apiserver} $(CORE) -m pytest -q -ra -m k8s tests/k8s

k8s-check: setup
	$(CORE) -m pytest -q tests/k8s -m "not k8s"

bench: bench-generation bench-validation bench-training bench-serving

bench-generation: setup
	$(CORE) benchmarks/generation.py

bench-validation: setup
	$(CORE) benchmarks/validation.py

bench-training: setup
	$(CORE) benchmarks/training.py

# llama.cpp (the engine compared side by side) is compiled into .venvs/llamacpp on first use (~8 min).
bench-serving: setup
	scripts/build-llama-cpp.sh env
	$(CORE) benchmarks/serving.py

bench-quality: setup
	$(CORE) benchmarks/quality.py

# Curated, relabelled traces against training on the raw traces (docs/traces.md), ~50 min here.
bench-traces: setup
	$(CORE) benchmarks/traces.py --with-seeds

# Rules in pyproject.toml ([tool.ruff.lint]); `ruff check --fix` mends most findings.
lint: setup
	$(CORE) -m ruff check services tests benchmarks examples scripts

clean:
	rm -rf .venvs .cache .distillery
