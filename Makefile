# The Makefile is the user interface: every target installs what it needs first.
PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synced

.PHONY: run test test-fast lint fmt bench install clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv>=0.4,<1"

# Bytecode is compiled once here rather than by every process that imports a module: where
# PYTHONDONTWRITEBYTECODE is set, each service, router and CLI process the stack and the tests
# start would otherwise compile a few hundred modules from source (about 1.5 s of CPU each).
$(STAMP): $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-groups --compile-bytecode
	@touch $(STAMP)

install: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 caseshare services shared tests bench examples

run: install
	$(BIN)/caseshare up

# Two workers: much of the suite waits on PostgreSQL, the broker or a service process, so a
# second worker overlaps that waiting even on two cores. Each stack's tests stay on one worker
# (`--dist loadgroup`, groups set in tests/e2e/conftest.py). TEST_WORKERS=0 runs in-process.
TEST_WORKERS ?= 2
PYTEST_PARALLEL = -n $(TEST_WORKERS) --dist loadgroup

test: install
	$(BIN)/python -m tests.system_deps
	$(BIN)/pytest $(PYTEST_PARALLEL)

# The inner loop: unit and integration tests only, no full stack boots.
test-fast: install
	$(BIN)/python -m tests.system_deps
	$(BIN)/pytest $(PYTEST_PARALLEL) tests/unit tests/deploy tests/integration

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services caseshare bench examples
	$(BIN)/lint-imports

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m tests.system_deps wrk
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(TOOLS) .state
