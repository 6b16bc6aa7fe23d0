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

A plane is a flat bit-plane (``docs/container.md``): chunk ``j`` is encrypted bits
``j*nin .. j*nin+nin-1`` of the flat stream, packed eight to a byte LSB first, exactly
``chunks * nin`` bits with zero padding in the last byte, ``chunks = ceil(n / nout)`` for a layer
of ``n`` weights. Every problem with a file raises :class:`ContainerError` (a ``ValueError``)
with one line that names the file and what is wrong.

This module holds the data classes and their consistency checks; :mod:`flexor.header` the
``header.json`` schema and the checks of its records, :mod:`flexor.archive` the file's ZIP,
``.npy`` members and checksum, :mod:`flexor.topology` the topology operations.
"""

import math
from pathlib import Path

import numpy as np

from .archive import (MAX_ARRAY_BYTES, MAX_FILE_BYTES, MAX_HEADER_BYTES, Archive, digest,
                      encode_container)
from .errors import ContainerError
from .golden import pack_bits, unpack_bits
from .header import (FLATTEN, FORMAT, SCHEMA, TOPOLOGY_OPS, VERSION, VERSIONS, Key,
                     check_integer_record, check_layer_record, check_record, config_from_record,
                     is_int, layer_members)
from .input_files import read_input_file
from .parameters import check_int
from .stream import MAX_NIN  # the decryptor's limit, which a container must keep
from .topology import ACTIVATION_BITS, BATCHNORM_TENSORS, MAX_ACTIVATION, OPS, is_shape
from .weight_order import check_order, chunk_count
from .xor_config import XorConfig

__all__ = ["Container", "Layer", "Plane", "IntegerStep", "ContainerError", "FORMAT", "VERSION",
           "VERSIONS", "MAX_NIN", "MAX_ACTIVATION", "MAX_FILE_BYTES", "MAX_HEADER_BYTES",
           "MAX_ARRAY_BYTES", "SCHEMA", "Key", "TOPOLOGY_OPS", "encode_container",
           "SHIPPED_WEIGHTS", "DIGITS_WEIGHTS", "FMNIST_WEIGHTS"]

#: The shipped containers, found from the source tree (not the working directory): the digits
#: MLP, default input of the decryptor flow, and the Fashion-MNIST MLP with its integer program,
#: default input of the inference engine.
SHIPPED_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
DIGITS_WEIGHTS = SHIPPED_WEIGHTS / "digits_mlp_0p8.npz"
FMNIST_WEIGHTS = SHIPPED_WEIGHTS / "fmnist_mlp.npz"
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
        if kind == "linear" and (self.stride, self.padding) != (1, 0):
            raise ContainerError(f"layer {name}: a linear layer has no stride or padding")
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
        topology = check_record("topology", self.topology, SCHEMA["topology"])
        shape = topology["input_shape"]
        if not is_shape(shape):
            raise ContainerError(f"topology input_shape must be a list of positive integers, "
                                 f"not {shape!r}")
        shape, stack, used = tuple(shape), [], []
        _check_activation("input", shape)
        for position, op in enumerate(topology["ops"]):
            name = op.get("op") if isinstance(op, dict) else None
            if not isinstance(name, str) or name not in OPS:
                raise ContainerError(f"topology op {position}: unknown operation {name!r}")
            check_record(f"topology op {position} ({name})", op,
                          {"op": Key(str), **SCHEMA[f"op {name}"]})
            if OPS[name].layer:
                index = op["layer"]
                if not is_int(index) or not 0 <= index < len(self.layers):
                    raise ContainerError(f"topology op {position}: layer index {index!r} out "
                                         f"of range (the container has {len(self.layers)})")
                if self.layers[index].kind != name:
                    raise ContainerError(f"topology op {position}: layer {index} is a "
                                         f"{self.layers[index].kind}, not a {name}")
                used.append(index)
            # The forward pass of flexor.inference, run on shapes only, so that a container
            # that loads also runs.
            shape = OPS[name].shape(_OpCheck(self, position, op, shape), op, shape, stack)
            _check_activation(f"topology op {position} ({name})", shape)
        if sorted(used) != list(range(len(self.layers))):
            raise ContainerError(f"topology must use every layer exactly once, not {used}")
        if len(shape) != 1:
            raise ContainerError(f"topology must end in one vector of logits per sample, not "
                                 f"shape {shape}")

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
        if (self.tensors[f"{name}.var"] < 0).any():
            raise ContainerError(f"tensor {name}.var holds a negative variance")
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
                    any(OPS[op["op"]].since > 1 for op in self.topology["ops"]))
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
        return digest(self.to_bytes())

    @classmethod
    def load(cls, path):
        """Read and check a container file; every problem raises one :class:`ContainerError`.

        The file must be a regular file of at most :data:`MAX_FILE_BYTES` (a FIFO or a device
        is refused, not read).
        """
        try:
            data = read_input_file(path, limit=MAX_FILE_BYTES)
        except ValueError as error:
            raise ContainerError(str(error)) from None
        except MemoryError:
            raise ContainerError(f"{path}: not enough memory to read it") from None
        return cls.from_bytes(data, origin=path)

    @classmethod
    def from_bytes(cls, data, origin="<bytes>"):
        """Parse container bytes (see :meth:`load`).

        The loaded container is exactly what its writer wrote or the file is refused: one
        ``header.json`` without duplicate keys whose every record matches :data:`SCHEMA`, and
        exactly the members the header names, each once, each of the dtype and shape the header
        implies (checked before it is inflated).
        """
        try:
            with Archive(data) as archive:
                return cls._from_archive(archive)
        except ContainerError as error:
            raise ContainerError(f"{origin}: {error}") from None
        except MemoryError:
            raise ContainerError(f"{origin}: not enough memory to load it") from None

    @classmethod
    def _from_archive(cls, archive):
        header = archive.header()
        if header.get("format") != FORMAT:
            raise ContainerError(f"not a FleXOR container (format {header.get('format')!r})")
        version = header.get("version")
        if not is_int(version) or version not in VERSIONS:
            raise ContainerError(f"unsupported container version {version!r} (this code reads "
                                 f"versions {', '.join(map(str, VERSIONS))})")
        check_record("header", header, SCHEMA["header"], version)
        configs = [config_from_record(i, record, version)
                   for i, record in enumerate(header["configs"])]
        records = [check_layer_record(i, record, configs, version)
                   for i, record in enumerate(header["layers"])]
        names = header["tensors"]
        for name in names:
            if not isinstance(name, str) or not name:
                raise ContainerError(f"tensors must be a list of non-empty names, not {name!r}")
        if len(set(names)) != len(names):
            raise ContainerError(f"tensors names a tensor twice: {names!r}")
        steps = check_integer_record(header.get("integer"), records, version)
        archive.check_members([member for i, record in enumerate(records)
                               for member in layer_members(i, record)] +
                              [f"tensor.{name}" for name in names] +
                              [f"integer{s}.{part}" for s in range(len(steps or ()))
                               for part in ("mult", "offset")])
        layers = [_layer_from_record(i, record, configs, archive)
                  for i, record in enumerate(records)]
        tensors = {name: archive.array(f"tensor.{name}", np.float32, (None,)) for name in names}
        integer = None if steps is None else [_step_from_record(s, step, layers, archive)
                                              for s, step in enumerate(steps)]
        metadata = check_record("metadata", header["metadata"], SCHEMA["metadata"], version)
        correct, samples = metadata.get("correct"), metadata.get("test_samples")
        if correct is not None and samples is not None and not 0 <= correct <= samples:
            raise ContainerError(f"metadata: correct {correct} is not within 0..test_samples "
                                 f"({samples})")
        container = cls(configs=configs, layers=layers, topology=header["topology"],
                        tensors=tensors, metadata=metadata, integer=integer)
        if container.version != version:
            raise ContainerError(f"version {version} file, but its content is that of "
                                 f"version {container.version}")
        return container


class _OpCheck:
    """What a shape rule of :data:`flexor.topology.OPS` reports with: ``ContainerError`` lines
    that name the operation and its input shape."""

    def __init__(self, container, position, op, shape):
        self.container, self.position, self.op, self.shape = container, position, op, shape
        self.where = f"topology op {position} ({op['op']})"

    def need(self, condition, what):
        if not condition:
            raise ContainerError(f"{self.where}: {what} (input shape {self.shape})")

    def parameter(self, key, minimum):
        value = self.op[key]
        self.need(is_int(value) and value >= minimum, f"{key} must be an integer >= {minimum}, "
                  f"not {value!r}")
        return value

    def activation(self, label, shape):
        _check_activation(f"{self.where} {label}", shape)

    def batchnorm(self, name):
        return self.container._check_batchnorm(self.position, name)


def _check_activation(where, shape):
    if math.prod(shape) > MAX_ACTIVATION:
        raise ContainerError(f"{where}: an activation of shape {shape} has more than "
                             f"{MAX_ACTIVATION} values per sample")


def _check_bits(name, value):
    if not is_int(value) or value not in ACTIVATION_BITS:
        raise ContainerError(f"{name} must be an integer in 1..8, not {value!r}")
    return value


def _step_from_record(index, step, layers, archive):
    layer = layers[step["layer"]]
    return IntegerStep(
        layer=step["layer"], shift=step["shift"], in_bits=step["in_bits"],
        out_bits=step["out_bits"],
        mult=archive.array(f"integer{index}.mult", np.int16, (layer.q, layer.shape[0])),
        offset=archive.array(f"integer{index}.offset", np.int64, (layer.shape[0],)))


def _check_int(name, value, *, minimum=1):
    # A bad field of a container is a ContainerError whatever its kind.
    try:
        return check_int(name, value, minimum=minimum)
    except (TypeError, ValueError) as error:
        raise ContainerError(str(error)) from None


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


def _layer_from_record(index, record, configs, archive):
    shape, planes = record["shape"], []
    for p, plane in enumerate(record["planes"]):
        packed = archive.array(f"layer{index}.plane{p}", np.uint8, (-(-plane["bits"] // 8),),
                               why=f"ceil(n/Nout)*Nin = {plane['bits']} bits")
        planes.append(Plane(config=plane["config"], chunks=plane["chunks"],
                            nin=configs[plane["config"]].nin, packed=packed))
    arrays = {}
    if record["precision"] == "xor":
        arrays["alpha"] = archive.array(f"layer{index}.alpha", np.float32,
                                        (len(planes), shape[0]))
    else:
        arrays["weight"] = archive.array(f"layer{index}.weight", np.float32, tuple(shape))
    if record["bias"]:
        arrays["bias"] = archive.array(f"layer{index}.bias", np.float32, (shape[0],))
    geometry = {key: record[key] for key in ("stride", "padding") if key in record}
    return Layer(name=record["name"], kind=record["kind"], shape=shape,
                 precision=record["precision"], planes=planes, **arrays, **geometry,
                 flatten=record["flatten"], tile=record.get("tile"))
