# Two commands on a fresh clone:  `make run` (main job)  and  `make test` (test suite).
PYTHON ?= python3
PIP := $(PYTHON) -m pip
RUN ?= runs/fashion-blur

.PHONY: install data run test bench lint

install:
	$(PIP) install --quiet torch==2.13.0   # the CPU build; an unpinned torch pulls CUDA
	$(PIP) install --quiet -e '.[dev]'

data:
	@test -d /usr/share/datasets/fashion-mnist || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; }

# Main job: train the default model on Fashion-MNIST (about 5 minutes on 2 idle CPU cores),
# resuming the run if it was interrupted, then sample it with the paper's momentum sampler and
# with the naive one. It trains with the x0 objective (on a budget this short it gives far
# better momentum/Euler samples than the soft loss) and the blur levels that `softdiff schedule`
# selected for Fashion-MNIST (docs/levels-blur-fashion-mnist.json); both measured in
# docs/benchmarks.md and docs/schedule.md.
LEVELS ?= docs/levels-blur-fashion-mnist.json
run: install data
	softdiff train --objective x0 --levels $(LEVELS) --out $(RUN) --resume
	softdiff corrupt fashion-mnist --corruption blur --levels 8 -n 4 --out $(RUN)/corruption.png
	softdiff sample --ckpt $(RUN) --sampler momentum --steps 50 -n 64 --out $(RUN)/samples-momentum
	softdiff sample --ckpt $(RUN) --sampler naive --steps 50 -n 64 --out $(RUN)/samples-naive

test: install data
	$(PYTHON) -m pytest -p no:cacheprovider

lint:
	ruff check softdiff tests bench
