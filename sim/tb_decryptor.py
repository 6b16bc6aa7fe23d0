"""cocotb testbench for a generated decryptor, driven only by its sidecar and a stimulus file.

The sidecar (``FLEXOR_SIDECAR``) gives the word width, lanes and every matrix; the stimulus
(``FLEXOR_STIMULUS``, JSON) gives the layers and how to disturb the streams::

    {"layers": [{"config": 0, "chunks": 5, "packed": "<hex of the flat packed bits>"}, ...],
     "seed": 0,                                       # of the stall pattern
     "stall": {"desc": 0.3, "data": 0.3, "out": 0.3}, # chance a cycle pauses (sim.streams)
     "reset_at": null,                                # cycle of a mid-stream reset, or null
     "names": ["fc1 plane 0", ...],                   # optional labels for error messages
     "flip": {"word": 3, "bit": 5}}                   # optional: corrupt one data bit on the wire

The layers are packed and their golden beats computed with :mod:`flexor.stream` from the
sidecar's matrices alone. Every output beat (``tdata``, ``tuser``, ``tlast``) is compared in
order; the first mismatch is reported with layer, chunk, bit and cycle. With ``reset_at`` the
streams are dropped at that cycle, ``rst`` is held two cycles, and everything is sent again
from the start (the beats before the reset are discarded). The result, with the cycle of every
handshake, the ``tdata`` of every accepted beat (hex) and the wall time, is written to
``FLEXOR_RESULT`` when set. ``flip`` inverts one bit of one data word as it is driven while the
golden beats stay those of the intended stream: a check that a corrupted stream is caught where
it should be.
"""

import json
import os
import random
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from flexor.stream import layers_from_json, pack_stream
from sim.streams import StreamSink, StreamSource, cocotb_port, random_pause
from sim.testbench import load_inputs


def load_case():
    sidecar, stimulus = load_inputs()
    configs = sidecar.configs
    layers = layers_from_json(configs, stimulus["layers"])
    packed = pack_stream(configs, layers, width=sidecar["width"], lanes=sidecar["lanes"])
    return sidecar, stimulus, packed


def describe_mismatch(beat, got, nout, names=None):
    """Where a received ``(data, count, last)`` first differs from the golden :class:`Beat`."""
    data, count, last = got
    layer = f"layer {beat.layer}" + (f" ({names[beat.layer]})" if names else "")
    if data != beat.data:
        diff = data ^ beat.data
        bit = (diff & -diff).bit_length() - 1
        return (f"{layer}, chunk {beat.chunk + bit // nout}, bit {bit % nout}: got "
                f"{data >> bit & 1}, want {beat.data >> bit & 1} (beat tdata {data:#x}, want "
                f"{beat.data:#x})")
    if count != beat.count:
        return f"{layer}, chunk {beat.chunk}: tuser {count}, want {beat.count}"
    return f"{layer}, chunk {beat.chunk}: tlast {int(last)}, want {int(beat.last)}"


async def pulse_reset(dut, cycles=2):
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


@cocotb.test()
async def decryptor_matches_golden_beats(dut):
    """Every output beat equals the golden model, in order, under random stalls and a reset."""
    sidecar, stimulus, packed = load_case()
    nout = sidecar["nout"]
    seed = stimulus.get("seed", 0)
    stall = {"desc": 0.0, "data": 0.0, "out": 0.0, **stimulus.get("stall", {})}
    reset_at = stimulus.get("reset_at")
    names = stimulus.get("names")
    flip = stimulus.get("flip")
    rng = random.Random(seed)
    start = time.perf_counter()
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.s_desc_tvalid.value = 0
    dut.s_axis_tvalid.value = 0
    dut.m_axis_tready.value = 0
    await pulse_reset(dut)

    descriptors, words, lasts, beats = packed
    if flip is not None:
        words = list(words)
        words[flip["word"]] ^= 1 << flip["bit"]
    desc = StreamSource(cocotb_port(dut.s_desc_tvalid, dut.s_desc_tready, dut.s_desc_tdata),
                        descriptors, pause=random_pause(rng, stall["desc"]))
    data = StreamSource(cocotb_port(dut.s_axis_tvalid, dut.s_axis_tready,
                                    (dut.s_axis_tdata, dut.s_axis_tlast)),
                        list(zip(words, lasts)), pause=random_pause(rng, stall["data"]))
    out = StreamSink(cocotb_port(dut.m_axis_tvalid, dut.m_axis_tready,
                                 (dut.m_axis_tdata, dut.m_axis_tuser, dut.m_axis_tlast)),
                     pause=random_pause(rng, stall["out"]))
    received, beat_cycles, word_cycles, beat_data = 0, [], [], []
    # Every handshake waits a geometric number of cycles, of mean 1 / (1 - stall), for its
    # valid or ready: the limit grows with the worst stall probability.
    limit = int((40 * (len(words) + len(beats) + len(descriptors)) + 200)
                / (1 - max(stall.values()))) + (reset_at or 0)
    for cycle in range(limit):
        if received == len(beats):
            break
        if reset_at is not None and cycle == reset_at:
            for stream in (desc, data, out):
                stream.restart()
            await pulse_reset(dut)
            received = 0
            beat_cycles, word_cycles, beat_data = [], [], []
        for stream in (desc, data, out):
            stream.drive()
        await ReadOnly()
        desc.settle()
        if data.settle():
            word_cycles.append(cycle)
        got = out.settle(f"cycle {cycle}, beat {received} (seed {seed})")
        if got is not None:
            assert received < len(beats), f"cycle {cycle}: extra output beat (seed {seed})"
            want = beats[received]
            assert got == (want.data, want.count, want.last), \
                f"cycle {cycle}, beat {received}: " + describe_mismatch(want, got, nout, names) \
                + f" (seed {seed})"
            received += 1
            beat_cycles.append(cycle)
            beat_data.append(f"{got[0]:x}")
        await RisingEdge(dut.clk)
    assert received == len(beats), (f"only {received} of {len(beats)} beats arrived in {limit} "
                                    f"cycles (seed {seed})")
    assert int(dut.error.value) == 0, f"error flags {int(dut.error.value):#b} on a good stream"
    dut._log.info("checked %d beats of %d layers, %d words in %d cycles", len(beats),
                  len(descriptors), len(words), beat_cycles[-1] + 1)
    if os.environ.get("FLEXOR_RESULT"):
        with open(os.environ["FLEXOR_RESULT"], "w", encoding="utf-8") as file:
            json.dump({"beats": len(beats), "words": len(words), "layers": len(descriptors),
                       "cycles": beat_cycles[-1] + 1, "beat_cycles": beat_cycles,
                       "word_cycles": word_cycles, "beat_data": beat_data,
                       "seconds": time.perf_counter() - start}, file)
