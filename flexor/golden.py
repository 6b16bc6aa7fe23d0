"""Golden model of the XOR-gate network: ``y = M @ x mod 2`` over any number of chunks.

Bits are 0/1 ``uint8`` arrays whose last axis is the chunk (index 0 = least significant bit).
Packed arrays hold the same bits eight to a byte, little-endian bit order
(``numpy.packbits(..., bitorder="little")``).

:func:`decrypt_reference` states the definition row by row and is what tests trust;
:func:`decrypt` is the fast path. It uses linearity over GF(2): ``M x`` is the XOR of
``M x_b`` over the bytes ``x_b`` of ``x``, so a table of 256 outputs per input byte replaces
all the gates (``ceil(nin/8)`` lookups and XORs per chunk, whatever ``nout`` and ``ntap``).
"""

import numpy as np

from .xor_config import XorConfig

__all__ = [
    "decrypt", "decrypt_reference", "decrypt_packed", "encrypt", "as_config",
    "pack_bits", "unpack_bits", "EXHAUSTIVE_NIN_LIMIT",
]

#: Largest ``nin`` for which :func:`encrypt` searches all ``2**nin`` inputs for a nearest codeword.
EXHAUSTIVE_NIN_LIMIT = 20


def as_config(matrix_or_config):
    """Accept an :class:`XorConfig` or a bare 0/1 matrix."""
    if isinstance(matrix_or_config, XorConfig):
        return matrix_or_config
    return XorConfig.from_matrix(matrix_or_config)


