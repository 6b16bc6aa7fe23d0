"""SLIP framing (RFC 1055) of the classify protocol, in Python and as gateware.

A frame is ``END``, the payload with every ``END`` byte sent as ``ESC ESC_END`` and every ``ESC``
as ``ESC ESC_ESC``, then ``END``. Nothing else on the line is ever ``END``, so a receiver that
lost or gained a byte is back in step at the next ``END``: the damaged frame alone is lost (its
length and CRC, checked one layer up, say so). Empty frames (two ``END`` in a row) are ignored.
Escaping costs one byte per ``END`` or ``ESC`` in the payload, so each byte in gives at most
two out, and each byte in at most one out when decoding: both directions stream with no buffer.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["END", "ESC", "ESC_END", "ESC_ESC", "slip_encode", "SlipDecoder", "SlipReader",
           "SlipEncoder", "encoder_input_layout", "decoder_output_layout"]

END, ESC, ESC_END, ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD
_ESCAPES = {END: ESC_END, ESC: ESC_ESC}
_UNESCAPES = {code: byte for byte, code in _ESCAPES.items()}


def slip_encode(payload):
    """The frame of ``payload`` (bytes): ``END``, the escaped payload, ``END``."""
    body = bytearray()
    for byte in payload:
        body += bytes([ESC, _ESCAPES[byte]]) if byte in _ESCAPES else bytes([byte])
    return bytes([END]) + bytes(body) + bytes([END])


class SlipReader:
    """Cuts a byte stream into frames, as they arrive.

    :meth:`feed` takes any slice of the line and returns the frames it completed, each as
    ``(payload, intact)``: ``intact`` is false when an ``ESC`` was followed by anything but
    ``ESC_END`` or ``ESC_ESC`` (the payload then keeps that byte as it came, and an ``ESC``
    right before ``END`` is dropped).
    """

    def __init__(self):
        self._payload = bytearray()
        self._escaped = False
        self._intact = True

    def feed(self, chunk):
        frames = []
        for byte in chunk:
            if byte == END:
                self._intact &= not self._escaped
                if self._payload or not self._intact:
                    frames.append((bytes(self._payload), self._intact))
                self._payload, self._escaped, self._intact = bytearray(), False, True
            elif self._escaped:
                self._escaped = False
                self._intact &= byte in _UNESCAPES
                self._payload.append(_UNESCAPES.get(byte, byte))
            elif byte == ESC:
                self._escaped = True
            else:
                self._payload.append(byte)
        return frames


def encoder_input_layout():
    """:class:`SlipEncoder` input: a payload byte and whether it ends the frame."""
    return data.StructLayout({"data": 8, "last": 1})


def decoder_output_layout():
    """:class:`SlipDecoder` output: a payload byte, or (``end``) a frame's closing ``END``;
    ``bad`` marks a byte that followed an ``ESC`` but was no escape code."""
    return data.StructLayout({"data": 8, "end": 1, "bad": 1})


class SlipEncoder(wiring.Component):
    """Frames a byte stream: ``END`` before a frame's first byte, escapes, ``END`` after its last.

    Members
    -------
    i : ``In(stream.Signature(encoder_input_layout()))``
        Payload bytes; ``last`` on a frame's final byte.
    o : ``Out(stream.Signature(8))``
        The line's bytes.
    """

    i: In(stream.Signature(encoder_input_layout()))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        byte = self.i.payload.data
        special = (byte == END) | (byte == ESC)
        code = Mux(byte == END, ESC_END, ESC_ESC)
        with m.FSM():
            with m.State("idle"):
                m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.eq(END)]
                with m.If(self.o.valid & self.o.ready):
                    m.next = "data"
            with m.State("data"):
                m.d.comb += [self.o.valid.eq(self.i.valid),
                             self.o.payload.eq(Mux(special, ESC, byte)),
                             self.i.ready.eq(self.o.ready & ~special)]
                with m.If(self.o.valid & self.o.ready):
                    with m.If(special):
                        m.next = "code"
                    with m.Elif(self.i.payload.last):
                        m.next = "end"
            with m.State("code"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(code),
                             self.i.ready.eq(self.o.ready)]
                with m.If(self.o.ready):
                    m.next = "data"
                    with m.If(self.i.payload.last):
                        m.next = "end"
            with m.State("end"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(END)]
                with m.If(self.o.ready):
                    m.next = "idle"
        return m


class SlipDecoder(wiring.Component):
    """Undoes the framing: payload bytes out, one beat with ``end`` set per closing ``END``.

    Members
    -------
    i : ``In(stream.Signature(8))``
        The line's bytes.
    o : ``Out(stream.Signature(decoder_output_layout()))``
        Payload bytes and frame ends (every ``END``, also of empty frames: counting payload
        bytes is the next layer's business). ``bad`` on a byte: it followed an ``ESC`` but is
        no escape code; on an ``end``: an ``ESC`` came right before it.
    """

    i: In(stream.Signature(8))
    o: Out(stream.Signature(decoder_output_layout()))

    def elaborate(self, platform):
        m = Module()
        escaped = Signal()
        byte = self.i.payload
        is_end, is_esc = byte == END, byte == ESC
        # An ESC is swallowed; everything else is one output beat.
        swallow = is_esc & ~escaped
        m.d.comb += [
            self.o.valid.eq(self.i.valid & ~swallow),
            self.o.payload.end.eq(is_end),
            self.o.payload.data.eq(Mux(escaped & (byte == ESC_END), END,
                                       Mux(escaped & (byte == ESC_ESC), ESC, byte))),
            # A dangling ESC before END spoils the frame too.
            self.o.payload.bad.eq(escaped & (is_end | ((byte != ESC_END) & (byte != ESC_ESC)))),
            self.i.ready.eq(self.o.ready | swallow),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += escaped.eq(swallow)
        return m
