"""Single-port RAM shaped like the iCE40 UltraPlus SPRAM, and a memory built on it that one
reader and one writer can share.

The UP5K's four SPRAM blocks (``SB_SPRAM256KA``, 16K x 16 bits each) hold 1 Mbit beside only
120 kbit of block RAM, but they have one port (a cycle reads or writes), cannot be initialized
by the bitstream, and their read data is undefined after a write (Yosys' simulation model gives
``x``). :class:`SinglePortRam` is one such block: the ``SB_SPRAM256KA`` itself on an iCE40
UltraPlus platform, an Amaranth memory with the same behaviour elsewhere (so Amaranth's
simulator and Verilator run the logic around it). :class:`SharedPortMemory` puts a wide memory
on such blocks for a buffer that is written by a producer and read by a consumer, as the
engine's image memory (``docs/engine.md``).
"""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from flexor.parameters import check_int

__all__ = ["SinglePortRam", "SharedPortMemory", "SPRAM_DEPTH", "SPRAM_WIDTH"]

#: Words and bits of one ``SB_SPRAM256KA``.
SPRAM_DEPTH, SPRAM_WIDTH = 16384, 16


def _is_ultraplus(platform):
    """Whether ``platform`` is an iCE40 UltraPlus (the only iCE40s with SPRAM); refuses the other
    iCE40s, which have none."""
    from amaranth.vendor import SiliconBluePlatform

    if not isinstance(platform, SiliconBluePlatform):
        return False
    if not platform.device.startswith("iCE40UP"):
        raise ValueError(f"the {platform.device} has no SPRAM; on iCE40, SinglePortRam needs "
                         f"an UltraPlus (iCE40UP3K, iCE40UP5K)")
    return True


def _arbitrate(queued, reading):
    """``(write, dequeue)``: the queued word is written, and leaves the queue, in a cycle
    without a read (the reader has priority)."""
    write = queued & ~reading
    return write, write


class SinglePortRam(wiring.Component):
    """One SPRAM block: ``depth`` words of 16 bits, one port, one cycle of read latency.

    On an iCE40 UltraPlus platform this is an ``SB_SPRAM256KA`` (the address is widened to its
    14 bits; standby, sleep and power-off are held inactive); on any other platform, and in
    simulation, a :class:`amaranth.lib.memory.Memory` of ``depth`` words with the same port.
    After a write ``rdata`` is undefined until the next read (``x`` in Yosys' model); the
    Amaranth version gives the *inverted* word then, so logic that uses it fails its tests.

    Parameters
    ----------
    depth : int
        Words used, 1 to 16384 (an ``SB_SPRAM256KA`` always has 16384).

    Members
    -------
    addr : ``In(range(depth))``
    en : ``In(1)``
        Chip select: this cycle reads (``we`` low) or writes (``we`` high).
    we : ``In(1)``
    mask : ``In(4)``
        Nibbles written (bit ``i``: bits ``4i .. 4i+3``).
    wdata : ``In(16)``
    rdata : ``Out(16)``
        The word read, from the cycle after the read until the next read or write.
    """

    def __init__(self, *, depth):
        self._depth = check_int("depth", depth, maximum=SPRAM_DEPTH)
        super().__init__({"addr": In(range(self._depth)), "en": In(1), "we": In(1), "mask": In(4),
                          "wdata": In(SPRAM_WIDTH), "rdata": Out(SPRAM_WIDTH)})

    depth = property(lambda self: self._depth)

    def elaborate(self, platform):
        m = Module()
        if _is_ultraplus(platform):
            m.submodules.spram = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=Cat(self.addr, Const(0, ceil_log2(SPRAM_DEPTH) - len(self.addr))),
                i_DATAIN=self.wdata, i_MASKWREN=self.mask, i_WREN=self.we,
                i_CHIPSELECT=self.en, i_CLOCK=ClockSignal("sync"), i_STANDBY=0, i_SLEEP=0,
                i_POWEROFF=1, o_DATAOUT=self.rdata)
            return m
        m.submodules.memory = ram = memory.Memory(shape=SPRAM_WIDTH, depth=self._depth, init=[])
        read, write = ram.read_port(), ram.write_port(granularity=4)
        m.d.comb += [read.addr.eq(self.addr), read.en.eq(self.en & ~self.we),
                     write.addr.eq(self.addr), write.data.eq(self.wdata),
                     write.en.eq(Mux(self.en & self.we, self.mask, 0))]
        written = Signal()                # written since the last read: rdata is undefined
        with m.If(self.en):
            m.d.sync += written.eq(self.we)
        m.d.comb += self.rdata.eq(Mux(written, ~read.data, read.data))
        return m


