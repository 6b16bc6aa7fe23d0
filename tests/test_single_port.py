# amaranth: UnusedElaboratable=no
"""hdl.SinglePortRam and hdl.SharedPortMemory in Amaranth's simulator: the SPRAM-shaped block's
port, and the shared memory against a plain model of its contract (reads never delayed, data
one cycle later and held, writes queued one deep and written in a cycle without a read)."""

import random
import re

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdl import SharedPortMemory, SinglePortRam


def run(dut, testbench):
    simulator = Simulator(dut)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()


def test_single_port_ram_reads_writes_nibbles_and_spoils_its_output_on_write():
    dut = SinglePortRam(depth=32)
    seen = {}

    async def testbench(ctx):
        async def access(addr, *, we=0, mask=0, wdata=0):
            ctx.set(dut.addr, addr)
            ctx.set(dut.en, 1)
            ctx.set(dut.we, we)
            ctx.set(dut.mask, mask)
            ctx.set(dut.wdata, wdata)
            await ctx.tick()
            ctx.set(dut.en, 0)
        await access(5, we=1, mask=0b1111, wdata=0x1234)
        await access(5, we=1, mask=0b0101, wdata=0xABCD)    # nibbles 0 and 2 only
        await access(5)
        seen["read"] = ctx.get(dut.rdata)
        await ctx.tick()
        seen["held"] = ctx.get(dut.rdata)                  # en low: the word stays
        await access(6, we=1, mask=0b1111, wdata=0)
        seen["after write"] = ctx.get(dut.rdata)

    run(dut, testbench)
    assert seen["read"] == seen["held"] == 0x1B3D
    assert seen["after write"] != 0x1B3D      # undefined in the real block: never the old word


@pytest.mark.parametrize("depth, width, blocks", [(16, 80, 4), (8, 20, 2), (4, 16, 1)])
def test_shared_port_memory_equals_its_contract(depth, width, blocks):
    seed = depth * 1000 + width * 10 + blocks
    rng = random.Random(seed)
    dut = SharedPortMemory(depth=depth, width=width, blocks=blocks)
    counts = {"reads": 0, "writes": 0, "waited": 0}

    async def testbench(ctx):
        memory = [0] * depth
        queue = None
        expected = None
        for cycle in range(3000):
            assert ctx.get(dut.write_ready) == (queue is None), f"cycle {cycle} (seed {seed})"
            if expected is not None:
                assert ctx.get(dut.read.data) == expected, f"cycle {cycle} (seed {seed})"
            read = rng.random() < 0.5
            write = rng.random() < 0.4
            read_addr, write_addr = rng.randrange(depth), rng.randrange(depth)
            word = rng.getrandbits(width)
            ctx.set(dut.read.en, read)
            ctx.set(dut.read.addr, read_addr)
            ctx.set(dut.write.en, write)
            ctx.set(dut.write.addr, write_addr)
            ctx.set(dut.write.data, word)
            if read:
                expected = memory[read_addr]
                counts["reads"] += 1
            if queue is not None and not read:
                memory[queue[0]] = queue[1]
                queue = None
            elif queue is None and write:
                queue = (write_addr, word)
                counts["writes"] += 1
            elif write:
                counts["waited"] += 1
            await ctx.tick()

    run(dut, testbench)
    assert min(counts.values()) > 100, counts


BAD_DEPTHS = [
    ("32", TypeError, "depth must be an integer, not '32'"),
    (32.0, TypeError, "depth must be an integer, not 32.0"),
    (True, TypeError, "depth must be an integer, not True"),
    (0, ValueError, "depth must be an integer in 1..16384, not 0"),
    (-1, ValueError, "depth must be an integer in 1..16384, not -1"),
    (16385, ValueError, "depth must be an integer in 1..16384, not 16385"),
]


@pytest.mark.parametrize("depth, error, message", BAD_DEPTHS)
def test_single_port_ram_refuses_bad_depths(depth, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        SinglePortRam(depth=depth)


@pytest.mark.parametrize("options, error, message", [
    *[({"depth": depth}, error, message) for depth, error, message in BAD_DEPTHS],
    ({"width": 16.0}, TypeError, "width must be an integer, not 16.0"),
    ({"width": True}, TypeError, "width must be an integer, not True"),
    ({"width": 0}, ValueError, "width must be an integer >= 1, not 0"),
    ({"width": 80, "blocks": 6}, ValueError,
     "blocks for 80-bit words must be an integer in 1..5, not 6"),
    ({"blocks": 0}, ValueError, "blocks for 16-bit words must be an integer in 1..1, not 0"),
    ({"blocks": -1}, ValueError, "blocks for 16-bit words must be an integer in 1..1, not -1"),
    ({"blocks": 1.0}, TypeError, "blocks for 16-bit words must be an integer, not 1.0"),
    ({"blocks": True}, TypeError, "blocks for 16-bit words must be an integer, not True"),
])
def test_shared_port_memory_refuses_bad_parameters(options, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        SharedPortMemory(**{"depth": 16, "width": 16, "blocks": 1, **options})


def test_numpy_integer_parameters_become_ints():
    ram = SharedPortMemory(depth=np.int64(16384), width=np.int32(40), blocks=np.uint8(3))
    assert (ram.depth, ram.width, ram.blocks) == (16384, 40, 3)
    assert {type(ram.depth), type(ram.width), type(ram.blocks)} == {int}
    assert type(SinglePortRam(depth=np.int16(7)).depth) is int
