"""The classify protocol's layers in Amaranth's simulator: UART receiver, SLIP, request, answer.

Expected bytes come from independent Python: ``zlib.crc32``, ``struct``, a byte-by-byte SLIP
encoder written out here, and the line levels of :func:`boards.uart.encode_uart`.
"""

import struct
import zlib

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from boards.protocol import (BAD_REQUEST, ENGINE_ERROR, OK, Answer, AnswerReader, AnswerSender,
                             RequestReceiver, decode_answer, encode_answer, encode_request)
from boards.slip import SlipDecoder, SlipEncoder, SlipReader, slip_encode
from boards.uart import UartRx, UartTx, decode_uart, encode_uart


def simulate(dut, *testbenches):
    simulator = Simulator(dut)
    simulator.add_clock(1e-6)
    for testbench in testbenches:
        simulator.add_testbench(testbench)
    simulator.run()


def reference_slip(payload):
    """SLIP as RFC 1055 spells it out, for comparison."""
    out = [0xC0]
    for byte in payload:
        out += {0xC0: [0xDB, 0xDC], 0xDB: [0xDB, 0xDD]}.get(byte, [byte])
    return bytes(out + [0xC0])


def payloads(seed, count=6, size=12):
    """Random payloads rich in the special bytes."""
    rng = np.random.default_rng(seed)
    choices = np.array([0xC0, 0xDB, 0xDC, 0xDD, 0x00, 0xFF, 0x41], dtype=np.uint8)
    return [bytes(rng.choice(choices, size=int(rng.integers(1, size)))) for _ in range(count)]


async def send_stream(ctx, port, items, rng, gap=0.3):
    """Drive ``items`` (payload values) into a stream with random gaps on valid."""
    for item in items:
        while rng.random() < gap:
            ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(port.valid, 1)
        ctx.set(port.payload, item)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def collect(ctx, port, out, rng, cycles, gap=0.3):
    """Take beats for ``cycles`` cycles with random gaps on ready."""
    for _ in range(cycles):
        ready = rng.random() >= gap
        ctx.set(port.ready, ready)
        await ctx.delay(1e-9)                  # let combinational valid settle
        if ready and ctx.get(port.valid):
            out.append(ctx.get(port.payload))
        await ctx.tick()


# -- SLIP -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(3))
def test_python_slip_matches_the_rfc_and_reads_back(seed):
    frames = payloads(seed)
    line = b"".join(slip_encode(p) for p in frames)
    assert line == b"".join(reference_slip(p) for p in frames)
    reader = SlipReader()
    got = [item for k in range(0, len(line), 5) for item in reader.feed(line[k:k + 5])]
    assert got == [(p, True) for p in frames], f"seed {seed}"


def test_python_slip_reader_flags_a_bad_escape_and_resynchronizes():
    reader = SlipReader()
    assert reader.feed(bytes([0xC0, 1, 0xDB, 0x05, 2, 0xC0, 0xC0, 3, 0xC0])) == \
        [(bytes([1, 5, 2]), False), (bytes([3]), True)]
    assert reader.feed(bytes([4, 0xDB, 0xC0])) == [(bytes([4]), False)]


@pytest.mark.parametrize("seed", range(3))
def test_slip_encoder_gateware_equals_the_rfc(seed):
    frames = payloads(seed)
    rng = np.random.default_rng(seed)
    dut = SlipEncoder()
    items = [{"data": byte, "last": k == len(p) - 1} for p in frames for k, byte in enumerate(p)]
    out = []
    expected = b"".join(reference_slip(p) for p in frames)

    async def source(ctx):
        await send_stream(ctx, dut.i, items, rng)

    async def sink(ctx):
        await collect(ctx, dut.o, out, np.random.default_rng(seed + 100), 6 * len(expected))

    simulate(dut, source, sink)
    assert bytes(out) == expected, f"seed {seed}"


@pytest.mark.parametrize("seed", range(3))
def test_slip_decoder_gateware_agrees_with_the_python_reader_on_noise(seed):
    rng = np.random.default_rng(seed)
    # Frames with noise: stray escapes, bad codes, empty frames.
    line = b"".join(slip_encode(p) for p in payloads(seed)) + \
        bytes(rng.choice([0xC0, 0xDB, 0xDC, 0x07, 0xDD], size=60).astype(np.uint8)) + b"\xc0"
    dut = SlipDecoder()
    out = []

    async def source(ctx):
        await send_stream(ctx, dut.i, list(line), rng)

    async def sink(ctx):
        await collect(ctx, dut.o, out, np.random.default_rng(seed + 7), 4 * len(line))

    simulate(dut, source, sink)
    frames, payload, intact = [], bytearray(), True
    for beat in out:
        if beat.end:
            intact &= not beat.bad
            if payload or not intact:
                frames.append((bytes(payload), intact))
            payload, intact = bytearray(), True
        else:
            intact &= not beat.bad
            payload.append(beat.data)
    assert frames == SlipReader().feed(line), f"seed {seed}"


