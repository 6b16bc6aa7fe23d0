"""What goes into the board's on-chip memory, and what the board must compute from it.

A :class:`WeightImage` is built in Python at build time from the encrypted layers: the
descriptor and data words of the decryptor's stream protocol (:func:`flexor.stream.pack_stream`),
where each layer's words end, and the expected result, taken from the golden model
(:func:`flexor.decrypt`) and ``zlib`` (:func:`boards.crc.chunk_crc32`), never from the gateware.
"""

from typing import NamedTuple

import numpy as np

from flexor import decrypt
from flexor.errors import InputError
from flexor.stream import WORD_WIDTHS, as_layer, check_stream_parameters, pack_stream

from .crc import chunk_crc32
from .platforms import ram_blocks

__all__ = ["WeightImage", "MemoryTooSmall", "word_width", "container_layers"]


class MemoryTooSmall(InputError):
    """The weights do not fit in the board's block RAM; the message gives both sizes."""


def word_width(configs, lanes):
    """Memory word width: the narrowest of 32 or 64 bits that feeds ``lanes`` chunks a cycle.

    32 bits is the floor because narrower words save no block RAM on either family; 64 is the
    widest the decryptor accepts, so beyond it the memory, not the decryptor, sets the rate.
    """
    demand = lanes * max(config.nin for config in configs)
    return next((width for width in WORD_WIDTHS if width >= max(demand, 32)), WORD_WIDTHS[-1])


def container_layers(container):
    """``(configs, layers)`` of every encrypted bit-plane of a :class:`flexor.container.Container`.

    Planes are taken layer by layer, plane by plane; full-precision layers have none.
    """
    layers = [(plane.config, plane.chunks, plane.packed)
              for layer in container.layers for plane in layer.planes]
    if not layers:
        raise InputError("the container has no encrypted (xor) layers to decrypt")
    return list(container.configs), layers


class WeightImage(NamedTuple):
    """The weight memory contents and the golden result of decrypting them.

    Attributes
    ----------
    configs : tuple of XorConfig
    width : int
        Data word width.
    descriptors : list of int
        One descriptor beat per layer.
    words : list of int
        The data words of every layer, in order.
    layer_ends : list of int
        Index in ``words`` of each layer's last word (the words flagged ``last``).
    chunks : int
        Decrypted chunks in all layers.
    crc : int
        :func:`boards.crc.chunk_crc32` of all decrypted chunks, from the golden model.
    """
    configs: tuple
    width: int
    descriptors: list
    words: list
    layer_ends: list
    chunks: int
    crc: int

    @classmethod
    def build(cls, configs, layers, *, width):
        """Pack ``layers`` (as :func:`flexor.stream.pack_stream` takes them) into an image."""
        configs, width, _ = check_stream_parameters(configs, width, 1)
        layers = [as_layer(configs, layer) for layer in layers]
        if not layers:
            raise InputError("layers must hold at least one layer")
        # The output beats pack_stream also computes are not needed here.
        packed = pack_stream(configs, layers, width=width, lanes=1)
        decrypted = np.concatenate([decrypt(configs[layer.config], layer.bits)
                                    for layer in layers])
        return cls(configs, width, packed.descriptors, packed.words,
                   [index for index, last in enumerate(packed.lasts) if last],
                   len(decrypted), chunk_crc32(decrypted))

    @property
    def nout(self):
        return self.configs[0].nout

    @property
    def bits(self):
        """Bits of block RAM the data words take (descriptors live in logic)."""
        return len(self.words) * self.width

    def check_fits(self, board):
        """Raise :class:`MemoryTooSmall` unless the data words fit in ``board``'s block RAM."""
        blocks = ram_blocks(board, width=self.width, depth=len(self.words))
        if blocks > board.ram_blocks:
            raise MemoryTooSmall(
                f"the weights need {self.bits} bits of block RAM ({len(self.words)} words of "
                f"{self.width} bits, {blocks} blocks of {board.ram_block_bits} bits) but the "
                f"{board.device} on {board.name} has {board.ram_bits} bits "
                f"({board.ram_blocks} blocks)")
