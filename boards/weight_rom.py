"""The weight memory of a board: a :class:`~boards.image.WeightImage` streamed to the decryptor.

:class:`WeightRom` holds the data words in block RAM and the few descriptors in logic, and sends
both streams of the decryptor's protocol (``docs/stream-protocol.md``), once or over and over.

The data memory's read port has one cycle of latency. The reader keeps the word it read in the
port's output register and reads the next address in the same cycle as the decryptor accepts
the current one (the port is enabled whenever its output is empty or being consumed), so a
word is delivered every cycle the decryptor is ready, with no bubble.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out

from hdl.decryptor import data_layout, descriptor_layout

from .image import WeightImage

__all__ = ["WeightRom"]


class WeightRom(wiring.Component):
    """Streams an image's descriptors and data words, at one word per cycle.

    Parameters
    ----------
    image : :class:`~boards.image.WeightImage`
    repeat : bool
        Start over after the last layer, forever (one pass per image for the classify
        application); otherwise stop after one pass (the self-test).

    Members
    -------
    desc : ``Out(stream.Signature(descriptor_layout()))``
    data : ``Out(stream.Signature(data_layout(image.width)))``
        Connect both to :class:`hdl.Decryptor`.
    """

    def __init__(self, *, image, repeat=False):
        if not isinstance(image, WeightImage):
            raise TypeError(f"image must be a boards.image.WeightImage, not {image!r}")
        if not isinstance(repeat, bool):
            raise TypeError(f"repeat must be a bool, not {repeat!r}")
        self._image, self._repeat = image, repeat
        super().__init__({"desc": Out(stream.Signature(descriptor_layout())),
                          "data": Out(stream.Signature(data_layout(image.width)))})

    image = property(lambda self: self._image)
    repeat = property(lambda self: self._repeat)

    def elaborate(self, platform):
        m = Module()
        self._add_descriptor_source(m)
        self._add_word_reader(m)
        return m

    def _next(self, counter, end):
        """``counter + 1``, or 0 past ``end - 1`` when repeating (``end`` stops it otherwise)."""
        if self._repeat:
            return Mux(counter == end - 1, 0, counter + 1)
        return counter + 1

    def _add_descriptor_source(self, m):
        """Descriptor beats (a few) from logic, one per cycle while the decryptor takes them."""
        desc, descriptors = self.desc, self._image.descriptors
        index = Signal(range(len(descriptors) + 1))
        m.d.comb += desc.valid.eq(index < len(descriptors))
        with m.Switch(index):
            for position, word in enumerate(descriptors):
                with m.Case(position):
                    m.d.comb += desc.payload.eq(word)
        with m.If(desc.valid & desc.ready):
            m.d.sync += index.eq(self._next(index, len(descriptors)))

    def _add_word_reader(self, m):
        """Data words from block RAM at one word per cycle (see the module docstring)."""
        data, image = self.data, self._image
        count = len(image.words)
        m.submodules.memory = memory = Memory(shape=image.width, depth=count, init=image.words)
        port = memory.read_port()
        address = Signal(range(count + 1))
        advance = ~data.valid | data.ready
        at_end = Cat(address == end for end in image.layer_ends).any()
        m.d.comb += [port.addr.eq(address), port.en.eq(advance), data.payload.data.eq(port.data)]
        with m.If(advance):
            m.d.sync += [data.valid.eq(address < count), data.payload.last.eq(at_end)]
            with m.If(address < count):
                m.d.sync += address.eq(self._next(address, count))
