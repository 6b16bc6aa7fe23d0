"""cocotb testbench for a generated XOR decoder, independent of the generator.

It reads only the Verilog under test and its ``.json`` sidecar (path in ``FLEXOR_SIDECAR``) and
checks ``y == M x mod 2`` with ``M`` taken from the sidecar, computed here from scratch (one
parity of ``x & row_mask`` per output bit), not through the project's golden model.

Environment: ``FLEXOR_SIDECAR`` (required); ``FLEXOR_VECTORS`` (how many inputs; all ``2**nin``
when that is no more, default 4096); ``FLEXOR_SEED`` (default 0); ``FLEXOR_STALL``
(registered variant: probability that valid or ready is withheld in a cycle, default 0.3).
"""

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, Timer

from flexor.sidecar import Sidecar
from sim.streams import StreamSink, StreamSource, cocotb_port, random_pause


def load_case():
    sidecar = Sidecar.load(os.environ["FLEXOR_SIDECAR"])
    masks = [sum(bit << j for j, bit in enumerate(row)) for row in sidecar["matrix"]]
    nin = len(sidecar["matrix"][0])
    count = int(os.environ.get("FLEXOR_VECTORS", "4096"))
    seed = int(os.environ.get("FLEXOR_SEED", "0"))
    if 2 ** nin <= count:
        inputs = list(range(2 ** nin))
    else:
        rng = random.Random(seed)
        inputs = [0, 2 ** nin - 1] + [rng.getrandbits(nin) for _ in range(count - 2)]
    return sidecar, masks, inputs, seed


def expected_output(masks, x):
    return sum((bin(x & mask).count("1") & 1) << r for r, mask in enumerate(masks))


@cocotb.test()
async def decoder_matches_matrix(dut):
    """Every output bit of every input vector equals the parity of the matrix row."""
    sidecar, masks, inputs, seed = load_case()
    if sidecar["registered"]:
        await check_registered(dut, masks, inputs, seed,
                               float(os.environ.get("FLEXOR_STALL", "0.3")))
        return
    for x in inputs:
        dut.x.value = x
        await Timer(1, unit="ns")
        got, want = int(dut.y.value), expected_output(masks, x)
        assert got == want, f"x={x:#x}: expected y={want:#x}, got {got:#x} (seed {seed})"
    dut._log.info("checked %d inputs x %d output bits", len(inputs), len(masks))


async def check_registered(dut, masks, inputs, seed, stall):
    """Stream ``inputs`` through with random gaps on valid and ready and check every beat, its
    order, and the valid/ready rule on the output (held stable while not accepted)."""
    rng = random.Random(seed)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    source = StreamSource(cocotb_port(dut.x_valid, dut.x_ready, dut.x), inputs,
                          pause=random_pause(rng, stall))
    sink = StreamSink(cocotb_port(dut.y_valid, dut.y_ready, dut.y), pause=random_pause(rng, stall))
    dut.y_ready.value = 0
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    received = 0
    # A beat waits a geometric number of cycles, of mean 1 / (1 - stall), for valid and for ready.
    limit = int((20 * len(inputs) + 100) / (1 - stall))
    for cycle in range(limit):
        if received == len(inputs):
            break
        source.drive()
        sink.drive()
        await ReadOnly()
        source.settle()
        got = sink.settle(f"cycle {cycle} (seed {seed})")
        if got is not None:
            assert received < len(inputs), f"cycle {cycle}: extra output beat (seed {seed})"
            want = expected_output(masks, inputs[received])
            assert got == want, (f"cycle {cycle}, beat {received}: x={inputs[received]:#x} "
                                 f"expected y={want:#x}, got {got:#x} (seed {seed})")
            received += 1
        await RisingEdge(dut.clk)
    assert received == len(inputs), \
        f"only {received} of {len(inputs)} beats arrived in {limit} cycles (seed {seed})"
    dut._log.info("checked %d beats x %d output bits with stall %.2f", received, len(masks), stall)
