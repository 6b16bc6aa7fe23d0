"""The container's ``header.json``: its schema and the checks of its records.

:data:`SCHEMA` gives every key each record may hold with its exact JSON types and the first
format version that has it (``docs/container.md``); the functions here check one record each,
before any array is read, and raise one :class:`~flexor.errors.ContainerError` line naming the
record. What the records mean together is :class:`flexor.container.Container`'s business.
"""

import math
import reprlib
import warnings

import numpy as np

from .errors import ContainerError
from .stream import MAX_NIN  # the decryptor's limit, which a container must keep
from .topology import OPS, is_shape
from .xor_config import DENSE, RankWarning, XorConfig

__all__ = ["FORMAT", "VERSION", "VERSIONS", "FLATTEN", "Key", "OTHER_KEYS", "SCHEMA",
           "TOPOLOGY_OPS", "LAYER_KINDS", "is_int", "check_record", "config_from_record",
           "check_layer_record", "layer_members", "check_integer_record"]

FORMAT = "flexor-container"
#: The version written when the content needs it (a tiled weight order, a ``quantize`` op or an
#: integer program); content that version 1 can express is written as version 1, byte for byte
#: as before.
VERSION = 2
#: Every version this code reads.
VERSIONS = (1, 2)
#: Weight order of version 1 (the only one it has): PyTorch's row-major ``[out, in, kh, kw]``.
FLATTEN = "row-major"


class Key:
    """One key of a ``header.json`` record: its JSON types, whether it may be left out and the
    first format version that has it.

    ``int`` is an integer (never ``true`` or ``1.0``), ``float`` any finite number, ``None``
    JSON ``null``; the other types are JSON's own.
    """

    def __init__(self, *types, optional=False, since=1):
        self.types, self.optional, self.since = types, optional, since


#: Keys of a record that also takes keys it does not list (``metadata``: free JSON).
OTHER_KEYS = "*"

#: The schema of ``header.json``: for each record, every key it may hold with its exact type.
#: ``layer <kind>`` and ``op <name>`` add to ``layer`` and ``{"op": ...}`` the keys of one kind
#: of layer or one topology operation. Any other key is refused; a new key is one entry here.
SCHEMA = {
    "header": {"format": Key(str), "version": Key(int), "configs": Key(list),
               "layers": Key(list), "topology": Key(dict), "tensors": Key(list),
               "metadata": Key(dict), "integer": Key(dict, None, since=2)},
    "config": {"nin": Key(int), "nout": Key(int), "ntap": Key(int, str, None),
               "seed": Key(int, None), "rank": Key(int), "matrix": Key(list)},
    "layer": {"name": Key(str), "kind": Key(str), "shape": Key(list), "flatten": Key(str),
              "tile": Key(int, optional=True, since=2), "precision": Key(str), "q": Key(int),
              "planes": Key(list), "bias": Key(bool)},
    "layer linear": {},
    "layer conv2d": {"stride": Key(int), "padding": Key(int)},
    "plane": {"config": Key(int), "chunks": Key(int), "bits": Key(int)},
    "topology": {"input_shape": Key(list), "ops": Key(list)},
    **{f"op {name}": {key: Key(*types) for key, types in op.keys.items()}
       for name, op in OPS.items()},
    # The integer program (docs/integer-program.md); its arrays are members integer{s}.mult
    # and integer{s}.offset.
    "integer": {"steps": Key(list)},
    "integer step": {"layer": Key(int), "shift": Key(int), "in_bits": Key(int),
                     "out_bits": Key(int, None)},
    # What tools read from the training metadata; the rest is free.
    "metadata": {"accuracy": Key(float, optional=True), "correct": Key(int, optional=True),
                 "test_samples": Key(int, optional=True), OTHER_KEYS: Key()},
}
#: Topology operations and the keys each one needs besides ``op``.
TOPOLOGY_OPS = {record[3:]: tuple(keys) for record, keys in SCHEMA.items()
                if record.startswith("op ")}
LAYER_KINDS = tuple(record[6:] for record in SCHEMA if record.startswith("layer "))


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               list: "a list", dict: "an object", None: "null"}


def _has_type(value, kind):
    if kind is None:
        return value is None
    if kind is float:
        return type(value) in (int, float) and math.isfinite(value)
    return type(value) is kind


def check_record(where, record, schema, version=VERSION):
    """Check one JSON record against its ``schema`` (a :data:`SCHEMA` entry); return it."""
    if not isinstance(record, dict):
        raise ContainerError(f"{where} must be a JSON object, not {reprlib.repr(record)}")
    for key, value in record.items():
        spec = schema.get(key)
        if spec is None or spec.since > version:
            if OTHER_KEYS in schema:
                continue
            raise ContainerError(f"{where}: unknown key {key!r}")
        if not any(_has_type(value, kind) for kind in spec.types):
            kinds = " or ".join(_TYPE_NAMES[kind] for kind in spec.types)
            raise ContainerError(f"{where}: {key} must be {kinds}, not {reprlib.repr(value)}")
    missing = [key for key, spec in schema.items() if key != OTHER_KEYS and not spec.optional
               and spec.since <= version and key not in record]
    if missing:
        raise ContainerError(f"{where} is missing {', '.join(map(repr, missing))}")
    return record


