"""Stimulus and simulation shared by the stream tests: configuration tables, random layers, and
a run of a block in Amaranth's simulator with a reset the testbench can pulse."""

import numpy as np
from amaranth.hdl import ResetInserter, Signal
from amaranth.sim import Simulator

from flexor import XorConfig


def make_configs(*nins, nout=20):
    """One random configuration (ntap 2, seed = position) per ``nin``; a low rank is fine here
    (pyproject.toml ignores RankWarning in tests)."""
    return [XorConfig.random(nin, nout, 2, seed) for seed, nin in enumerate(nins)]


def random_layers(configs, counts, seed):
    """``(config, chunks, random bits)`` per ``(config, chunks)`` of ``counts``."""
    rng = np.random.default_rng(seed)
    return [(k, c, rng.integers(0, 2, (c, configs[k].nin), dtype=np.uint8)) for k, c in counts]


def simulate_with_reset(dut, testbench):
    """Run ``testbench(ctx, reset)`` on ``dut`` with a 1 MHz clock, where ``reset`` resets the
    whole block while the testbench holds it high."""
    reset = Signal()
    simulator = Simulator(ResetInserter(reset)(dut))
    simulator.add_clock(1e-6)

    async def bench(ctx):
        await testbench(ctx, reset)

    simulator.add_testbench(bench)
    simulator.run()


async def pulse_reset(ctx, reset, streams, cycles=2):
    """Hold ``reset`` for ``cycles`` cycles and restart every source and sink of ``streams``."""
    for stream in streams:
        stream.restart()
    ctx.set(reset, 1)
    await ctx.tick().repeat(cycles)
    ctx.set(reset, 0)
