"""The long randomized hardware tier: random decryptors, thousands of random layers, random stalls
on all three streams and a reset at a random cycle, every output bit checked in cocotb.

Each run draws, from its printed seed: a configuration table of K = 1..4 random XOR matrices
(Nin 1..64, so often Nin > W; one shared Nout 1..24; rows of 1..4 taps), a word width W and
1..4 lanes, the plain or the pipelined variant, then hundreds of layers: mostly tiny ones (1..6 chunks), many of exactly one
chunk, some whose bit count is an exact multiple of W (they end on a word boundary) and a few
longer ones. The generated Verilog (``gen.decryptor``) runs on Icarus through
``sim.decryptor.check_decryptor``: its testbench drives the descriptor and data streams with
random gaps, withholds ``m_axis_tready`` at random, pulses ``rst`` at a random cycle and sends
everything again, and compares every beat (``tdata``, ``tuser``, ``tlast``) with the golden
beats of ``flexor.stream`` computed from the sidecar's matrices. Each run prints what it checked.
"""

import math
import time

import numpy as np
import pytest

from flexor import XorConfig
from flexor.cli import write_files_atomically
from flexor.stream import WORD_WIDTHS, pack_stream
from gen.decryptor import decryptor_files
from sim.decryptor import check_decryptor

pytestmark = [pytest.mark.rtl, pytest.mark.slow]

#: Independent runs (each its own hardware); pytest-xdist spreads them over the cores.
RUNS = 8
LAYERS = (300, 600)


def random_configs(rng):
    """K configurations sharing one Nout, Nin anywhere in 1..64, rows of 1..4 taps."""
    nout = int(rng.integers(1, 25))
    configs = []
    for _ in range(int(rng.integers(1, 5))):
        nin = int(rng.choice([rng.integers(1, 9), rng.integers(9, 33), rng.integers(33, 65)]))
        matrix = np.zeros((nout, nin), dtype=np.uint8)
        for row in matrix:
            row[rng.choice(nin, size=min(nin, int(rng.integers(1, 5))), replace=False)] = 1
        configs.append(XorConfig.from_matrix(matrix))
    return configs


def random_layers(rng, configs, width):
    """Hundreds of layers: tiny, single-chunk, word-aligned and a few long ones."""
    layers = []
    for _ in range(int(rng.integers(*LAYERS))):
        k = int(rng.integers(len(configs)))
        nin = configs[k].nin
        kind = rng.random()
        if kind < 0.25:
            chunks = 1
        elif kind < 0.45:  # chunks * nin a multiple of W: the layer fills its last word
            chunks = width // math.gcd(width, nin) * int(rng.integers(1, 3))
        elif kind < 0.95:
            chunks = int(rng.integers(2, 7))
        else:
            chunks = int(rng.integers(20, 80))
        layers.append((k, chunks, rng.integers(0, 2, (chunks, nin), dtype=np.uint8)))
    return layers


@pytest.mark.parametrize("run", range(RUNS))
def test_random_decryptor_random_traffic(tmp_path, run):
    seed = 7000 + run
    rng = np.random.default_rng(seed)
    configs = random_configs(rng)
    width = int(rng.choice(WORD_WIDTHS))
    lanes = int(rng.integers(1, 5))
    layers = random_layers(rng, configs, width)
    stall = {stream: round(float(rng.uniform(0.0, 0.6)), 2) for stream in ("desc", "data", "out")}
    packed = pack_stream(configs, layers, width=width, lanes=lanes)
    # Inside the first pass: it takes at least max(beats, words) cycles (one of each a cycle).
    reset_at = int(rng.integers(10, max(11, len(packed.beats), len(packed.words))))
    pipeline = bool(rng.integers(2))  # drawn last: the other draws of a seed stay as they were
    verilog = str(tmp_path / "decryptor.v")
    write_files_atomically(decryptor_files(configs, verilog, width=width, lanes=lanes,
                                           pipeline=pipeline))
    start = time.perf_counter()
    result = check_decryptor(verilog, layers, seed=seed, stall=stall, reset_at=reset_at,
                             build_dir=tmp_path / "icarus")
    seconds = time.perf_counter() - start
    nout = configs[0].nout
    # The testbench checked every beat in order and that exactly these many arrived.
    assert (result["layers"], result["beats"], result["words"]) == \
        (len(layers), len(packed.beats), len(packed.words)), f"seed {seed}"
    chunks = sum(count for _, count, _ in layers)
    cycles = reset_at + 2 + result["cycles"]  # the pass cut by the reset, rst, the full pass
    print(f"seed {seed}: K={len(configs)} nin={[c.nin for c in configs]} nout={nout} "
          f"W={width} L={lanes} pipeline={pipeline} stall={stall} reset_at={reset_at}: "
          f"{len(layers)} layers, "
          f"{chunks} chunks, {result['beats']} beats ({result['beats'] * lanes * nout} data "
          f"bits checked), {result['words']} words, {cycles} cycles, {seconds:.1f} s")