class SharedPortMemory(wiring.Component):
    """A ``depth x width`` memory whose low ``16 * blocks`` bits live in :class:`SinglePortRam`
    blocks and the rest (if any) in a dual-port memory, for one reader and one writer.

    The reader sees an Amaranth read port: the word one cycle after ``read.en``, held until the
    next read. It is never delayed. The writer's word waits in a one-word queue and is written
    in the first cycle without a read (writes on the single port are what the reader's priority
    costs). The single-port blocks' output is undefined after a write, so it is copied into a
    register in the cycle after each read and taken from there.

    Parameters
    ----------
    depth : int
        Words, at most 16384.
    width : int
        Bits per word.
    blocks : int
        Single-port blocks, 1 to ``ceil(width / 16)``.

    Members
    -------
    read : ``In(memory.ReadPort.Signature(addr_width=ceil_log2(depth), shape=width))``
        ``addr``, ``en`` in; ``data`` out.
    write : ``In(memory.WritePort.Signature(addr_width=ceil_log2(depth), shape=width))``
        ``addr``, ``data``, ``en`` in: ``en`` queues the word; only while ``write_ready``.
    write_ready : ``Out(1)``
        No word is queued: a write is taken this cycle. A reader that must see every word
        written so far waits for it.
    """

    def __init__(self, *, depth, width, blocks):
        self._depth = check_int("depth", depth, maximum=SPRAM_DEPTH)
        self._width = width = check_int("width", width)
        self._blocks = check_int(f"blocks for {width}-bit words", blocks,
                                 maximum=-(-width // SPRAM_WIDTH))
        addr_width = ceil_log2(self._depth)
        super().__init__({
            "read": In(memory.ReadPort.Signature(addr_width=addr_width, shape=width)),
            "write": In(memory.WritePort.Signature(addr_width=addr_width, shape=width)),
            "write_ready": Out(1),
        })

    depth = property(lambda self: self._depth)
    width = property(lambda self: self._width)
    blocks = property(lambda self: self._blocks)

    @property
    def single_port_bits(self):
        """Bits of each word in the single-port blocks (the low ones)."""
        return min(self._width, SPRAM_WIDTH * self._blocks)

    def elaborate(self, platform):
        m = Module()
        low = self.single_port_bits
        queued = Signal()
        queue_addr = Signal.like(self.write.addr)
        queue_data = Signal.like(self.write.data)
        commit, dequeue = _arbitrate(queued, self.read.en)
        m.d.comb += self.write_ready.eq(~queued)
        with m.If(dequeue):
            m.d.sync += queued.eq(0)
        with m.If(self.write.en & ~queued):
            m.d.sync += [queued.eq(1), queue_addr.eq(self.write.addr),
                         queue_data.eq(self.write.data)]
        addr = Mux(self.read.en, self.read.addr, queue_addr)

        fresh = Signal()                  # the blocks' output is this cycle's read result
        held = Signal(low)
        m.d.sync += fresh.eq(self.read.en)
        rdata = Signal(low)
        for index in range(self._blocks):
            bits = slice(SPRAM_WIDTH * index, min(low, SPRAM_WIDTH * (index + 1)))
            m.submodules[f"block{index}"] = block = SinglePortRam(depth=self._depth)
            m.d.comb += [block.addr.eq(addr), block.en.eq(self.read.en | commit),
                         block.we.eq(commit), block.mask.eq(0b1111),
                         block.wdata.eq(queue_data[bits]), rdata[bits].eq(block.rdata)]
        with m.If(fresh):
            m.d.sync += held.eq(rdata)
        m.d.comb += self.read.data[:low].eq(Mux(fresh, rdata, held))

        if low < self._width:
            m.submodules.rest = rest = memory.Memory(shape=self._width - low,
                                                     depth=self._depth, init=[])
            read, write = rest.read_port(), rest.write_port()
            m.d.comb += [read.addr.eq(self.read.addr), read.en.eq(self.read.en),
                         self.read.data[low:].eq(read.data),
                         write.addr.eq(queue_addr), write.data.eq(queue_data[low:]),
                         write.en.eq(commit)]
        return m
