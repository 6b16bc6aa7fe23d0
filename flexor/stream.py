"""The weight-streaming protocol: layers in, descriptor and data words out, and the golden output.

A decryptor (``hdl.Decryptor``) reads three streams; ``docs/stream-protocol.md`` is the
normative description, this module is its executable form:

* **descriptor** beats, one per layer, :data:`DESCRIPTOR_WIDTH` bits: the chunk count in bits
  ``[0, 32)``, the configuration index in bits ``[32, 40)``;
* **data** words of ``width`` bits: the layer's encrypted bits, chunk ``j`` in stream bits
  ``j*nin .. j*nin+nin-1``, packed LSB-first (stream bit ``b`` is bit ``b % width`` of word
  ``b // width``). Each layer starts on a fresh word; its last word is zero-padded and flagged
  ``last``, so a layer of ``c`` chunks is exactly ``ceil(c * nin / width)`` words;
* **output** beats of ``lanes`` chunks: chunk ``i`` of the beat in bits ``[i*nout, (i+1)*nout)``,
  ``count`` = number of valid chunks (``lanes`` except on a layer's final beat), the chunks past
  ``count`` all zero, ``last`` on the layer's final beat.

:func:`pack_stream` turns a list of layers into all three. Nothing here imports Amaranth.
"""

import json
from typing import NamedTuple

import numpy as np

from .golden import decrypt, pack_bits, unpack_bits
from .parameters import check_int
from .xor_config import XorConfig

__all__ = [
    "WORD_WIDTHS", "MAX_NIN", "MAX_LANES", "MAX_CONFIGS", "CHUNKS_BITS", "CONFIG_BITS",
    "DESCRIPTOR_WIDTH", "MAX_CHUNKS", "Layer", "Beat", "PackedStream", "check_stream_parameters",
    "count_width", "descriptor_word", "decode_descriptor", "as_layer", "layer_words", "layer_beats",
    "pack_stream", "layers_to_json", "layers_from_json",
]

#: Supported memory word widths.
WORD_WIDTHS = (8, 16, 32, 64)
#: Largest ``nin`` the decryptor supports.
MAX_NIN = 64
#: Most chunks one output beat carries (a beat is ``lanes * nout`` bits wide; larger values only
#: make generators and simulators run for hours on a typo).
MAX_LANES = 64
#: Width of the descriptor's chunk-count field (bits ``[0, 32)``).
CHUNKS_BITS = 32
#: Width of the descriptor's configuration-index field (bits ``[32, 40)``).
CONFIG_BITS = 8
#: Bits in one descriptor beat.
DESCRIPTOR_WIDTH = CHUNKS_BITS + CONFIG_BITS
#: Largest number of configurations a descriptor can address.
MAX_CONFIGS = 2 ** CONFIG_BITS
#: Largest chunk count of one layer.
MAX_CHUNKS = 2 ** CHUNKS_BITS - 1


def check_stream_parameters(configs, width, lanes):
    """Validate decryptor parameters; return ``(configs as a tuple, width, lanes)``.

    Shared by the packer and the gateware so both refuse the same things with the same words:
    ``width`` must be in :data:`WORD_WIDTHS`, ``1 <= lanes <= MAX_LANES``, ``configs`` a
    non-empty sequence of at most :data:`MAX_CONFIGS` :class:`XorConfig` with one ``nout`` and
    ``nin <= 64``.
    """
    if isinstance(width, bool) or width not in WORD_WIDTHS:
        raise ValueError(f"width must be one of {', '.join(map(str, WORD_WIDTHS))}, "
                         f"not {width!r}")
    lanes = check_int("lanes", lanes)
    if lanes > MAX_LANES:
        raise ValueError(f"lanes must be at most {MAX_LANES}, not {lanes}")
    if isinstance(configs, XorConfig) or not hasattr(configs, "__iter__"):
        raise TypeError(f"configs must be a sequence of flexor.XorConfig, not {configs!r}")
    configs = tuple(configs)
    if not configs:
        raise ValueError("configs must hold at least one flexor.XorConfig")
    if len(configs) > MAX_CONFIGS:
        raise ValueError(f"configs must hold at most {MAX_CONFIGS} configurations (the "
                         f"descriptor's index field has {CONFIG_BITS} bits), not {len(configs)}")
    for index, config in enumerate(configs):
        if not isinstance(config, XorConfig):
            raise TypeError(f"configs[{index}] must be a flexor.XorConfig, not {config!r}")
        if config.nout != configs[0].nout:
            raise ValueError(f"configs must share one nout: configs[{index}] has nout "
                             f"{config.nout}, configs[0] has {configs[0].nout}")
        if config.nin > MAX_NIN:
            raise ValueError(f"configs[{index}] has nin {config.nin}, more than the supported "
                             f"{MAX_NIN}")
    return configs, int(width), lanes


