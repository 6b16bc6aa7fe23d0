# amaranth: UnusedElaboratable=no
"""hdl.InferenceEngine and hdl.Requantizer in Amaranth's simulator against flexor.integer.

Random networks (random matrices, planes, shapes, activation widths, tiles, constants), the
real decryptor in front, random stalls on all four streams, a reset in the middle of an image:
every output of every layer and every result beat must equal the NumPy integer model.
"""

import random
import re

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from flexor.network import StreamedNetwork
from flexor.stream import pack_stream
from hdl import InferenceEngine, Requantizer
from sim.streams import StreamSink, StreamSource, amaranth_port, random_pause
from tests.stream_stimulus import pulse_reset, simulate_with_reset


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
    ``stall`` = chance per cycle that desc, data and image hold back a new beat (one offered
    stays until taken) and that result ready is withheld. With ``reset_at``, the streams are
    abandoned at that cycle, ``rst`` pulsed and everything sent again."""
    rng = random.Random(seed)
    network = dut.network
    packed = pack_stream(network.configs, network.stream_layers(), width=dut.width,
                         lanes=dut.lanes)
    descriptors = packed.descriptors * len(images)
    data = [word | last << dut.width
            for word, last in zip(packed.words * len(images), packed.lasts * len(images))]
    pixels = [int(p) for image in images for p in image]
    run = EngineRun()

    async def testbench(ctx, reset):
        sources = [StreamSource(amaranth_port(ctx, port), items, pause=random_pause(rng, p))
                   for port, items, p in ((dut.desc, descriptors, stall[0]),
                                          (dut.data, data, stall[1]),
                                          (dut.image, pixels, stall[2]))]
        result = StreamSink(amaranth_port(ctx, dut.result), pause=random_pause(rng, stall[3]))
        cycle = 0
        while cycle < max_cycles and len(run.results) < len(images):
            if cycle == reset_at:
                await pulse_reset(ctx, reset, (*sources, result))
                run.results.clear()
                run.result_cycles.clear()
                run.trace.clear()
                run.trace_cycles.clear()
            for stream in (*sources, result):
                stream.drive()
            for source in sources:
                source.settle()
            if ctx.get(dut.trace.valid):
                run.trace.append((ctx.get(dut.trace.payload.layer),
                                  ctx.get(dut.trace.payload.row),
                                  ctx.get(dut.trace.payload.value)))
                run.trace_cycles.append(cycle)
            value = result.settle(f"cycle {cycle}, result (seed {seed})")
            if value is not None:
                run.results.append(unpack_result(value, dut.classes, dut.logit_bits))
                run.result_cycles.append(cycle)
            await ctx.tick()
            cycle += 1
        run.error = ctx.get(dut.error.as_value())

    simulate_with_reset(dut, testbench)
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


def random_network(case, seed):
    sizes, nout, nins, tiles, hidden, _, _ = case
    return StreamedNetwork.random(seed, sizes=sizes, nout=nout, nins=nins, tiles=tiles,
                                  hidden_bits=hidden)


def build(case, seed):
    network = random_network(case, seed)
    return network, InferenceEngine(network=network, width=case[5], lanes=case[6])


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


@pytest.mark.parametrize("single_port, seed, reset_at", [(False, 300, 400), (True, 900, 150)],
                         ids=["default", "single-port"])
def test_reset_mid_image(single_port, seed, reset_at):
    """A reset mid-image, also with the image memory on single-port blocks (iCE40 UltraPlus)."""
    network, dut = (build_single_port if single_port else build)(NETWORKS[1], seed)
    images = network.random_inputs(2, seed)
    run = simulate_engine(dut, images, seed=seed, stall=(0.2, 0.2, 0.2, 0.2), reset_at=reset_at)
    check_engine(run, network, images, seed)


def test_requantizer_equals_the_contract():
    """Random accumulators of every layer, each within the layer's bound, through the
    requantizer alone: ``(mult * acc + offset) >> shift`` (floor), clamped on hidden layers."""
    seed = 400
    network = random_network(NETWORKS[1], seed)
    program = network.program
    rng = np.random.default_rng(seed)
    rows = [(index, row, int(rng.integers(-layer.acc_bound, layer.acc_bound + 1)))
            for index, layer in enumerate(program.layers) for row in range(layer.outputs)
            for _ in range(3)]
    rows += [(index, 0, bound) for index, layer in enumerate(program.layers)
             for bound in (-layer.acc_bound, layer.acc_bound)]

    def model(index, row, acc):
        layer = program.layers[index]
        t = (int(layer.mult[0, row]) * acc + int(layer.offset[row])) >> layer.shift
        return t if layer.out_bits is None else min(max(t, 0), 2 ** layer.out_bits - 1)

    dut = Requantizer(program)
    got = []

    async def testbench(ctx):
        for index, row, acc in rows + [(None, 0, 0)] * Requantizer.LATENCY:
            ctx.set(dut.i.valid, index is not None)
            if index is not None:
                ctx.set(dut.i.payload.layer, index)
                ctx.set(dut.i.payload.row, row)
                ctx.set(dut.i.payload.acc, acc)
            if ctx.get(dut.o.valid):
                got.append((ctx.get(dut.o.payload.layer), ctx.get(dut.o.payload.row),
                            ctx.get(dut.o.payload.value)))
            await ctx.tick()

    simulator = Simulator(dut)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()
    assert got == [(index, row, model(index, row, acc)) for index, row, acc in rows]


def test_mutant_lane_sign_inverted_is_caught(monkeypatch):
    """Lane 1 adding -a where the weight says +a (and back): the engine test fails."""
    import hdl.engine

    calls = []
    original = hdl.engine.lane_sum

    def inverted_lane_one(bits, activations, total):
        calls.append(None)
        lane = (len(calls) - 1) % dut_lanes
        return original(~bits if lane == 1 else bits, activations, total)

    seed = 500
    network = random_network(NETWORKS[1], seed)
    dut_lanes = 2
    monkeypatch.setattr(hdl.engine, "lane_sum", inverted_lane_one)
    dut = InferenceEngine(network=network, width=16, lanes=dut_lanes)
    images = network.random_inputs(2, seed)
    run = simulate_engine(dut, images, seed=seed)
    assert calls, "the mutant was not built in"
    with pytest.raises(AssertionError, match=r"image 0, layer 0, output"):
        check_engine(run, network, images, seed)


def test_mutant_constant_off_by_one_is_caught():
    """The hardware built with one output's offset one lower than the model's (at a value where
    the floor shows it) fails the engine test, which names that output."""
    seed = 600
    network = random_network(NETWORKS[0], seed)
    images = network.random_inputs(2, seed)
    outputs = network.program.run_layers(images)
    last = network.program.layers[-1]
    # Choose the offset so that image 0's logit 0 sits exactly on a multiple of 2**shift.
    acc = np.einsum("i,oi->o", outputs[-2][0], 2 * last.weights[0].astype(np.int64) - 1)
    exact = int(last.mult[0, 0]) * int(acc[0]) + int(last.offset[0])
    offsets = last.offset.copy()
    offsets[0] -= exact % 2 ** last.shift     # the model now sits on a boundary ...
    specs = []
    for index, layer in enumerate(network.layers):
        specs.append({"config": layer.config, "tile": layer.tile, "bits": layer.bits,
                      "inputs": layer.integer.inputs, "outputs": layer.integer.outputs,
                      "mult": layer.integer.mult[0], "shift": layer.integer.shift,
                      "offset": offsets if index == len(network.layers) - 1 else
                      layer.integer.offset,
                      "in_bits": layer.integer.in_bits, "out_bits": layer.integer.out_bits})
    model = StreamedNetwork.from_bits(network.configs, specs)
    specs[-1] = {**specs[-1], "offset": offsets - np.eye(len(offsets), dtype=np.int64)[0]}
    broken = StreamedNetwork.from_bits(network.configs, specs)   # ... and the hardware one below
    dut = InferenceEngine(network=broken, width=8, lanes=1)
    run = simulate_engine(dut, images, seed=seed)
    with pytest.raises(AssertionError, match=rf"image 0, layer {len(network.layers) - 1}, "
                                             rf"output 0:"):
        check_engine(run, model, images, seed)


# -- single-port image memory and constants in logic (the iCE40 UltraPlus option) ---------------

def build_single_port(case, seed, *, blocks=None):
    """The engine of ``case`` with its image memory on single-port blocks (all of them, or
    ``blocks``) and its last three constant rows in logic."""
    network = random_network(case, seed)
    width = network.nout * network.program.input_bits
    rows = sum(layer.outputs for layer in network.program.layers)
    dut = InferenceEngine(network=network, width=case[5], lanes=case[6],
                          image_single_port_blocks=blocks or -(-width // 16),
                          constant_memory_rows=rows - 3)
    assert dut.single_port_buffers and dut.constant_logic_rows == 3
    return network, dut


@pytest.mark.parametrize("case, blocks", [(NETWORKS[0], None), (NETWORKS[1], 1),
                                          (NETWORKS[3], 2), (NETWORKS[4], None)])
def test_single_port_engine_equals_integer_model_under_stalls(case, blocks):
    seed = NETWORKS.index(case) + 700
    network, dut = build_single_port(case, seed, blocks=blocks)
    images = network.random_inputs(3, seed)
    run = simulate_engine(dut, images, seed=seed, stall=(0.3, 0.3, 0.1, 0.3))
    check_engine(run, network, images, seed)


@pytest.mark.parametrize("case", [NETWORKS[2], NETWORKS[4]])
def test_single_port_engine_full_rate(case):
    """NETWORKS[4] has tile = lanes: the image memory is read every cycle of layer 0, so the
    loader's words wait for the later layers."""
    seed = NETWORKS.index(case) + 800
    network, dut = build_single_port(case, seed)
    images = network.random_inputs(4, seed)
    run = simulate_engine(dut, images, seed=seed)
    check_engine(run, network, images, seed)
    period = max(np.diff(run.result_cycles))
    assert period <= dut.cycle_bound(), f"{period} cycles, bound {dut.cycle_bound()}"


