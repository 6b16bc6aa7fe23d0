"""The encrypted-weight container: one file that carries a trained FleXOR network to hardware.

The format is specified in ``docs/container.md``. In short, a container is a ZIP archive that
``numpy.load`` reads as an ``.npz``: a ``header.json`` member (format, version, the XOR
configurations with their matrices, per-layer records, the topology, training metadata) and one
``.npy`` member per array (packed encrypted bit-planes, ``alpha``, biases, full-precision
weights, normalization tensors). The archive comment is ``flexor-sha256:`` followed by the
SHA-256 (64 hex digits) of every byte before those digits, so any change to the file, even one
byte, is caught on load. Writing is byte-reproducible (fixed member dates and order).

Public API used by the hardware flow::

    container = Container.load("weights/digits_mlp_0p8.npz")
    container.configs                    # list of XorConfig, indexed by Plane.config
    for li, layer in enumerate(container.layers):
        for pi, plane in enumerate(layer.planes):      # empty for full-precision layers
            config = container.configs[plane.config]
            plane.chunks, plane.bits                   # int, (chunks, nin) uint8 0/1
            plane.packed                               # flat bytes, little-endian bit order

A plane follows the flat bit-plane convention of ``DESIGN.md``: chunk ``j`` is encrypted bits
``j*nin .. j*nin+nin-1`` of the flat stream, packed eight to a byte LSB first, exactly
``chunks * nin`` bits with zero padding in the last byte, ``chunks = ceil(n / nout)`` for a layer
of ``n`` weights. Every problem with a file raises :class:`ContainerError` (a ``ValueError``)
with one line that names the file and what is wrong.
"""

import hashlib
import io
import json
import math
import tokenize
import warnings
import zipfile
import zlib

import numpy as np

from .golden import pack_bits, unpack_bits
from .weight_order import check_order, chunk_count
from .xor_config import XorConfig

__all__ = ["Container", "Layer", "Plane", "IntegerStep", "ContainerError", "FORMAT", "VERSION",
           "VERSIONS", "MAX_NIN", "MAX_ACTIVATION", "TOPOLOGY_OPS", "encode_container"]

FORMAT = "flexor-container"
#: The version written when the content needs it (a tiled weight order, a ``quantize`` op or an
#: integer program); content that version 1 can express is written as version 1, byte for byte
#: as before.
VERSION = 2
VERSIONS = (1, 2)
#: Widest chunk the hardware decryptor accepts (the hardware flow's limit, enforced here).
MAX_NIN = 64
#: Most values one activation may hold per sample (a bound against absurd headers, far above
#: any network the flow targets: ResNet-20 on CIFAR-10 peaks at 16 x 32 x 32 = 16384).
MAX_ACTIVATION = 2 ** 24
#: Weight order of version 1 (the only one it has): PyTorch's row-major ``[out, in, kh, kw]``.
FLATTEN = "row-major"
#: Topology operations and the keys each one needs besides ``op``.
TOPOLOGY_OPS = {
    "reshape": ("shape",), "linear": ("layer",), "conv2d": ("layer",),
    "batchnorm": ("name", "eps"), "relu": (), "maxpool2d": ("kernel",), "flatten": (),
    "global_avgpool": (), "push": (), "add_shortcut": ("stride", "pad_channels"),
    "quantize": ("name", "bits"),
}
#: Operations that exist from format version 2 on.
V2_OPS = ("quantize",)
BATCHNORM_TENSORS = ("mean", "var", "weight", "bias")
#: Activation widths of a ``quantize`` op and of the integer program.
ACTIVATION_BITS = range(1, 9)

_TRAILER = b"flexor-sha256:"
_DIGEST_CHARS = 64
_MEMBER_DATE = (1980, 1, 1, 0, 0, 0)  # the ZIP epoch: no build time inside the file
_HEADER = "header.json"


class ContainerError(ValueError):
    """A container file or object is unreadable, corrupted, of another version or inconsistent."""


