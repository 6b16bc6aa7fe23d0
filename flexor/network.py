"""A streamed network: an integer program whose weights arrive as encrypted chunks in tiled order.

This is what the inference engine (``hdl.InferenceEngine``) is built from and what its tests
drive it with: the XOR configuration table, and per layer the configuration index, the tile
``T`` of the ``tiled`` weight order (``flexor/weight_order.py``), the encrypted bits of its one
bit-plane and the :class:`~flexor.integer.IntegerLayer` those bits decrypt to. The integer layer
is always derived from the bits (``flexor.decrypt`` then ``weights_from_chunks``), so the two
cannot disagree. Nothing here imports Amaranth.
"""

import warnings

import numpy as np

from .golden import decrypt
from .integer import IntegerLayer, IntegerProgram
from .stream import Layer
from .weight_order import chunk_count, weights_from_chunks
from .xor_config import RankWarning, XorConfig

__all__ = ["StreamedLayer", "StreamedNetwork"]


class StreamedLayer:
    """One fully connected layer: its encrypted plane and the integer layer it decrypts to.

    Parameters
    ----------
    config : int
        Index of the layer's XOR configuration in the network's table.
    tile : int
        Rows per tile of the ``tiled`` weight order.
    bits : (chunks, nin) array of 0/1
        The encrypted plane, ``chunks = chunk_count("tiled", out, in, nout, tile)``.
    integer : IntegerLayer
        The layer's integer program; its weights must be what ``bits`` decrypts to.
    """

    def __init__(self, *, config, tile, bits, integer):
        self.config, self.tile, self.integer = config, tile, integer
        self.bits = np.asarray(bits, dtype=np.uint8)

    @property
    def chunks(self):
        return self.bits.shape[0]

    @property
    def tiles(self):
        """Tiles of ``tile`` rows, ``ceil(out / tile)``."""
        return -(-self.integer.outputs // self.tile)


class StreamedNetwork:
    """A chain of :class:`StreamedLayer` with the XOR configurations that decrypt them.

    Parameters
    ----------
    configs : sequence of XorConfig
        Configuration table (one ``nout``), indexed by each layer's ``config``.
    layers : sequence of StreamedLayer
        In order; the integer layers must chain as :class:`~flexor.integer.IntegerProgram`
        requires.

    Raises ``ValueError``/``TypeError`` naming the layer when a plane's shape disagrees with its
    layer or its bits do not decrypt to the integer layer's weights.
    """

    def __init__(self, configs, layers):
        self.configs = tuple(configs)
        self.layers = list(layers)
        if not self.configs or not all(isinstance(c, XorConfig) for c in self.configs):
            raise TypeError("configs must be a non-empty sequence of flexor.XorConfig")
        nout = self.configs[0].nout
        if any(c.nout != nout for c in self.configs):
            raise ValueError("configs must share one nout")
        self.program = IntegerProgram([layer.integer for layer in self.layers])
        for index, layer in enumerate(self.layers):
            if type(layer.config) is not int or not 0 <= layer.config < len(self.configs):
                raise ValueError(f"layers[{index}]: config must index the {len(self.configs)} "
                                 f"configurations, not {layer.config!r}")
            integer = layer.integer
            if integer.q != 1:
                raise ValueError(f"layers[{index}]: one bit-plane per layer is supported, not "
                                 f"q = {integer.q}")
            nin = self.configs[layer.config].nin
            shape = (chunk_count("tiled", integer.outputs, integer.inputs, nout, layer.tile), nin)
            if layer.bits.shape != shape:
                raise ValueError(f"layers[{index}]: the encrypted plane must have shape {shape}, "
                                 f"not {layer.bits.shape}")
            if not np.array_equal(self.weights(index), integer.weights[0]):
                raise ValueError(f"layers[{index}]: the encrypted plane does not decrypt to the "
                                 f"integer layer's weights")

    @property
    def nout(self):
        return self.configs[0].nout

    def weights(self, index):
        """The ``[out, in]`` 0/1 weights that layer ``index``'s bits decrypt to."""
        layer = self.layers[index]
        integer = layer.integer
        chunks = decrypt(self.configs[layer.config], layer.bits)
        return weights_from_chunks(chunks, "tiled", integer.outputs, integer.inputs, layer.tile)

    def stream_layers(self):
        """The layers of one pass over the weights, as :func:`flexor.stream.pack_stream` takes
        them (one image needs exactly this stream)."""
        return [Layer(layer.config, layer.bits) for layer in self.layers]

    @classmethod
    def from_bits(cls, configs, specs):
        """Build a network from encrypted planes and integer constants.

        ``specs``: per layer a dict with ``config``, ``tile``, ``bits``, ``inputs``, ``outputs``,
        ``mult`` (``(out,)``), ``offset``, ``shift``, ``in_bits``, ``out_bits``.
        """
        configs = tuple(configs)
        layers = []
        for spec in specs:
            config = configs[spec["config"]]
            chunks = decrypt(config, np.asarray(spec["bits"], dtype=np.uint8))
            weights = weights_from_chunks(chunks, "tiled", spec["outputs"], spec["inputs"],
                                          spec["tile"])
            integer = IntegerLayer(weights=weights[None], mult=np.asarray(spec["mult"])[None],
                                   offset=spec["offset"], shift=spec["shift"],
                                   in_bits=spec["in_bits"], out_bits=spec["out_bits"])
            layers.append(StreamedLayer(config=spec["config"], tile=spec["tile"],
                                        bits=spec["bits"], integer=integer))
        return cls(configs, layers)

    @classmethod
    def random(cls, seed, *, sizes, nout, nins, tiles, hidden_bits, input_bits=8):
        """A random network for tests: random matrices (Ntap 2), planes and constants.

        Parameters
        ----------
        seed : int
            Seed of ``numpy.random.default_rng`` (matrices use ``seed`` + position).
        sizes : sequence of int
            ``[inputs, hidden..., classes]``.
        nout : int
            Decrypted bits per chunk.
        nins : sequence of int
            ``nin`` of each configuration; layer ``l`` uses configuration ``l % len(nins)``.
        tiles : sequence of int
            Tile of each layer.
        hidden_bits : sequence of int
            Activation width after each hidden layer.
        input_bits : int
            Width of the raw inputs.

        The constants scale a typical accumulator to a few times the output range, so the
        clamps at 0 and at the top are both reached; some multipliers are negative.
        """
        rng = np.random.default_rng(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RankWarning)
            configs = [XorConfig.random(nin, nout, min(2, nin), seed + position)
                       for position, nin in enumerate(nins)]
        bits = [input_bits, *hidden_bits, None]
        specs = []
        for index, (inputs, outputs) in enumerate(zip(sizes[:-1], sizes[1:])):
            config, tile = index % len(configs), tiles[index]
            chunks = chunk_count("tiled", outputs, inputs, nout, tile)
            in_bits, out_bits = bits[index], bits[index + 1]
            mult = rng.integers(1, 2 ** 12, outputs) * rng.choice([-1, 1, 1, 1], outputs)
            typical = np.sqrt(inputs) * 2 ** (in_bits - 1) * 2 ** 11
            target = 2 ** (out_bits if out_bits is not None else 6)
            shift = max(0, int(np.log2(typical / target)))
            spread = 2 ** shift * target
            specs.append({
                "config": config, "tile": tile, "inputs": inputs, "outputs": outputs,
                "bits": rng.integers(0, 2, (chunks, configs[config].nin), dtype=np.uint8),
                "mult": mult.astype(np.int64), "shift": shift, "in_bits": in_bits,
                "offset": rng.integers(-spread, spread + 1, outputs).astype(np.int64),
                "out_bits": out_bits})
        return cls.from_bits(configs, specs)

    def random_inputs(self, count, seed):
        """``(count, inputs)`` random raw inputs in ``0 .. 2**input_bits - 1``."""
        rng = np.random.default_rng(seed)
        return rng.integers(0, 2 ** self.program.input_bits, (count, self.program.inputs),
                            dtype=np.int64)
