"""Formal properties of valid/ready stream blocks, as Amaranth ``Assert``/``Assume``/``Cover``.

:class:`StreamHarness` wraps any component with one input and one output stream (Amaranth
``stream.Signature``: ``valid``, ``ready``, ``payload``) and adds, around it, the properties a
stream block must keep under *any* legal traffic, reset at any cycle included:

* **input rule** (assumed): once ``i.valid`` is high and ``i.ready`` low, ``i.valid`` stays high
  and ``i.payload`` stays put in the next cycle;
* **output rule** (asserted): the same for ``o``;
* **conservation** (asserted): ``outstanding``, beats accepted minus beats delivered, is never
  negative, never above ``capacity``, and, when an ``occupancy`` expression is given, equals it
  (that equation is also what lets k-induction close);
* **in-order data** (asserted, when a ``reference`` is given): a scoreboard of ``capacity``
  entries records ``reference(i.payload)`` for each accepted beat; whenever ``o.valid`` is high
  with a beat outstanding, ``o.payload`` equals the oldest entry;
* **no deadlock** (asserted, bounded liveness as a safety property): with the consumer ready,
  the block stays blocked (input refused, or a beat outstanding but none offered) for fewer than
  ``stall_bound`` consecutive cycles;
* **cover**: ``cover_streak`` back-to-back output transfers are reachable (full throughput).

The bookkeeping registers are in the same ``sync`` domain as the block, so a reset clears them
together with the block and the properties restart with it. Amaranth 0.5 has no ``Past``: the
last-cycle copies are explicit registers.

A block with more than one input stream gets its own harness built from the same pieces
(:func:`stream_rule`, :func:`consecutive`): :class:`DecryptorHarness` does so for
:class:`hdl.Decryptor`, adding its per-layer checks (beat counts, ``last`` exactly once per
layer). Either is checked with :func:`sim.formal.check_formal`.
"""

from amaranth.hdl import Assert, Assume, Cat, Cover, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, connect, flipped
from amaranth.utils import bits_for, exact_log2

from flexor import XorConfig
from flexor.parameters import check_int

from .decryptor import Decryptor

__all__ = ["StreamHarness", "DecryptorHarness", "matrix_function", "stream_rule", "consecutive"]


def matrix_function(config):
    """``payload -> M payload mod 2`` built straight from the matrix, independent of
    :func:`hdl.xor_network.xor_rows` (one masked reduction per row)."""
    if not isinstance(config, XorConfig):
        raise TypeError(f"config must be a flexor.XorConfig, not {config!r}")
    masks = [sum(int(bit) << j for j, bit in enumerate(row)) for row in config.matrix]
    return lambda payload: Cat(*[(payload & mask).xor() for mask in masks])


def stream_rule(m, port, check, message=None):
    """The valid/ready rule on the stream interface ``port``, as ``check`` (``Assume`` for a
    stream the environment drives, ``Assert`` for one the block drives): once ``valid`` is high
    and ``ready`` low, ``valid`` stays high and ``payload`` stays put in the next cycle.

    The last-cycle copies are ``sync`` registers whose reset value 0 voids the rule right after
    a reset. The property's source location is the caller's line (where ``message`` is written).
    """
    held, last = Signal(), Signal.like(port.payload)
    m.d.sync += [held.eq(port.valid & ~port.ready), last.eq(port.payload)]
    with m.If(held):
        m.d.comb += check(port.valid & (port.payload == last), message, src_loc_at=1)


def consecutive(m, condition, limit):
    """A counter of the consecutive earlier cycles in which ``condition`` held, saturating at
    ``limit - 1``: ``condition & (counter == limit - 1)`` means ``limit`` cycles in a row."""
    counter = Signal(range(limit))
    with m.If(condition & (counter < limit - 1)):
        m.d.sync += counter.eq(counter + 1)
    with m.Elif(~condition):
        m.d.sync += counter.eq(0)
    return counter


