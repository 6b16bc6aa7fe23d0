"""The classify protocol: one request frame per image, one answer frame per request.

Both directions use SLIP frames (:mod:`boards.slip`) whose payload ends in the CRC-32 of what
precedes it (``zlib.crc32``, little-endian; the gateware computes it with
:class:`boards.crc.ChunkCrc32` folding one byte a cycle)::

    request  = tag (1) | pixels (784, row-major, 0..255) | crc32 (4)
    answer   = tag (1) | status (1) | class (1) | logits (classes x int32 LE) | crc32 (4)

The answer echoes the request's tag. ``status`` is :data:`OK`, :data:`BAD_REQUEST` (wrong
length, wrong CRC, a bad escape or a UART framing error or overrun in the request: the host sends
it again) or :data:`ENGINE_ERROR` (the decryptor flagged a malformed weight stream). Class and
logits are what the engine computed; they mean something only with status :data:`OK`.

The board runs the engine on every non-empty frame, exactly once, on exactly ``pixels`` pixels:
a short frame is padded with zeros and the bytes past the CRC of a long one are dropped, so a
damaged request can never leave the engine out of step with the next one. Requests are
stop-and-wait: the host sends the next only once the previous answer arrived (or it gave up on
it); the board does not buffer a request that arrives while it is still answering the previous
one (its bytes are read late or lost, and the CRC catches the loss).
"""

import struct
import zlib
from typing import NamedTuple

from amaranth.hdl import Cat, Module, Mux, ResetInserter, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.engine import result_layout

from .crc import ChunkCrc32
from .slip import SlipDecoder, SlipEncoder, SlipReader, decoder_output_layout, slip_encode

__all__ = ["OK", "BAD_REQUEST", "ENGINE_ERROR", "STATUS_NAMES", "LOGIT_BYTES", "Answer",
           "encode_request", "request_length", "encode_answer", "decode_answer",
           "answer_length", "AnswerReader", "verdict_layout",
           "RequestReceiver", "AnswerSender"]

OK, BAD_REQUEST, ENGINE_ERROR = 0, 1, 2
STATUS_NAMES = {OK: "ok", BAD_REQUEST: "bad request", ENGINE_ERROR: "engine error"}
#: Bytes of one logit in the answer (signed, little-endian).
LOGIT_BYTES = 4
_CRC_BYTES = 4


def _with_crc(payload):
    return payload + zlib.crc32(payload).to_bytes(_CRC_BYTES, "little")


def request_length(pixels):
    """Payload bytes of a request for ``pixels`` pixels (before framing)."""
    return 1 + pixels + _CRC_BYTES


def answer_length(classes):
    """Payload bytes of an answer with ``classes`` logits (before framing)."""
    return 3 + LOGIT_BYTES * classes + _CRC_BYTES


def encode_request(tag, pixels):
    """The framed request (bytes on the line) for one image: ``pixels`` are ints 0..255."""
    if type(tag) is not int or not 0 <= tag <= 255:
        raise ValueError(f"tag must be an integer in 0..255, not {tag!r}")
    pixels = bytes(int(pixel) for pixel in pixels)   # raises ValueError outside 0..255
    return slip_encode(_with_crc(bytes([tag]) + pixels))


class Answer(NamedTuple):
    """One decoded answer."""
    tag: int
    status: int
    label: int
    logits: tuple


def encode_answer(answer):
    """The framed answer (bytes on the line); the board's side, for device models in tests."""
    logits = b"".join(struct.pack("<i", int(value)) for value in answer.logits)
    return slip_encode(_with_crc(bytes([answer.tag, answer.status, answer.label]) + logits))


def decode_answer(payload, classes):
    """The :class:`Answer` in a frame's payload; ``ValueError`` saying what is wrong with it."""
    if len(payload) != answer_length(classes):
        raise ValueError(f"an answer of {len(payload)} bytes, expected "
                         f"{answer_length(classes)}")
    body, crc = payload[:-_CRC_BYTES], payload[-_CRC_BYTES:]
    if zlib.crc32(body) != int.from_bytes(crc, "little"):
        raise ValueError(f"an answer with a wrong CRC ({crc[::-1].hex()}, computed "
                         f"{zlib.crc32(body):08x})")
    tag, status, label = body[:3]
    if status not in STATUS_NAMES:
        raise ValueError(f"an answer with unknown status {status}")
    logits = struct.unpack(f"<{classes}i", body[3:])
    if status == OK and label >= classes:
        raise ValueError(f"an answer with class {label} of {classes}")
    return Answer(tag, status, label, logits)


