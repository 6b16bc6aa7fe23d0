"""Shared-subexpression XOR networks: Paar's greedy algorithm, deterministic.

The flat network computes every row ``y[r] = XOR of x[j], M[r, j] = 1`` on its own, with
``weight(r) - 1`` two-input XORs, and shares nothing between rows. Paar's algorithm (C. Paar,
"Optimized arithmetic for Reed-Solomon encoders", ISIT 1997) factors out common pairs::

    signals = the inputs x[0 .. nin-1]; every row is a set of signals
    while some pair of signals (a, b) occurs together in at least two rows:
        take the pair that occurs in the most rows (ties: see below)
        new signal s = a ^ b (one XOR2); in every row holding both, replace a and b by s
    each row is then the XOR of its remaining signals (a chain, ``len - 1`` XOR2s)

Ties are broken by the lowest signal index ``a``, then the lowest ``b`` (inputs first, then new
signals in creation order), so the result is a pure function of the matrix.

Dense random rows have many shared pairs: an 80 x 64 dense matrix goes from about 2,500 XOR2s
to about 1,000. Sparse rows (2 .. 8 taps of many inputs) rarely share a pair, so the network
stays close to flat. Whether a minimized network is worth building is decided on LUT4s, not
XOR2s (:func:`lut4_estimate`): a shared signal used by several rows costs a LUT of its own
where the flat rows would have packed their taps 4 to a LUT. Large matrices are factored in
blocks of :data:`BLOCK_COLUMNS` inputs (each row then XORs its blocks' results), which keeps
the pair-count table small; the block sums are themselves signals of the network.
"""

from dataclasses import dataclass

import numpy as np

from .xor_config import XorConfig

__all__ = ["BLOCK_COLUMNS", "MINIMIZE_MARGIN", "XorProgram", "flat_program", "paar_program", "lut4_estimate",
           "minimized_program"]

#: Inputs factored together; wider matrices are cut into blocks of this many columns.
BLOCK_COLUMNS = 128


@dataclass(frozen=True)
class XorProgram:
    """A network of two-input XORs over the inputs ``x[0 .. nin-1]``.

    Signal ``k < nin`` is ``x[k]``; signal ``nin + g`` is ``gates[g] = (a, b)``, the XOR of
    signals ``a`` and ``b`` (both ``< nin + g``). Row ``r`` is the XOR of the signals
    ``rows[r]`` (none: 0), folded left to right.
    """

    nin: int
    gates: tuple
    rows: tuple

    @property
    def xor2_count(self):
        """Two-input XORs: the gates plus each row's fold."""
        return len(self.gates) + sum(max(len(row) - 1, 0) for row in self.rows)

    def uses(self):
        """How many gates and rows read each signal (a list indexed by signal)."""
        uses = [0] * (self.nin + len(self.gates))
        for a, b in self.gates:
            uses[a] += 1
            uses[b] += 1
        for row in self.rows:
            for k in row:
                uses[k] += 1
        return uses

    def evaluate(self, x):
        """``M x mod 2`` by running the program: ``x`` a 0/1 array ``(..., nin)``."""
        x = np.asarray(x, dtype=np.uint8)
        signals = [x[..., k] for k in range(self.nin)]
        for a, b in self.gates:
            signals.append(signals[a] ^ signals[b])
        zero = np.zeros(x.shape[:-1], dtype=np.uint8)
        outputs = []
        for row in self.rows:
            value = zero
            for k in row:
                value = value ^ signals[k]
            outputs.append(value)
        return np.stack(outputs, axis=-1)

    def matrix(self):
        """The matrix the program computes (each signal as its set of inputs, over GF(2))."""
        masks = [1 << k for k in range(self.nin)]
        for a, b in self.gates:
            masks.append(masks[a] ^ masks[b])
        result = np.zeros((len(self.rows), self.nin), dtype=np.uint8)
        for r, row in enumerate(self.rows):
            mask = 0
            for k in row:
                mask ^= masks[k]
            result[r] = [(mask >> j) & 1 for j in range(self.nin)]
        return result


def _check(config):
    if not isinstance(config, XorConfig):
        raise TypeError(f"config must be a flexor.XorConfig, not {config!r}")
    return config


def flat_program(config):
    """The flat network: each row the chain of its taps in ascending order, no gates."""
    _check(config)
    return XorProgram(config.nin, (), tuple(tuple(int(j) for j in config.taps(r))
                                            for r in range(config.nout)))


def _grown(array, size, axes):
    """``array`` zero-padded to ``size`` along ``axes``."""
    shape = list(array.shape)
    for axis in axes:
        shape[axis] = size
    grown = np.zeros(shape, dtype=array.dtype)
    grown[tuple(slice(0, n) for n in array.shape)] = array
    return grown


