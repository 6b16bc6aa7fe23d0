"""A UART transmitter (8 data bits, no parity, 1 stop bit) and its inverse for testbenches."""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UartTx", "check_divisor", "uart_divisor", "decode_uart"]


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
