"""The weight-streaming decryptor: memory words in, decrypted weight chunks out, at full rate.

Structure (one clock domain, ``sync``)::

    desc ──> input side ──> next-layer slot ──> current layer ─┐
    data ──> input side ──> bit buffer (gearbox) ──────────────┴─> L x K XOR networks ─> out reg

* The **input side** pairs descriptors with data words: it accepts a descriptor when it is not
  inside a layer (or on the cycle the layer's ``last`` word arrives, so back-to-back layers lose
  no cycle) and appends every data word of a good layer to the bit buffer. It trusts the
  data stream's ``last`` flag for where a layer's words end.
* The **bit buffer** holds ``buffer_width = max(lanes * nin) + width - 1`` bits, LSB = oldest.
  That is the least that lets it take a beat's bits and a new word in the same cycle whenever the
  rate allows (see ``docs/stream-protocol.md``). Its ``fill`` counts only a layer's own bits: a
  layer's last word adds ``(chunks * nin - 1) mod width + 1`` bits, which the descriptor's low
  bits give, so the zero padding is never counted and the next layer's word lands on top of it.
* The **current layer** takes ``lanes`` chunks (fewer on the final beat) from the buffer bottom
  per output beat.
* **Timing.** Everything a beat's handshake needs is a register or one gate from registers: the
  next beat's chunk count, bit count and final flag are computed a beat ahead, and the
  comparisons of ``fill`` with the beat's bits (enough bits? room for a word?) are registers
  updated from the next values of both. The buffer shifts down by one of the few bit counts a
  beat can take (a multiplexer, no barrel shifter) and takes any word that fits, accepted or not
  (bits at and above ``fill`` are don't-care), so only ``fill`` and its flags wait for the
  handshake.
* A **malformed descriptor** (configuration index >= ``len(configs)``, or zero chunks) is
  consumed without output and sets a sticky bit of ``error`` until reset; for a bad index with a
  non-zero count the layer's data words are discarded up to and including the one flagged
  ``last``. A zero-chunk layer has no data words, so nothing is discarded.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, exact_log2

from flexor.stream import CHUNKS_BITS, CONFIG_BITS, check_stream_parameters, count_width

from .decryptor_pipeline import (
    PIPELINE_LATENCY,
    PIPELINE_WORD_LATENCY,
    PIPELINE_WORD_START,
    elaborate_pipelined,
    pipeline_spans,
)
from .xor_network import network_rows
from .xor_shared import network_program

__all__ = ["Decryptor", "descriptor_layout", "data_layout", "output_layout", "error_layout"]


def _at_most(value, bound):
    """``value <= bound`` for a constant ``bound``: a zero test of the bits above the bound's
    width and a narrow compare, rather than a carry chain as wide as ``value``."""
    low = bits_for(bound)
    if len(value) <= low:
        return value <= bound
    return (value[low:] == 0) & (value[:low] <= bound)


def _beat_count(final, chunks, lanes):
    """Chunks in a beat: ``lanes``, or on the final beat the ``chunks`` left (1 .. ``lanes``),
    which their low bits give."""
    if lanes == 1:
        return Const(1, 1)
    return Mux(final, chunks[:count_width(lanes)], lanes)


def descriptor_layout():
    """Descriptor payload: ``chunks`` in bits ``[0, 32)``, ``config`` in bits ``[32, 40)``."""
    return data.StructLayout({"chunks": CHUNKS_BITS, "config": CONFIG_BITS})


def data_layout(width):
    """Data payload: one memory word and the layer's ``last`` flag."""
    return data.StructLayout({"data": width, "last": 1})


def output_layout(nout, lanes):
    """Output payload: ``lanes`` chunks, the number of valid ones, and the layer's ``last``."""
    return data.StructLayout({"data": nout * lanes, "count": count_width(lanes), "last": 1})


def error_layout():
    """Sticky error flags: which kind of malformed descriptor was seen since reset."""
    return data.StructLayout({"bad_config": 1, "zero_chunks": 1})


