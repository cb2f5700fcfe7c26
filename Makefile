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

# Main job: train the default model on Fashion-MNIST (about 5 minutes on 2 CPU cores), resuming
# the run if it was interrupted, then draw the corruption it learned to undo.
run: install data
	softdiff train --out $(RUN) $$(test -f $(RUN)/latest && echo --resume)
	softdiff corrupt fashion-mnist --corruption blur --levels 8 -n 4 --out $(RUN)/corruption.png

test: install data
	$(PYTHON) -m pytest -p no:cacheprovider

lint:
	ruff check softdiff tests bench