class Plane:
    """One encrypted bit-plane of a layer.

    Parameters
    ----------
    config : int
        Index into :attr:`Container.configs` of the XOR configuration that decrypts this plane.
    chunks : int
        Number of chunks, ``ceil(n / nout)`` for a layer of ``n`` weights.
    nin : int
        Encrypted bits per chunk (the configuration's ``nin``).
    packed : array of uint8
        The ``chunks * nin`` encrypted bits, flat, packed little-endian: ``ceil(chunks*nin/8)``
        bytes with zero padding bits.
    """

    def __init__(self, *, config, chunks, nin, packed):
        self.config = _check_int("config", config, minimum=0)
        self.chunks = _check_int("chunks", chunks)
        self.nin = _check_int("nin", nin)
        packed = np.asarray(packed)
        if packed.dtype != np.uint8 or packed.ndim != 1:
            raise ContainerError(f"packed bits must be a 1-D uint8 array, not {packed.dtype} "
                                 f"of shape {packed.shape}")
        self.packed = packed

    @classmethod
    def from_bits(cls, config, bits):
        """A plane from its ``(chunks, nin)`` 0/1 encrypted bits."""
        bits = np.asarray(bits)
        if bits.ndim != 2 or bits.size == 0:
            raise ValueError(f"bits must have shape (chunks, nin), not {bits.shape}")
        return cls(config=config, chunks=bits.shape[0], nin=bits.shape[1],
                   packed=pack_bits(bits.reshape(-1)))

    @property
    def n_bits(self):
        return self.chunks * self.nin

    @property
    def bits(self):
        """The encrypted bits as a ``(chunks, nin)`` uint8 0/1 array."""
        return unpack_bits(self.packed, self.n_bits).reshape(self.chunks, self.nin)


class Layer:
    """One weight layer: FleXOR-encrypted (``precision="xor"``) or kept as floats (``"full"``).

    Parameters
    ----------
    name : str
    kind : ``"linear"`` or ``"conv2d"``
    shape : tuple of int
        ``(out, in)`` or ``(out, in, kh, kw)``; flattened row-major.
    precision : ``"xor"`` or ``"full"``
    planes : list of Plane
        The ``q`` encrypted bit-planes (``xor`` only).
    alpha : float32 array ``(q, out)``
        Scaling factor per plane per output channel (``xor`` only): weight
        ``= sum_i alpha[i, out] * (2 * b_i - 1)``.
    weight : float32 array of ``shape``
        The weights of a full-precision layer.
    bias : float32 array ``(out,)`` or None
    stride, padding : int
        Convolution geometry (``conv2d`` only; square kernels, no dilation or groups).
    flatten : str
        Weight order of the planes (:mod:`flexor.weight_order`): ``row-major`` or ``tiled``.
    tile : int or None
        Rows per tile of the ``tiled`` order (``None`` for ``row-major``).
    """

    def __init__(self, *, name, kind, shape, precision, planes=(), alpha=None, weight=None,
                 bias=None, stride=1, padding=0, flatten=FLATTEN, tile=None):
        if not isinstance(name, str) or not name:
            raise ContainerError(f"layer name must be a non-empty string, not {name!r}")
        self.name = name
        if kind not in ("linear", "conv2d"):
            raise ContainerError(f"layer {name}: kind must be 'linear' or 'conv2d', not {kind!r}")
        self.kind = kind
        rank = 2 if kind == "linear" else 4
        if not isinstance(shape, (tuple, list)) or len(shape) != rank:
            raise ContainerError(f"layer {name}: a {kind} shape has {rank} dimensions, "
                                 f"not {shape!r}")
        self.shape = tuple(_check_int("shape", s) for s in shape)
        if precision not in ("xor", "full"):
            raise ContainerError(f"layer {name}: precision must be 'xor' or 'full', "
                                 f"not {precision!r}")
        self.precision = precision
        self.planes = list(planes)
        self.alpha = None if alpha is None else np.asarray(alpha)
        self.weight = None if weight is None else np.asarray(weight)
        self.bias = None if bias is None else np.asarray(bias)
        self.stride = _check_int("stride", stride)
        self.padding = _check_int("padding", padding, minimum=0)
        try:
            check_order(flatten, tile)
        except ValueError as error:
            raise ContainerError(f"layer {name}: {error}") from None
        self.flatten, self.tile = flatten, tile
        self._check_arrays()

    def _check_arrays(self):
        out = self.shape[0]
        _check_float_array(self, "bias", self.bias, (out,), optional=True)
        if self.precision == "full":
            if self.planes or self.alpha is not None:
                raise ContainerError(f"layer {self.name}: a full-precision layer has no planes "
                                     f"or alpha")
            _check_float_array(self, "weight", self.weight, self.shape)
            return
        if self.weight is not None:
            raise ContainerError(f"layer {self.name}: an xor layer stores planes, not weights")
        if not self.planes:
            raise ContainerError(f"layer {self.name}: an xor layer needs at least one plane")
        _check_float_array(self, "alpha", self.alpha, (len(self.planes), out))

    @property
    def n_weights(self):
        return math.prod(self.shape)

    @property
    def row_length(self):
        """Weights per output channel (``m`` of :mod:`flexor.weight_order`)."""
        return self.n_weights // self.shape[0]

    def chunks(self, nout):
        """Chunks of ``nout`` decrypted bits per plane in the layer's weight order."""
        return chunk_count(self.flatten, self.shape[0], self.row_length, nout, self.tile)

    @property
    def q(self):
        """Number of bit-planes (0 for a full-precision layer)."""
        return len(self.planes)

    @property
    def stored_bits(self):
        """Bits that encode the weights: encrypted bits, or 32 per float weight."""
        if self.precision == "full":
            return 32 * self.n_weights
        return sum(plane.n_bits for plane in self.planes)

    @property
    def bits_per_weight(self):
        return self.stored_bits / self.n_weights

    @property
    def stored_bytes(self):
        """Bytes of every array of the layer (bits or floats, ``alpha``, bias)."""
        arrays = [self.weight, self.alpha, self.bias] + [p.packed for p in self.planes]
        return sum(a.nbytes for a in arrays if a is not None)

    def record(self):
        """The JSON record of the layer (arrays excluded)."""
        record = {"name": self.name, "kind": self.kind, "shape": list(self.shape),
                  "flatten": self.flatten, "precision": self.precision, "q": self.q,
                  "planes": [{"config": p.config, "chunks": p.chunks, "bits": p.n_bits}
                             for p in self.planes],
                  "bias": self.bias is not None}
        if self.kind == "conv2d":
            record.update(stride=self.stride, padding=self.padding)
        if self.tile is not None:
            record["tile"] = self.tile
        return record