def count_width(lanes):
    """Bits of the output's ``count`` field (number of valid chunks, 1 .. ``lanes``)."""
    return int(lanes).bit_length()


def descriptor_word(config, chunks):
    """The descriptor beat for a layer: ``chunks | config << 32``.

    Only the field widths are checked, so tests can build malformed descriptors (index out of
    range, zero chunks) on purpose.
    """
    config = check_int("config", config, minimum=0)
    chunks = check_int("chunks", chunks, minimum=0)
    if config >= MAX_CONFIGS:
        raise ValueError(f"config must fit in {CONFIG_BITS} bits, not {config}")
    if chunks > MAX_CHUNKS:
        raise ValueError(f"chunks must fit in {CHUNKS_BITS} bits, not {chunks}")
    return chunks | config << CHUNKS_BITS


def decode_descriptor(word):
    """Inverse of :func:`descriptor_word`: ``(config, chunks)``."""
    return (word >> CHUNKS_BITS) & (MAX_CONFIGS - 1), word & MAX_CHUNKS


class Layer(NamedTuple):
    """One layer of a stream: configuration index and its encrypted chunks.

    ``bits`` is a ``(chunks, nin)`` uint8 array of 0/1; build one with :func:`as_layer`.
    """
    config: int
    bits: np.ndarray

    @property
    def chunks(self):
        return self.bits.shape[0]


