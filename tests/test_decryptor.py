# amaranth: UnusedElaboratable=no
"""hdl.Decryptor in Amaranth's simulator, every beat checked against flexor.stream's golden beats.

The golden beats are themselves checked against a naive bit-by-bit model in test_stream.py.
"""

import random

import numpy as np
import pytest

from flexor.stream import descriptor_word, pack_stream
from hdl import Decryptor
from sim.streams import StreamSink, StreamSource, amaranth_port, random_pause
from tests.stream_stimulus import make_configs, pulse_reset, random_layers, simulate_with_reset


class Run:
    """What a simulation saw: beats as (data, count, last), and the cycles of every handshake."""

    def __init__(self):
        self.beats, self.beat_cycles, self.word_cycles, self.desc_cycles = [], [], [], []
        self.error = None


def simulate(dut, descriptors, words, lasts, *, seed=0, stall=(0.0, 0.0, 0.0), reset_at=None,
             max_cycles=20000, beats_expected=None):
    """Drive the three streams cycle by cycle; stall = chance per cycle that desc and data hold
    back a new word (one offered stays until taken) and that out ready is withheld. With
    ``reset_at`` the streams are abandoned at that cycle, ``rst`` is pulsed, and the whole
    stimulus is sent again. Checks the valid/ready rule on the output (a beat offered is held
    until taken) every cycle."""
    rng = random.Random(seed)
    width, nout, lanes = dut.width, dut.nout, dut.lanes
    count_shift = nout * lanes
    run = Run()
    done = beats_expected if beats_expected is not None else float("inf")
    data = [word | last << width for word, last in zip(words, lasts)]

    async def testbench(ctx, reset):
        desc = StreamSource(amaranth_port(ctx, dut.desc), descriptors,
                            pause=random_pause(rng, stall[0]))
        source = StreamSource(amaranth_port(ctx, dut.data), data,
                              pause=random_pause(rng, stall[1]))
        out = StreamSink(amaranth_port(ctx, dut.out), pause=random_pause(rng, stall[2]))
        cycle = 0
        while cycle < max_cycles and len(run.beats) < done:
            if cycle == reset_at:
                await pulse_reset(ctx, reset, (desc, source, out))
                run.beats.clear()
                run.beat_cycles.clear()
            for stream in (desc, source, out):
                stream.drive()
            if desc.settle():
                run.desc_cycles.append(cycle)
            if source.settle():
                run.word_cycles.append(cycle)
            value = out.settle(f"cycle {cycle}, output (seed {seed})")
            if value is not None:
                run.beats.append((value & ((1 << count_shift) - 1),
                                  (value >> count_shift) & ((1 << lanes.bit_length()) - 1),
                                  bool(value >> (count_shift + lanes.bit_length()))))
                run.beat_cycles.append(cycle)
            await ctx.tick()
            cycle += 1
        run.error = ctx.get(dut.error.as_value())

    simulate_with_reset(dut, testbench)
    return run


def expected(packed):
    return [(b.data, b.count, b.last) for b in packed.beats]


def check_beats(run, packed, seed):
    want = expected(packed)
    for index, (got, beat) in enumerate(zip(run.beats, packed.beats)):
        if got != want[index]:
            diff = got[0] ^ beat.data
            bit = (diff & -diff).bit_length() - 1 if diff else None
            raise AssertionError(f"beat {index} (layer {beat.layer}, chunk {beat.chunk}): got "
                                 f"{got}, want {want[index]}; first differing data bit {bit}; "
                                 f"seed {seed}")
    assert len(run.beats) == len(want), \
        f"{len(run.beats)} beats arrived, {len(want)} expected (seed {seed})"


#: Every behavioural test runs on both variants of the decryptor.
PIPELINE = pytest.mark.parametrize("pipeline", [False, True], ids=["plain", "pipelined"])

# (nins, width, lanes): Nin < W, Nin > W, L*Nin > W, mixed precision as in Table 2.
SHAPES = [
    ((12,), 32, 2),
    ((19, 16, 7), 16, 1),
    ((40,), 32, 1),
    ((12, 7), 8, 3),
    ((19, 16, 7), 64, 4),
]