BLOCKS = "image_single_port_blocks for 32-bit image words must be an integer"


@pytest.mark.parametrize("options, error, message", [
    ({"image_single_port_blocks": 3}, ValueError, f"{BLOCKS} in 0..2, not 3"),
    ({"image_single_port_blocks": -1}, ValueError, f"{BLOCKS} in 0..2, not -1"),
    ({"image_single_port_blocks": 1.0}, TypeError, f"{BLOCKS}, not 1.0"),
    ({"image_single_port_blocks": True}, TypeError, f"{BLOCKS}, not True"),
    ({"image_single_port_blocks": None}, TypeError, f"{BLOCKS}, not None"),
    ({"constant_memory_rows": 0}, ValueError,
     "constant_memory_rows must be an integer >= 1, not 0"),
    ({"constant_memory_rows": -3}, ValueError,
     "constant_memory_rows must be an integer >= 1, not -3"),
    ({"constant_memory_rows": 2.5}, TypeError, "constant_memory_rows must be an integer, not 2.5"),
    ({"constant_memory_rows": False}, TypeError,
     "constant_memory_rows must be an integer, not False"),
])
def test_memory_options_are_checked(options, error, message):
    network = random_network(NETWORKS[0], 0)       # nout 4, 8-bit pixels: 32-bit image words
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        InferenceEngine(network=network, width=8, **options)


