# Two entry points: `make test` and `make demo`. Both bootstrap what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# indi-bin: indiserver and the simulators; build-essential python3-dev pkg-config libdbus-1-dev
# libglib2.0-dev: dbus-python (a dependency of pyindi-client) has no wheels and compiles on install;
# python3-venv: .venv; git: updates; openssh-*, chromium*: the sync and browser tests (docs/raspberry-pi.md).
APT_PACKAGES := indi-bin build-essential python3-dev pkg-config libdbus-1-dev libglib2.0-dev python3-venv git \
  openssh-server openssh-client chromium chromium-driver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all setup system-deps test demo lint clean

all: test

# Install Debian packages only when one is missing (idempotent, quick when done).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml | system-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Compile the numba kernels once per install (and again when the stacking code changes), so the
# first `obsagent stack` loads them instead of compiling (tens of seconds; minutes on a Pi).
KERNELS := $(VENV)/.kernels
$(KERNELS): $(STAMP) $(wildcard agent/stacking/*.py)
	$(PY) -m agent.stacking.warmup
	touch $(KERNELS)

setup: system-deps $(STAMP) $(KERNELS)

test: setup lint
	$(VENV)/bin/pytest -q -n 3 --dist loadfile  # the night tests wait on simulated clocks more than they compute: 3 workers on 2 cores; a file's tests share a worker

lint: setup
	$(VENV)/bin/ruff check -q agent indi_sim tests bench
	$(VENV)/bin/mypy agent indi_sim
	$(VENV)/bin/lint-imports --no-cache

demo: setup
	$(VENV)/bin/python -m agent.demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Every speed target against its peer (Siril for stacking and calibration), one table; bench-only:
# siril is installed here, never by setup.
.PHONY: bench
bench: setup
	@command -v siril-cli >/dev/null || { $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends siril; }
	$(PY) bench/bench_all.py