def counts_for(nins, lanes, width):
    """1 chunk, counts that are not multiples of lanes, a layer that fills whole words."""
    exact = width // np.gcd(width, nins[0])  # chunks of config 0 that end on a word boundary
    layers = [(0, 1), (len(nins) - 1, 2 * lanes + 1), (0, int(exact))]
    layers += [(k % len(nins), 3 + 2 * k) for k in range(len(nins) + 2)]
    return layers


@PIPELINE
@pytest.mark.parametrize("nins, width, lanes", SHAPES)
def test_random_stalls_on_every_stream(nins, width, lanes, pipeline):
    seed = hash((nins, width, lanes)) % 1000
    configs = make_configs(*nins)
    packed = pack_stream(configs, random_layers(configs, counts_for(nins, lanes, width), seed),
                         width=width, lanes=lanes)
    dut = Decryptor(configs=configs, width=width, lanes=lanes, pipeline=pipeline)
    run = simulate(dut, packed.descriptors, packed.words, packed.lasts, seed=seed,
                   stall=(0.3, 0.3, 0.3), beats_expected=len(packed.beats))
    check_beats(run, packed, seed)
    assert run.error == 0


@PIPELINE
@pytest.mark.parametrize("nins, width, lanes", SHAPES)
def test_full_rate_without_stalls(nins, width, lanes, pipeline):
    """With no stalls, each configuration alone runs at its limit with no bubble between layers:
    one beat per cycle when lanes*nin <= width, else one data word per cycle."""
    seed = 7
    for k, config in enumerate(make_configs(*nins)):
        counts = [(0, c) for _, c in counts_for(nins, lanes, width)] * 2
        packed = pack_stream([config], random_layers([config], counts, seed), width=width,
                             lanes=lanes)
        dut = Decryptor(configs=[config], width=width, lanes=lanes, pipeline=pipeline)
        run = simulate(dut, packed.descriptors, packed.words, packed.lasts, seed=seed,
                       beats_expected=len(packed.beats))
        check_beats(run, packed, seed)
        assert run.beat_cycles[0] == dut.first_beat_latency(0, counts[0][1])
        if lanes * config.nin <= width:
            first = run.beat_cycles[0]
            assert run.beat_cycles == list(range(first, first + len(packed.beats))), \
                f"nin {config.nin}: output beats not back to back"
        else:
            start = dut.word_start
            assert run.word_cycles == list(range(start, start + len(packed.words))), \
                f"nin {config.nin}: data words not accepted back to back"


