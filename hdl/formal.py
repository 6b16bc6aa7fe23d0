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

Applying it to another block (e.g. the decryptor): subclass :class:`StreamHarness`, pass the
stream member names as ``input``/``output``, and override :meth:`StreamHarness.properties` to add
block-specific checks (per-layer beat counts, ``last`` exactly once per layer) on top of
``super().properties(m)``; then check it with :func:`sim.formal.check_formal`.
"""

from amaranth.hdl import Assert, Assume, Cat, Cover, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import connect, flipped

from flexor import XorConfig

__all__ = ["StreamHarness", "matrix_function"]


def matrix_function(config):
    """``payload -> M payload mod 2`` built straight from the matrix, independent of
    :func:`hdl.xor_network.xor_rows` (one masked reduction per row)."""
    if not isinstance(config, XorConfig):
        raise TypeError(f"config must be a flexor.XorConfig, not {config!r}")
    masks = [sum(int(bit) << j for j, bit in enumerate(row)) for row in config.matrix]
    return lambda payload: Cat(*[(payload & mask).xor() for mask in masks])


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return value


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
        self.capacity = _check_positive("capacity", capacity)
        self.stall_bound = _check_positive("stall_bound", stall_bound)
        self.cover_streak = _check_positive("cover_streak", cover_streak)
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

        # Last-cycle copies; their reset value 0 voids the rules right after a reset.
        i_held, o_held = Signal(), Signal()
        i_last, o_last = Signal.like(i.payload), Signal.like(o.payload)
        m.d.sync += [i_held.eq(i.valid & ~i.ready), i_last.eq(i.payload),
                     o_held.eq(o.valid & ~o.ready), o_last.eq(o.payload)]
        with m.If(i_held):
            m.d.comb += Assume(i.valid & (i.payload == i_last))
        with m.If(o_held):
            m.d.comb += Assert(o.valid & (o.payload == o_last), "output valid/ready rule")

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

        # Consecutive earlier cycles in which the block was blocked with the consumer ready.
        stalled = Signal(range(self.stall_bound))
        blocked = o.ready & ((i.valid & ~i.ready) | ((outstanding != 0) & ~o.valid))
        with m.If(blocked & (stalled < self.stall_bound - 1)):
            m.d.sync += stalled.eq(stalled + 1)
        with m.Elif(~blocked):
            m.d.sync += stalled.eq(0)
        progress = ~blocked | (stalled < self.stall_bound - 1)
        m.d.comb += Assert(progress, "no deadlock: blocked stall_bound cycles, consumer ready")

        streak = Signal(range(self.cover_streak))
        with m.If(o_fire & (streak < self.cover_streak - 1)):
            m.d.sync += streak.eq(streak + 1)
        with m.Elif(~o_fire):
            m.d.sync += streak.eq(0)
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
