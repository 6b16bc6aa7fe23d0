"""The board's logic in Amaranth's simulator: CRC against ``zlib``, UART, report, whole self-test.

The golden CRC of the shipped weights is recomputed here from the container with
``flexor.decrypt`` and ``zlib.crc32``, not taken from the image the gateware was built from.
"""

import zlib

import numpy as np
import pytest
from amaranth.sim import Simulator

from boards.__main__ import DEFAULT_WEIGHTS, PROG, load_image, main
from boards.crc import ChunkCrc32
from boards.report import REPORT_LENGTH, ReportSender, format_report, parse_report
from boards.simulate import simulate_selftest
from boards.uart import UartTx, decode_uart
from flexor import decrypt
from flexor.cli import run_cli
from flexor.container import Container


def simulate(dut, testbench):
    simulator = Simulator(dut)
    simulator.add_clock(1e-6)
    simulator.add_testbench(testbench)
    simulator.run()


# -- CRC ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("nout, lanes, seed", [(10, 1, 0), (10, 3, 1), (13, 2, 2), (16, 4, 3),
                                               (7, 1, 4)])
def test_crc_gateware_equals_zlib_over_padded_chunks(nout, lanes, seed):
    rng = np.random.default_rng(seed)
    beats = [(int(rng.integers(0, lanes + 1)), rng.integers(0, 2, (lanes, nout)))
             for _ in range(60)]
    dut = ChunkCrc32(nout=nout, lanes=lanes)
    values = []

    async def testbench(ctx):
        for count, chunks in beats:
            word = sum(int(bit) << (lane * nout + k) for lane in range(lanes)
                       for k, bit in enumerate(chunks[lane]))
            ctx.set(dut.data, word)
            ctx.set(dut.count, count)
            await ctx.tick()
            values.append(ctx.get(dut.value))

    simulate(dut, testbench)
    folded = b""
    for (count, chunks), value in zip(beats, values):
        for chunk in chunks[:count]:
            # Independent packing: chunk bits LSB-first into whole bytes, zero-padded.
            folded += int("".join(str(b) for b in chunk[::-1]), 2).to_bytes(-(-nout // 8),
                                                                             "little")
        assert value == zlib.crc32(folded), f"seed {seed}"


# -- UART and report ---------------------------------------------------------------------------

def test_uart_frame_is_start_lsb_first_data_stop():
    divisor = 3
    dut = UartTx(divisor=divisor)
    levels = []

    async def testbench(ctx):
        ctx.set(dut.i.payload, 0b0100_1101)
        ctx.set(dut.i.valid, 1)
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for _ in range(12 * divisor):
            levels.append(ctx.get(dut.tx))
            await ctx.tick()

    simulate(dut, testbench)
    bits = [0, 1, 0, 1, 1, 0, 0, 1, 0, 1]      # start, 0x4d LSB first, stop
    assert levels[:10 * divisor] == [bit for bit in bits for _ in range(divisor)]
    assert levels[10 * divisor:] == [1] * (2 * divisor)


def test_report_sender_streams_the_formatted_line_through_the_uart():
    rng = np.random.default_rng(5)
    values = [int(v) for v in rng.integers(0, 2 ** 32, 4, dtype=np.uint64)]
    sender, uart = ReportSender(), UartTx(divisor=2)
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    m = Module()
    m.submodules.sender, m.submodules.uart = sender, uart
    wiring.connect(m, sender.o, uart.i)
    levels = []

    async def testbench(ctx):
        for name, value in zip(("crc", "expected", "chunks", "cycles"), values):
            ctx.set(getattr(sender, name), value)
        ctx.set(sender.start, 1)
        await ctx.tick()
        ctx.set(sender.start, 0)
        for _ in range(REPORT_LENGTH * 24):
            levels.append(ctx.get(uart.tx))
            await ctx.tick()

    simulate(m, testbench)
    text = decode_uart(levels, 2).decode()
    assert text == "FLEXOR FAIL crc={:08x} expected={:08x} chunks={:08x} cycles={:08x}\r\n".format(
        *values), "seed 5"
    assert parse_report(text) == {"passed": False, "crc": values[0], "expected": values[1],
                                  "chunks": values[2], "cycles": values[3]}


def test_report_line_format():
    assert format_report(True, 0x1C291CA3, 0xABC, 3200, 3226) == \
        "FLEXOR PASS crc=1c291ca3 expected=00000abc chunks=00000c80 cycles=00000c9a\r\n"
    with pytest.raises(ValueError, match="no FLEXOR report"):
        parse_report("FLEXOR PASS crc=zz")


# -- the whole self-test on the shipped weights ------------------------------------------------

def golden_crc_and_chunks(path):
    """CRC and chunk count of every encrypted plane, straight from the container."""
    container = Container.load(path)
    payload, chunks = b"", 0
    for layer in container.layers:
        for plane in layer.planes:
            decrypted = decrypt(container.configs[plane.config], plane.bits)
            payload += np.packbits(decrypted, axis=-1, bitorder="little").tobytes()
            chunks += plane.chunks
    return zlib.crc32(payload), chunks


@pytest.mark.parametrize("lanes", [1, 4])
def test_simulated_board_reports_the_golden_crc(lanes):
    golden, chunks = golden_crc_and_chunks(DEFAULT_WEIGHTS)
    image = load_image(DEFAULT_WEIGHTS, lanes)
    result = simulate_selftest(image, lanes=lanes)
    report = parse_report(result.text)
    assert report == {"passed": True, "crc": golden, "expected": golden, "chunks": chunks,
                      "cycles": report["cycles"]}
    assert (result.running, result.passed, result.failed) == (False, True, False)
    # Full rate: one word a cycle or `lanes` chunks a cycle, whichever is slower, plus the
    # decryptor's and the checker's few cycles of latency.
    assert report["cycles"] <= max(len(image.words), -(-chunks // lanes)) + 8


def test_corrupted_weight_memory_reports_fail():
    image = load_image(DEFAULT_WEIGHTS, 2)
    golden, _ = golden_crc_and_chunks(DEFAULT_WEIGHTS)
    words = list(image.words)
    words[len(words) // 2] ^= 1 << 5
    result = simulate_selftest(image._replace(words=words), lanes=2)
    report = parse_report(result.text)
    assert not report["passed"] and report["expected"] == golden and report["crc"] != golden
    assert (result.running, result.passed, result.failed) == (False, False, True)


def test_restart_runs_the_self_test_again():
    image = load_image(DEFAULT_WEIGHTS, 4)
    plain = simulate_selftest(image, lanes=4)
    restart_at = 400                                           # in the middle of the run
    result = simulate_selftest(image, lanes=4, restart_at=restart_at)
    assert parse_report(plain.text)["cycles"] > restart_at
    assert result.text == plain.text and result.passed
    # The run started over when restart fell, one cycle after it rose.
    assert result.cycles == plain.cycles + restart_at + 1


def test_simulate_cli_prints_the_uart_line_and_the_golden_crc(capsys):
    golden, _ = golden_crc_and_chunks(DEFAULT_WEIGHTS)
    assert run_cli(PROG, main, ["simulate", "--lanes", "4"]) == 0
    out = capsys.readouterr().out
    assert parse_report(out)["crc"] == golden and f"golden CRC {golden:08x}" in out