def _paar(rows):
    """Paar's loop on ``rows`` (a 0/1 array, rows x signals). Returns ``(gates, row signal
    lists)`` over local indices: the given columns, then ``columns + g`` for gate ``g``."""
    nrows, columns = rows.shape
    capacity = 2 * columns
    held = np.zeros((nrows, capacity), dtype=bool)
    held[:, :columns] = rows.astype(bool)
    counts = np.zeros((capacity, capacity), dtype=np.int32)
    as_int = held[:, :columns].astype(np.int32)
    counts[:columns, :columns] = as_int.T @ as_int
    np.fill_diagonal(counts, 0)
    best = counts.max(axis=1)                     # per signal: its most frequent partner count
    gates = []
    size = columns
    while True:
        a = int(np.argmax(best[:size]))
        if best[a] < 2:
            break
        b = int(np.argmax(counts[a, :size]))
        a, b = min(a, b), max(a, b)
        if size == capacity:
            capacity *= 2
            held = _grown(held, capacity, (1,))
            counts = _grown(counts, capacity, (0, 1))
            best = _grown(best, capacity, (0,))
        both = np.flatnonzero(held[:, a] & held[:, b])
        s = size
        size += 1
        gates.append((a, b))
        partners = held[both, :size].sum(axis=0, dtype=np.int32)   # co-occurrence counts
        held[both, a] = held[both, b] = False
        held[both, s] = True
        partners[[a, b]] = 0
        counts[a, :size] -= partners
        counts[b, :size] -= partners
        counts[:size, a] -= partners
        counts[:size, b] -= partners
        counts[a, b] = counts[b, a] = 0
        counts[s, :size] = partners
        counts[:size, s] = partners
        counts[s, s] = 0
        # Signals whose best partner count may have changed: a, b, s, and every signal
        # sharing a row with them (their counts with a and b went down, with s up).
        touched = np.flatnonzero(partners)
        for k in (a, b, s):
            best[k] = counts[k, :size].max()
        if touched.size:
            best[touched] = counts[touched, :size].max(axis=1)
    row_signals = [tuple(int(k) for k in np.flatnonzero(held[r, :size])) for r in range(nrows)]
    return gates, row_signals


def paar_program(config):
    """Paar's network for ``config`` (see the module docstring), in column blocks of
    :data:`BLOCK_COLUMNS` inputs."""
    _check(config)
    matrix = np.asarray(config.matrix)
    nin = config.nin
    gates = []
    rows = [[] for _ in range(config.nout)]
    for start in range(0, nin, BLOCK_COLUMNS):
        block = matrix[:, start:start + BLOCK_COLUMNS]
        width = block.shape[1]
        local_gates, local_rows = _paar(block)
        base = nin + len(gates)

        def signal(k, start=start, width=width, base=base):
            return start + k if k < width else base + (k - width)

        gates.extend((signal(a), signal(b)) for a, b in local_gates)
        for r, signals in enumerate(local_rows):
            rows[r].extend(signal(k) for k in signals)
    return XorProgram(nin, tuple(gates), tuple(tuple(row) for row in rows))


def lut4_estimate(program):
    """LUT4s a mapper needs for ``program``, counting a LUT output for every gate used more
    than once (it must exist as a net) and for every row, each covering ``1 + 3 k`` leaves.

    A model, not a synthesis result: ``benchmarks/xor_area.py`` measures the real counts.
    """
    uses = program.uses()
    nin = program.nin
    # Leaves of each gate down to inputs and shared gates, in creation order (no recursion).
    leaves = [1] * nin
    for a, b in program.gates:
        leaves.append(sum(1 if (k < nin or uses[k] > 1) else leaves[k] for k in (a, b)))

    def luts(n):
        return max(0, -(-(n - 1) // 3))

    total = sum(luts(leaves[nin + g]) for g in range(len(program.gates)) if uses[nin + g] > 1)
    for row in program.rows:
        total += luts(sum(1 if (k < nin or uses[k] > 1) else leaves[k] for k in row))
    return total


#: Paar's network is built only when :func:`lut4_estimate` puts it at or below this share of
#: the flat one's: below that margin ECP5's synthesis, which maps wide flat rows onto its
#: wide-function muxes, measured more LUTs for it (dense 16 -> 20: 64 against 57).
MINIMIZE_MARGIN = 0.8


def minimized_program(config):
    """``(program, minimized)``: Paar's network when :func:`lut4_estimate` puts it at most
    :data:`MINIMIZE_MARGIN` of the flat one's LUT4s, else the flat network."""
    flat = flat_program(config)
    factored = paar_program(config)
    if lut4_estimate(factored) <= MINIMIZE_MARGIN * lut4_estimate(flat):
        return factored, True
    return flat, False
