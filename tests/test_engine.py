# amaranth: UnusedElaboratable=no
"""hdl.InferenceEngine and hdl.Requantizer in Amaranth's simulator against flexor.integer.

Random networks (random matrices, planes, shapes, activation widths, tiles, constants), the
real decryptor in front, random stalls on all four streams, a reset in the middle of an image:
every output of every layer and every result beat must equal the NumPy integer model.
"""

import random

import numpy as np
import pytest
from amaranth.hdl import ResetInserter, Signal
from amaranth.sim import Simulator

from flexor.network import StreamedNetwork
from flexor.stream import pack_stream
from hdl import InferenceEngine, Requantizer


class EngineRun:
    """What a simulation saw: results ``(cls, logits)``, the trace, cycles of the results."""

    def __init__(self):
        self.results, self.result_cycles, self.trace, self.trace_cycles = [], [], [], []
        self.error = None


def unpack_result(value, classes, bits):
    cls_bits = max(1, (classes - 1).bit_length())
    cls = value & ((1 << cls_bits) - 1)
    logits = []
    for index in range(classes):
        raw = (value >> (cls_bits + index * bits)) & ((1 << bits) - 1)
        logits.append(raw - (1 << bits) if raw >> (bits - 1) else raw)
    return cls, logits


def simulate_engine(dut, images, *, seed=0, stall=(0.0, 0.0, 0.0, 0.0), reset_at=None,
                    max_cycles=200000):
    """Drive weights (descriptor and data, repeated per image), pixels and the result stream;
    ``stall`` = chance per cycle that desc valid, data valid, image valid, result ready are
    withheld. With ``reset_at``, the streams are abandoned at that cycle, ``rst`` pulsed and
    everything sent again."""
    rng = random.Random(seed)
    network = dut.network
    packed = pack_stream(network.configs, network.stream_layers(), width=dut.width,
                         lanes=dut.lanes)
    descriptors = packed.descriptors * len(images)
    words = packed.words * len(images)
    lasts = packed.lasts * len(images)
    pixels = [int(p) for image in images for p in image]
    width = dut.width
    run = EngineRun()

    async def testbench(ctx):
        d = w = p = 0
        held = None
        resets_left = 0 if reset_at is None else 1
        cycle = 0
        while cycle < max_cycles and len(run.results) < len(images):
            if resets_left and cycle == reset_at:
                resets_left = 0
                for port in (dut.desc, dut.data, dut.image):
                    ctx.set(port.valid, 0)
                ctx.set(reset, 1)
                await ctx.tick().repeat(2)
                ctx.set(reset, 0)
                d = w = p = 0
                held = None
                run.results.clear()
                run.result_cycles.clear()
                run.trace.clear()
                run.trace_cycles.clear()
            desc_valid = d < len(descriptors) and rng.random() >= stall[0]
            data_valid = w < len(words) and rng.random() >= stall[1]
            image_valid = p < len(pixels) and rng.random() >= stall[2]
            ctx.set(dut.desc.valid, desc_valid)
            ctx.set(dut.desc.payload.as_value(), descriptors[d] if desc_valid else 0)
            ctx.set(dut.data.valid, data_valid)
            ctx.set(dut.data.payload.as_value(),
                    words[w] | lasts[w] << width if data_valid else 0)
            ctx.set(dut.image.valid, image_valid)
            ctx.set(dut.image.payload, pixels[p] if image_valid else 0)
            ctx.set(dut.result.ready, rng.random() >= stall[3])
            if desc_valid and ctx.get(dut.desc.ready):
                d += 1
            if data_valid and ctx.get(dut.data.ready):
                w += 1
            if image_valid and ctx.get(dut.image.ready):
                p += 1
            if ctx.get(dut.trace.valid):
                run.trace.append((ctx.get(dut.trace.payload.layer),
                                  ctx.get(dut.trace.payload.row),
                                  ctx.get(dut.trace.payload.value)))
                run.trace_cycles.append(cycle)
            valid = ctx.get(dut.result.valid)
            value = ctx.get(dut.result.payload.as_value())
            if held is not None:
                assert valid and value == held, \
                    f"cycle {cycle}: result changed or dropped while stalled (seed {seed})"
            held = None
            if valid:
                if ctx.get(dut.result.ready):
                    run.results.append(unpack_result(value, dut.classes, dut.logit_bits))
                    run.result_cycles.append(cycle)
                else:
                    held = value
            await ctx.tick()
            cycle += 1
        run.error = ctx.get(dut.error.as_value())

    reset = Signal()
    simulator = Simulator(ResetInserter(reset)(dut))
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()
    return run