@PIPELINE
@pytest.mark.parametrize("nins, width, lanes", SHAPES)
def test_mixed_layers_cost_no_more_than_their_limits(nins, width, lanes, pipeline):
    """A mixed-precision stream takes at most the first beat's latency + sum over layers of
    max(beats, words)."""
    seed = 8
    configs = make_configs(*nins)
    counts = counts_for(nins, lanes, width) * 2
    packed = pack_stream(configs, random_layers(configs, counts, seed), width=width, lanes=lanes)
    dut = Decryptor(configs=configs, width=width, lanes=lanes, pipeline=pipeline)
    run = simulate(dut, packed.descriptors, packed.words, packed.lasts, seed=seed,
                   beats_expected=len(packed.beats))
    check_beats(run, packed, seed)
    limit = sum(max(-(-c // lanes), -(-c * configs[k].nin // width)) for k, c in counts)
    first = dut.first_beat_latency(*counts[0])
    assert run.beat_cycles[-1] + 1 <= first + limit + dut.layer_gap * (len(counts) - 1)


@PIPELINE
def test_malformed_descriptors_are_flagged_and_skipped(pipeline):
    seed = 11
    configs = make_configs(12, 7)
    width, lanes = 16, 2
    good = random_layers(configs, [(0, 5), (1, 3), (0, 4)], seed)
    packed = pack_stream(configs, good, width=width, lanes=lanes)
    # Between good layers 0 and 1: a bad index with 6 words of junk ending in `last`, then a
    # zero-chunk descriptor with no words. Neither may produce output or disturb the rest.
    rng = random.Random(seed)
    junk = [rng.getrandbits(width) for _ in range(6)]
    split_words = -(-5 * 12 // width)
    descriptors = [packed.descriptors[0], descriptor_word(5, 17), descriptor_word(1, 0)] + \
        packed.descriptors[1:]
    words = packed.words[:split_words] + junk + packed.words[split_words:]
    lasts = packed.lasts[:split_words] + [False] * 5 + [True] + packed.lasts[split_words:]
    for stall in [(0, 0, 0), (0.3, 0.3, 0.3)]:
        dut = Decryptor(configs=configs, width=width, lanes=lanes, pipeline=pipeline)
        run = simulate(dut, descriptors, words, lasts, seed=seed, stall=stall,
                       max_cycles=600)
        check_beats(run, packed, seed)
        assert run.error == 0b11, f"error flags {run.error:#b}, stall {stall}"


@PIPELINE
def test_bad_index_only_sets_its_flag(pipeline):
    configs = make_configs(12)
    packed = pack_stream(configs, random_layers(configs, [(0, 3)], 1), width=32, lanes=1)
    dut = Decryptor(configs=configs, width=32, lanes=1, pipeline=pipeline)
    run = simulate(dut, [descriptor_word(1, 2)] + packed.descriptors, [0] + packed.words,
                   [True] + packed.lasts, max_cycles=100)
    check_beats(run, packed, 1)
    assert run.error == 0b01


@PIPELINE
@pytest.mark.parametrize("reset_at", [5, 23])
def test_reset_mid_layer_returns_to_idle(reset_at, pipeline):
    seed = 100 + reset_at
    configs = make_configs(19, 7)
    packed = pack_stream(configs, random_layers(configs, [(0, 9), (1, 4), (0, 3)], seed),
                         width=16, lanes=2)
    dut = Decryptor(configs=configs, width=16, lanes=2, pipeline=pipeline)
    run = simulate(dut, packed.descriptors, packed.words, packed.lasts, seed=seed,
                   stall=(0.2, 0.2, 0.2), reset_at=reset_at, beats_expected=len(packed.beats))
    check_beats(run, packed, seed)


@PIPELINE
def test_layer_of_more_than_2_to_the_24_chunks(pipeline):
    """The count field takes 2**24 + 5 chunks: the first beats are the layer's, none is last."""
    seed = 3
    configs = make_configs(12)
    nbeats = 40
    prefix = random_layers(configs, [(0, nbeats)], seed)
    packed = pack_stream(configs, prefix, width=32, lanes=1)
    dut = Decryptor(configs=configs, width=32, lanes=1, pipeline=pipeline)
    run = simulate(dut, [descriptor_word(0, 2 ** 24 + 5)], packed.words,
                   [False] * len(packed.words), beats_expected=nbeats)
    assert run.beats == [(b.data, b.count, False) for b in packed.beats]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"width": 12}, ValueError, "width must be one of 8, 16, 32, 64, not 12"),
    ({"lanes": 0}, ValueError, "lanes must be an integer >= 1, not 0"),
    ({"configs": make_configs(12) + make_configs(8, nout=16)}, ValueError, "share one nout"),
    ({"configs": make_configs(70)}, ValueError, "nin 70, more than the supported 64"),
    ({"configs": make_configs(12)[0]}, TypeError, "sequence of flexor.XorConfig"),
    ({"pipeline": 1}, TypeError, "pipeline must be True or False, not 1"),
])
def test_bad_parameters_fail_at_construction(kwargs, error, message):
    arguments = {"configs": make_configs(12), "width": 32, "lanes": 2, **kwargs}
    with pytest.raises(error, match=message):
        Decryptor(**arguments)


def test_public_attributes():
    configs = make_configs(19, 16, 7)
    dut = Decryptor(configs=configs, width=32, lanes=2)
    assert (dut.width, dut.lanes, dut.nout, dut.configs) == (32, 2, 20, tuple(configs))
    assert dut.buffer_width == 2 * 19 + 32 - 1
    assert dut.desc.payload.shape().size == 40
    assert dut.data.payload.shape().size == 33
    assert dut.out.payload.shape().size == 2 * 20 + 2 + 1
    assert (dut.pipeline, dut.latency, dut.word_latency, dut.word_start) == (False, 3, 2, 0)
    # The pipelined variant: a FIFO of whole words, two more than a beat spans: 38 bits of
    # nin 19 starting at bit 31 of a word span 3 words.
    fast = Decryptor(configs=configs, width=32, lanes=2, pipeline=True)
    assert (fast.pipeline, fast.latency, fast.word_latency, fast.word_start) == (True, 7, 4, 2)
    assert fast.buffer_width == 5 * 32
    assert fast.signature == dut.signature
