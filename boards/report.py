"""The self-test report line the board sends over its UART, as gateware and as a parser.

The line is ASCII, one per run, exactly::

    FLEXOR PASS crc=1c291ca3 expected=1c291ca3 chunks=00000c80 cycles=00000c9a\\r\\n

``PASS`` or ``FAIL``; then four 32-bit fields as eight lower-case hex digits each: the CRC-32
of the decrypted chunks (:mod:`boards.crc`), the CRC the golden model computed at build time,
the number of decrypted chunks, and the clock cycles from the end of reset to the final output
beat. Hex keeps the gateware free of dividers; :func:`parse_report` reads it back.
"""

import re

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FIELDS", "REPORT_LENGTH", "ReportSender", "parse_report", "format_report"]

#: The 32-bit fields of the report, in order, with their labels.
FIELDS = ("crc", "expected", "chunks", "cycles")
_HEX_DIGITS = 8
_PATTERN = re.compile(r"FLEXOR (PASS|FAIL) crc=([0-9a-f]{8}) expected=([0-9a-f]{8}) "
                      r"chunks=([0-9a-f]{8}) cycles=([0-9a-f]{8})\r\n")


def format_report(passed, crc, expected, chunks, cycles):
    """The report line for these values (what the gateware sends), as ``str``."""
    values = {"crc": crc, "expected": expected, "chunks": chunks, "cycles": cycles}
    fields = " ".join(f"{name}={values[name] & 0xFFFFFFFF:08x}" for name in FIELDS)
    return f"FLEXOR {'PASS' if passed else 'FAIL'} {fields}\r\n"


#: Characters in one report line.
REPORT_LENGTH = len(format_report(True, 0, 0, 0, 0))


def parse_report(text):
    """Read the first report line in ``text``: a dict with ``passed`` and the :data:`FIELDS`.

    Raises ``ValueError`` quoting the text when there is no well-formed line.
    """
    match = _PATTERN.search(text)
    if match is None:
        raise ValueError(f"no FLEXOR report line in {text[:120]!r}")
    values = {name: int(value, 16) for name, value in zip(FIELDS, match.groups()[1:])}
    return dict(passed=match.group(1) == "PASS", **values)


def _hex_digit(nibble):
    return Mux(nibble < 10, nibble + ord("0"), nibble + (ord("a") - 10))


class ReportSender(wiring.Component):
    """Streams the report line for the current field values, once per ``start`` pulse.

    The fields are read while the line is sent, so they must hold still until ``busy`` falls.

    Members
    -------
    start : ``In(1)``
        Begin a line (ignored while one is being sent).
    passed : ``In(1)``
    crc, expected, chunks, cycles : ``In(32)``
    o : ``Out(stream.Signature(8))``
        The characters.
    busy : ``Out(1)``
        A line is being sent.
    """

    start: In(1)
    passed: In(1)
    crc: In(32)
    expected: In(32)
    chunks: In(32)
    cycles: In(32)
    o: Out(stream.Signature(8))
    busy: Out(1)

    def _digits(self):
        """The field nibbles the line shows in hex, by position in the line."""
        template = format_report(True, *(0 for _ in FIELDS))
        digits = {}
        for name in FIELDS:
            first = template.index(f" {name}=") + len(f" {name}=")
            value = getattr(self, name)
            for digit in range(_HEX_DIGITS):
                digits[first + digit] = value[4 * (_HEX_DIGITS - 1 - digit):][:4]
        return digits

    def elaborate(self, platform):
        m = Module()
        # The line for each verdict with zero fields, as constant tables indexed by position.
        lines = {passed: format_report(passed, *(0 for _ in FIELDS)).encode()
                 for passed in (True, False)}
        digits = self._digits()
        index = Signal(range(len(lines[True])))
        # The character of `index` is chosen into registers: the choice is deep logic, kept off
        # the UART's input (one more cycle a character); only the hex digit follows them.
        literal = Signal(8)
        nibble = Signal(4)
        is_digit = Signal()
        settled = Signal()                      # the registers hold the character of `index`
        m.d.comb += [self.o.valid.eq(self.busy & settled),
                     self.o.payload.eq(Mux(is_digit, _hex_digit(nibble), literal))]
        table = {passed: Const(int.from_bytes(line, "little"), 8 * len(line))
                 for passed, line in lines.items()}
        m.d.sync += [
            literal.eq(Mux(self.passed, table[True].word_select(index, 8),
                           table[False].word_select(index, 8))),
            is_digit.eq(Const(sum(1 << position for position in digits), len(lines[True]))
                        .bit_select(index, 1)),
        ]
        with m.Switch(index):
            for position, value in digits.items():
                with m.Case(position):
                    m.d.sync += nibble.eq(value)
        with m.If(~self.busy):
            m.d.sync += [self.busy.eq(self.start), index.eq(0), settled.eq(0)]
        with m.Elif(self.o.valid & self.o.ready):
            m.d.sync += [index.eq(index + 1), settled.eq(0)]
            with m.If(index == len(lines[True]) - 1):
                m.d.sync += self.busy.eq(0)
        with m.Else():
            m.d.sync += settled.eq(1)
        return m
