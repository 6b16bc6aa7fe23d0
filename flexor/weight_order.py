"""Weight orders: where each weight of a layer sits in its stream of decrypted chunks.

A layer's weights form a matrix ``[out, m]`` (``m = in`` for ``linear``, ``in * kh * kw`` for
``conv2d``, PyTorch's row-major order within a row). The container's ``flatten`` field names the
order in which those weights are cut into chunks of ``nout`` decrypted bits; training, the NumPy
models and the hardware all go through :func:`weight_positions`, the one implementation.

``row-major``
    Weight ``k`` of the flattened tensor is decrypted bit ``k``: chunk ``j`` holds weights
    ``j*nout .. j*nout + nout - 1``, so chunks straddle rows. ``ceil(out * m / nout)`` chunks.
``tiled`` (with a ``tile`` of ``T >= 1`` rows)
    Hardware-friendly: every row is cut into ``R = ceil(m / nout)`` column chunks, and rows are
    grouped in ``G = ceil(out / T)`` tiles of ``T``. Chunk ``j = (g*R + c)*T + r`` holds weights
    ``w[g*T + r, c*nout .. c*nout + nout - 1]``, its decrypted bit ``i`` being column
    ``c*nout + i``. So ``T`` consecutive chunks are the same columns of ``T`` rows: they share one
    chunk of activations, and an engine with ``L`` lanes (``T % L == 0``) never sees a beat
    straddle a row. Bits at columns ``>= m`` or rows ``>= out`` are unused (stored, decrypted,
    ignored). ``G * R * T`` chunks. ``T = 1`` starts every row on a new chunk.
"""

import numpy as np

__all__ = ["ORDERS", "check_order", "chunk_count", "weight_positions", "weights_from_chunks"]

ORDERS = ("row-major", "tiled")
#: Largest tile; bounds what an untrusted header can make the loader allocate per layer.
MAX_TILE = 1024


def check_order(order, tile):
    """Raise ``ValueError`` naming the bad value unless ``(order, tile)`` is a valid order
    (``tile`` is ``None`` for ``row-major``, an integer ``1 .. MAX_TILE`` for ``tiled``)."""
    if order not in ORDERS:
        raise ValueError(f"flatten must be one of {', '.join(ORDERS)}, not {order!r}")
    if order == "row-major":
        if tile is not None:
            raise ValueError(f"tile applies only to the tiled order, not {order!r}")
        return
    if type(tile) is not int or not 1 <= tile <= MAX_TILE:
        raise ValueError(f"tile must be an integer in 1..{MAX_TILE}, not {tile!r}")


def chunk_count(order, out, m, nout, tile=None):
    """Chunks of ``nout`` bits that an ``[out, m]`` weight matrix takes in ``order``."""
    check_order(order, tile)
    if order == "row-major":
        return -(-out * m // nout)
    return -(-out // tile) * -(-m // nout) * tile


def weight_positions(order, out, m, nout, tile=None):
    """Flat decrypted-bit index (``chunk * nout + bit``) of every weight: int64 ``(out, m)``."""
    check_order(order, tile)
    rows = np.arange(out, dtype=np.int64)[:, None]
    cols = np.arange(m, dtype=np.int64)[None, :]
    if order == "row-major":
        return rows * m + cols
    column_chunks = -(-m // nout)
    tile_index, row_in_tile = np.divmod(rows, tile)
    column_chunk, bit = np.divmod(cols, nout)
    chunk = (tile_index * column_chunks + column_chunk) * tile + row_in_tile
    return chunk * nout + bit


def weights_from_chunks(chunks, order, out, m, tile=None):
    """The ``[out, m]`` weights held by decrypted ``chunks`` (``(chunks, nout)``, any dtype)."""
    chunks = np.asarray(chunks)
    nout = chunks.shape[-1]
    expected = chunk_count(order, out, m, nout, tile)
    if chunks.shape[:-1] != (expected,):
        raise ValueError(f"{order} weights [{out}, {m}] need {expected} chunks of {nout}, not "
                         f"{chunks.shape[:-1]}")
    return chunks.reshape(-1)[weight_positions(order, out, m, nout, tile)]