class Decryptor(wiring.Component):
    """Streaming FleXOR decryptor with a gearbox from memory words to ``lanes`` chunks per beat.

    Parameters
    ----------
    configs : sequence of :class:`flexor.XorConfig`
        Configuration table, addressed by the descriptor's ``config`` field. All share ``nout``;
        ``nin`` (at most 64) and the matrix may differ (mixed precision per layer).
    width : int
        Memory word width: 8, 16, 32 or 64.
    lanes : int
        Chunks decrypted per output beat (``>= 1``).
    minimize : bool
        Build each configuration's XOR networks with shared subexpressions where that saves
        LUTs (:mod:`hdl.xor_shared`). Default ``False``.
    pipeline : bool
        Build the pipelined variant (:mod:`hdl.decryptor_pipeline`): same ports, protocol, rate
        and layer gap, every handshake a register, Fmax close to the bare XOR network's; it
        costs latency and area. Default ``False``.

    Attributes
    ----------
    configs, width, lanes, nout, pipeline, minimize
        The parameters (``configs`` as a tuple).
    programs : tuple of :class:`flexor.xor_minimize.XorProgram`
        The network built for each configuration (``xor2_count``: its XOR2s, one lane).
    buffer_width : int
        Bits held for the gearbox (the pipelined variant: its word FIFO).
    latency : int
        Cycles from accepting a layer's descriptor to its first output beat when nothing stalls
        and the beat's words are already in (:data:`LATENCY`).
    word_latency : int
        Cycles from accepting the data word that completes a beat to the beat, when nothing
        stalls and the beat's descriptor is through (:data:`WORD_LATENCY`).
    word_start : int
        Cycles after its descriptor's acceptance from which a layer's first data word can be
        accepted (0: in the same cycle). :meth:`first_beat_latency` combines the three.
    layer_gap : int
        Idle output cycles between the final beat of a layer and the first of the next when
        nothing stalls and the next layer's descriptor is waiting (:data:`LAYER_GAP`).

    Members
    -------
    desc : ``In(stream.Signature(descriptor_layout()))``
        One descriptor per layer.
    data : ``In(stream.Signature(data_layout(width)))``
        Encrypted bits, LSB-first, each layer starting on a fresh word, its last word ``last``.
    out : ``Out(stream.Signature(output_layout(nout, lanes)))``
        Decrypted chunks; chunk ``i`` in ``data[i*nout:(i+1)*nout]``; ``count`` valid chunks
        (always ``lanes`` but on a layer's final beat), chunks past ``count`` zero; ``last`` on
        a layer's final beat.
    error : ``Out(error_layout())``
        Sticky until reset: ``bad_config`` (index out of range), ``zero_chunks``.
    """

    #: See the ``latency`` attribute: descriptor -> slot -> current layer -> output register.
    LATENCY = 3
    #: See the ``word_latency`` attribute: word -> buffer -> output register.
    WORD_LATENCY = 2
    #: See the ``layer_gap`` attribute; measured by tests/test_decryptor.py.
    LAYER_GAP = 0

    def __init__(self, *, configs, width, lanes=1, pipeline=False, minimize=False):
        self._configs, self._width, self._lanes = check_stream_parameters(configs, width, lanes)
        if not isinstance(pipeline, bool):
            raise TypeError(f"pipeline must be True or False, not {pipeline!r}")
        self._minimize = minimize
        self._programs = tuple(network_program(c, minimize) for c in self._configs)
        self._pipeline = pipeline
        self._nout = self._configs[0].nout
        if pipeline:
            self._buffer_width = pipeline_spans(self._configs, width, lanes)[1] * width
            self._latency = PIPELINE_LATENCY
            self._word_latency = PIPELINE_WORD_LATENCY
            self._word_start = PIPELINE_WORD_START
        else:
            self._buffer_width = max(lanes * c.nin for c in self._configs) + width - 1
            self._latency, self._word_latency, self._word_start = \
                self.LATENCY, self.WORD_LATENCY, 0
        super().__init__({
            "desc": In(stream.Signature(descriptor_layout())),
            "data": In(stream.Signature(data_layout(width))),
            "out": Out(stream.Signature(output_layout(self._nout, lanes))),
            "error": Out(error_layout()),
        })

    @property
    def configs(self):
        return self._configs

    @property
    def width(self):
        return self._width

    @property
    def lanes(self):
        return self._lanes

    @property
    def nout(self):
        return self._nout

    @property
    def pipeline(self):
        return self._pipeline

    @property
    def minimize(self):
        return self._minimize

    @property
    def programs(self):
        return self._programs

    @property
    def buffer_width(self):
        return self._buffer_width

    @property
    def latency(self):
        return self._latency

    @property
    def word_latency(self):
        return self._word_latency

    @property
    def word_start(self):
        return self._word_start

    @property
    def layer_gap(self):
        return self.LAYER_GAP

    @property
    def out_chunks(self):
        """The output's ``data`` as an array of ``lanes`` chunks of ``nout`` bits (a
        ``data.ArrayLayout`` view): ``out_chunks[i]`` is chunk ``i`` of the beat."""
        return data.ArrayLayout(self._nout, self._lanes)(self.out.payload.data)

    def first_beat_latency(self, config, chunks=None):
        """Cycles from accepting a layer's descriptor to its first beat, when its data words
        are offered from that cycle on and nothing stalls: ``max(latency, word_start + w - 1 +
        word_latency)``, ``w = ceil(min(lanes, chunks) * nin / width)`` the words the first
        beat needs (``chunks`` default: at least ``lanes``).

        Parameters
        ----------
        config : int
            Index into ``configs``.
        chunks : int or None
            The layer's chunk count.
        """
        nin = self._configs[config].nin
        beat_chunks = self._lanes if chunks is None else min(self._lanes, chunks)
        words = -(-beat_chunks * nin // self._width)
        return max(self._latency, self._word_start + words - 1 + self._word_latency)

    def elaborate(self, platform):
        if self._pipeline:
            return elaborate_pipelined(self)
        m = Module()
        s = self._add_registers()
        self._add_beat_sizes(m, s)
        self._add_output_side(m, s)
        self._add_input_side(m, s)
        self._add_gearbox(m, s)
        self._add_lanes(m, s)
        return m

    # The parts below share their signals through ``s``, a namespace each part adds to; they
    # must run in this order (the Verilog's names and statement order follow it).

    def _add_registers(self):
        """The state of both sides: the bit buffer, the one-layer slot and the current beat."""
        s = SimpleNamespace()
        capacity, width, lanes = self._buffer_width, self._width, self._lanes

        s.buffer = Signal(capacity)             # bits at and above `fill` are don't-care
        s.fill = Signal(range(capacity + 1))

        s.in_layer = Signal()                   # inside a good layer's data words
        s.skipping = Signal()                   # discarding a bad layer's data words
        s.tail = Signal(range(width + 1))       # that layer's bits in its last word, 1 .. width

        # The one-layer slot between the two sides holds the layer's first beat ready-made.
        s.next_valid = Signal()
        s.next_config = Signal(range(max(len(self._configs), 2)))
        s.next_chunks = Signal(CHUNKS_BITS)
        s.next_final = Signal()
        s.next_penultimate = Signal()
        s.next_count = Signal(range(lanes + 1))
        s.next_need = Signal(range(capacity + 1))

        # The current layer and its next beat. What the beat takes (`count`, `need`) and
        # whether it is the last one or the one before are registers, computed a beat ahead.
        s.active = Signal()
        s.config = Signal.like(s.next_config)
        s.remaining = Signal(CHUNKS_BITS)       # chunks not yet sent, this beat's included
        s.final = Signal()                      # remaining <= lanes
        s.penultimate = Signal()                # remaining <= 2 * lanes
        s.count = Signal.like(s.next_count)
        s.need = Signal.like(s.next_need)       # bits this beat takes: count * nin

        # Comparisons of `fill` and `need`, kept as registers beside them (computed from their
        # next values), so the handshakes are a few gates after a register: no subtraction or
        # compare lies between them and the flip-flops.
        s.enough = Signal(init=1)               # fill >= need
        s.room_after_beat = Signal(init=1)      # fill - need <= capacity - width
        s.room_now = Signal(init=1)             # fill <= capacity - width
        return s

    def _add_beat_sizes(self, m, s):
        """What a descriptor's first beat and the current layer's next beat take."""
        configs, width, lanes = self._configs, self._width, self._lanes
        word_bits = exact_log2(width)
        payload = self.desc.payload
        s.desc_final = _at_most(payload.chunks, lanes)
        s.desc_count = _beat_count(s.desc_final, payload.chunks, lanes)
        # The beat after the current one, with remaining - lanes chunks left.
        s.after_count = _beat_count(s.penultimate, s.remaining - lanes, lanes)
        s.desc_need = Signal.like(s.need)
        s.after_need = Signal.like(s.need)
        s.desc_tail = Signal.like(s.tail)
        with m.Switch(payload.config):
            for index, xor_config in enumerate(configs):
                with m.Case(index):
                    # Only the low bits of the layer's length count: no wide multiply.
                    in_last = (payload.chunks[:word_bits] * xor_config.nin)[:word_bits]
                    m.d.comb += [s.desc_need.eq(s.desc_count * xor_config.nin),
                                 s.desc_tail.eq(Mux(in_last == 0, width, in_last))]
        with m.Switch(s.config):
            for index, xor_config in enumerate(configs):
                with m.Case(index):
                    m.d.comb += s.after_need.eq(s.after_count * xor_config.nin)

    def _add_output_side(self, m, s):
        """When a beat leaves (`fire`) and when the slot's layer becomes current (`load`)."""
        lanes = self._lanes
        s.fire = Signal()
        s.load = Signal()
        m.d.comb += [
            s.fire.eq(s.active & s.enough & (~self.out.valid | self.out.ready)),
            s.load.eq(s.next_valid & (~s.active | (s.fire & s.final))),
        ]
        with m.If(s.load):
            m.d.sync += [s.active.eq(1), s.config.eq(s.next_config),
                         s.remaining.eq(s.next_chunks), s.final.eq(s.next_final),
                         s.penultimate.eq(s.next_penultimate), s.count.eq(s.next_count),
                         s.need.eq(s.next_need)]
        with m.Elif(s.fire):
            m.d.sync += [s.remaining.eq(s.remaining - lanes), s.final.eq(s.penultimate),
                         s.penultimate.eq(_at_most(s.remaining, 3 * lanes)),
                         s.count.eq(s.after_count), s.need.eq(s.after_need)]
            with m.If(s.final):
                m.d.sync += s.active.eq(0)

    def _add_input_side(self, m, s):
        """The descriptor and data handshakes, the error bits and the slot's loading.

        Where an accepted word lands (fill, or fill - need when a beat leaves) and whether it
        fits: `fire` selects between the two.
        """
        configs, lanes = self._configs, self._lanes
        payload = self.desc.payload
        s.fill_after_beat = Signal.like(s.fill)
        s.base = Signal.like(s.fill)
        s.room = Signal()
        desc_ok = Signal()
        config_ok = Signal()
        s.start_good = Signal()
        start_bad = Signal()
        s.word = Signal()
        ends = Signal()
        m.d.comb += [
            s.fill_after_beat.eq(s.fill - s.need),
            s.base.eq(Mux(s.fire, s.fill_after_beat, s.fill)),
            s.room.eq(Mux(s.fire, s.room_after_beat, s.room_now)),
            # A descriptor may enter with the current layer's last word: no lost cycle.
            self.desc.ready.eq((~s.next_valid | s.load) & ~s.skipping &
                               (~s.in_layer |
                                (self.data.valid & self.data.payload.last & s.room))),
            desc_ok.eq(self.desc.valid & self.desc.ready & (payload.chunks != 0)),
            config_ok.eq(_at_most(payload.config, len(configs) - 1)),
            s.start_good.eq(desc_ok & config_ok),
            start_bad.eq(desc_ok & ~config_ok),
            s.word.eq(self.data.valid & self.data.ready),
            ends.eq(s.word & self.data.payload.last),
        ]
        with m.If(s.in_layer):
            m.d.comb += self.data.ready.eq(s.room)
            with m.If(ends):
                m.d.sync += [s.in_layer.eq(s.start_good), s.skipping.eq(start_bad)]
        with m.Elif(s.skipping):
            m.d.comb += self.data.ready.eq(1)
            with m.If(ends):
                m.d.sync += s.skipping.eq(0)
        with m.Else():
            # Idle: a descriptor accepted now opens its layer in this very cycle.
            m.d.comb += self.data.ready.eq((s.start_good & s.room) | start_bad)
            m.d.sync += [s.in_layer.eq(s.start_good & ~ends),
                         s.skipping.eq(start_bad & ~ends)]

        with m.If(self.desc.valid & self.desc.ready):
            m.d.sync += [
                self.error.bad_config.eq(self.error.bad_config | ~config_ok),
                self.error.zero_chunks.eq(self.error.zero_chunks | (payload.chunks == 0)),
            ]
        with m.If(s.start_good):
            m.d.sync += [s.next_valid.eq(1), s.next_config.eq(payload.config),
                         s.next_chunks.eq(payload.chunks), s.next_final.eq(s.desc_final),
                         s.next_penultimate.eq(_at_most(payload.chunks, 2 * lanes)),
                         s.next_count.eq(s.desc_count), s.next_need.eq(s.desc_need),
                         s.tail.eq(s.desc_tail)]
        with m.Elif(s.load):
            m.d.sync += s.next_valid.eq(0)

    def _add_gearbox(self, m, s):
        """Drop the bits a beat takes, append an accepted word of a good layer on top.

        `fill` counts only a layer's own bits: a last word adds `tail`, so its padding is
        never taken by a beat. Bits at and above `fill` are cleared on their way through
        (`held`), so the buffer may take any word that fits, accepted or not: only `fill`
        and its comparisons wait for the handshake, whose logic is the deepest.
        """
        configs, width, lanes = self._configs, self._width, self._lanes
        capacity, buffer, fill = self._buffer_width, s.buffer, s.fill
        append = s.word & (s.in_layer | (~s.skipping & s.start_good))
        added = Mux(self.data.payload.last, Mux(s.in_layer, s.tail, s.desc_tail), width)
        held = buffer & ~(Const(-1, capacity) << fill)[:capacity]
        # `need` only takes the values count * nin: a multiplexer of fixed shifts, no barrel.
        shifted = Signal(capacity)
        takes = sorted({count * c.nin for c in configs for count in range(1, lanes + 1)})
        with m.Switch(s.need):
            for take in takes[:-1]:
                with m.Case(take):
                    m.d.comb += shifted.eq(held >> take)
            with m.Default():
                m.d.comb += shifted.eq(held >> takes[-1])
        # A word that fits lands at most capacity - width bits up: a narrow placing shift.
        placed = Mux(s.room, self.data.payload.data << s.base[:bits_for(capacity - width)], 0)
        m.d.sync += buffer.eq(Mux(s.fire, shifted, held) | placed)

        # The next `fill` and its comparisons with the next `need`, for each outcome of `fire`
        # and `append`. Given `fire`, whether the slot's layer loads depends on registers only.
        def track(kept, next_need):
            """Update `fill` and its flags when `kept` bits stay and `next_need` comes next."""
            # kept - next_need comes from registers only; `append` adds `added` to both sides.
            surplus = Signal(signed(len(fill) + 1))
            m.d.comb += surplus.eq(kept - next_need)
            for condition, bits, left in ((append, kept + added, surplus + added),
                                          (~append, kept, surplus)):
                left = left.as_unsigned()       # when negative, the high bits are set
                with m.If(condition):
                    m.d.sync += [fill.eq(bits), s.enough.eq(~left[-1]),
                                 s.room_after_beat.eq(_at_most(left, capacity - width)),
                                 s.room_now.eq(_at_most(bits, capacity - width))]

        # Given `fire`, whether the slot's layer loads depends on registers only.
        with m.If(s.fire):
            track(s.fill_after_beat, Mux(s.next_valid & s.final, s.next_need, s.after_need))
        with m.Else():
            track(fill, Mux(s.next_valid & ~s.active, s.next_need, s.need))

    def _add_lanes(self, m, s):
        """Decrypt lane i of configuration k from buffer bits [i*nin_k, (i+1)*nin_k) and send
        the beat. The networks are built outside the Switch, so their shared signals are
        unconditional."""
        configs, lanes, buffer, count = self._configs, self._lanes, s.buffer, s.count
        decrypted = Signal(self._nout * lanes)
        networks = [Cat(*(Cat(*network_rows(m, c, self._programs[index],
                                            buffer[lane * c.nin:(lane + 1) * c.nin],
                                            f"xor{index}_lane{lane}"))
                          for lane in range(lanes)))
                    for index, c in enumerate(configs)]
        with m.Switch(s.config):
            for index, network in enumerate(networks):
                with m.Case(index):
                    m.d.comb += decrypted.eq(network)
        # Chunks past `count` are zero (their bits may be padding or not there yet), so whole
        # beats compare equal to the golden model.
        lane_valid = Cat(Const(1, 1), *(count > lane for lane in range(1, lanes)))
        masked = Cat(*(Mux(lane_valid[lane], decrypted.word_select(lane, self._nout), 0)
                       for lane in range(lanes)))

        with m.If(s.fire):
            m.d.sync += [self.out.valid.eq(1), self.out.payload.data.eq(masked),
                         self.out.payload.count.eq(count), self.out.payload.last.eq(s.final)]
        with m.Elif(self.out.ready):
            m.d.sync += self.out.valid.eq(0)
