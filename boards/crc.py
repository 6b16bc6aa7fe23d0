"""CRC-32 of decrypted chunks, in Python and as gateware that folds up to ``lanes`` chunks a cycle.

The checksum is the IEEE CRC-32 of ``zlib.crc32`` (reflected polynomial ``0xEDB88320``, initial
register ``0xFFFFFFFF``, final XOR ``0xFFFFFFFF``) over the decrypted chunks in stream order,
each chunk packed LSB-first into ``ceil(nout / 8)`` bytes with zero padding on top, i.e.
``zlib.crc32(flexor.pack_bits(chunks).tobytes())``. Bytes enter the CRC LSB first, so this is
the CRC of the bit sequence ``chunk0[0], chunk0[1], ..., 0-padding, chunk1[0], ...``.

The gateware uses that the register update is linear over GF(2): after ``n`` more bits the
register is ``A_n @ register XOR B_n @ bits``. :func:`update_masks` derives those matrices by
running the bit-serial update on unit vectors, so each register bit becomes one XOR tree.
"""

import zlib
from functools import lru_cache

import numpy as np
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from flexor import pack_bits

__all__ = ["POLYNOMIAL", "chunk_crc32", "update_masks", "ChunkCrc32"]

#: The reflected IEEE 802.3 polynomial used by ``zlib.crc32``.
POLYNOMIAL = 0xEDB88320
_INIT = _FINAL_XOR = 0xFFFFFFFF


def chunk_crc32(chunks):
    """The reference checksum of a ``(count, nout)`` array of 0/1 decrypted chunks."""
    chunks = np.asarray(chunks, dtype=np.uint8)
    return zlib.crc32(pack_bits(chunks).tobytes())


def _shift_in(register, bits, count):
    """Bit-serial CRC register update with ``count`` bits of ``bits``, LSB first."""
    for k in range(count):
        feedback = (register ^ (bits >> k)) & 1
        register = (register >> 1) ^ (POLYNOMIAL if feedback else 0)
    return register


@lru_cache(maxsize=None)
def update_masks(nbits):
    """Per register bit ``r``: ``(state mask, data mask)`` of the inputs XORed into it.

    After shifting in ``nbits`` data bits, register bit ``r`` is the XOR of the old register
    bits set in the state mask and the data bits set in the data mask.
    """
    state_columns = [_shift_in(1 << i, 0, nbits) for i in range(32)]
    data_columns = [_shift_in(0, 1 << j, nbits) for j in range(nbits)]
    return tuple(
        (sum(1 << i for i, column in enumerate(state_columns) if column >> r & 1),
         sum(1 << j for j, column in enumerate(data_columns) if column >> r & 1))
        for r in range(32))


def _xor_of(mask, bits):
    """The XOR of the entries of ``bits`` selected by ``mask``; ``None`` entries are zeros."""
    selected = [bit for i, bit in enumerate(bits) if mask >> i & 1 and bit is not None]
    return Cat(*selected).xor() if selected else 0


class ChunkCrc32(wiring.Component):
    """Folds ``count`` chunks a cycle into the CRC-32 defined in the module docstring.

    Parameters
    ----------
    nout : int
        Bits per chunk; each chunk is folded as ``ceil(nout / 8)`` bytes, zero-padded.
    lanes : int
        Chunks per beat.

    Attributes
    ----------
    nout, lanes : int

    Members
    -------
    data : ``In(nout * lanes)``
        Chunk ``i`` of the beat in bits ``[i*nout, (i+1)*nout)``.
    count : ``In(range(lanes + 1))``
        How many chunks of ``data``, from chunk 0, to fold this cycle (0 folds none).
    value : ``Out(32)``
        CRC-32 of every chunk folded since reset (``0`` before the first one, like ``zlib``).
    """

    def __init__(self, *, nout, lanes=1):
        for name, value in (("nout", nout), ("lanes", lanes)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self._nout, self._lanes = nout, lanes
        super().__init__({"data": In(nout * lanes), "count": In(range(lanes + 1)),
                          "value": Out(32)})

    nout = property(lambda self: self._nout)
    lanes = property(lambda self: self._lanes)

    def elaborate(self, platform):
        m = Module()
        register = Signal(32, init=_INIT)
        padded = 8 * -(-self._nout // 8)
        # The bits folded per beat, None for the zero padding of each chunk (it adds no gates).
        bits = [self.data[i * self._nout + k] if k < self._nout else None
                for i in range(self._lanes) for k in range(padded)]
        with m.Switch(self.count):
            for count in range(1, self._lanes + 1):
                masks = update_masks(count * padded)
                with m.Case(count):
                    m.d.sync += register.eq(Cat(*(
                        _xor_of(state, list(register)) ^ _xor_of(data, bits)
                        for state, data in masks)))
        m.d.comb += self.value.eq(register ^ _FINAL_XOR)
        return m
