# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SRC_DIRS := src tests bench examples

.PHONY: install sysdeps run test check bench bench-quick protos clean fuzz-long docs

# The protobuf modules are generated, not kept in git: from the .proto files beside them.
PROTOS := $(wildcard src/ratekeeper/proto/ratekeeper/v1/*.proto)
GENERATED := $(PROTOS:.proto=_pb2.py)

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench,docs]'
	touch $(STAMP)

$(GENERATED) &: $(PROTOS) $(STAMP)
	$(BIN)/python scripts/gen_protos.py
	touch $(GENERATED)

install: $(STAMP) $(GENERATED)

# System packages the tests and benchmarks use (we run as root on CI machines).
sysdeps:
	@command -v wrk >/dev/null 2>&1 || { \
		echo "installing wrk"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "installing redis-server"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
	@command -v etcd >/dev/null 2>&1 || { \
		echo "installing etcd-server"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium (the operator page's browser test)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

run: install
	$(BIN)/ratekeeper serve

check: install
	$(BIN)/ruff check $(SRC_DIRS)
	$(BIN)/ruff format --check $(SRC_DIRS)
	$(BIN)/mypy --strict src

test: install sysdeps check
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: install sysdeps
	$(BIN)/python -m bench

bench-quick: install sysdeps
	$(BIN)/python -m bench --quick

protos: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis

# The long fuzz run (issue 16 item 7): 20,000 hypothesis examples per target, 5 min of atheris
# per target, 20,000 mutated calls to a live server. `make test` runs the short one.
fuzz-long: install
	RATEKEEPER_FUZZ_LONG=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/fuzz --timeout 1800

# The API reference, from the docstrings (docs/conf.py, docs/api/), warnings as errors: a broken
# docstring or cross-reference fails it. `make test` runs it too (tests/docs/test_api_reference.py).
docs: install
	$(BIN)/sphinx-build -W --keep-going -q -b html docs build/docs
	@echo "API reference: build/docs/api/index.html"
