"""The self-test report line the board sends over its UART, as gateware and as a parser.

The line is ASCII, one per run, exactly::

    FLEXOR PASS crc=1c291ca3 expected=1c291ca3 chunks=00000c80 cycles=00000c9a\\r\\n

``PASS`` or ``FAIL``; then four 32-bit fields as eight lower-case hex digits each: the CRC-32
of the decrypted chunks (:mod:`boards.crc`), the CRC the golden model computed at build time,
the number of decrypted chunks, and the clock cycles from the end of reset to the final output
beat. Hex keeps the gateware free of dividers; :func:`parse_report` reads it back.
"""

import re

from amaranth.hdl import Module, Mux, Signal
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

    def _characters(self):
        """Per character of the line, following :func:`format_report`: ``(literal, nibble)``,
        where ``nibble`` is the field nibble shown in hex, or ``None`` to send ``literal``."""
        # Place holders in a formatted line mark where the variable characters go.
        template = format_report(True, *(0 for _ in FIELDS))
        characters = [(ord(c), None) for c in template]
        verdict = template.index("PASS")
        for offset, (when_pass, when_fail) in enumerate(zip("PASS", "FAIL")):
            characters[verdict + offset] = (Mux(self.passed, ord(when_pass), ord(when_fail)),
                                            None)
        for name in FIELDS:
            first = template.index(f" {name}=") + len(f" {name}=")
            value = getattr(self, name)
            for digit in range(_HEX_DIGITS):
                characters[first + digit] = (0, value[4 * (_HEX_DIGITS - 1 - digit):][:4])
        return characters

    def elaborate(self, platform):
        m = Module()
        characters = self._characters()
        index = Signal(range(len(characters)))
        # The choice among the line's characters is registered: it is deep logic, kept off the
        # UART's input (one more cycle a character); only the hex digit follows the register.
        literal = Signal(8)
        nibble = Signal(4)
        is_digit = Signal()
        settled = Signal()                      # the registers hold the character of `index`
        m.d.comb += [self.o.valid.eq(self.busy & settled),
                     self.o.payload.eq(Mux(is_digit, _hex_digit(nibble), literal))]
        with m.Switch(index):
            for position, (value, digit) in enumerate(characters):
                with m.Case(position):
                    if digit is None:
                        m.d.sync += [literal.eq(value), is_digit.eq(0)]
                    else:
                        m.d.sync += [nibble.eq(digit), is_digit.eq(1)]
        with m.If(~self.busy):
            m.d.sync += [self.busy.eq(self.start), index.eq(0), settled.eq(0)]
        with m.Elif(self.o.valid & self.o.ready):
            m.d.sync += [index.eq(index + 1), settled.eq(0)]
            with m.If(index == len(characters) - 1):
                m.d.sync += self.busy.eq(0)
        with m.Else():
            m.d.sync += settled.eq(1)
        return m