def check_engine(run, network, images, seed):
    """Every traced output and every result equals the integer model; names the first wrong
    image, layer and output."""
    program = network.program
    outputs = program.run_layers(np.asarray(images, dtype=np.int64))
    expected_trace = [(layer, row, int(outputs[layer][image, row]))
                      for image in range(len(images))
                      for layer in range(len(program.layers))
                      for row in range(program.layers[layer].outputs)]
    for index, (got, want) in enumerate(zip(run.trace, expected_trace)):
        if got != want:
            per_image = len(expected_trace) // len(images)
            raise AssertionError(f"image {index // per_image}, layer {want[0]}, output "
                                 f"{want[1]}: got {got[2]} (traced as layer {got[0]} row "
                                 f"{got[1]}), want {want[2]} (seed {seed})")
    assert len(run.trace) == len(expected_trace), \
        f"{len(run.trace)} outputs traced, {len(expected_trace)} expected (seed {seed})"
    logits = outputs[-1]
    for image, (cls, got) in enumerate(run.results):
        assert got == [int(v) for v in logits[image]], f"image {image}: logits (seed {seed})"
        assert cls == int(logits[image].argmax()), f"image {image}: class (seed {seed})"
    assert len(run.results) == len(images), f"{len(run.results)} results (seed {seed})"
    assert run.error == 0, f"error flags {run.error:#b} (seed {seed})"


# (sizes, nout, nins, tiles, hidden bits, width, lanes)
NETWORKS = [
    ((23, 9, 5), 4, (3,), (1, 1), (3,), 8, 1),
    ((30, 13, 11, 4), 6, (5, 9), (2, 4, 2), (2, 4), 16, 2),
    ((17, 8, 6), 5, (7,), (4, 2), (8,), 32, 2),
    ((12, 5), 7, (4,), (3,), (), 8, 3),
    ((40, 16, 10), 8, (6, 11), (4, 4), (1,), 64, 4),
]


def build(case, seed):
    sizes, nout, nins, tiles, hidden, width, lanes = case
    network = StreamedNetwork.random(seed, sizes=sizes, nout=nout, nins=nins, tiles=tiles,
                                     hidden_bits=hidden)
    return network, InferenceEngine(network=network, width=width, lanes=lanes)


@pytest.mark.parametrize("case", NETWORKS)
def test_engine_equals_integer_model_under_stalls(case):
    seed = NETWORKS.index(case) + 100
    network, dut = build(case, seed)
    images = network.random_inputs(3, seed)
    run = simulate_engine(dut, images, seed=seed, stall=(0.3, 0.3, 0.3, 0.3))
    check_engine(run, network, images, seed)


@pytest.mark.parametrize("case", NETWORKS)
def test_engine_full_rate(case):
    """No stalls: cycles per image within the bound (beats at one per cycle when the
    decryptor delivers them so, plus the stated overhead per layer)."""
    seed = NETWORKS.index(case) + 200
    network, dut = build(case, seed)
    images = network.random_inputs(4, seed)
    run = simulate_engine(dut, images, seed=seed)
    check_engine(run, network, images, seed)
    bound = dut.cycle_bound()
    period = max(np.diff(run.result_cycles))
    assert period <= bound, f"{period} cycles per image, bound {bound} (seed {seed})"


def test_reset_mid_image():
    seed = 300
    network, dut = build(NETWORKS[1], seed)
    images = network.random_inputs(2, seed)
    run = simulate_engine(dut, images, seed=seed, stall=(0.2, 0.2, 0.2, 0.2), reset_at=400)
    check_engine(run, network, images, seed)
