"""The XOR-gate network as gateware: combinational, and as a one-stage registered stream."""

from functools import reduce
from operator import xor

from amaranth.hdl import Const, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from flexor import XorConfig

from .xor_shared import network_program, program_rows

__all__ = ["XorNetwork", "XorStage", "xor_rows", "network_rows"]


def _check_config(config):
    if not isinstance(config, XorConfig):
        raise TypeError(f"config must be a flexor.XorConfig, not {config!r}")
    return config


def xor_rows(config, x):
    """Expressions for ``M @ x mod 2``, one per decrypted bit (a row of zeros gives 0)."""
    return [_xor_tree([x[j] for j in config.taps(r)]) for r in range(config.nout)]


#: Taps XORed as one chain in tap order: the shape Yosys proves against the reference fastest
#: (its reduction is such a chain), and shallow enough for Amaranth's recursive walks.
_CHAIN_TAPS = 128


def _xor_tree(bits):
    """The XOR of ``bits``: chains of up to :data:`_CHAIN_TAPS` taps, joined as a balanced tree.

    One chain of a few hundred taps exceeds Python's recursion limit inside Amaranth, which
    walks expressions recursively; the tree keeps the depth at ``log2`` of the chain count.
    """
    # The first chain starts from 0, as a row of no taps must.
    level = [reduce(xor, bits[:_CHAIN_TAPS], Const(0, 1))]
    level += [reduce(xor, bits[i:i + _CHAIN_TAPS]) for i in range(_CHAIN_TAPS, len(bits),
                                                                    _CHAIN_TAPS)]
    while len(level) > 1:
        level = [reduce(xor, level[i:i + 2]) for i in range(0, len(level), 2)]
    return level[0]


def network_rows(m, config, program, x, name="xor"):
    """The rows of ``config`` built from ``program``: today's flat rows (:func:`xor_rows`) when
    the program shares nothing, else :func:`hdl.xor_shared.program_rows`."""
    if program is None or not program.gates:
        return xor_rows(config, x)
    return program_rows(m, program, x, name)


class XorNetwork(wiring.Component):
    """Combinational XOR-gate network: ``y[r]`` is the XOR of the ``x[j]`` with ``M[r, j] = 1``.

    Parameters
    ----------
    config : :class:`flexor.XorConfig`
        The matrix to build.
    minimize : bool
        Share subexpressions between rows (:mod:`hdl.xor_shared`) where that saves LUTs.

    Attributes
    ----------
    config, minimize
        The parameters.
    program : :class:`flexor.xor_minimize.XorProgram` or None
        With ``minimize``, the network built (``program.xor2_count`` its XOR2s).

    Members
    -------
    x : ``In(config.nin)``
        Encrypted chunk, bit 0 = ``x[0]``.
    y : ``Out(config.nout)``
        Decrypted chunk.
    """

    def __init__(self, config, *, minimize=False):
        self._config = _check_config(config)
        self._program = network_program(config, minimize) if minimize else None
        self._minimize = minimize
        super().__init__({"x": In(config.nin), "y": Out(config.nout)})

    config = property(lambda self: self._config)
    minimize = property(lambda self: self._minimize)
    program = property(lambda self: self._program)

    def elaborate(self, platform):
        m = Module()
        rows = network_rows(m, self._config, self._program, self.x)
        m.d.comb += [bit.eq(expr) for bit, expr in zip(self.y, rows)]
        return m


class XorStage(wiring.Component):
    """XOR-gate network behind one register on a valid/ready stream, at full throughput.

    The output register loads whenever it is empty or being emptied this cycle
    (``i.ready = ~o.valid | o.ready``), so a beat can enter every cycle while the consumer is
    ready, and nothing is lost or duplicated under backpressure.

    Parameters
    ----------
    config : :class:`flexor.XorConfig`
        The matrix to build.
    minimize : bool
        As for :class:`XorNetwork`.

    Members
    -------
    i : ``In(stream.Signature(config.nin))``
        Encrypted chunks.
    o : ``Out(stream.Signature(config.nout))``
        Decrypted chunks, one cycle later.
    """

    def __init__(self, config, *, minimize=False):
        self._config = _check_config(config)
        self._program = network_program(config, minimize) if minimize else None
        self._minimize = minimize
        super().__init__({
            "i": In(stream.Signature(config.nin)),
            "o": Out(stream.Signature(config.nout)),
        })

    config = property(lambda self: self._config)
    minimize = property(lambda self: self._minimize)
    program = property(lambda self: self._program)

    def elaborate(self, platform):
        m = Module()
        m.submodules.xor = xor = XorNetwork(self._config, minimize=self._minimize)
        m.d.comb += [
            xor.x.eq(self.i.payload),
            self.i.ready.eq(~self.o.valid | self.o.ready),
        ]
        with m.If(self.i.ready):
            m.d.sync += [
                self.o.valid.eq(self.i.valid),
                self.o.payload.eq(xor.y),
            ]
        return m