class IntegerStep:
    """One layer of the stored integer program (``docs/integer-program.md``); the weights are
    the decrypted planes of container layer ``layer``.

    Parameters
    ----------
    layer : int
        Index of the encrypted layer in :attr:`Container.layers`.
    mult : int16 array ``(q, out)``
        Signed multipliers, ``|mult| <= 2**15 - 1``.
    offset : int64 array ``(out,)``
    shift : int
        Right shift, ``0 .. 48``.
    in_bits : int
        Width of the unsigned inputs (8 for the first step: the raw pixels).
    out_bits : int or None
        Width of the clamped outputs, ``None`` for the last step (the logits).
    """

    def __init__(self, *, layer, mult, offset, shift, in_bits, out_bits):
        self.layer = _check_int("integer layer", layer, minimum=0)
        self.mult = np.asarray(mult)
        self.offset = np.asarray(offset)
        for name, array, dtype, rank in (("mult", self.mult, np.int16, 2),
                                         ("offset", self.offset, np.int64, 1)):
            if array.dtype != dtype or array.ndim != rank:
                raise ContainerError(f"integer step of layer {layer}: {name} must be a "
                                     f"{rank}-D {np.dtype(dtype)} array, not {array.dtype} of "
                                     f"shape {array.shape}")
        if self.mult.size and int(np.abs(self.mult.astype(np.int64)).max()) > 2 ** 15 - 1:
            raise ContainerError(f"integer step of layer {layer}: mult -32768 is outside "
                                 f"+-(2**15 - 1)")
        self.shift = _check_int("integer shift", shift, minimum=0)
        if self.shift > 48:
            raise ContainerError(f"integer step of layer {layer}: shift must be in 0..48, not "
                                 f"{shift}")
        self.in_bits = _check_bits(f"integer step of layer {layer}: in_bits", in_bits)
        self.out_bits = None if out_bits is None else \
            _check_bits(f"integer step of layer {layer}: out_bits", out_bits)

    def record(self):
        return {"layer": self.layer, "shift": self.shift, "in_bits": self.in_bits,
                "out_bits": self.out_bits}


