# `make run` and `make test` each do the whole set-up on a fresh Debian/Ubuntu machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCRATCH ?= ./iobench-scratch
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PKGS := fio openmpi-bin libopenmpi-dev chromium strace gcc

.PHONY: run test test-fast test-integration setup system-deps lint bench clean docs

$(BIN)/iobench: pyproject.toml setup.py iobench/_fastio.c
	$(PY) -m venv $(VENV)
	@# pip's and the build backend's chatter goes to a log, shown only when the install fails
	@$(BIN)/pip install -q --upgrade pip > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@$(BIN)/pip install -q -e '.[dev,mpi,formats,vector]' >> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	touch $@

system-deps:
	@missing=""; \
	command -v fio >/dev/null || missing="$$missing fio"; \
	command -v mpirun >/dev/null || missing="$$missing openmpi-bin"; \
	command -v mpicc >/dev/null || missing="$$missing libopenmpi-dev"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v strace >/dev/null || missing="$$missing strace"; \
	command -v cc >/dev/null || missing="$$missing gcc"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null; then \
	    echo "installing$$missing with apt-get"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PKGS) >/dev/null; \
	  else \
	    echo "iobench needs:$$missing. Install it with your package manager (e.g. dnf install fio openmpi-devel) and re-run."; exit 2; \
	  fi; \
	fi

setup: system-deps $(BIN)/iobench

# The main job on an embedded default: the quick suite (every workload family at small
# size, with pass/fail criteria) under ./iobench-scratch, about a minute.
run: setup
	$(BIN)/iobench run quick --target $(SCRATCH) --results-dir $(SCRATCH)-results

test: setup
	$(BIN)/ruff check iobench tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest -q
	$(MAKE) --no-print-directory docs

# The documentation site: reference pages generated from the code, then a strict build
# (a broken link or a page missing from the nav fails it).
docs: setup
	$(BIN)/python docs/tools/gen_reference.py docs/reference
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The first tier alone (no disk, no tools): seconds, for the edit-test loop.
test-fast: setup
	$(BIN)/pytest -q -m tier_unit

# The heavy optional loader checks (tests marked `integration`): transformers from PyPI
# (AutoConfig; the model too where torch is installed) and llama-cpp-python, which pip
# builds from source (~20 min on 2 cores; tests skip with the reason where it is absent).
test-integration: setup
	$(BIN)/pip install -q -e '.[integration]'
	$(BIN)/pytest -q -m integration

bench: setup
	$(BIN)/python benchmarks/engines.py --target $(SCRATCH)/bench

clean:
	-[ -d $(SCRATCH) ] && $(BIN)/iobench clean --target $(SCRATCH)
	rm -rf $(SCRATCH)-results
