# One command each: `make demo` runs the local demo, `make check` runs every check.
# Both set up what they need first: uv in .tools/, then the locked environment in .venv/.

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: setup postgres demo check format run

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --locked --quiet
	touch $@

setup: .venv/.synced

# The PostgreSQL tests start a throwaway server; install it where it is missing (Debian).
postgres:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		|| (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql)

demo: setup
	$(UV) run --no-sync python -m bot demo

run: setup
	$(UV) run --no-sync python -m bot

check: setup postgres
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync mypy bot standins tests bench
	$(UV) run --no-sync pytest

format: setup
	$(UV) run --no-sync ruff format .
	$(UV) run --no-sync ruff check --fix .
