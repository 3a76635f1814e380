# One command each: `make demo` runs the local demo, `make check` runs every check.
# Both set up what they need first: uv in .tools/, then the locked environment in .venv/.

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: setup demo check format lint typecheck test run

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --locked --quiet
	touch $@

setup: .venv/.synced

demo: setup
	$(UV) run --no-sync python -m bot demo

run: setup
	$(UV) run --no-sync python -m bot

check: setup
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync mypy bot tests
	$(UV) run --no-sync pytest

format: setup
	$(UV) run --no-sync ruff format .
	$(UV) run --no-sync ruff check --fix .