def as_layer(configs, layer):
    """Normalize ``(config index, chunks, bits)`` to a :class:`Layer`.

    ``bits`` is either a 0/1 array of shape ``(chunks, nin)`` or the flat packed form of the
    weight container: a 1-D byte array (or ``bytes``) of ``ceil(chunks * nin / 8)`` bytes where
    chunk ``j`` is stream bits ``j*nin .. j*nin+nin-1``, little-endian bit order; bits past
    ``chunks * nin`` are ignored.
    """
    if isinstance(layer, Layer):
        layer = (layer.config, layer.chunks, layer.bits)
    try:
        index, chunks, bits = layer
    except (TypeError, ValueError):
        raise TypeError(f"a layer must be (config index, chunks, bits), not {layer!r}") from None
    index = check_int("layer config index", index, minimum=0)
    if index >= len(configs):
        raise ValueError(f"layer config index {index} is out of range for {len(configs)} "
                         f"configurations")
    chunks = check_int("layer chunks", chunks)
    if chunks > MAX_CHUNKS:
        raise ValueError(f"layer chunks must be <= {MAX_CHUNKS}, not {chunks}")
    nin = configs[index].nin
    if isinstance(bits, (bytes, bytearray)):
        bits = np.frombuffer(bits, dtype=np.uint8)
    bits = np.asarray(bits)
    if bits.ndim == 1:
        if bits.dtype != np.uint8:
            raise TypeError(f"packed layer bits must be uint8 bytes, not dtype {bits.dtype}")
        if bits.size != -(-chunks * nin // 8):
            raise ValueError(f"packed layer of {chunks} chunks of {nin} bits needs "
                             f"{-(-chunks * nin // 8)} bytes, not {bits.size}")
        bits = unpack_bits(bits, chunks * nin).reshape(chunks, nin)
    elif bits.shape != (chunks, nin):
        raise ValueError(f"layer bits must have shape ({chunks}, {nin}), not {bits.shape}")
    elif bits.size and (bits.min() < 0 or bits.max() > 1):
        raise ValueError("layer bits must hold only 0 and 1")
    return Layer(index, bits.astype(np.uint8))


def _to_ints(rows):
    """Each row of a 0/1 array as one Python integer, bit 0 = column 0."""
    return [int.from_bytes(row.tobytes(), "little") for row in pack_bits(rows)]


def layer_words(layer, width):
    """The data words of one layer: its bits LSB-first, the last word zero-padded."""
    flat = layer.bits.reshape(-1)
    padded = np.zeros(-(-flat.size // width) * width, dtype=np.uint8)
    padded[:flat.size] = flat
    return _to_ints(padded.reshape(-1, width))


class Beat(NamedTuple):
    """One expected output beat and where it comes from (for error messages)."""
    data: int
    count: int
    last: bool
    layer: int
    chunk: int   # index in the layer of the beat's chunk 0


def layer_beats(configs, layer, lanes, layer_index=0):
    """The golden output beats of one layer, decrypted by :func:`flexor.decrypt`."""
    config = configs[layer.config]
    chunk_values = _to_ints(decrypt(config, layer.bits))
    beats = []
    for first in range(0, layer.chunks, lanes):
        group = chunk_values[first:first + lanes]
        data = sum(value << (lane * config.nout) for lane, value in enumerate(group))
        beats.append(Beat(data, len(group), first + lanes >= layer.chunks, layer_index, first))
    return beats


class PackedStream(NamedTuple):
    """Everything one run of a decryptor consumes and must produce.

    ``descriptors``: one int per layer; ``words`` and ``lasts``: the data stream; ``beats``: the
    expected output, :class:`Beat` per beat in order.
    """
    descriptors: list
    words: list
    lasts: list
    beats: list


def pack_stream(configs, layers, *, width, lanes):
    """Pack ``layers`` for a decryptor with ``configs``, ``width``-bit words and ``lanes`` lanes.

    Parameters
    ----------
    configs : sequence of :class:`XorConfig`
        The decryptor's configuration table (index = descriptor ``config`` field).
    layers : iterable
        ``(config index, chunks, bits)`` per layer, as :func:`as_layer` accepts, or
        :class:`Layer`.
    width : int
        Memory word width, one of :data:`WORD_WIDTHS`.
    lanes : int
        Chunks per output beat.

    Returns
    -------
    PackedStream
    """
    configs, width, lanes = check_stream_parameters(configs, width, lanes)
    descriptors, words, lasts, beats = [], [], [], []
    for index, layer in enumerate(layers):
        layer = as_layer(configs, layer)
        descriptors.append(descriptor_word(layer.config, layer.chunks))
        layer_data = layer_words(layer, width)
        words += layer_data
        lasts += [False] * (len(layer_data) - 1) + [True]
        beats += layer_beats(configs, layer, lanes, index)
    return PackedStream(descriptors, words, lasts, beats)


def layers_to_json(layers):
    """JSON-ready list of layers: ``{"config", "chunks", "packed"}`` with packed bytes as hex."""
    return [{"config": layer.config, "chunks": layer.chunks,
             "packed": pack_bits(layer.bits.reshape(-1)).tobytes().hex()} for layer in layers]


def layers_from_json(configs, value):
    """Inverse of :func:`layers_to_json`, checked against ``configs``."""
    if not isinstance(value, list):
        raise ValueError(f"layers must be a JSON list, not {json.dumps(value)[:40]}")
    layers = []
    for item in value:
        try:
            packed = bytes.fromhex(item["packed"])
            layers.append(as_layer(configs, (item["config"], item["chunks"], packed)))
        except (KeyError, TypeError) as error:
            raise ValueError(f"bad layer {json.dumps(item)[:60]}: {error}") from None
    return layers