class StreamHarness(wiring.Component):
    """A stream block with the properties of the module docstring around it.

    The harness has the block's own two stream members, so a formal tool drives the input
    stream and the consumer's ``ready`` freely (subject to the assumptions) and sees the rest.

    Parameters
    ----------
    dut : wiring.Component
        The block; ``dut.<input>`` and ``dut.<output>`` are stream interfaces.
    capacity : int
        Most beats the block may hold (accepted, not yet delivered); at least 1: a beat
        accepted in a cycle is delivered in a later one.
    reference : callable or None
        ``reference(input_payload)`` is the expected output payload (an Amaranth value).
    occupancy : callable or None
        ``occupancy(dut)`` is the block's own count of beats held; asserted equal to
        ``outstanding``.
    stall_bound : int
        Consecutive cycles the block may stay blocked while the consumer is ready.
    cover_streak : int
        Length of the run of back-to-back output transfers to cover.
    input, output : str
        Names of the stream members (default ``"i"``, ``"o"``).
    """

    def __init__(self, dut, *, capacity, reference=None, occupancy=None, stall_bound=1,
                 cover_streak=3, input="i", output="o"):
        if not isinstance(dut, wiring.Component):
            raise TypeError(f"dut must be an amaranth wiring.Component, not {dut!r}")
        for name in (input, output):
            if name not in dut.signature.members:
                raise ValueError(f"dut has no stream member {name!r}")
        self._dut = dut
        self.capacity = check_int("capacity", capacity)
        self.stall_bound = check_int("stall_bound", stall_bound)
        self.cover_streak = check_int("cover_streak", cover_streak)
        self.reference = reference
        self.occupancy = occupancy
        self._names = (input, output)
        super().__init__({name: dut.signature.members[name] for name in (input, output)})

    @property
    def dut(self):
        return self._dut

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self._dut
        i_name, o_name = self._names
        connect(m, flipped(getattr(self, i_name)), getattr(self._dut, i_name))
        connect(m, getattr(self._dut, o_name), flipped(getattr(self, o_name)))
        self.properties(m)
        return m

    def properties(self, m):
        """Add the stream properties to ``m``; returns the ``outstanding`` counter."""
        i, o = (getattr(self, name) for name in self._names)
        i_fire, o_fire = i.valid & i.ready, o.valid & o.ready
        stream_rule(m, i, Assume)
        stream_rule(m, o, Assert, "output valid/ready rule")

        outstanding = Signal(range(self.capacity + 2))
        m.d.sync += outstanding.eq(outstanding + i_fire - o_fire)
        m.d.comb += [
            Assert(~o_fire | (outstanding != 0), "output beat that was never accepted"),
            Assert(outstanding <= self.capacity, "more beats held than capacity"),
        ]
        if self.occupancy is not None:
            m.d.comb += Assert(outstanding == self.occupancy(self._dut), "occupancy")
        if self.reference is not None:
            self._scoreboard(m, i, o, i_fire, o_fire, outstanding)

        blocked = o.ready & ((i.valid & ~i.ready) | ((outstanding != 0) & ~o.valid))
        stalled = consecutive(m, blocked, self.stall_bound)
        progress = ~blocked | (stalled < self.stall_bound - 1)
        m.d.comb += Assert(progress, "no deadlock: blocked stall_bound cycles, consumer ready")
        streak = consecutive(m, o_fire, self.cover_streak)
        m.d.comb += Cover(o_fire & (streak == self.cover_streak - 1))
        return outstanding

    def _scoreboard(self, m, i, o, i_fire, o_fire, outstanding):
        """Expected output payloads of the beats held, oldest first, checked at the output."""
        expected = [Signal.like(o.payload, name=f"expected_{k}") for k in range(self.capacity)]
        with m.If(o.valid & (outstanding != 0)):
            m.d.comb += Assert(o.payload == expected[0], "output payload differs from reference")
        incoming = self.reference(i.payload)
        slot = outstanding - o_fire  # where an accepted beat lands once the head has left
        for k, entry in enumerate(expected):
            with m.If(i_fire & (slot == k)):
                m.d.sync += entry.eq(incoming)
            if k + 1 < self.capacity:
                with m.Elif(o_fire):
                    m.d.sync += entry.eq(expected[k + 1])


