# Two entry points for a fresh machine (Debian 12, Python 3.11, root or sudo):
#   make demo   set up; generate the default decoder and prove it in cocotb; stream the shipped
#               trained weights through the generated decryptor RTL and compare accuracy
#   make test   set up and run the whole test suite
# and one for maintainers:
#   make constraints   re-resolve every dependency in a throwaway venv and rewrite
#                      constraints.txt with the versions found (then run make test and commit)
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
SUDO    = $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# A CPU build of torch that installs quickly; an unpinned torch pulls a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
FASHION_MNIST = /usr/share/datasets/fashion-mnist
# Every Python package at the version CI had (see the file's header).
CONSTRAINTS = constraints.txt

.PHONY: setup demo test clean constraints

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	@command -v iverilog >/dev/null || { $(SUDO) apt-get update -qq && \
	    $(SUDO) apt-get install -y -qq --no-install-recommends iverilog; }
	@# Fashion-MNIST (the four IDX .gz files): the shipped container's tests and flexor.eval.
	@[ -f $(FASHION_MNIST)/t10k-images-idx3-ubyte.gz ] || { $(SUDO) apt-get update -qq && \
	    $(SUDO) apt-get install -y -qq --no-install-recommends dataset-fashion-mnist; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c $(CONSTRAINTS) --upgrade pip
	$(PY) -m pip install -q -c $(CONSTRAINTS) "$(TORCH)"
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	mkdir -p build
	$(PY) -m gen --nin 8 --nout 10 -o build/decoder.v
	$(PY) -m sim.decoder build/decoder.v
	$(PY) -m sim --build-dir build/sim

test: setup
	$(PY) -m pytest -n 2 tests

# The newest versions pyproject.toml allows (torch stays $(TORCH)), frozen. The local version
# label of torch (+cpu) is dropped so that the pin also matches the wheel $(TORCH) installs.
constraints:
	rm -rf build/constraints-venv
	$(PYTHON) -m venv build/constraints-venv
	build/constraints-venv/bin/python -m pip install -q --upgrade pip
	build/constraints-venv/bin/python -m pip install -q "$(TORCH)"
	build/constraints-venv/bin/python -m pip install -q -e '.[dev]'
	{ sed -n '/^#/p' $(CONSTRAINTS); build/constraints-venv/bin/python -m pip freeze --all \
	    --exclude-editable | sed -e '/^#/d' -e 's/^\(torch==[^+]*\)+.*/\1/'; } > build/constraints.txt
	mv build/constraints.txt $(CONSTRAINTS)
	rm -rf build/constraints-venv

clean:
	rm -rf build .pytest_cache
