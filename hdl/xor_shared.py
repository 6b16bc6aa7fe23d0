"""XOR networks with shared subexpressions (:mod:`flexor.xor_minimize`) as gateware."""

from amaranth.hdl import Const, Signal

from flexor import XorConfig
from flexor.xor_minimize import flat_program, minimized_program

__all__ = ["network_program", "program_rows"]


def network_program(config, minimize):
    """The :class:`~flexor.xor_minimize.XorProgram` a network of ``config`` is built from:
    the flat one, or with ``minimize`` Paar's when it saves LUTs (else the flat one)."""
    if not isinstance(config, XorConfig):
        raise TypeError(f"config must be a flexor.XorConfig, not {config!r}")
    if not isinstance(minimize, bool):
        raise TypeError(f"minimize must be True or False, not {minimize!r}")
    return minimized_program(config)[0] if minimize else flat_program(config)


def _fold(terms):
    """XOR of ``terms`` as a balanced tree (shallow expressions, no deep recursion)."""
    while len(terms) > 1:
        terms = [terms[k] ^ terms[k + 1] if k + 1 < len(terms) else terms[k]
                 for k in range(0, len(terms), 2)]
    return terms[0] if terms else Const(0, 1)


def program_rows(m, program, x, name="xor"):
    """Expressions for the rows of ``program`` on input bits ``x``. A gate used more than once
    becomes a ``comb`` signal of ``m`` (``<name>_g<index>``), so it is built once."""
    nin = program.nin
    uses = program.uses()
    signals = [x[k] for k in range(nin)]
    for index, (a, b) in enumerate(program.gates):
        value = signals[a] ^ signals[b]
        if uses[nin + index] > 1:
            shared = Signal(name=f"{name}_g{index}")
            m.d.comb += shared.eq(value)
            value = shared
        signals.append(value)
    return [_fold([signals[k] for k in row]) for row in program.rows]