class AnswerReader:
    """Turns bytes from the line into answers: :meth:`feed` returns a list of :class:`Answer`
    or ``ValueError`` (a garbled frame), one item per completed frame."""

    def __init__(self, classes):
        self._classes = classes
        self._frames = SlipReader()

    def feed(self, chunk):
        items = []
        for payload, intact in self._frames.feed(chunk):
            if not intact:
                items.append(ValueError("an answer with a bad escape sequence"))
                continue
            try:
                items.append(decode_answer(payload, self._classes))
            except ValueError as error:
                items.append(error)
        return items


# -- gateware ------------------------------------------------------------------------------------

def verdict_layout():
    """One request's outcome: its tag and whether it arrived intact."""
    return data.StructLayout({"tag": 8, "ok": 1})


class RequestReceiver(wiring.Component):
    """Reads request frames from the UART: pixels to the engine, then the request's verdict.

    Parameters
    ----------
    pixels : int
        Pixels per image.

    Members
    -------
    i : ``In(stream.Signature(8))``
        Bytes from the UART receiver.
    line_error : ``In(1)``
        The UART receiver's error pulse; spoils the frame being received.
    pixels : ``Out(stream.Signature(8))``
        Exactly ``pixels`` pixels per non-empty frame (zeros pad a short one).
    verdict : ``Out(stream.Signature(verdict_layout()))``
        One per non-empty frame, after its last pixel. The receiver reads no more of the line
        until it is taken.
    busy : ``Out(1)``
        From a frame's first payload byte until its verdict is taken.
    """

    def __init__(self, *, pixels):
        if type(pixels) is not int or pixels < 1:
            raise ValueError(f"pixels must be a positive integer, not {pixels!r}")
        self._pixels = pixels
        super().__init__({"i": In(stream.Signature(8)), "line_error": In(1),
                          "pixels": Out(stream.Signature(8)),
                          "verdict": Out(stream.Signature(verdict_layout())),
                          "busy": Out(1)})

    pixels_per_image = property(lambda self: self._pixels)

    def elaborate(self, platform):
        m = Module()
        size = self._pixels
        frame = request_length(size)
        m.submodules.slip = slip = SlipDecoder()
        wiring.connect(m, wiring.flipped(self.i), slip.i)
        beat = slip.o
        clear = Signal()
        m.submodules.crc = crc = ResetInserter(clear)(ChunkCrc32(nout=8))
        count = Signal(range(frame + 2))        # payload bytes so far, saturating at frame + 1
        sent = Signal(range(size + 1))          # pixels sent to the engine in this frame
        received_crc = Signal(32)
        tag = Signal(8)
        bad = Signal()
        slot_free = ~self.pixels.valid | self.pixels.ready
        with m.If(self.pixels.ready):
            m.d.sync += self.pixels.valid.eq(0)
        with m.If(self.line_error):
            m.d.sync += bad.eq(1)
        m.d.comb += crc.data.eq(beat.payload.data)
        with m.FSM() as fsm:
            m.d.comb += self.busy.eq((count != 0) | ~fsm.ongoing("receive"))
            with m.State("receive"):
                m.d.comb += beat.ready.eq(slot_free)
                with m.If(beat.valid & beat.ready):
                    with m.If(beat.payload.end):
                        with m.If(beat.payload.bad):
                            m.d.sync += bad.eq(1)
                        with m.If((count != 0) | beat.payload.bad):
                            m.next = "pad"
                    with m.Else():
                        with m.If(beat.payload.bad):
                            m.d.sync += bad.eq(1)
                        with m.If(count != frame + 1):
                            m.d.sync += count.eq(count + 1)
                        with m.If(count <= size):
                            m.d.comb += crc.count.eq(1)
                        with m.If(count == 0):
                            m.d.sync += tag.eq(beat.payload.data)
                        with m.Elif(count <= size):
                            m.d.sync += [self.pixels.valid.eq(1),
                                         self.pixels.payload.eq(beat.payload.data),
                                         sent.eq(sent + 1)]
                        with m.Elif(count <= frame):
                            m.d.sync += received_crc.eq(Cat(received_crc[8:],
                                                            beat.payload.data))
            with m.State("pad"):
                with m.If(sent != size):
                    with m.If(slot_free):
                        m.d.sync += [self.pixels.valid.eq(1), self.pixels.payload.eq(0),
                                     sent.eq(sent + 1)]
                with m.Else():
                    # Errors from here on belong to the next frame.
                    m.d.sync += [self.verdict.valid.eq(1), self.verdict.payload.tag.eq(tag),
                                 self.verdict.payload.ok.eq((count == frame) & ~bad &
                                                            (crc.value == received_crc)),
                                 bad.eq(self.line_error)]
                    m.next = "verdict"
            with m.State("verdict"):
                with m.If(self.verdict.ready):
                    m.d.comb += clear.eq(1)
                    m.d.sync += [self.verdict.valid.eq(0), count.eq(0), sent.eq(0)]
                    m.next = "receive"
        return m


