# mcp-oauth-broker — the two commands a user needs are `make demo` and `make test`.
# Each one installs what it needs on a fresh Debian 12 machine (apt packages too when run as root).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CONFORMANCE_DIR := .cache/conformance
CLIENTS_DIR := .cache/clients

.PHONY: demo test lint unit bench sysdeps venv conformance-tools client-tools clean help

help:  ## Show the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

demo: sysdeps $(STAMP)  ## Run the whole product: local authorization server, demo MCP server, broker (tray or headless)
	$(VENV)/bin/mcp-broker demo

test: sysdeps $(STAMP) conformance-tools client-tools lint  ## Run the whole test suite (what CI runs)
	CI=$${CI:-} $(PY) -m pytest

unit: $(STAMP)  ## Fast tests only: no browser, no harness
	$(PY) -m pytest -m "not integration and not conformance"

lint: $(STAMP)  ## ruff and mypy (strict on broker/ and demo_server/)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check broker demo_server
	$(VENV)/bin/mypy

bench: sysdeps $(STAMP)  ## Benchmarks (never part of the tests)
	@for b in benchmarks/[!_]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

sysdeps:  ## Debian packages the tests and the demo use (installed only when running as root)
	@bash scripts/install-sysdeps.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@# The tray's GTK backend needs PyGObject, which builds against Debian's GLib (sysdeps).
	if [ "$$(uname -s)" = Linux ] && pkg-config --exists gobject-introspection-1.0 cairo; then \
	  $(PY) -m pip install --quiet -e '.[test,linux-tray]'; fi
	touch $(STAMP)

conformance-tools:  ## Node 22 and the pinned MCP conformance harness, under .cache/
	@bash scripts/install-conformance.sh $(CONFORMANCE_DIR)

client-tools:  ## The pinned MCP clients the configure tests run (Gemini CLI, opencode, Codex, Claude Code), under .cache/
	@bash scripts/install-clients.sh $(CLIENTS_DIR)

clean:
	rm -rf $(VENV) .cache build *.egg-info .pytest_cache .mypy_cache .ruff_cache
