# Two entry points for a fresh machine (Debian 12, Python 3.11, root or sudo):
#   make demo   set up; generate the default decoder and prove it in cocotb; stream the shipped
#               trained weights through the generated decryptor RTL and compare accuracy
#   make test   set up and run the whole test suite
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
SUDO    = $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# A CPU build of torch that installs quickly; an unpinned torch pulls a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
FASHION_MNIST = /usr/share/datasets/fashion-mnist

.PHONY: setup demo test clean

$(VENV)/.installed: pyproject.toml
	@command -v iverilog >/dev/null || { $(SUDO) apt-get update -qq && \
	    $(SUDO) apt-get install -y -qq --no-install-recommends iverilog; }
	@# Fashion-MNIST (the four IDX .gz files): the shipped container's tests and flexor.eval.
	@[ -f $(FASHION_MNIST)/t10k-images-idx3-ubyte.gz ] || { $(SUDO) apt-get update -qq && \
	    $(SUDO) apt-get install -y -qq --no-install-recommends dataset-fashion-mnist; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	mkdir -p build
	$(PY) -m gen --nin 8 --nout 10 -o build/decoder.v
	$(PY) -m sim.decoder build/decoder.v
	$(PY) -m sim --build-dir build/sim

test: setup
	$(PY) -m pytest -n 2 tests

clean:
	rm -rf build .pytest_cache