class AnswerSender(wiring.Component):
    """Pairs each verdict with the engine's result and sends the answer frame.

    Parameters
    ----------
    classes : int
    logit_bits : int
        Signed width of the engine's logits, at most 32 (they are sent as int32).

    Members
    -------
    verdict : ``In(stream.Signature(verdict_layout()))``
    result : ``In(stream.Signature(hdl.engine.result_layout(classes, logit_bits)))``
        The engine's results, one per verdict, in the same order; both are taken together.
    engine_error : ``In(1)``
        Sticky error of the weight path; answers carry :data:`ENGINE_ERROR` while it is high.
    o : ``Out(stream.Signature(8))``
        The answer frames' bytes, for the UART transmitter.
    busy : ``Out(1)``
        An answer is being sent.
    """

    def __init__(self, *, classes, logit_bits):
        if type(classes) is not int or not 1 <= classes <= 256:
            raise ValueError(f"classes must be an integer in 1..256, not {classes!r}")
        if type(logit_bits) is not int or not 1 <= logit_bits <= 8 * LOGIT_BYTES:
            raise ValueError(f"logit_bits must be an integer in 1..{8 * LOGIT_BYTES}, "
                             f"not {logit_bits!r}")
        self._classes, self._logit_bits = classes, logit_bits
        super().__init__({
            "verdict": In(stream.Signature(verdict_layout())),
            "result": In(stream.Signature(result_layout(classes, logit_bits))),
            "engine_error": In(1),
            "o": Out(stream.Signature(8)),
            "busy": Out(1),
        })

    classes = property(lambda self: self._classes)
    logit_bits = property(lambda self: self._logit_bits)

    def elaborate(self, platform):
        m = Module()
        body_bytes = answer_length(self._classes) - _CRC_BYTES
        m.submodules.slip = slip = SlipEncoder()
        wiring.connect(m, slip.o, wiring.flipped(self.o))
        clear = Signal()
        m.submodules.crc = crc = ResetInserter(clear)(ChunkCrc32(nout=8))
        body = Signal(8 * body_bytes)           # shifted out a byte at a time, LSB first
        index = Signal(range(body_bytes + _CRC_BYTES))
        status = Signal(8)
        with m.If(self.verdict.payload.ok & ~self.engine_error):
            m.d.comb += status.eq(OK)
        with m.Elif(self.verdict.payload.ok):
            m.d.comb += status.eq(ENGINE_ERROR)
        with m.Else():
            m.d.comb += status.eq(BAD_REQUEST)
        label = Signal(8)
        m.d.comb += label.eq(self.result.payload.cls)
        # Each logit sign-extended to int32 (`.eq` of a signed value into a wider signal).
        logits = [Signal(8 * LOGIT_BYTES, name=f"logit{k}") for k in range(self._classes)]
        packed = self.result.payload.logits
        m.d.comb += [wide.eq(packed.word_select(k, self._logit_bits).as_signed())
                     for k, wide in enumerate(logits)]
        loaded = Cat(self.verdict.payload.tag, status, label, *logits)
        in_body = index < body_bytes
        crc_byte = crc.value.word_select((index - body_bytes)[:2], 8)
        m.d.comb += [crc.data.eq(body[:8]),
                     slip.i.payload.data.eq(Mux(in_body, body[:8], crc_byte)),
                     slip.i.payload.last.eq(index == body_bytes + _CRC_BYTES - 1),
                     slip.i.valid.eq(self.busy)]
        with m.If(~self.busy):
            m.d.comb += clear.eq(1)
            with m.If(self.verdict.valid & self.result.valid):
                m.d.comb += [self.verdict.ready.eq(1), self.result.ready.eq(1)]
                m.d.sync += [self.busy.eq(1), index.eq(0), body.eq(loaded)]
        with m.Elif(slip.i.ready):
            m.d.sync += index.eq(index + 1)
            with m.If(in_body):
                m.d.comb += crc.count.eq(1)
                m.d.sync += body.eq(body >> 8)
            with m.If(slip.i.payload.last):
                m.d.sync += self.busy.eq(0)
        return m
