"""XorNetwork and XorStage in Amaranth's simulator against the golden model."""

import gc
import random
import warnings

import numpy as np
import pytest
from amaranth.hdl import UnusedElaboratable
from amaranth.sim import Simulator

import flexor
from flexor import XorConfig
from hdl import XorNetwork, XorStage
from sim.streams import StreamSink, StreamSource, amaranth_port, random_pause


def to_int(bits):
    return int(sum(int(b) << i for i, b in enumerate(bits)))


def to_bits(value, width):
    return np.array([(value >> i) & 1 for i in range(width)], dtype=np.uint8)


@pytest.mark.parametrize("nin,nout,ntap,seed", [(8, 10, 2, 0), (6, 20, "dense", 1), (4, 3, 4, 2),
                                                 (1, 1, 1, 0)])
def test_network_exhaustive(nin, nout, ntap, seed):
    config = XorConfig.random(nin, nout, ntap, seed)
    dut = XorNetwork(config)
    inputs = ((np.arange(2 ** nin)[:, None] >> np.arange(nin)) & 1).astype(np.uint8)
    expected = flexor.decrypt_reference(config, inputs)

    async def testbench(ctx):
        for x, y in zip(inputs, expected):
            ctx.set(dut.x, to_int(x))
            assert ctx.get(dut.y) == to_int(y), f"x={to_int(x):#x}"

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()


def test_network_zero_row_gives_zero():
    config = XorConfig.from_matrix([[0, 0, 0], [1, 1, 0]])
    dut = XorNetwork(config)

    async def testbench(ctx):
        for x in range(8):
            ctx.set(dut.x, x)
            assert ctx.get(dut.y) == (((x ^ (x >> 1)) & 1) << 1)

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("seed,stall", [(0, 0.0), (1, 0.3), (2, 0.7)])
def test_stage_streams_every_chunk_under_random_gaps(seed, stall):
    """A naive model (queue of expected outputs) checked every cycle: order, no loss, no
    duplication, payload held while stalled, one beat per cycle when never stalled."""
    config = XorConfig.random(12, 20, 3, seed)
    rng = random.Random(seed)
    inputs = [rng.getrandbits(12) for _ in range(300)]
    expected = [to_int(y) for y in flexor.decrypt_reference(
        config, np.array([to_bits(x, 12) for x in inputs]))]
    dut = XorStage(config)
    received = []

    async def testbench(ctx):
        source = StreamSource(amaranth_port(ctx, dut.i), inputs, pause=random_pause(rng, stall))
        sink = StreamSink(amaranth_port(ctx, dut.o), pause=random_pause(rng, stall))
        for cycle in range(20 * len(inputs)):
            if len(received) == len(inputs):
                break
            source.drive()
            sink.drive()
            source.settle()
            payload = sink.settle(f"cycle {cycle} (seed {seed})")
            if payload is not None:
                received.append(payload)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert received == expected, f"seed {seed}"


def test_stage_is_full_throughput():
    config = XorConfig.random(8, 10, 2, 0)
    dut = XorStage(config)
    cycles_with_output = []

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        for cycle in range(50):
            ctx.set(dut.i.payload, cycle % 256)
            assert ctx.get(dut.i.ready)
            if ctx.get(dut.o.valid):
                cycles_with_output.append(cycle)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert cycles_with_output == list(range(1, 50))


def test_constructors_reject_non_configs():
    with warnings.catch_warnings():
        # The half-built objects warn when collected that they were never elaborated.
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(TypeError, match="config must be a flexor.XorConfig"):
            XorNetwork([[1, 0]])
        with pytest.raises(TypeError, match="config must be a flexor.XorConfig"):
            XorStage(None)
        gc.collect()