class DecryptorHarness(wiring.Component):
    """A :class:`hdl.Decryptor` with its stream properties, stated on its ports only.

    The formal tool drives ``desc``, ``data``, ``out.ready`` and reset freely, subject to the
    assumptions; the harness keeps a small model of the traffic, in the same ``sync`` domain
    as the decryptor (a reset clears both):

    * a queue of the descriptors accepted whose output is not complete (``layers`` entries of
      ``(config, chunks)``, oldest first), ``data_at`` (the queue index of the layer the data
      stream is in; ``layers`` when that layer's descriptor is only offered yet), ``words``
      (words of that layer accepted) and ``sent`` (chunks of the oldest layer delivered).

    Assumed (legal traffic): the valid/ready rule on ``desc`` and ``data``; descriptors name a
    configuration of the table and ``1 .. max_chunks`` chunks; a data word is offered only once
    its layer's descriptor is offered or accepted, and a layer of ``c`` chunks with
    configuration ``k`` is exactly ``ceil(c * nin_k / width)`` words, the final one flagged
    ``last``. The data bits are free.

    Asserted, every cycle, in groups (``checks``):

    * ``rule``: ``out`` obeys the valid/ready rule;
    * ``shape``, on every offered beat: ``1 <= count <= lanes``; ``count == lanes`` unless
      ``last``; chunks past ``count`` are zero;
    * ``layers``, on every offered beat: it belongs to a layer held; ``last`` exactly when the
      layer's chunks delivered reach the descriptor's count, and never more chunks than that
      (so ``last`` once per layer, on its final beat, and the layer's ``count`` sum to it);
    * ``order``: a data word is accepted only with or after its layer's descriptor; a layer's
      final beat only with or after its last data word; at most ``max_layers`` layers held;
    * ``error``: ``error`` stays 0 (legal traffic is never flagged);
    * ``payload``: the formal tool picks one chunk of one layer through the free inputs
      ``track`` and ``track_chunk``; the harness records that chunk's bits from the data words
      and asserts that the beat delivering it holds ``M_k x`` (:func:`matrix_function`) in the
      right lane. As the pick is free, this checks every chunk of every layer;
    * ``liveness`` (no deadlock, bounded): in ``stall_bound`` consecutive cycles with
      ``out.ready`` high, a layer held or a descriptor offered, and data offered whenever its
      layer is known, a beat is offered.

    Covers: the final beat of a second layer of ``max_chunks``; ``cover_streak`` back-to-back
    beats; with ``payload``, the payload check firing.

    Parameters
    ----------
    dut : hdl.Decryptor
        The decryptor (any subclass: the properties use its ports only).
    max_chunks : int
        Largest chunk count of a descriptor (assumed); keeps the model's state small.
    max_layers : int
        Queue depth of the model: most layers the decryptor may hold (asserted).
    stall_bound : int or None
        See ``liveness``; default :meth:`default_stall_bound`: a first beat needs the
        descriptor to pass the pipeline (``dut.latency``), any beat needs its words accepted
        one per cycle and then ``dut.word_latency`` cycles. BMC shows it tight (one less
        fails).
    checks : collection of str
        The groups of assertions to add, from :data:`CHECKS` (default all). A subset lets
        k-induction prove the groups that close on their own (see ``docs/reliability.md``).
    cover_streak : int
        Length of the run of back-to-back beats to cover.

    Members
    -------
    desc, data, out, error
        The decryptor's own.
    track : ``In(1)``, track_chunk : ``In(range(max_chunks))``
        Free choice of the checked chunk: the first layer whose first data word is accepted
        while ``track`` is high, chunk ``track_chunk`` of it (if it has that many).
    """

    #: Property groups, see the class docstring.
    CHECKS = ("rule", "shape", "layers", "order", "error", "payload", "liveness")

    def __init__(self, dut, *, max_chunks, max_layers=4, stall_bound=None, checks=CHECKS,
                 cover_streak=3):
        if not isinstance(dut, Decryptor):
            raise TypeError(f"dut must be an hdl.Decryptor, not {dut!r}")
        self._dut = dut
        self.max_chunks = check_int("max_chunks", max_chunks)
        self.max_layers = check_int("max_layers", max_layers)
        self.max_nin = max(config.nin for config in dut.configs)
        if stall_bound is None:
            stall_bound = self.default_stall_bound(dut)
        self.stall_bound = check_int("stall_bound", stall_bound)
        if isinstance(checks, str) or not set(checks) <= set(self.CHECKS):
            raise ValueError(f"checks must be a collection of {self.CHECKS}, not {checks!r}")
        self.checks = frozenset(checks)
        self.cover_streak = check_int("cover_streak", cover_streak)
        members = dut.signature.members
        super().__init__({
            **{name: members[name] for name in ("desc", "data", "out", "error")},
            "track": In(1),  # unused unless "payload" in checks
            "track_chunk": In(range(self.max_chunks)),
        })

    @staticmethod
    def default_stall_bound(dut):
        """One more than the longest first-beat latency of any configuration
        (:meth:`hdl.Decryptor.first_beat_latency`: ``max(latency, word_start + words_per_beat
        - 1 + word_latency)``); see the ``stall_bound`` parameter."""
        return max(dut.first_beat_latency(k) for k in range(len(dut.configs))) + 1

    @property
    def dut(self):
        return self._dut

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self._dut
        connect(m, flipped(self.desc), dut.desc)
        connect(m, flipped(self.data), dut.data)
        connect(m, dut.out, flipped(self.out))
        m.d.comb += self.error.eq(dut.error)
        self.properties(m)
        return m

    def properties(self, m):
        """Add the properties of the class docstring to ``m``."""
        configs, width, lanes = self._dut.configs, self._dut.width, self._dut.lanes
        desc, data, out = self.desc, self.data, self.out
        depth = self.max_layers
        desc_fire, data_fire = desc.valid & desc.ready, data.valid & data.ready
        out_fire = out.valid & out.ready
        count, last = out.payload.count, out.payload.last

        stream_rule(m, desc, Assume)
        stream_rule(m, data, Assume)
        if "rule" in self.checks:
            stream_rule(m, out, Assert, "output valid/ready rule")
        # High bits zero, written out: the solver gets them by unit propagation.
        chunk_bits = bits_for(self.max_chunks)
        legal = ((desc.payload.config < len(configs)) & (desc.payload.chunks[chunk_bits:] == 0) &
                 (desc.payload.chunks[:chunk_bits] >= 1) &
                 (desc.payload.chunks[:chunk_bits] <= self.max_chunks))
        m.d.comb += Assume(~desc.valid | legal)

        # The model: layers held (descriptor accepted, output not complete), oldest first.
        config_shape = range(max(len(configs), 2))
        held_chunks = [Signal(range(self.max_chunks + 1), name=f"held{index}_chunks")
                       for index in range(depth)]
        held_config = [Signal(config_shape, name=f"held{index}_config") for index in range(depth)]
        layers = Signal(range(depth + 1))
        data_at = Signal(range(depth + 1))
        max_words = -(-self.max_chunks * self.max_nin // width)
        words = Signal(range(max_words + 1))
        sent = Signal(range(self.max_chunks + 1))

        # The data stream's layer: a held one, or the one whose descriptor is offered.
        data_chunks, data_config = Signal.like(held_chunks[0]), Signal(config_shape)
        data_known = (data_at < layers) | desc.valid
        with m.If(data_at < layers):
            with m.Switch(data_at):
                for index in range(depth):
                    with m.Case(index):
                        m.d.comb += [data_chunks.eq(held_chunks[index]),
                                     data_config.eq(held_config[index])]
        with m.Else():
            m.d.comb += [data_chunks.eq(desc.payload.chunks), data_config.eq(desc.payload.config)]
        layer_words = Signal(range(max_words + 1))
        with m.Switch(data_config):
            for index, config in enumerate(configs):
                with m.Case(index):
                    m.d.comb += layer_words.eq(
                        (data_chunks * config.nin + width - 1) >> exact_log2(width))
        with m.If(data.valid):
            m.d.comb += Assume(data_known & (data.payload.last == (words + 1 == layer_words)))

        pop = out_fire & last
        data_done = (data_at != 0) | (data_fire & data.payload.last)
        checks = self.checks
        if "order" in checks:
            m.d.comb += [
                Assert(~data_fire | (data_at < layers) | desc_fire, "data word before descriptor"),
                Assert(~pop | data_done, "final beat before the layer's last data word"),
                Assert(~desc_fire | (layers - pop < depth), "more than max_layers layers held"),
            ]
        if "error" in checks:
            m.d.comb += Assert(self.error.as_value() == 0, "error flag raised by legal traffic")
        with m.If(out.valid):
            if "shape" in checks:
                m.d.comb += [
                    Assert((count >= 1) & (count <= lanes), "count outside 1..lanes"),
                    Assert(last | (count == lanes), "count != lanes on a beat that is not final"),
                ]
                for lane in range(1, lanes):
                    chunk = self._dut.out_chunks[lane]
                    m.d.comb += Assert((count > lane) | (chunk == 0), "chunk past count not zero")
            if "layers" in checks:
                m.d.comb += [
                    Assert(layers != 0, "output beat of no layer"),
                    Assert(last == (sent + count == held_chunks[0]), "last not on the final beat"),
                    Assert(sent + count <= held_chunks[0], "more chunks than the layer's count"),
                ]

        with m.If(out_fire):
            m.d.sync += sent.eq(Mux(last, 0, sent + count))
        with m.If(data_fire):
            m.d.sync += words.eq(Mux(data.payload.last, 0, words + 1))
        m.d.sync += [layers.eq(layers + desc_fire - pop),
                     data_at.eq(data_at + (data_fire & data.payload.last) - pop)]
        slot = layers - pop  # where an accepted descriptor lands once the head has left
        for index in range(depth):
            with m.If(desc_fire & (slot == index)):
                m.d.sync += [held_chunks[index].eq(desc.payload.chunks),
                             held_config[index].eq(desc.payload.config)]
            if index + 1 < depth:
                with m.Elif(pop):
                    m.d.sync += [held_chunks[index].eq(held_chunks[index + 1]),
                                 held_config[index].eq(held_config[index + 1])]

        if "payload" in checks:
            self._tracked_chunk(m, data_at, words, data_chunks, data_config, pop, sent)

        # No deadlock, with the consumer ready and the producers offering what is known.
        waiting = (out.ready & (data.valid | ~data_known) & ((layers != 0) | desc.valid) &
                   ~out.valid)
        stalled = consecutive(m, waiting, self.stall_bound)
        progress = ~waiting | (stalled < self.stall_bound - 1)
        if "liveness" in checks:
            m.d.comb += Assert(progress, "no deadlock: no beat in stall_bound cooperative cycles")

        # Layers of max_chunks delivered: the cover shows how deep two whole big layers lie.
        full_layer = pop & (held_chunks[0] == self.max_chunks)
        completed = Signal(range(3))
        with m.If(full_layer & (completed < 2)):
            m.d.sync += completed.eq(completed + 1)
        streak = consecutive(m, out_fire, self.cover_streak)
        m.d.comb += [Cover(full_layer & (completed == 1)),
                     Cover(out_fire & (streak == self.cover_streak - 1))]

    def _tracked_chunk(self, m, data_at, words, data_chunks, data_config, pop, sent):
        """Record the bits of the chunk picked by ``track``/``track_chunk`` from the data
        words; assert the beat delivering it holds ``M_k x`` of them."""
        configs, width, nout = self._dut.configs, self._dut.width, self._dut.nout
        data, out = self.data, self.out
        tracking = Signal()
        tag = Signal(range(self.max_layers + 1))      # queue index of the tracked layer
        chunk = Signal(range(self.max_chunks))
        config = Signal.like(data_config)
        bits = Signal(self.max_nin)

        data_fire = data.valid & data.ready
        start = (~tracking & self.track & data_fire & (words == 0) &
                 (self.track_chunk < data_chunks))
        picked = Mux(start, self.track_chunk, chunk)
        with m.If(data_fire & (start | (tracking & (tag == data_at)))):
            with m.Switch(data_config):
                for index, xor_config in enumerate(configs):
                    with m.Case(index):
                        for b in range(xor_config.nin):
                            position = picked * xor_config.nin + b
                            with m.If((position >> exact_log2(width)) == words):
                                bit = data.payload.data.bit_select(
                                    position[:exact_log2(width)], 1)
                                m.d.sync += bits[b].eq(bit)
        with m.If(start):
            m.d.sync += [tracking.eq(1), tag.eq(data_at - pop), chunk.eq(self.track_chunk),
                         config.eq(data_config)]
        with m.Elif(tracking & pop):
            with m.If(tag == 0):
                m.d.sync += tracking.eq(0)
            with m.Else():
                m.d.sync += tag.eq(tag - 1)

        expected = Signal(nout)
        with m.Switch(config):
            for index, xor_config in enumerate(configs):
                with m.Case(index):
                    m.d.comb += expected.eq(matrix_function(xor_config)(bits[:xor_config.nin]))
        count = out.payload.count
        delivering = (tracking & (tag == 0) & out.valid & (sent <= chunk) &
                      (chunk < sent + count))
        with m.If(delivering):
            with m.Switch(chunk - sent):
                for lane in range(self._dut.lanes):
                    with m.Case(lane):
                        got = self._dut.out_chunks[lane]
                        m.d.comb += Assert(got == expected, "decrypted chunk != M x of its bits")
        m.d.comb += Cover(delivering)