# -- UART receiver --------------------------------------------------------------------------------

@pytest.mark.parametrize("divisor, sender_divisor", [(4, 4), (5, 5), (12, 12), (24, 23),
                                                     (24, 25)])
def test_uart_receiver_reads_back_to_back_bytes(divisor, sender_divisor):
    data = bytes(np.random.default_rng(divisor).integers(0, 256, 40, dtype=np.uint8))
    levels = encode_uart(data, sender_divisor, idle=7) + [1] * (3 * divisor)
    dut = UartRx(divisor=divisor)
    out, errors = [], []

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        for level in levels:
            ctx.set(dut.rx, level)
            await ctx.tick()
            if ctx.get(dut.o.valid):
                out.append(ctx.get(dut.o.payload))
            errors.append(ctx.get(dut.error))

    simulate(dut, testbench)
    assert bytes(out) == data and not any(errors)


def test_uart_receiver_flags_framing_errors_and_overruns():
    divisor = 4
    # A byte whose stop bit is low, then two good bytes that nobody takes (the second overruns).
    bad_stop = [0] + [1, 0, 1, 0, 1, 0, 1, 0] + [0]
    levels = [1] * 5 + [level for bit in bad_stop for level in [bit] * divisor] + \
        [1] * 8 + encode_uart(b"\x12\x34", divisor) + [1] * 12
    dut = UartRx(divisor=divisor)
    errors, held = [], []

    async def testbench(ctx):
        for level in levels:
            ctx.set(dut.rx, level)
            await ctx.tick()
            errors.append(ctx.get(dut.error))
        held.append(ctx.get(dut.o.payload))

    simulate(dut, testbench)
    assert sum(errors) == 2 and held == [0x12]


def test_uart_loopback_through_transmitter_and_receiver():
    data = bytes(range(0, 256, 7))
    m = Module()
    m.submodules.tx = tx = UartTx(divisor=6)
    m.submodules.rx = rx = UartRx(divisor=6)
    m.d.comb += rx.rx.eq(tx.tx)
    out = []

    async def source(ctx):
        await send_stream(ctx, tx.i, list(data), np.random.default_rng(1))

    async def sink(ctx):
        ctx.set(rx.o.ready, 1)
        for _ in range(len(data) * 70):
            await ctx.tick()
            if ctx.get(rx.o.valid):
                out.append(ctx.get(rx.o.payload))

    simulate(m, source, sink)
    assert bytes(out) == data


# -- requests -------------------------------------------------------------------------------------

PIXELS = 20


def run_receiver(line, *, seed=0, line_errors=()):
    """Feed ``line`` into a RequestReceiver; return (pixels per frame, verdicts)."""
    rng = np.random.default_rng(seed)
    dut = RequestReceiver(pixels=PIXELS)
    pixels, verdicts = [], []

    async def source(ctx):
        for k, byte in enumerate(line):
            while rng.random() < 0.2:
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.line_error, k in line_errors)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.line_error, 0)
        ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        sink_rng = np.random.default_rng(seed + 1)
        for _ in range(4 * len(line) + 40 * PIXELS):
            ctx.set(dut.pixels.ready, sink_rng.random() < 0.7)
            ctx.set(dut.verdict.ready, sink_rng.random() < 0.3)
            await ctx.delay(1e-9)
            if ctx.get(dut.pixels.valid) and ctx.get(dut.pixels.ready):
                pixels.append(ctx.get(dut.pixels.payload))
            if ctx.get(dut.verdict.valid) and ctx.get(dut.verdict.ready):
                verdict = ctx.get(dut.verdict.payload)
                verdicts.append((verdict.tag, bool(verdict.ok)))
            await ctx.tick()

    simulate(dut, source, sink)
    return [pixels[k:k + PIXELS] for k in range(0, len(pixels), PIXELS)], verdicts


def images(seed, count):
    rng = np.random.default_rng(seed)
    # Many 0xC0 / 0xDB pixels, so that escapes occur inside the image.
    return [[int(p) for p in rng.choice([0, 0xC0, 0xDB, 17, 255], size=PIXELS)]
            for _ in range(count)]


@pytest.mark.parametrize("seed", range(2))
def test_requests_give_their_pixels_and_an_ok_verdict(seed):
    frames = images(seed, 3)
    line = b"".join(encode_request(40 + k, image) for k, image in enumerate(frames))
    pixels, verdicts = run_receiver(line + b"\xc0\xc0", seed=seed)   # empty frames: nothing
    assert pixels == frames and verdicts == [(40, True), (41, True), (42, True)], f"seed {seed}"


def damaged_lines():
    frames = images(5, 3)
    good = [encode_request(k, image) for k, image in enumerate(frames)]
    middle = good[1]
    return frames, {
        "dropped pixel byte": middle[:9] + middle[10:],
        "extra byte": middle[:9] + b"\x55" + middle[9:],
        "flipped bit": middle[:9] + bytes([middle[9] ^ 4]) + middle[10:],
        "bad escape": middle[:9] + b"\xdb\x01" + middle[10:],
        "lost crc byte": middle[:-2] + middle[-1:],
        "truncated": middle[:6] + b"\xc0",
    }, good