def _check_bits(bits, width, name):
    array = np.asarray(bits)
    if array.ndim == 0 or array.shape[-1] != width:
        raise ValueError(f"{name} must have shape (..., {width}), not {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.integer) and array.dtype != np.bool_:
            raise TypeError(f"{name} must hold integers 0/1, not dtype {array.dtype}")
        if array.size and (array.min() < 0 or array.max() > 1):
            raise ValueError(f"{name} must hold only 0 and 1")
        array = array.astype(np.uint8)
    elif array.size and array.max() > 1:
        raise ValueError(f"{name} must hold only 0 and 1")
    return array


def pack_bits(bits):
    """Pack a 0/1 array along its last axis, little-endian bit order (last byte zero-padded)."""
    bits = np.asarray(bits, dtype=np.uint8)
    width = bits.shape[-1]
    if width % 8:
        # Pad rows to whole bytes so that one flat packbits call does all rows: much faster
        # than packbits along an axis.
        padded = np.zeros(bits.shape[:-1] + (width + 8 - width % 8,), dtype=np.uint8)
        padded[..., :width] = bits
        bits = padded
    flat = np.packbits(np.ascontiguousarray(bits).reshape(-1), bitorder="little")
    return flat.reshape(bits.shape[:-1] + (bits.shape[-1] // 8,))


def unpack_bits(packed, width):
    """Inverse of :func:`pack_bits` for rows of ``width`` bits."""
    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    flat = np.unpackbits(packed.reshape(-1), bitorder="little")
    return flat.reshape(packed.shape[:-1] + (8 * packed.shape[-1],))[..., :width]


def decrypt_reference(matrix_or_config, bits):
    """Obviously-correct decrypt: decrypted bit ``r`` is the XOR of the bits row ``r`` selects."""
    config = as_config(matrix_or_config)
    x = _check_bits(bits, config.nin, "bits")
    y = np.zeros(x.shape[:-1] + (config.nout,), dtype=np.uint8)
    for r in range(config.nout):
        for j in config.taps(r):
            y[..., r] ^= x[..., j]
    return y


def _byte_tables(config):
    """``tables[b, v]`` = packed ``M @ x`` for the input whose byte ``b`` is ``v``, others zero.

    Returned as one unsigned integer per entry (little-endian) when the packed output fits in
    1, 2, 4 or 8 bytes, because gathering whole integers is several times faster than gathering
    rows of bytes; otherwise as ``(nbytes, 256, output bytes)`` uint8.
    """
    nbytes = -(-config.nin // 8)
    out_bytes = -(-config.nout // 8)
    word = next((w for w in (1, 2, 4, 8) if w >= out_bytes), out_bytes)
    values = unpack_bits(np.arange(256, dtype=np.uint8)[:, None], 8)  # (256, 8)
    tables = np.zeros((nbytes, 256, word), dtype=np.uint8)
    for b in range(nbytes):
        columns = config.matrix[:, 8 * b:8 * b + 8].astype(np.int64)  # (nout, <=8)
        outputs = (values[:, :columns.shape[1]] @ columns.T) & 1      # (256, nout)
        tables[b, :, :out_bytes] = pack_bits(outputs)
    return tables.view(f"<u{word}")[..., 0] if word <= 8 else tables


_TABLE_CACHE = {}


def _cached_byte_tables(config):
    key = (config.matrix.shape, config.matrix.tobytes())
    if key not in _TABLE_CACHE:
        _TABLE_CACHE[key] = _byte_tables(config)
    return _TABLE_CACHE[key]


def decrypt_packed(matrix_or_config, packed):
    """Fast decrypt of packed chunks: ``(..., ceil(nin/8))`` bytes in, ``(..., ceil(nout/8))`` out.

    Bits of the input past ``nin`` are ignored; bits of the output past ``nout`` are zero.
    """
    config = as_config(matrix_or_config)
    packed = np.asarray(packed, dtype=np.uint8)
    nbytes = -(-config.nin // 8)
    if packed.ndim == 0 or packed.shape[-1] != nbytes:
        raise ValueError(f"packed must have shape (..., {nbytes}), not {packed.shape}")
    tables = _cached_byte_tables(config)
    if config.nin % 8:
        packed = packed.copy()
        packed[..., -1] &= (1 << (config.nin % 8)) - 1
    result = np.take(tables[0], packed[..., 0], axis=0)
    for b in range(1, nbytes):
        result ^= np.take(tables[b], packed[..., b], axis=0)
    if tables.ndim == 2:  # one integer per chunk: back to little-endian bytes
        result = result[..., None].view(np.uint8)
    return result[..., :-(-config.nout // 8)]


def decrypt(matrix_or_config, bits):
    """Decrypt chunks: ``bits`` of shape ``(..., nin)`` (0/1) gives ``(..., nout)`` uint8 bits.

    Bit-exact with :func:`decrypt_reference`, through byte lookup tables.
    """
    config = as_config(matrix_or_config)
    x = _check_bits(bits, config.nin, "bits")
    return unpack_bits(decrypt_packed(config, pack_bits(x)), config.nout)


def _row_reduction(matrix):
    """Reduce ``matrix`` over GF(2): returns ``(ops, pivots)`` with ``ops @ matrix = R`` (mod 2)
    in reduced row echelon form, ``pivots[i]`` the column of row ``i``'s leading one."""
    nout, nin = matrix.shape
    work = np.concatenate([matrix, np.eye(nout, dtype=np.uint8)], axis=1)
    pivots = []
    row = 0
    for column in range(nin):
        hits = np.flatnonzero(work[row:, column]) + row if row < nout else []
        if len(hits) == 0:
            continue
        work[[row, hits[0]]] = work[[hits[0], row]]
        others = np.flatnonzero(work[:, column])
        others = others[others != row]
        work[others] ^= work[row]
        pivots.append(column)
        row += 1
    return work[:, nin:], pivots


def encrypt(matrix_or_config, target, *, return_distance=False):
    """Find encrypted chunks that decrypt to (or nearest to) ``target`` of shape ``(..., nout)``.

    When a target is in the column space of ``M`` the result decrypts to it exactly (free
    variables set to 0). Otherwise the result is a nearest codeword by Hamming distance, found
    by exhaustive search over all ``2**nin`` inputs (ties go to the smallest input read as an
    integer); that needs ``nin <= 20``, beyond it a ``ValueError`` is raised.

    Returns the ``(..., nin)`` uint8 bits, and with ``return_distance=True`` also the Hamming
    distance of each decrypted result from its target.
    """
    config = as_config(matrix_or_config)
    t = _check_bits(target, config.nout, "target")
    flat = t.reshape(-1, config.nout)
    ops, pivots = _row_reduction(config.matrix)
    rank = len(pivots)
    reduced = (flat.astype(np.int64) @ ops.T.astype(np.int64)) & 1   # (n, nout)
    x = np.zeros((flat.shape[0], config.nin), dtype=np.uint8)
    x[:, pivots] = reduced[:, :rank]
    inconsistent = np.flatnonzero(reduced[:, rank:].any(axis=1))
    if len(inconsistent):
        if config.nin > EXHAUSTIVE_NIN_LIMIT:
            raise ValueError(f"{len(inconsistent)} targets are not reachable and nin "
                             f"{config.nin} > {EXHAUSTIVE_NIN_LIMIT} is too large for an "
                             f"exhaustive nearest-codeword search")
        x[inconsistent] = _nearest_inputs(config, flat[inconsistent])
    x = x.reshape(t.shape[:-1] + (config.nin,))
    if not return_distance:
        return x
    distance = (decrypt(config, x) != t).sum(axis=-1)
    return x, distance


_POPCOUNT = np.array([bin(v).count("1") for v in range(256)], dtype=np.uint8)


def _nearest_inputs(config, targets):
    """Exhaustive nearest-codeword search for each row of ``targets``."""
    nbytes = -(-config.nin // 8)
    every_input = np.arange(2 ** config.nin, dtype=np.uint64)
    every_packed = np.stack([(every_input >> np.uint64(8 * b)).astype(np.uint8)
                             for b in range(nbytes)], axis=-1)
    codewords = decrypt_packed(config, every_packed)                  # (2**nin, nbytes_out)
    unique, inverse = np.unique(pack_bits(targets), axis=0, return_inverse=True)
    best = np.empty(len(unique), dtype=np.int64)
    for i, packed_target in enumerate(unique):
        distance = _POPCOUNT[codewords ^ packed_target].sum(axis=1, dtype=np.int64)
        best[i] = int(np.argmin(distance))
    return unpack_bits(every_packed[best[inverse.reshape(-1)]], config.nin)