class Container:
    """A trained network: XOR configurations, layers, topology, extra tensors and metadata.

    Parameters
    ----------
    configs : list of XorConfig
        The configuration table; all share one ``nout`` and have ``nin <= MAX_NIN``.
    layers : list of Layer
        Weight layers, indexed by the ``layer`` key of ``linear``/``conv2d`` topology ops.
    topology : dict
        ``{"input_shape": [...], "ops": [...]}``: the forward pass as a list of operations (see
        ``docs/container.md`` and :data:`TOPOLOGY_OPS`).
    tensors : dict of str to float32 array
        Other parameters the topology names, e.g. ``bn0.mean`` for a ``batchnorm`` op ``bn0``.
    metadata : dict
        JSON-ready training metadata (data set spec, seed, accuracy, command, ...).
    integer : list of IntegerStep, optional
        The integer program (``docs/integer-program.md``): one step per weight layer in the
        topology's order; ``None`` when the network has none (float activations or layers).
        :meth:`flexor.integer.IntegerProgram.from_container` builds the runnable program.

    Raises :class:`ContainerError` when the parts disagree (chunk or bit counts, configuration
    indices, missing tensors, unknown operations, an integer program that does not fit the
    layers and topology).
    """

    def __init__(self, *, configs, layers, topology, tensors=None, metadata=None,
                 integer=None):
        self.configs = list(configs)
        self.layers = list(layers)
        self.topology = topology
        self.tensors = dict(tensors or {})
        self.metadata = dict(metadata or {})
        self.integer = None if integer is None else list(integer)
        self._validate()

    # -- consistency -------------------------------------------------------------------------

    def _validate(self):
        if not self.configs and any(layer.precision == "xor" for layer in self.layers):
            raise ContainerError("xor layers need at least one XOR configuration")
        for config in self.configs:
            if not isinstance(config, XorConfig):
                raise ContainerError(f"configs must be XorConfig objects, not {config!r}")
            if config.nin > MAX_NIN:
                raise ContainerError(f"configuration {config!r} has nin > {MAX_NIN}, the "
                                     f"decryptor's limit")
        if len({config.nout for config in self.configs}) > 1:
            raise ContainerError(f"all configurations must share one nout, not "
                                 f"{sorted({c.nout for c in self.configs})}")
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise ContainerError(f"layers must be Layer objects, not {layer!r}")
            for index, plane in enumerate(layer.planes):
                self._check_plane(layer, index, plane)
        self._check_topology()
        if self.integer is not None:
            self._check_integer()

    def _check_integer(self):
        """The integer program must mirror the topology: per weight layer, in order, an xor
        layer followed (hidden layers) by the ``quantize`` op whose bits are its ``out_bits``,
        inputs of 8 bits first and of the previous ``out_bits`` after."""
        ops = self.topology["ops"]
        weight_ops = [i for i, op in enumerate(ops) if op["op"] in ("linear", "conv2d")]
        if len(self.integer) != len(weight_ops):
            raise ContainerError(f"integer program has {len(self.integer)} steps, the topology "
                                 f"{len(weight_ops)} weight layers")
        in_bits = 8
        for number, (step, position) in enumerate(zip(self.integer, weight_ops)):
            where = f"integer step {number}"
            if not isinstance(step, IntegerStep):
                raise ContainerError(f"{where}: must be an IntegerStep, not {step!r}")
            if step.layer != ops[position]["layer"]:
                raise ContainerError(f"{where}: layer {step.layer}, but the topology's weight "
                                     f"layer {number} is layer {ops[position]['layer']}")
            layer = self.layers[step.layer]
            if layer.precision != "xor" or layer.kind != "linear":
                raise ContainerError(f"{where}: layer {layer.name} is a {layer.precision} "
                                     f"{layer.kind} layer; the integer program runs encrypted "
                                     f"linear layers only")
            if step.mult.shape != (layer.q, layer.shape[0]) or \
                    step.offset.shape != (layer.shape[0],):
                raise ContainerError(f"{where}: mult {step.mult.shape} and offset "
                                     f"{step.offset.shape} do not fit layer {layer.name} "
                                     f"(q {layer.q}, {layer.shape[0]} outputs)")
            if step.in_bits != in_bits:
                raise ContainerError(f"{where}: in_bits {step.in_bits}, but its inputs have "
                                     f"{in_bits} bits")
            end = (weight_ops + [len(ops)])[number + 1]
            following = [op["op"] for op in ops[position + 1:end]]
            if following[:1] == ["batchnorm"]:
                following = following[1:]
            if end == len(ops):
                if following or step.out_bits is not None:
                    raise ContainerError(f"{where}: the last step gives the logits (out_bits "
                                         f"null, no op after the layer but one batch norm)")
                break
            if following != ["quantize"]:
                raise ContainerError(f"{where}: layer {layer.name} must be followed by one "
                                     f"quantize op (and before it at most one batch norm), not "
                                     f"{following}")
            if step.out_bits != ops[end - 1]["bits"]:
                raise ContainerError(f"{where}: out_bits {step.out_bits}, but the quantize op "
                                     f"after layer {layer.name} has {ops[end - 1]['bits']} bits")
            in_bits = step.out_bits

    def _check_plane(self, layer, index, plane):
        where = f"layer {layer.name} plane {index}"
        if plane.config >= len(self.configs):
            raise ContainerError(f"{where}: configuration index {plane.config} out of range "
                                 f"(the container has {len(self.configs)})")
        config = self.configs[plane.config]
        chunks = layer.chunks(config.nout)
        if plane.chunks != chunks or plane.nin != config.nin:
            raise ContainerError(f"{where}: {plane.chunks} chunks of {plane.nin} bits, but "
                                 f"{layer.n_weights} weights at nout {config.nout} in the "
                                 f"{layer.flatten} order need {chunks} chunks of nin "
                                 f"{config.nin} ({chunks * config.nin} bits)")
        if plane.packed.size != -(-plane.n_bits // 8):
            raise ContainerError(f"{where}: {plane.packed.size} bytes hold "
                                 f"{8 * plane.packed.size} bits, but the plane has "
                                 f"chunks*Nin = {plane.n_bits} bits")
        if plane.n_bits % 8 and plane.packed[-1] >> (plane.n_bits % 8):
            raise ContainerError(f"{where}: padding bits past bit {plane.n_bits} are not zero")

    def _check_topology(self):
        topology = self.topology
        if not isinstance(topology, dict) or not isinstance(topology.get("ops"), list):
            raise ContainerError("topology must be an object with an 'ops' list")
        shape = topology.get("input_shape")
        if not _is_shape(shape):
            raise ContainerError(f"topology input_shape must be a list of positive integers, "
                                 f"not {shape!r}")
        shape, stack, used = tuple(shape), [], []
        _check_activation("input", shape)
        for position, op in enumerate(topology["ops"]):
            name = op.get("op") if isinstance(op, dict) else None
            if name not in TOPOLOGY_OPS:
                raise ContainerError(f"topology op {position}: unknown operation {name!r}")
            missing = [key for key in TOPOLOGY_OPS[name] if key not in op]
            if missing:
                raise ContainerError(f"topology op {position} ({name}): missing {missing}")
            if name in ("linear", "conv2d"):
                index = op["layer"]
                if not _is_int(index) or not 0 <= index < len(self.layers):
                    raise ContainerError(f"topology op {position}: layer index {index!r} out "
                                         f"of range (the container has {len(self.layers)})")
                if self.layers[index].kind != name:
                    raise ContainerError(f"topology op {position}: layer {index} is a "
                                         f"{self.layers[index].kind}, not a {name}")
                used.append(index)
            shape = self._op_output_shape(position, op, shape, stack)
            _check_activation(f"topology op {position} ({name})", shape)
        if sorted(used) != list(range(len(self.layers))):
            raise ContainerError(f"topology must use every layer exactly once, not {used}")
        if len(shape) != 1:
            raise ContainerError(f"topology must end in one vector of logits per sample, not "
                                 f"shape {shape}")

    def _op_output_shape(self, position, op, shape, stack):
        """Per-sample shape after ``op`` on per-sample ``shape`` (``ContainerError`` when the op
        cannot apply): the forward pass of :mod:`flexor.inference`, run on shapes only, so that
        a container that loads also runs."""
        name = op["op"]
        where = f"topology op {position} ({name})"

        def need(condition, what):
            if not condition:
                raise ContainerError(f"{where}: {what} (input shape {shape})")

        def parameter(key, minimum):
            value = op[key]
            need(_is_int(value) and value >= minimum, f"{key} must be an integer >= {minimum}, "
                 f"not {value!r}")
            return value

        if name == "reshape":
            need(_is_shape(op["shape"]) and math.prod(op["shape"]) == math.prod(shape),
                 f"cannot reshape to {op['shape']!r}")
            return tuple(op["shape"])
        if name == "linear":
            layer = self.layers[op["layer"]]
            need(shape[-1] == layer.shape[1], f"layer {layer.name} takes {layer.shape[1]} inputs")
            return shape[:-1] + (layer.shape[0],)
        if name == "flatten":
            return (math.prod(shape),)
        if name == "relu":
            return shape
        if name == "quantize":
            bits = op["bits"]
            need(_is_int(bits) and bits in ACTIVATION_BITS, f"bits must be an integer in 1..8, "
                 f"not {bits!r}")
            tensor = self.tensors.get(f"{op['name']}.scale")
            need(tensor is not None, f"tensor {op['name']}.scale is missing")
            need(tensor.dtype == np.float32 and tensor.shape == (1,) and
                 bool(np.isfinite(tensor).all()) and float(tensor[0]) > 0,
                 f"tensor {op['name']}.scale must be one positive finite float32")
            return shape
        if name == "push":
            stack.append(shape)
            return shape
        if name == "batchnorm":
            channels = self._check_batchnorm(position, op["name"])
            eps = op["eps"]
            need(isinstance(eps, (int, float)) and not isinstance(eps, bool) and
                 math.isfinite(eps) and eps >= 0, f"eps must be a number >= 0, not {eps!r}")
            need(shape[0] == channels, f"{channels} channels")
            return shape
        # The rest work on (channels, height, width) images.
        need(len(shape) == 3, "needs a (channels, height, width) input")
        channels, height, width = shape
        if name == "global_avgpool":
            return (channels,)
        if name == "maxpool2d":
            kernel = parameter("kernel", 1)
            need(kernel <= min(height, width), f"kernel {kernel} is larger than the image")
            return (channels, height // kernel, width // kernel)
        if name == "conv2d":
            layer = self.layers[op["layer"]]
            out, inputs, kh, kw = layer.shape
            padded = (height + 2 * layer.padding, width + 2 * layer.padding)
            need(channels == inputs, f"layer {layer.name} takes {inputs} channels")
            _check_activation(f"{where} padded input", (channels,) + padded)
            need(padded[0] >= kh and padded[1] >= kw,
                 f"kernel {kh}x{kw} is larger than the padded image")
            return (out, (padded[0] - kh) // layer.stride + 1, (padded[1] - kw) // layer.stride + 1)
        # add_shortcut
        stride, pad = parameter("stride", 1), parameter("pad_channels", 0)
        need(stack, "no saved activation (push) to add")
        saved = stack.pop()
        need(len(saved) == 3 and (saved[0] + 2 * pad, -(-saved[1] // stride),
                                  -(-saved[2] // stride)) == shape,
             f"the saved activation of shape {saved}, subsampled by {stride} and padded by "
             f"{pad} channels, does not match")
        return shape

    def _check_batchnorm(self, position, name):
        """Check the four tensors of a batchnorm op; return their length (the channels)."""
        shapes = set()
        for part in BATCHNORM_TENSORS:
            tensor = self.tensors.get(f"{name}.{part}")
            if tensor is None:
                raise ContainerError(f"topology op {position}: tensor {name}.{part} is missing")
            if tensor.dtype != np.float32 or tensor.ndim != 1:
                raise ContainerError(f"tensor {name}.{part} must be 1-D float32, not "
                                     f"{tensor.dtype} of shape {tensor.shape}")
            if not np.isfinite(tensor).all():
                raise ContainerError(f"tensor {name}.{part} holds NaN or infinity")
            shapes.add(tensor.shape)
        if len(shapes) != 1:
            raise ContainerError(f"tensors of batchnorm {name} differ in length: {shapes}")
        return shapes.pop()[0]

    # -- summaries ---------------------------------------------------------------------------

    def bits_per_weight(self, precision="xor"):
        """Stored weight bits per weight over the layers of one precision (None: all layers)."""
        layers = [l for l in self.layers if precision is None or l.precision == precision]
        weights = sum(l.n_weights for l in layers)
        return sum(l.stored_bits for l in layers) / weights if weights else None

    # -- serialization -----------------------------------------------------------------------

    @property
    def version(self):
        """The format version the content needs: 2 for a tiled order, a ``quantize`` op or an
        integer program, else 1."""
        needs_v2 = (self.integer is not None or
                    any(layer.flatten != FLATTEN for layer in self.layers) or
                    any(op["op"] in V2_OPS for op in self.topology["ops"]))
        return 2 if needs_v2 else 1

    def header(self):
        """The JSON header (without arrays)."""
        header = {"format": FORMAT, "version": self.version,
                  "configs": [config.to_dict() for config in self.configs],
                  "layers": [layer.record() for layer in self.layers],
                  "topology": self.topology, "tensors": sorted(self.tensors),
                  "metadata": self.metadata}
        if self.version >= 2:
            header["integer"] = (None if self.integer is None else
                                 {"steps": [step.record() for step in self.integer]})
        return header

    def arrays(self):
        """Every array, by member name (``layer{i}.plane{p}``, ``layer{i}.alpha``, ...)."""
        arrays = {}
        for i, layer in enumerate(self.layers):
            for p, plane in enumerate(layer.planes):
                arrays[f"layer{i}.plane{p}"] = plane.packed
            for part in ("alpha", "weight", "bias"):
                if getattr(layer, part) is not None:
                    arrays[f"layer{i}.{part}"] = getattr(layer, part)
        for name in sorted(self.tensors):
            arrays[f"tensor.{name}"] = self.tensors[name]
        for s, step in enumerate(self.integer or ()):
            arrays[f"integer{s}.mult"] = step.mult
            arrays[f"integer{s}.offset"] = step.offset
        return arrays

    def to_bytes(self):
        """The file's bytes; equal containers give identical bytes."""
        return encode_container(self.header(), self.arrays())

    def save(self, path):
        with open(path, "wb") as file:
            file.write(self.to_bytes())

    @property
    def sha256(self):
        """The checksum stored in the file's trailer."""
        return self.to_bytes()[-_DIGEST_CHARS:].decode("ascii")

    @classmethod
    def load(cls, path):
        """Read and check a container file; every problem raises one :class:`ContainerError`."""
        try:
            with open(path, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            raise ContainerError(f"{path}: no such file") from None
        except OSError as error:
            raise ContainerError(f"{path}: cannot read ({error.strerror})") from None
        return cls.from_bytes(data, origin=path)

    @classmethod
    def from_bytes(cls, data, origin="<bytes>"):
        """Parse container bytes (see :meth:`load`)."""
        try:
            header, arrays = _decode(data)
            return cls._from_parts(header, arrays)
        except ContainerError as error:
            raise ContainerError(f"{origin}: {error}") from None

    @classmethod
    def _from_parts(cls, header, arrays):
        if header.get("format") != FORMAT:
            raise ContainerError(f"not a FleXOR container (format {header.get('format')!r})")
        version = header.get("version")
        if not _is_int(version) or version not in VERSIONS:
            raise ContainerError(f"unsupported container version {version!r} (this code reads "
                                 f"versions {', '.join(map(str, VERSIONS))})")
        try:
            configs = [XorConfig.from_dict(data) for data in header["configs"]]
            layers = [_layer_from_record(i, record, arrays, configs, version)
                      for i, record in enumerate(header["layers"])]
            tensors = {name: _member(arrays, f"tensor.{name}") for name in header["tensors"]}
            integer = _integer_from_header(header, arrays) if version >= 2 else None
            container = cls(configs=configs, layers=layers, topology=header["topology"],
                            tensors=tensors, metadata=header["metadata"], integer=integer)
            if container.version != version:
                raise ContainerError(f"version {version} file, but its content is that of "
                                     f"version {container.version}")
            return container
        except ContainerError:
            raise
        except KeyError as error:
            raise ContainerError(f"header is missing {error}") from None
        except (TypeError, ValueError, AttributeError) as error:
            raise ContainerError(f"inconsistent header ({error})") from None


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_shape(shape):
    return isinstance(shape, list) and bool(shape) and all(_is_int(s) and s > 0 for s in shape)


def _check_activation(where, shape):
    if math.prod(shape) > MAX_ACTIVATION:
        raise ContainerError(f"{where}: an activation of shape {shape} has more than "
                             f"{MAX_ACTIVATION} values per sample")


def _check_bits(name, value):
    if not _is_int(value) or value not in ACTIVATION_BITS:
        raise ContainerError(f"{name} must be an integer in 1..8, not {value!r}")
    return value


def _integer_from_header(header, arrays):
    section = header["integer"]
    if section is None:
        return None
    if not isinstance(section, dict) or not isinstance(section.get("steps"), list):
        raise ContainerError("integer must be null or an object with a 'steps' list")
    return [IntegerStep(layer=step["layer"], mult=_member(arrays, f"integer{s}.mult"),
                        offset=_member(arrays, f"integer{s}.offset"), shift=step["shift"],
                        in_bits=step["in_bits"], out_bits=step["out_bits"])
            for s, step in enumerate(section["steps"])]


def _check_int(name, value, *, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ContainerError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return int(value)


def _check_float_array(layer, part, array, shape, optional=False):
    if array is None:
        if optional:
            return
        raise ContainerError(f"layer {layer.name}: {part} is missing")
    if array.dtype != np.float32 or array.shape != tuple(shape):
        raise ContainerError(f"layer {layer.name}: {part} must be float32 of shape "
                             f"{tuple(shape)}, not {array.dtype} {array.shape}")
    if not np.isfinite(array).all():
        raise ContainerError(f"layer {layer.name}: {part} holds NaN or infinity")


def _member(arrays, name):
    if name not in arrays:
        raise ContainerError(f"array {name} is missing")
    return arrays[name]


def _layer_from_record(index, record, arrays, configs, version):
    if version == 1 and (record.get("flatten") != FLATTEN or "tile" in record):
        raise ContainerError(f"layer {index}: flatten order {record.get('flatten')!r} is not "
                             f"{FLATTEN!r} (the only one of version 1)")
    planes = []
    for p, plane in enumerate(record["planes"]):
        config = plane["config"]
        if not _is_int(config) or not 0 <= config < len(configs):
            raise ContainerError(f"layer {index} plane {p}: configuration index {config!r} out "
                                 f"of range (the container has {len(configs)})")
        planes.append(Plane(config=config, chunks=plane["chunks"], nin=configs[config].nin,
                            packed=_member(arrays, f"layer{index}.plane{p}")))
        if plane["bits"] != planes[-1].n_bits:
            raise ContainerError(f"layer {index} plane {p}: header says {plane['bits']} bits, "
                                 f"but {plane['chunks']} chunks of nin {configs[config].nin} "
                                 f"are {planes[-1].n_bits}")
    if len(planes) != record["q"]:
        raise ContainerError(f"layer {index}: q is {record['q']} but {len(planes)} planes")
    optional = {part: arrays.get(f"layer{index}.{part}") for part in ("alpha", "weight")}
    bias = _member(arrays, f"layer{index}.bias") if record["bias"] else None
    geometry = {key: record[key] for key in ("stride", "padding") if key in record}
    return Layer(name=record["name"], kind=record["kind"], shape=record["shape"],
                 precision=record["precision"], planes=planes, bias=bias, **optional,
                 **geometry, flatten=record["flatten"], tile=record.get("tile"))


def encode_container(header, arrays):
    """Low-level writer: a ZIP of ``header.json`` and ``.npy`` members plus the checksum trailer.

    No consistency checks (use :meth:`Container.to_bytes`); tests use it to build broken files.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        members = {_HEADER: (json.dumps(header, indent=1, sort_keys=True) + "\n").encode()}
        for name, array in arrays.items():
            npy = io.BytesIO()
            np.lib.format.write_array(npy, np.ascontiguousarray(array), allow_pickle=False)
            members[f"{name}.npy"] = npy.getvalue()
        for name, payload in members.items():
            info = zipfile.ZipInfo(name, date_time=_MEMBER_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, payload, compresslevel=9)
        # The digest covers everything up to itself, including the comment length field.
        zf.comment = _TRAILER + b"0" * _DIGEST_CHARS
    body = buffer.getvalue()[:-_DIGEST_CHARS]
    return body + hashlib.sha256(body).hexdigest().encode("ascii")


#: What NumPy's ``.npy`` header parser raises on hostile text besides ``ValueError``.
_NPY_HEADER_ERRORS = (ValueError, TypeError, SyntaxError, OverflowError, tokenize.TokenError)
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}


def _read_npy(name, payload):
    """One ``.npy`` member, read only once its header parses and its declared shape matches the
    bytes that follow (NumPy would first allocate whatever the header claims)."""
    stream = io.BytesIO(payload)
    try:
        version = np.lib.format.read_magic(stream)
        if version not in _NPY_HEADER_READERS:
            raise ValueError(f"version {version[0]}.{version[1]} is not 1.0 or 2.0")
        with warnings.catch_warnings():  # headers that need Python 2 fix-ups warn first
            warnings.simplefilter("ignore", UserWarning)
            shape, _, dtype = _NPY_HEADER_READERS[version](stream)
    except _NPY_HEADER_ERRORS as error:
        raise ContainerError(f"member {name} is not a .npy array ({error})") from None
    if dtype.hasobject:
        raise ContainerError(f"member {name} holds Python objects, not numbers")
    size, present = math.prod(shape) * dtype.itemsize, len(payload) - stream.tell()
    if size != present:
        raise ContainerError(f"member {name}: its header declares {size} bytes of data "
                             f"(shape {shape}, {dtype}), {present} follow")
    return np.lib.format.read_array(io.BytesIO(payload), allow_pickle=False)


def _decode(data):
    """Check the trailer, then unzip the header and arrays of a container file."""
    if len(data) < len(_TRAILER) + _DIGEST_CHARS or \
            data[-_DIGEST_CHARS - len(_TRAILER):-_DIGEST_CHARS] != _TRAILER:
        raise ContainerError("truncated or not a FleXOR container (no checksum trailer at the "
                             "end of the file)")
    body, stored = data[:-_DIGEST_CHARS], data[-_DIGEST_CHARS:]
    if hashlib.sha256(body).hexdigest().encode("ascii") != stored:
        raise ContainerError("checksum mismatch: the file is corrupted (SHA-256 of its content "
                             "differs from the one stored in it)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
            for info in zf.infolist():
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise ContainerError(f"member {info.filename!r} uses compression method "
                                         f"{info.compress_type}, not stored or deflated")
            if _HEADER not in names:
                raise ContainerError(f"no {_HEADER} member")
            header = json.loads(zf.read(_HEADER).decode("utf-8"))
            arrays = {name[:-4]: _read_npy(name, zf.read(name))
                      for name in names if name.endswith(".npy")}
    except ContainerError:
        raise
    # zlib.error: a damaged deflate stream; NotImplementedError and RuntimeError: members
    # flagged encrypted or patched; RecursionError (a RuntimeError): JSON nested too deeply.
    except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError, NotImplementedError,
            RuntimeError) as error:
        raise ContainerError(f"unreadable archive ({error})") from None
    if not isinstance(header, dict):
        raise ContainerError(f"{_HEADER} is not a JSON object")
    return header, arrays
