"""Fuzzing the container loader: every hostile file loads into a usable network or fails cleanly.

The property, for every input: ``Container.from_bytes`` either returns a container that
``evaluate``, ``layer_macs`` and a save/load round trip accept, or raises ``ContainerError`` with
one line that starts with the file's name. Any other exception (or a traceback-worthy error from
the loaded object) fails the test.

Inputs start from a small valid container (``container_factory.random_container``, every layer
kind and topology operation) and are damaged in five ways: truncation, raw byte flips (caught by
the checksum), byte flips with the checksum recomputed (so the ZIP, ``.npy`` and JSON parsers see
them), mutated ``header.json`` values and mutated arrays (re-encoded and re-signed so that the
consistency checks, not the checksum, must catch them), and hand-made archives (bad JSON, bad
members). Hypothesis runs derandomized: the same examples every run; a failure prints the
example and its ``@reproduce_failure`` blob.
"""

import copy
import hashlib
import io
import json
import re
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from container_factory import random_container
from flexor import XorConfig
from flexor.container import Container, ContainerError, encode_container
from flexor.inference import evaluate, layer_macs
from fuzzing import fuzz_settings, note

ORIGIN = "fuzz.npz"
BASE = random_container(21)
BASE_BYTES = BASE.to_bytes()
BASE_HEADER = BASE.header()
BASE_ARRAYS = BASE.arrays()
TRAILER = b"flexor-sha256:"
DIGEST = 64

#: Examples per test in the fast tier; the slow variants run ``SLOW_FACTOR`` times as many.
EXAMPLES = 150
SLOW_FACTOR = 20
FAST = fuzz_settings(EXAMPLES)
SLOW = fuzz_settings(EXAMPLES * SLOW_FACTOR)


def check_outcome(data):
    """Load ``data``: a clean one-line ``ContainerError``, or a container that works.

    Returns the error message or the container.
    """
    try:
        container = Container.from_bytes(data, origin=ORIGIN)
    except ContainerError as error:
        message = str(error)
        assert message.startswith(f"{ORIGIN}: ") and "\n" not in message, repr(message)
        note(f"refused: {re.sub(r'[0-9]+', 'N', message[len(ORIGIN) + 2:])[:40]}")
        return message
    shape = tuple(container.topology["input_shape"])
    inputs = np.random.default_rng(0).normal(size=(3,) + shape).astype(np.float32)
    result = evaluate(container, data=(inputs, np.zeros(3, dtype=np.int64)))
    assert result.predictions.shape == (3,)
    assert len(layer_macs(container)) == len(container.layers)
    data = container.to_bytes()
    assert Container.from_bytes(data).to_bytes() == data
    note("loaded and evaluated")
    return container


def resign(data):
    """``data`` with its trailing digest replaced by the SHA-256 of everything before it."""
    body = bytes(data[:-DIGEST])
    return body + hashlib.sha256(body).hexdigest().encode("ascii")


