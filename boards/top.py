"""The board self-test: decrypt the weights held in on-chip memory and report a checksum.

:class:`SelfTest` is all of the logic and has no pins, so the simulator runs exactly what the
board runs; :class:`BoardTop` only connects it to a board's clock, LEDs, button and UART::

    WeightRom: descriptors (logic) ─> desc ─┐
               data (block RAM) ──> data ─┴─> hdl.Decryptor ─> out ─> CRC-32, counters
                                                                  └─> verdict: LEDs, UART

:class:`~boards.weight_rom.WeightRom` delivers a word every cycle the decryptor is ready.
"""

from amaranth.build import ResourceError
from amaranth.hdl import Elaboratable, Module, Mux, ResetInserter, Signal
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from hdl.decryptor import Decryptor

from .crc import ChunkCrc32
from .image import WeightImage
from .report import ReportSender
from .uart import UartTx, check_divisor, uart_divisor
from .weight_rom import WeightRom

__all__ = ["SelfTest", "BoardTop", "DEFAULT_BAUD"]

#: Baud rate of the report.
DEFAULT_BAUD = 115200


def _timeout_cycles(image, lanes):
    """A bound on the run's length: far above the real count, which is about one cycle per word
    or per output beat, whichever is more, plus the decryptor's latency."""
    return 4 * (len(image.words) + -(-image.chunks // lanes)) + 1000


class SelfTest(wiring.Component):
    """Decrypts a :class:`~boards.image.WeightImage` once after reset and reports the result.

    Parameters
    ----------
    image : :class:`~boards.image.WeightImage`
        Memory contents and the golden CRC and chunk count.
    lanes : int
        Chunks the decryptor produces per cycle.
    divisor : int
        Clock cycles per UART bit.
    repeat_cycles : int or None
        Resend the report this many cycles after the previous one ended (so a terminal opened
        late still sees it); ``None`` sends it once.

    Attributes
    ----------
    image, lanes, divisor, repeat_cycles
        The parameters.
    timeout : int
        Cycles after which a run that has not finished is declared failed.

    Members
    -------
    restart : ``In(1)``
        While high, hold everything in reset; the run starts again when it falls.
    tx : ``Out(1)``
        UART transmit line (8N1).
    running, passed, failed : ``Out(1)``
        The verdict: exactly one is high.
    """

    restart: In(1)
    tx: Out(1, init=1)
    running: Out(1, init=1)
    passed: Out(1)
    failed: Out(1)

    def __init__(self, *, image, lanes=1, divisor, repeat_cycles=None):
        if not isinstance(image, WeightImage):
            raise TypeError(f"image must be a boards.image.WeightImage, not {image!r}")
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be a positive integer, not {lanes!r}")
        if repeat_cycles is not None and (isinstance(repeat_cycles, bool) or
                                          not isinstance(repeat_cycles, int) or
                                          repeat_cycles < 1):
            raise ValueError(f"repeat_cycles must be a positive integer or None, "
                             f"not {repeat_cycles!r}")
        self._image, self._lanes, self._repeat_cycles = image, lanes, repeat_cycles
        self._divisor = check_divisor(divisor)
        super().__init__()

    image = property(lambda self: self._image)
    lanes = property(lambda self: self._lanes)
    divisor = property(lambda self: self._divisor)
    repeat_cycles = property(lambda self: self._repeat_cycles)
    timeout = property(lambda self: _timeout_cycles(self._image, self._lanes))

    def elaborate(self, platform):
        m = Module()
        image = self._image
        m.submodules.decryptor = decryptor = Decryptor(configs=image.configs, width=image.width,
                                                       lanes=self._lanes)
        m.submodules.rom = rom = WeightRom(image=image)
        wiring.connect(m, rom.desc, decryptor.desc)
        wiring.connect(m, rom.data, decryptor.data)
        result = self._add_checker(m, decryptor)
        # Registered so that no long path ends at an output pin.
        m.d.sync += [self.passed.eq(result["done"] & result["ok"]),
                     self.failed.eq(result["done"] & ~result["ok"])]
        m.d.comb += self.running.eq(~self.passed & ~self.failed)
        self._add_reporter(m, result)
        # The restart input resets every register of the self-test, decryptor included.
        return ResetInserter(self.restart)(m)

    def _add_checker(self, m, decryptor):
        """CRC and counters over the decryptor's output.

        Returns a dict of signals: ``done``, ``ok`` (valid once done), ``crc``, ``chunks``
        and ``cycles`` (clock cycles from reset until ``done``).
        """
        image, out = self._image, decryptor.out
        m.submodules.crc = crc = ChunkCrc32(nout=image.nout, lanes=self._lanes)
        chunks = Signal(32)
        cycles = Signal(32)
        layers_done = Signal(range(len(image.descriptors) + 1))
        timed_out = Signal()
        done = Signal()
        m.d.comb += [out.ready.eq(1), crc.data.eq(out.payload.data),
                     crc.count.eq(Mux(out.valid, out.payload.count, 0))]
        m.d.sync += done.eq((layers_done == len(image.descriptors)) | timed_out)
        with m.If(out.valid):
            m.d.sync += chunks.eq(chunks + out.payload.count)
            with m.If(out.payload.last):
                m.d.sync += layers_done.eq(layers_done + 1)
        with m.If(~done):
            m.d.sync += cycles.eq(cycles + 1)
            with m.If(cycles == self.timeout):
                m.d.sync += timed_out.eq(1)
        ok = ((crc.value == image.crc) & (chunks == image.chunks) & ~timed_out &
              ~decryptor.error.as_value().any())
        return {"done": done, "ok": ok, "crc": crc.value, "chunks": chunks, "cycles": cycles}

    def _add_reporter(self, m, result):
        """Send the report when the run ends, then every ``repeat_cycles`` if asked to."""
        m.submodules.report = report = ReportSender()
        m.submodules.uart = uart = UartTx(divisor=self._divisor)
        wiring.connect(m, report.o, uart.i)
        m.d.comb += [report.passed.eq(self.passed), report.crc.eq(result["crc"]),
                     report.expected.eq(self._image.crc), report.chunks.eq(result["chunks"]),
                     report.cycles.eq(result["cycles"]), self.tx.eq(uart.tx)]
        sent = Signal()
        with m.If(~self.running & ~sent & ~report.busy):
            m.d.comb += report.start.eq(1)
            m.d.sync += sent.eq(1)
        if self._repeat_cycles is not None:
            wait = Signal(range(self._repeat_cycles + 1))
            with m.If(sent & ~report.busy):
                m.d.sync += wait.eq(wait + 1)
                with m.If(wait == self._repeat_cycles):
                    m.d.sync += [wait.eq(0), sent.eq(0)]


class BoardTop(Elaboratable):
    """:class:`SelfTest` on a board: its default clock, verdict LEDs, first button, first UART.

    Parameters
    ----------
    image : :class:`~boards.image.WeightImage`
    lanes : int
    leds : dict
        LED index for ``"pass"``, ``"fail"`` and ``"running"`` (``None``: no such LED; while
        running both other LEDs are lit), as in :attr:`boards.platforms.Board.leds`.
    baud : int
        UART rate of the report.

    A board without a button restarts only on power-up or reconfiguration.
    """

    def __init__(self, *, image, lanes=1, leds, baud=DEFAULT_BAUD):
        if not isinstance(leds, dict) or set(leds) != {"pass", "fail", "running"}:
            raise ValueError(f"leds must map 'pass', 'fail' and 'running' to LED indices, "
                             f"not {leds!r}")
        self._image, self._lanes, self._leds, self._baud = image, lanes, dict(leds), baud

    def elaborate(self, platform):
        m = Module()
        clock_hz = platform.default_clk_frequency
        m.submodules.selftest = selftest = SelfTest(
            image=self._image, lanes=self._lanes, divisor=uart_divisor(clock_hz, self._baud),
            repeat_cycles=int(clock_hz))
        uart = platform.request("uart", 0, dir="-")
        m.submodules.tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += tx.o.eq(selftest.tx)
        # Without a running LED the pass and fail LEDs light together while running.
        shown = {"pass": selftest.passed, "fail": selftest.failed, "running": selftest.running}
        if self._leds["running"] is None:
            shown = {"pass": selftest.passed | selftest.running,
                     "fail": selftest.failed | selftest.running}
        for role, value in shown.items():
            m.submodules[f"led_{role}"] = led = io.Buffer(
                "o", platform.request("led", self._leds[role], dir="-"))
            m.d.comb += led.o.eq(value)
        try:
            button = platform.request("button", 0, dir="-")
        except ResourceError:
            return m
        m.submodules.button = button = io.Buffer("i", button)
        m.submodules.restart = FFSynchronizer(button.i, selftest.restart)
        return m