@pytest.mark.parametrize("damage", list(damaged_lines()[1]))
def test_a_damaged_request_spoils_only_itself(damage):
    frames, damaged, good = damaged_lines()
    line = good[0] + damaged[damage] + good[2]
    pixels, verdicts = run_receiver(line, seed=3)
    # Every frame still gives exactly PIXELS pixels, so the engine stays in step.
    assert len(pixels) == 3 and all(len(p) == PIXELS for p in pixels)
    assert pixels[0] == frames[0] and pixels[2] == frames[2]
    assert [ok for _, ok in verdicts] == [True, False, True]
    assert verdicts[2][0] == 2


def test_a_uart_error_spoils_the_frame_it_falls_in():
    frames = images(6, 2)
    first = encode_request(1, frames[0])
    line = first + encode_request(2, frames[1])
    _, verdicts = run_receiver(line, line_errors={5})
    assert verdicts == [(1, False), (2, True)]


# -- answers --------------------------------------------------------------------------------------

def run_sender(results, *, classes, logit_bits, engine_error=False, seed=0):
    """Results: (tag, ok, label, logits); returns the line bytes the sender produced."""
    rng = np.random.default_rng(seed)
    dut = AnswerSender(classes=classes, logit_bits=logit_bits)
    out = []

    async def source(ctx):
        ctx.set(dut.engine_error, engine_error)
        for tag, ok, label, logits in results:
            for _ in range(int(rng.integers(0, 4))):
                await ctx.tick()
            ctx.set(dut.verdict.valid, 1)
            ctx.set(dut.verdict.payload, {"tag": tag, "ok": ok})
            for _ in range(int(rng.integers(0, 4))):
                await ctx.tick()
            ctx.set(dut.result.valid, 1)
            mask = (1 << logit_bits) - 1
            ctx.set(dut.result.payload, {"cls": label, "logits": sum(
                (value & mask) << (k * logit_bits) for k, value in enumerate(logits))})
            await ctx.tick().until(dut.result.ready)
            ctx.set(dut.verdict.valid, 0)
            ctx.set(dut.result.valid, 0)

    async def sink(ctx):
        await collect(ctx, dut.o, out, np.random.default_rng(seed + 1),
                      len(results) * 4 * (8 + 4 * classes) + 50)

    simulate(dut, source, sink)
    return bytes(out)


def independent_answer(tag, status, label, logits):
    body = bytes([tag, status, label]) + b"".join(struct.pack("<i", v) for v in logits)
    return reference_slip(body + struct.pack("<I", zlib.crc32(body)))


@pytest.mark.parametrize("classes, logit_bits, seed", [(10, 20, 0), (3, 32, 1), (10, 9, 2)])
def test_answer_sender_frames_tag_status_class_and_logits(classes, logit_bits, seed):
    rng = np.random.default_rng(seed)
    bound = 2 ** (logit_bits - 1)
    results = [(int(rng.integers(0, 256)), bool(rng.random() < 0.7), int(rng.integers(classes)),
                [int(v) for v in rng.integers(-bound, bound, classes)]) for _ in range(4)]
    # Logits that escape: 0xC0 and 0xDB bytes, and the extremes.
    results[0] = (0xC0, True, classes - 1, [-bound] + [0xDBC0 % bound] * (classes - 1))
    line = run_sender(results, classes=classes, logit_bits=logit_bits, seed=seed)
    expected = b"".join(independent_answer(tag, OK if ok else BAD_REQUEST, label, logits)
                        for tag, ok, label, logits in results)
    assert line == expected, f"seed {seed}"
    answers = AnswerReader(classes).feed(line)
    assert [a.logits for a in answers] == [tuple(r[3]) for r in results]


def test_answers_carry_engine_error():
    line = run_sender([(7, True, 2, [1, -2, 3])], classes=3, logit_bits=8, engine_error=True)
    assert AnswerReader(3).feed(line) == [Answer(7, ENGINE_ERROR, 2, (1, -2, 3))]


def test_answer_decoding_names_what_is_wrong():
    frame = encode_answer(Answer(1, OK, 4, tuple(range(10))))
    payload = SlipReader().feed(frame)[0][0]
    assert decode_answer(payload, 10) == Answer(1, OK, 4, tuple(range(10)))
    with pytest.raises(ValueError, match="wrong CRC"):
        decode_answer(payload[:5] + bytes([payload[5] ^ 1]) + payload[6:], 10)
    with pytest.raises(ValueError, match="of 46 bytes, expected 47"):
        decode_answer(payload[1:], 10)
    reader = AnswerReader(10)
    [item] = reader.feed(frame[:3] + b"\xdb\x07" + frame[3:])
    assert isinstance(item, ValueError)
