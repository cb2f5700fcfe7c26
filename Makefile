# Two commands on a fresh clone:  `make run` (main job)  and  `make test` (test suite).
PYTHON ?= python3
PIP := $(PYTHON) -m pip
RUN ?= runs/fashion-blur-mask

.PHONY: install data run test bench lint

install:
	$(PIP) install --quiet torch==2.13.0   # the CPU build; an unpinned torch pulls CUDA
	$(PIP) install --quiet -e '.[dev]'

data:
	@test -d /usr/share/datasets/fashion-mnist || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; }

run: install data
	softdiff corrupt fashion-mnist --corruption blur+mask --levels 8 -n 4 --out $(RUN)/corruption.png

test: install data
	$(PYTHON) -m pytest -p no:cacheprovider

lint:
	ruff check softdiff tests bench