@pytest.mark.parametrize("rows, error, message", [
    (0, ValueError, "memory_rows must be an integer >= 1, not 0"),
    (1.5, TypeError, "memory_rows must be an integer, not 1.5"),
    (True, TypeError, "memory_rows must be an integer, not True"),
])
def test_requantizer_memory_rows_are_checked(rows, error, message):
    program = random_network(NETWORKS[0], 0).program
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        Requantizer(program, memory_rows=rows)


def test_single_port_image_memory_refused_when_deeper_than_a_block():
    # 8193 one-pixel columns: two slots of 2**14 words each.
    network = StreamedNetwork.random(0, sizes=(8193, 1), nout=1, nins=(1,), tiles=(1,),
                                     hidden_bits=())
    with pytest.raises(ValueError, match="^the image memory has 32768 words, more than a "
                                         "single-port block's 16384$"):
        InferenceEngine(network=network, width=8, image_single_port_blocks=1)


def test_single_port_options_default_and_numpy_integers():
    network = random_network(NETWORKS[0], 0)
    engine = InferenceEngine(network=network, width=8, image_single_port_blocks=np.int64(2),
                             constant_memory_rows=np.int32(5))
    assert type(engine.image_single_port_blocks) is int
    assert type(engine.constant_memory_rows) is int
    assert engine.single_port_buffers["image"][1] == 32 and engine.constant_logic_rows > 0
    Fragment.get(engine, None)
    default = InferenceEngine(network=network, width=8)
    assert default.single_port_buffers == {} and default.constant_logic_rows == 0
    Fragment.get(default, None)       # elaborates (and so is not reported unused)


def test_mutant_single_port_write_dropped_is_caught(monkeypatch):
    """The image memory's arbitration drops a queued word when a read takes the port (instead
    of keeping it for the next free cycle): the engine test fails."""
    import hdl.single_port

    monkeypatch.setattr(hdl.single_port, "_arbitrate",
                        lambda queued, reading: (queued & ~reading, queued))
    seed = 701
    network, dut = build_single_port(NETWORKS[1], seed, blocks=1)
    images = network.random_inputs(3, seed)
    run = simulate_engine(dut, images, seed=seed, stall=(0.3, 0.3, 0.1, 0.3))
    with pytest.raises(AssertionError, match=r"image \d, layer 0, output"):
        check_engine(run, network, images, seed)
