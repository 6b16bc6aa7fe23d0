"""A UART transmitter and receiver (8 data bits, no parity, 1 stop bit), and their inverses
for testbenches."""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UartTx", "UartRx", "check_divisor", "uart_divisor", "decode_uart", "encode_uart"]


def uart_divisor(clock_hz, baud):
    """Clock cycles per bit, rounded to the nearest integer; refuses rates off by more than 2 %."""
    for name, value in (("clock_hz", clock_hz), ("baud", baud)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{name} must be a positive number, not {value!r}")
    divisor = round(clock_hz / baud)
    if divisor < 1 or abs(clock_hz / divisor - baud) > 0.02 * baud:
        raise ValueError(f"baud {baud} cannot be made from a {clock_hz / 1e6:g} MHz clock "
                         f"within 2 %")
    return divisor


def check_divisor(divisor):
    """Return ``divisor`` (clock cycles per bit) if it is a positive integer, else raise."""
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < 1:
        raise ValueError(f"divisor must be a positive integer, not {divisor!r}")
    return divisor


class UartTx(wiring.Component):
    """Sends each byte of a stream as ``start, d0 .. d7, stop`` with ``divisor`` cycles per bit.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (:func:`uart_divisor`).

    Members
    -------
    i : ``In(stream.Signature(8))``
        Bytes to send; accepted when the previous byte's stop bit has been sent.
    tx : ``Out(1, init=1)``
        The serial line, idle high.
    """

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, *, divisor):
        self._divisor = check_divisor(divisor)
        super().__init__()

    divisor = property(lambda self: self._divisor)

    def elaborate(self, platform):
        m = Module()
        shift = Signal(10)              # the frame still to send, LSB first
        bits_left = Signal(range(11))
        timer = Signal(range(self._divisor))
        m.d.comb += self.i.ready.eq(bits_left == 0)
        with m.If(self.i.valid & self.i.ready):
            frame = Cat(Const(0, 1), self.i.payload, Const(1, 1))
            m.d.sync += [shift.eq(frame >> 1), bits_left.eq(10), timer.eq(self._divisor - 1),
                         self.tx.eq(frame[0])]
        with m.Elif(bits_left != 0):
            with m.If(timer == 0):
                m.d.sync += [timer.eq(self._divisor - 1), bits_left.eq(bits_left - 1)]
                # Leaving the stop bit (bits_left == 1) the line returns to idle high.
                m.d.sync += [self.tx.eq(shift[0] | (bits_left == 1)), shift.eq(shift >> 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m


class UartRx(wiring.Component):
    """Receives 8N1 bytes from an asynchronous line, ``divisor`` cycles per bit.

    The line goes through a two-flip-flop synchronizer first (it comes from another clock). A
    start bit is confirmed in its middle, the data bits are sampled in theirs and the stop bit
    too; the receiver is ready for the next start bit right after that sample, so a sender up
    to about 4 % fast or slow is still read correctly.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 2.

    Members
    -------
    rx : ``In(1, init=1)``
        The serial line, idle high.
    o : ``Out(stream.Signature(8))``
        Received bytes, one register; a byte that arrives while the previous one is still
        waiting replaces nothing and is lost (``error`` pulses).
    error : ``Out(1)``
        One-cycle pulse: a stop bit was low (framing error) or a byte was lost (overrun).
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    error: Out(1)

    def __init__(self, *, divisor):
        self._divisor = check_divisor(divisor)
        if divisor < 2:
            raise ValueError(f"divisor must be at least 2 for the receiver, not {divisor!r}")
        super().__init__()

    divisor = property(lambda self: self._divisor)

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)
        divisor = self._divisor
        timer = Signal(range(divisor))
        shift = Signal(8)
        bit = Signal(range(10))                 # 0: start, 1..8: data, 9: stop
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += self.error.eq(0)
        with m.FSM():
            with m.State("idle"):
                with m.If(~line):
                    m.d.sync += [timer.eq(divisor // 2 - 1), bit.eq(0)]
                    m.next = "bit"
            with m.State("bit"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(bit == 0):
                    # A glitch shorter than half a bit is not a start bit.
                    m.d.sync += [timer.eq(divisor - 1), bit.eq(1)]
                    with m.If(line):
                        m.next = "idle"
                with m.Elif(bit != 9):
                    m.d.sync += [timer.eq(divisor - 1), bit.eq(bit + 1),
                                 shift.eq(Cat(shift[1:], line))]
                with m.Else():
                    with m.If(~line):
                        m.d.sync += self.error.eq(1)
                        m.next = "break"
                    with m.Else():
                        with m.If(self.o.valid & ~self.o.ready):
                            m.d.sync += self.error.eq(1)
                        with m.Else():
                            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(shift)]
                        m.next = "idle"
            with m.State("break"):
                # After a framing error wait for the line to return high before a start bit.
                with m.If(line):
                    m.next = "idle"
        return m


def encode_uart(data, divisor, *, idle=0):
    """Line levels, one per clock cycle, that send ``data`` as back-to-back 8N1 frames after
    ``idle`` high cycles (what a testbench drives into :class:`UartRx`)."""
    levels = [1] * idle
    for byte in data:
        for level in [0] + [byte >> k & 1 for k in range(8)] + [1]:
            levels += [level] * divisor
    return levels


def decode_uart(levels, divisor):
    """Bytes of an 8N1 line sampled once per clock cycle (a testbench's view of ``tx``).

    Finds each falling edge of a start bit, samples the data bits in the middle of their bit
    times and checks the stop bit; raises ``ValueError`` on a framing error.
    """
    result = bytearray()
    position = 0
    while True:
        start = next((k for k in range(position, len(levels) - 1)
                      if levels[k] == 1 and levels[k + 1] == 0), None)
        if start is None:
            return bytes(result)
        first = start + 1
        if first + 10 * divisor > len(levels):
            return bytes(result)          # the trace ends inside a frame
        sample = [levels[first + bit * divisor + divisor // 2] for bit in range(10)]
        if sample[0] != 0 or sample[9] != 1:
            raise ValueError(f"framing error in the byte starting at cycle {first}")
        result.append(sum(bit << k for k, bit in enumerate(sample[1:9])))
        position = first + 9 * divisor + divisor // 2