def config_from_record(index, record, version):
    """A configuration record as an :class:`XorConfig`: its matrix, and the rank and (when it
    names a seed) the generator's matrix agree with it."""
    where = f"configuration {index}"
    check_record(where, record, SCHEMA["config"], version)
    ntap, seed = record["ntap"], record["seed"]
    if isinstance(ntap, str) and ntap != DENSE:
        raise ContainerError(f"{where}: ntap must be an integer, {DENSE!r} or null, not {ntap!r}")
    try:
        config = XorConfig.from_dict(record)
    except (TypeError, ValueError) as error:
        raise ContainerError(f"{where}: {error}") from None
    if config.nin > MAX_NIN:
        raise ContainerError(f"{where}: nin {config.nin} > {MAX_NIN}, the decryptor's limit")
    if record["rank"] != config.rank:
        raise ContainerError(f"{where}: rank is {record['rank']} but the matrix has GF(2) rank "
                             f"{config.rank}")
    if seed is not None:
        if ntap is None:
            raise ContainerError(f"{where}: a seed ({seed}) needs the ntap it was drawn with")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RankWarning)
                drawn = XorConfig.random(config.nin, config.nout, ntap, seed)
        except (TypeError, ValueError) as error:
            raise ContainerError(f"{where}: {error}") from None
        if not np.array_equal(drawn.matrix, config.matrix):
            raise ContainerError(f"{where}: the matrix is not the one XorConfig.random("
                                 f"{config.nin}, {config.nout}, {ntap!r}, seed={seed}) gives")
    return config


def check_layer_record(index, record, configs, version):
    """Check a layer record and its plane records before any of its arrays is read."""
    where = f"layer {index}"
    kind = record.get("kind") if isinstance(record, dict) else None
    if kind not in LAYER_KINDS:
        raise ContainerError(f"{where}: kind must be {' or '.join(map(repr, LAYER_KINDS))}, "
                             f"not {reprlib.repr(kind)}")
    check_record(where, record, {**SCHEMA["layer"], **SCHEMA[f"layer {kind}"]}, version)
    if version == 1 and record["flatten"] != FLATTEN:
        raise ContainerError(f"{where}: flatten order {record['flatten']!r} is not {FLATTEN!r} "
                             f"(the only one of version 1)")
    rank = 2 if kind == "linear" else 4
    if not is_shape(record["shape"]) or len(record["shape"]) != rank:
        raise ContainerError(f"{where}: a {kind} shape is {rank} positive integers, not "
                             f"{reprlib.repr(record['shape'])}")
    if record["precision"] not in ("xor", "full"):
        raise ContainerError(f"{where}: precision must be 'xor' or 'full', not "
                             f"{record['precision']!r}")
    for p, plane in enumerate(record["planes"]):
        check_record(f"{where} plane {p}", plane, SCHEMA["plane"], version)
        config = plane["config"]
        if not 0 <= config < len(configs):
            raise ContainerError(f"{where} plane {p}: configuration index {config!r} out "
                                 f"of range (the container has {len(configs)})")
        if plane["chunks"] < 1:
            raise ContainerError(f"{where} plane {p}: chunks must be >= 1, not "
                                 f"{plane['chunks']}")
        nin = configs[config].nin
        if plane["bits"] != plane["chunks"] * nin:
            raise ContainerError(f"{where} plane {p}: header says {plane['bits']} bits, but "
                                 f"{plane['chunks']} chunks of nin {nin} are "
                                 f"{plane['chunks'] * nin}")
    if len(record["planes"]) != record["q"]:
        raise ContainerError(f"{where}: q is {record['q']} but {len(record['planes'])} planes")
    return record


def layer_members(index, record):
    """Names of the array members a (checked) layer record says the archive holds."""
    names = [f"layer{index}.plane{p}" for p in range(len(record["planes"]))]
    names.append(f"layer{index}.{'alpha' if record['precision'] == 'xor' else 'weight'}")
    if record["bias"]:
        names.append(f"layer{index}.bias")
    return names


def check_integer_record(section, records, version):
    """The checked step records of a header's ``integer`` section (``None`` when it is null or,
    in version 1, absent); each names an encrypted layer, whose shape sizes its arrays."""
    if section is None:
        return None
    check_record("integer", section, SCHEMA["integer"], version)
    steps = section["steps"]
    for s, step in enumerate(steps):
        where = f"integer step {s}"
        check_record(where, step, SCHEMA["integer step"], version)
        if not 0 <= step["layer"] < len(records) or \
                records[step["layer"]]["precision"] != "xor":
            raise ContainerError(f"{where}: layer {step['layer']} is not an encrypted layer of "
                                 f"the container")
    return steps