def signed_zip(members):
    """A container-shaped archive of raw ``{name: bytes}`` members with a valid checksum
    (an independent writer, so the members can be anything at all)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
        zf.comment = TRAILER + b"0" * DIGEST
    return resign(buffer.getvalue())


def npy(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def base_members():
    header = (json.dumps(BASE_HEADER, indent=1, sort_keys=True) + "\n").encode()
    return {"header.json": header, **{f"{name}.npy": npy(np.ascontiguousarray(array))
                                      for name, array in BASE_ARRAYS.items()}}


def test_the_base_container_is_valid():
    assert isinstance(check_outcome(BASE_BYTES), Container)
    assert isinstance(check_outcome(signed_zip(base_members())), Container)


# -- bytes ------------------------------------------------------------------------------------

@FAST
@given(st.integers(0, len(BASE_BYTES) - 1), st.booleans())
def test_truncation_is_refused(length, from_front):
    data = BASE_BYTES[len(BASE_BYTES) - length:] if from_front else BASE_BYTES[:length]
    message = check_outcome(data)
    assert "checksum" in message or "truncated" in message, message


flips = st.lists(st.tuples(st.integers(0, len(BASE_BYTES) - 1), st.integers(1, 255)),
                 min_size=1, max_size=8)


def apply_flips(data, changes):
    data = bytearray(data)
    for position, mask in changes:
        data[position] ^= mask
    return data


@FAST
@given(flips)
def test_flipped_bytes_fail_the_checksum(changes):
    data = apply_flips(BASE_BYTES, changes)
    if data == BASE_BYTES:  # two flips of one byte that cancel
        return
    message = check_outcome(bytes(data))
    assert "checksum" in message or "truncated" in message, message


@FAST
@given(st.lists(st.tuples(st.integers(0, len(BASE_BYTES) - DIGEST - 1), st.integers(1, 255)),
                min_size=1, max_size=8))
def test_flipped_bytes_behind_a_valid_checksum(changes):
    """Flips the ZIP, ``.npy`` and JSON layers must catch (or that change nothing that matters,
    like a member's date)."""
    check_outcome(resign(apply_flips(BASE_BYTES, changes)))


# -- header.json ------------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
           | st.sampled_from([0, -1, 1, 2 ** 31, 2 ** 32, 2 ** 63, -2 ** 63, 10 ** 30, 1e300,
                              "", "xor", "full", "linear", "conv2d", "row-major", "relu"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                           max_leaves=8)


@st.composite
def nudged(draw, value):
    """A value near ``value`` (off by one, negated, scaled, of another type) or any JSON."""
    if isinstance(value, int) and not isinstance(value, bool):
        choices = [value + 1, value - 1, -value, 0, value * 8, value * 2 ** 40, float(value),
                   str(value), [value], True]
    elif isinstance(value, str):
        choices = [value.upper(), value + "x", "", [value], 1]
    elif isinstance(value, list):
        choices = [value[:-1], value + value[-1:], value[::-1], {}, []] if value else [[0], {}]
    else:
        choices = [None]
    return draw(st.sampled_from(choices) | json_values)


@st.composite
def mutated(draw, value):
    """``value`` (JSON) with one change at a random depth: replace, delete or duplicate."""
    if isinstance(value, (dict, list)) and value and draw(st.integers(0, 4)) > 0:
        keys = sorted(value) if isinstance(value, dict) else list(range(len(value)))
        key = draw(st.sampled_from(keys))
        value = copy.copy(value)
        action = draw(st.sampled_from(["descend"] * 4 + ["delete", "duplicate"]))
        if action == "delete":
            del value[key]
        elif action == "duplicate" and isinstance(value, list):
            value.insert(key, copy.deepcopy(value[key]))
        elif action == "duplicate":
            value[draw(st.text(max_size=6))] = copy.deepcopy(value[key])
        else:
            value[key] = draw(mutated(value[key]))
        return value
    return draw(nudged(value))


def header_paths(value, path=()):
    """Every path into the header (matrix entries only for the first row, to keep the mix)."""
    yield path
    if isinstance(value, dict):
        for key in sorted(value):
            yield from header_paths(value[key], path + (key,))
    elif isinstance(value, list):
        rows = value[:1] if path and path[-1] == "matrix" else value
        for index, item in enumerate(rows):
            yield from header_paths(item, path + (index,))


PATHS = list(header_paths(BASE_HEADER))[1:]


@st.composite
def mutated_header(draw):
    """The base header with one to three changes, each at a path drawn uniformly (so the
    deep fields, like a plane's chunk count, are hit as often as the top-level ones)."""
    header = copy.deepcopy(BASE_HEADER)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent = header
        try:
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = draw(mutated(parent[path[-1]]))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed or retyped this path
    return header


HEADER_EXAMPLES = [
    # The brief's list, as explicit examples that always run: counts, indices, shapes, types.
    {"version": 2}, {"format": "flexor-container-2"}, {"version": "1"}, {"configs": {}},
    {"layers": [{}]}, {"layers": None}, {"topology": []}, {"tensors": "bn0.mean"},
    {"metadata": [1]},
]


def _set(header, path, value):
    parent = header
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return header


PLANE = ("layers", 3, "planes", 0)
TARGETED = [
    (PLANE + ("chunks",), -4), (PLANE + ("chunks",), 2 ** 64), (PLANE + ("chunks",), 0),
    (PLANE + ("bits",), 4 * 8 + 8), (PLANE + ("config",), 2), (PLANE + ("config",), True),
    (PLANE + ("config",), 0.0), (("layers", 3, "shape"), [5, 9]), (("layers", 3, "shape"), [5]),
    (("layers", 3, "q"), 2), (("layers", 1, "stride"), 0), (("layers", 1, "padding"), -1),
    (("layers", 2, "padding"), 10 ** 9), (("layers", 2, "stride"), 10 ** 9),
    (("layers", 0, "kind"), "linear"), (("topology", "input_shape"), [37]),
    (("topology", "input_shape"), [6, 6]), (("topology", "ops", 0, "shape"), [6, 6]),
    (("topology", "ops", 0, "shape"), [-1, 6, 6]), (("topology", "ops", 0, "shape"), []),
    (("topology", "ops", 2, "eps"), "small"), (("topology", "ops", 2, "eps"), -1.0),
    (("topology", "ops", 2, "name"), ["bn0"]), (("topology", "ops", 7, "stride"), 0),
    (("topology", "ops", 7, "pad_channels"), -3), (("topology", "ops", 9, "kernel"), 0),
    (("topology", "ops", 9, "kernel"), 99), (("topology", "ops", 4), {"op": "relu"}),
    (("topology", "ops", 10), {"op": "flatten"}), (("topology", "ops", 1, "layer"), True),
    (("configs", 0, "nout"), 12), (("configs", 1, "matrix"), [[1] * 12] * 10 + [[0] * 12]),
    (("configs", 1, "matrix"), [[1] * 65] * 10), (("configs", 0, "matrix"), [[2] * 8] * 10),
]


@pytest.mark.parametrize("path, value", TARGETED, ids=[f"{'.'.join(map(str, p))}={v!r:.20}"
                                                       for p, v in TARGETED])
def test_targeted_header_fields(path, value):
    header = _set(copy.deepcopy(BASE_HEADER), path, value)
    check_outcome(encode_container(header, BASE_ARRAYS))


@pytest.mark.parametrize("changes", HEADER_EXAMPLES)
def test_top_level_header_fields(changes):
    check_outcome(encode_container({**BASE_HEADER, **changes}, BASE_ARRAYS))


def _header_case(header):
    check_outcome(encode_container(header, BASE_ARRAYS))


@FAST
@given(mutated_header())
def test_mutated_header_fields(header):
    _header_case(header)


# -- arrays -----------------------------------------------------------------------------------

DTYPES = ["uint8", "int8", "uint16", "int64", "float16", "float32", "float64", "bool",
          "complex64", "<U2", ">f4", ">u2"]


@st.composite
def random_array(draw):
    shape = tuple(draw(st.lists(st.integers(0, 6), max_size=3)))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    values = rng.integers(0, 256, size=shape)
    return values.astype(str).astype(dtype) if dtype.kind == "U" else values.astype(dtype)


@st.composite
def mutated_array(draw, array):
    action = draw(st.sampled_from(["random", "cast", "flatten", "add_axis", "cut", "append",
                                   "non_finite", "bytes"]))
    if action == "random":
        return draw(random_array())
    if action == "cast":
        dtype = draw(st.sampled_from(DTYPES[:9]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lossy casts (complex, NaN to int) are the point
            return array.astype(dtype)
    if action == "flatten":
        return array.reshape(-1)
    if action == "add_axis":
        return array[None]
    if action == "cut":
        return array.reshape(-1)[:draw(st.integers(0, max(array.size - 1, 0)))]
    if action == "append":
        return np.append(array.reshape(-1), array.reshape(-1)[:1])
    if action == "non_finite" and array.dtype.kind == "f" and array.size:
        array = array.copy()
        array.reshape(-1)[draw(st.integers(0, array.size - 1))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf]))
        return array
    # Random content of the same shape and dtype (in planes: nonzero padding bits).
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    return rng.integers(0, 256, size=array.shape).astype(array.dtype)


@st.composite
def mutated_arrays(draw):
    arrays = dict(BASE_ARRAYS)
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(sorted(arrays) + ["layer9.plane0", "tensor.extra"]))
        if name in arrays and draw(st.integers(0, 5)) == 0:
            del arrays[name]
        else:
            arrays[name] = draw(mutated_array(arrays.get(name, np.zeros(3, np.float32))))
    return arrays


@FAST
@given(mutated_arrays())
def test_mutated_arrays(arrays):
    check_outcome(encode_container(BASE_HEADER, arrays))


# -- hand-made archives -----------------------------------------------------------------------

HEADER_TEXT = base_members()["header.json"]


@st.composite
def edited_bytes(draw, data):
    """``data`` with a few byte-level insertions, deletions and replacements."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = draw(st.binary(min_size=1, max_size=4) | st.sampled_from(
            [b"{", b"}", b"[", b"]", b",", b'"', b"-", b"0", b"1e999", b"NaN", b"\xff"]))
        if action == "insert":
            data[position:position] = chunk
        elif action == "delete":
            del data[position:position + len(chunk)]
        else:
            data[position:position + len(chunk)] = chunk
    return bytes(data)


WEIRD_HEADERS = [b"", b"null", b"[]", b"1", b'"x"', b"\xff\xfe", b"[" * 100000,
                 b'{"a":' * 100000, b"1" * 5000, b'{"format": "flexor-container", "version": 1}',
                 HEADER_TEXT.replace(b'"version": 1', b'"version": 1.0'),
                 HEADER_TEXT.replace(b'"version": 1', b'"version": true'),
                 HEADER_TEXT.decode().encode("utf-16")]


@pytest.mark.parametrize("text", WEIRD_HEADERS, ids=lambda text: repr(text[:12]))
def test_weird_header_json(text):
    check_outcome(signed_zip({**base_members(), "header.json": text}))


@FAST
@given(st.data())
def test_edited_members(data):
    """Byte-level edits of one member (``header.json`` text or an ``.npy`` file), stored with
    valid ZIP CRCs and checksum, so only the JSON, ``.npy`` and consistency checks can object."""
    members = base_members()
    name = data.draw(st.sampled_from(sorted(members)))
    if name == "header.json":
        members[name] = data.draw(edited_bytes(members[name]))
    else:  # keep most edits inside the .npy header (the first ~128 bytes), where parsing is
        members[name] = data.draw(edited_bytes(members[name][:128])) + members[name][128:]
    check_outcome(signed_zip(members))


@pytest.mark.parametrize("change", [
    {"layer3.plane0.npy": npy(np.array([object()]))},        # a pickled object array
    {"layer3.plane0.npy": b"\x93NUMPY\x01\x00"},             # a cut .npy header
    {"layer3.plane0.npy": npy(np.asfortranarray(np.zeros((2, 2), np.uint8)))},
    {"layer1.alpha.npy": npy(np.asfortranarray(BASE_ARRAYS["layer1.alpha"]))},
    {"layer3.plane0.npy": npy(np.zeros(4, dtype=[("a", "u1")]))},  # a structured dtype
    {"header.json/": b""},                                   # a directory entry
    {"layer3.plane0": b"not an npy, ignored"},
    {"../../etc/passwd.npy": npy(np.zeros(1))},
], ids=["object", "cut-npy", "fortran-plane", "fortran-alpha", "structured", "dir", "other",
        "path"])
def test_odd_members(change):
    check_outcome(signed_zip({**base_members(), **change}))


def test_duplicate_member_names():
    members = base_members()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("header.json", b"[]")
        zf.comment = TRAILER + b"0" * DIGEST
    check_outcome(resign(buffer.getvalue()))


# -- slow tier --------------------------------------------------------------------------------

@pytest.mark.slow
@SLOW
@given(mutated_header())
def test_mutated_header_fields_long(header):
    _header_case(header)


@pytest.mark.slow
@SLOW
@given(mutated_arrays())
def test_mutated_arrays_long(arrays):
    check_outcome(encode_container(BASE_HEADER, arrays))


# -- re-signed containers that must not load as another network --------------------------------
#
# Each of these files is well formed and correctly signed, but its header and members disagree
# or break the schema; the loader used to take them (the last duplicate winning, extra members
# ignored, loose types coerced) and load a network its writer never wrote.

SEEDED = Container(configs=[XorConfig.random(8, 10, 2, seed=5)] + BASE.configs[1:],
                   layers=BASE.layers, topology=BASE.topology, tensors=BASE.tensors)


def refused(data, fragment):
    outcome = check_outcome(data)
    assert isinstance(outcome, str), "loaded, but must be refused"
    assert fragment in outcome, outcome


def _changed(path, value):
    def change(header, arrays):
        _set(header, path, value)
    return change


def _add_key(path):
    def change(header, arrays):
        parent = header
        for key in path:
            parent = parent[key]
        parent["extra"] = 1
    return change


def _array(name, edit):
    def change(header, arrays):
        arrays[name] = edit(np.array(arrays[name]))
    return change


def _negative_var(var):
    var[1] = -0.25
    return var


RESIGNED = {
    # name: (base container, change of (header, arrays), fragment of the refusal)
    "bias-member-not-in-header": (BASE, lambda h, a: a.update(
        {"layer3.bias": np.ones(5, np.float32)}), "'layer3.bias.npy' is not named"),
    "q-true": (BASE, _changed(("layers", 3, "q"), True), "q must be an integer"),
    "version-float": (BASE, _changed(("version",), 1.0), "unsupported container version 1.0"),
    "bits-float": (BASE, _changed(PLANE + ("bits",), 40.0), "bits must be an integer"),
    "bias-yes": (BASE, _changed(("layers", 4, "bias"), "yes"), "bias must be true or false"),
    "rank-wrong": (BASE, _changed(("configs", 0, "rank"), 3), "rank is 3"),
    "rank-string": (BASE, _changed(("configs", 0, "rank"), "7"), "rank must be an integer"),
    "stride-on-linear": (BASE, _changed(("layers", 3, "stride"), 2), "unknown key 'stride'"),
    "padding-on-linear": (BASE, _changed(("layers", 4, "padding"), 0), "unknown key 'padding'"),
    "unknown-top-key": (BASE, _add_key(()), "header: unknown key 'extra'"),
    "unknown-config-key": (BASE, _add_key(("configs", 0)), "unknown key 'extra'"),
    "unknown-layer-key": (BASE, _add_key(("layers", 0)), "unknown key 'extra'"),
    "unknown-plane-key": (BASE, _add_key(PLANE), "unknown key 'extra'"),
    "unknown-topology-key": (BASE, _add_key(("topology",)), "unknown key 'extra'"),
    "unknown-op-key": (BASE, _add_key(("topology", "ops", 3)), "unknown key 'extra'"),
    "metadata-correct-float": (BASE, _changed(("metadata", "correct"), 3.0),
                               "correct must be an integer"),
    "tensor-named-twice": (BASE, lambda h, a: h["tensors"].append("bn0.var"), "twice"),
    "negative-variance": (BASE, _array("tensor.bn0.var", _negative_var), "negative variance"),
    "seed-edited": (SEEDED, _changed(("configs", 0, "seed"), 6), "not the one XorConfig.random"),
    "matrix-rows-swapped": (SEEDED, lambda h, a: h["configs"][0]["matrix"].reverse(),
                            "not the one XorConfig.random"),
    "seed-without-ntap": (SEEDED, _changed(("configs", 0, "ntap"), None), "needs the ntap"),
}


@pytest.mark.parametrize("name", sorted(RESIGNED))
def test_resigned_container_is_refused(name):
    base, change, fragment = RESIGNED[name]
    header, arrays = copy.deepcopy(base.header()), dict(base.arrays())
    change(header, arrays)
    refused(encode_container(header, arrays), fragment)


def test_seeded_base_loads():
    """The seeded variant itself is valid: the refusals above come from the edits."""
    assert isinstance(check_outcome(SEEDED.to_bytes()), Container)


def test_duplicate_json_key_is_refused():
    text = HEADER_TEXT.replace(b'"format": "flexor-container"',
                               b'"format": "other", "format": "flexor-container"')
    refused(signed_zip({**base_members(), "header.json": text}), "duplicate key 'format'")


def _zip_with_duplicates(members, duplicates):
    """An archive of ``members`` where each of ``duplicates`` comes twice, its first copy
    being the given bytes and the last one the real member."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Duplicate name" is the point
            for name, payload in duplicates.items():
                zf.writestr(name, payload)
            for name, payload in members.items():
                zf.writestr(name, payload)
        zf.comment = TRAILER + b"0" * DIGEST
    return resign(buffer.getvalue())


@pytest.mark.parametrize("name", ["header.json", "layer3.plane0.npy"])
def test_member_stored_twice_is_refused(name):
    """The last copy would win: the file loads either as ``members`` or as something else."""
    other = {"header.json": json.dumps({**BASE_HEADER, "metadata": {"seed": 0}}).encode(),
             "layer3.plane0.npy": npy(np.zeros_like(BASE_ARRAYS["layer3.plane0"]))}[name]
    refused(_zip_with_duplicates(base_members(), {name: other}), "appears more than once")


# -- members that inflate far past what the header allows --------------------------------------

BOMB_BYTES = 2 ** 28  # 256 MiB of zeros, about 1 MB deflated


def _bomb_zip(name, prefix):
    """The base members plus ``name``: ``prefix`` followed by zeros up to ``BOMB_BYTES``."""
    buffer = io.BytesIO()
    zeros = bytes(2 ** 20)
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for member, payload in base_members().items():
            if member != name:
                zf.writestr(member, payload)
        with zf.open(name, "w") as file:
            file.write(prefix)
            for _ in range((BOMB_BYTES - len(prefix)) // len(zeros)):
                file.write(zeros)
        zf.comment = TRAILER + b"0" * DIGEST
    return resign(buffer.getvalue())


def _npy_prefix(shape, dtype):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.dtype(dtype).str,
                                                  "fortran_order": False, "shape": shape})
    return buffer.getvalue()


