# fireforge: every target depends on `setup`, so a fresh clone needs nothing but `make`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.fireforge-setup
# torch is installed on its own, pinned: an unpinned `torch` pulls a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
# Debian packages (installed when run as root): Icarus for the simulations; dfu-util to flash
# the OrangeCrab and to give its bitstream the DFU suffix its bootloader takes.
DEB_PACKAGES := iverilog dfu-util
# pytest workers: both cores by default.
JOBS ?= 2
RUNS ?= runs

PROGRAM ?= $(RUNS)/squeezenet_tiny-ulx3s-25f-program
SIM ?= verilator
CONFIG ?= small
IMAGES ?= 4

BOARD ?= icebreaker
SEED ?= 1

.PHONY: setup test test-all demo sim bench lint clean bitstream program

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@set -e; missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "setup: installing Debian packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) \
	      >/dev/null || { echo "setup: apt-get failed; run: apt-get install -y$$missing"; exit 1; }; \
	  else \
	    echo "setup: missing Debian packages; run: sudo apt-get install -y$$missing"; \
	  fi; \
	fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

test: setup
	$(BIN)/python -m pytest -m "not slow" -n $(JOBS) --dist loadgroup tests

test-all: setup
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup tests

demo: setup
	$(BIN)/python -m fireforge.sw.demo --runs $(RUNS)

# cocotb on the generated Verilog: the unit and random-network testbenches, then the full
# network of PROGRAM (default: what `make demo` compiled) on IMAGES test images, every layer.
sim: setup
	$(BIN)/python -m pytest -n $(JOBS) tests/sim tests/hw
	@test -f $(PROGRAM)/manifest.json || $(BIN)/python -m fireforge.sw.demo --runs $(RUNS)
	$(BIN)/fireforge sim --program $(PROGRAM) --simulator $(SIM) --config $(CONFIG) \
	  --images $(IMAGES)

# Benchmarks, as JSON in bench/ (compare run to run): per board of BENCH_BOARDS, the engine's
# throughput and BENCH_IMAGES streamed through the simulated board's link (bench-BOARD.json);
# cycles, utilization and simulator speed of the demo program (sim-CONFIG.json).
BENCH_BOARDS ?= icebreaker ulx3s-25f
BENCH_IMAGES ?= 50
bench: setup
	@test -f $(PROGRAM)/manifest.json || $(BIN)/python -m fireforge.sw.demo --runs $(RUNS)
	@mkdir -p bench
	$(BIN)/fireforge sim --program $(PROGRAM) --simulator verilator --config $(CONFIG) \
	  --images $(IMAGES) --no-layer-check --json > bench/sim-$(CONFIG).json
	@echo "wrote bench/sim-$(CONFIG).json"
	for b in $(BENCH_BOARDS); do \
	  $(BIN)/fireforge bench --board $$b --runs $(RUNS) --images $(BENCH_IMAGES) || exit 1; done

# A bitstream for BOARD with yosys + nextpnr from the YoWASP wheels; build/BOARD/report.json.
# PROGRAM=DIR picks the program (default: the board's default preset, made under RUNS).
bitstream: setup
	$(BIN)/fireforge build --board $(BOARD) --seed $(SEED) --runs $(RUNS) \
	  $(if $(filter command line,$(origin PROGRAM)),--program $(PROGRAM))

program: setup
	$(BIN)/fireforge flash --board $(BOARD)

lint: setup
	$(BIN)/ruff check hw sw sim boards tests

clean:
	rm -rf build $(RUNS) sim_build .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +
