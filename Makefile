# Two commands on a fresh machine with Python 3.11+:
#   make demo   install into .venv if needed, build the demo database, open the dashboard
#   make test   install into .venv if needed, run every test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test install chromium lint

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned to the CPU build (2.13.0) in pyproject.toml: no GPU wheels.
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/memp demo --open-existing

# The real-browser smoke test drives Debian's chromium (Playwright's own download cannot run here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
		else echo "chromium missing: the browser test will skip (install Debian's chromium)"; fi; }

test: $(STAMP) chromium
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q -rs -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check memp_core tests app.py pages
	$(BIN)/ruff format --check memp_core tests app.py pages
