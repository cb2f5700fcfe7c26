# Two commands on a fresh clone:  `make run` (main job)  and  `make test` (test suite).
PYTHON ?= python3
PIP := $(PYTHON) -m pip
RUN ?= runs/fashion-blur

.PHONY: install data browser run test bench lint

install:
	$(PIP) install --quiet torch==2.13.0   # the CPU build; an unpinned torch pulls CUDA
	$(PIP) install --quiet -e '.[dev]'

data:
	@test -d /usr/share/datasets/fashion-mnist || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; }

# Headless Chromium for the report's browser test (tests/test_report.py skips it, saying why, without one).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; } \
		|| echo "no chromium (apt-get failed): the browser tests will be skipped"

# Main job: train on Fashion-MNIST and sample (2 min 14 s on a fresh clone, 2 idle CPU cores, 2026-12-04; 3 min 08 s to 3 min 43 s earlier), resuming
# the run if it was interrupted, then draw the process it learns to undo and sample it.
# Every setting is the library default: the well-posed soft score matching (the paper's loss
# plus the anchor), EDM-style preconditioning, EMA half-life, 1200 steps of batch 64, the
# 10-component mixture prior at t = 1, and the paper's principled blur levels, which a fresh
# blur run selects itself before its first step (about 50 s; exactly
# docs/levels-blur-fashion-mnist.json). No flags but the output folder.
# Samples: the default sampler for blur (naive) and the paper's momentum sampler, 20 network
# calls each (docs/benchmarks.md#the-main-job). Training writes a preview grid every 200 steps
# (RUN/previews/); the last line writes RUN/report/index.html, the run on one page.
run: install data
	softdiff train --out $(RUN) --resume
	softdiff corrupt fashion-mnist --ckpt $(RUN) --levels 8 -n 4 --out $(RUN)/corruption.png
	softdiff sample --ckpt $(RUN) -n 64 --out $(RUN)/samples
	softdiff sample --ckpt $(RUN) --sampler momentum -n 64 --out $(RUN)/samples-momentum
	softdiff report $(RUN)

test: install data browser
	$(PYTHON) -m pytest -p no:cacheprovider

# The docs' speed targets against the newest results in bench/results/ (measures nothing).
bench:
	PYTHONPATH=$(CURDIR) $(PYTHON) -m bench check

lint:
	ruff check softdiff tests bench