@pytest.mark.parametrize("name, prefix, fragment", [
    ("junk.npy", b"", "'junk.npy' is not named by the header"),
    ("layer3.plane0.npy", _npy_prefix((BOMB_BYTES - 128,), "u1"),
     "array layer3.plane0 must be uint8 of shape (4)"),
    ("tensor.bn0.mean.npy", _npy_prefix(((BOMB_BYTES - 128) // 4,), "<f4"),
     "array tensor.bn0.mean must be float32 of shape (N)"),
], ids=["extra-member", "plane", "tensor"])
def test_member_is_bounded_before_it_is_inflated(name, prefix, fragment):
    """A 256 MiB member is refused having inflated at most a few kilobytes of it (the loader
    used to inflate every ``.npy`` member whole before looking at it)."""
    data = _bomb_zip(name, prefix)
    tracemalloc.start()
    try:
        refused(data, fragment)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2 ** 20, f"{peak} bytes allocated to refuse a {len(data)}-byte file"


def test_memory_error_becomes_one_line(monkeypatch):
    """Running out of memory inside the loader is a refusal of the file, not a traceback."""
    def exhausted(*args, **kwargs):
        raise MemoryError
    monkeypatch.setattr(np, "frombuffer", exhausted)
    refused(BASE_BYTES, "not enough memory")
