"""The encrypted-weight container: round trip, bit layout, integrity and consistency checks."""

import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from container_factory import random_container
from flexor import XorConfig
from flexor.container import (MAX_NIN, Container, ContainerError, Layer, Plane,
                              encode_container)

SHIPPED = "weights/digits_mlp_0p8.npz"


def _parts(container):
    """Header and arrays of a container, for building broken variants."""
    return container.header(), dict(container.arrays())


def test_round_trip_is_lossless_and_byte_stable():
    container = random_container(3)
    data = container.to_bytes()
    again = Container.from_bytes(data)
    assert again.to_bytes() == data, "seed 3: load + save changed the bytes"
    assert random_container(3).to_bytes() == data, "seed 3: same content, different bytes"
    assert again.configs == container.configs
    for old, new in zip(container.layers, again.layers):
        assert old.record() == new.record()
        for p, q in zip(old.planes, new.planes):
            assert np.array_equal(p.bits, q.bits)
        for part in ("alpha", "weight", "bias"):
            a, b = getattr(old, part), getattr(new, part)
            assert (a is None and b is None) or np.array_equal(a, b)


def test_numpy_reads_it_as_npz(tmp_path):
    container = random_container(4)
    path = tmp_path / "c.npz"
    container.save(path)
    with np.load(path) as npz:
        assert np.array_equal(npz["layer1.plane1"], container.layers[1].planes[1].packed)
        assert np.array_equal(npz["layer4.weight"], container.layers[4].weight)
    with zipfile.ZipFile(path) as zf:
        header = json.loads(zf.read("header.json"))
    assert header["format"] == "flexor-container" and header["version"] == 1


@pytest.mark.parametrize("nin", [8, 12, 5])
def test_plane_packing_is_flat_little_endian(nin):
    seed = 100 + nin
    bits = np.random.default_rng(seed).integers(0, 2, size=(7, nin), dtype=np.uint8)
    plane = Plane.from_bits(0, bits)
    flat = bits.reshape(-1)
    # Independent statement of the convention: byte k bit b is flat bit 8k+b, zero padding.
    expected = [sum(int(flat[8 * k + b]) << b for b in range(8) if 8 * k + b < flat.size)
                for k in range(-(-flat.size // 8))]
    assert plane.packed.tolist() == expected, f"seed {seed}"
    assert np.array_equal(plane.bits, bits), f"seed {seed}"


def test_summaries():
    container = random_container(5)
    fc3 = container.layers[3]
    assert fc3.n_weights == 40 and fc3.q == 1
    assert fc3.bits_per_weight == 4 * 8 / 40           # ceil(40/10) chunks of 8 bits
    conv1 = container.layers[1]
    assert conv1.bits_per_weight == 2 * 15 * 12 / 144   # q=2, ceil(144/10)=15 chunks of 12
    assert container.layers[0].bits_per_weight == 32
    assert fc3.stored_bytes == 4 + 5 * 4                 # 32 bits packed + alpha (1, 5) float32


def test_every_single_byte_corruption_is_caught():
    data = random_container(6).to_bytes()
    for position in range(len(data)):
        broken = bytearray(data)
        broken[position] ^= 0x5A
        with pytest.raises(ContainerError) as info:
            Container.from_bytes(bytes(broken), origin="c.npz")
        message = str(info.value)
        assert message.startswith("c.npz: ") and "\n" not in message, message
        assert "checksum" in message or "truncated" in message, (position, message)


@pytest.mark.parametrize("length", [0, 10, 1000, -1, -64, -65])
def test_truncated_file_is_rejected(length):
    data = random_container(7).to_bytes()
    with pytest.raises(ContainerError, match="truncated|checksum"):
        Container.from_bytes(data[:length])


@pytest.mark.parametrize("version", [0, 3, "2", True])
def test_unknown_version_is_rejected(version):
    header, arrays = _parts(random_container(8))
    header["version"] = version
    with pytest.raises(ContainerError, match=f"unsupported container version {version!r} "
                       f"\\(this code reads versions 1, 2\\)"):
        Container.from_bytes(encode_container(header, arrays))


def test_version_must_be_the_one_the_content_needs():
    header, arrays = _parts(random_container(8))
    header.update(version=2, integer=None)        # version 1 content labelled version 2
    with pytest.raises(ContainerError, match="version 2 file, but its content is that of "
                       "version 1"):
        Container.from_bytes(encode_container(header, arrays))


def test_not_a_container():
    header, arrays = _parts(random_container(8))
    header["format"] = "something-else"
    with pytest.raises(ContainerError, match="not a FleXOR container"):
        Container.from_bytes(encode_container(header, arrays))
    with pytest.raises(ContainerError, match="no such file"):
        Container.load("/nonexistent/c.npz")


def _broken(mutate):
    header, arrays = _parts(random_container(9))
    mutate(header, arrays)
    return encode_container(header, arrays)


@pytest.mark.parametrize("mutate, message", [
    # one byte too few for ceil(n/Nout)*Nin bits
    (lambda h, a: a.update({"layer3.plane0": a["layer3.plane0"][:-1]}), r"ceil\(n/Nout\)\*Nin = 32 bits"),
    # a chunk count that does not match n and Nout
    (lambda h, a: h["layers"][3]["planes"][0].update(chunks=5, bits=40)
     or a.update({"layer3.plane0": np.append(a["layer3.plane0"], np.uint8(0))}),
     "need 4 chunks"),
    (lambda h, a: h["layers"][3]["planes"][0].update(bits=33), "header says 33 bits"),
    (lambda h, a: h["layers"][3]["planes"][0].update(config=2), "index 2 out of range"),
    (lambda h, a: h["layers"][3]["planes"][0].update(config=-1), "index -1 out of range"),
    (lambda h, a: h["layers"][1].update(q=3), "q is 3 but 2 planes"),
    (lambda h, a: a.pop("layer1.alpha"), "alpha is missing"),
    (lambda h, a: a.update({"layer1.alpha": a["layer1.alpha"][:1]}), "alpha must be float32"),
    (lambda h, a: a.update({"layer4.weight": a["layer4.weight"].astype(np.float64)}),
     "weight must be float32"),
    (lambda h, a: a.pop("layer1.plane1"), "array layer1.plane1 is missing"),
    (lambda h, a: h["layers"][0].update(flatten="column-major"), "flatten order"),
    (lambda h, a: h["topology"]["ops"].append({"op": "softmax"}), "unknown operation"),
    (lambda h, a: h["topology"]["ops"].pop(), "every layer exactly once"),
    (lambda h, a: h["topology"]["ops"][1].update(layer=9), "layer index 9 out of range"),
    (lambda h, a: h["topology"]["ops"][1].update(layer=3), "is a linear, not a conv2d"),
    (lambda h, a: h["tensors"].remove("bn0.var") or a.pop("tensor.bn0.var"),
     "tensor bn0.var is missing"),
    (lambda h, a: a.update({"tensor.bn0.var": a["tensor.bn0.var"][:2]}), "differ in length"),
    (lambda h, a: h["configs"][0]["matrix"][0].append(1), "configuration 0: matrix must be rect"),
    (lambda h, a: h.pop("topology"), "missing 'topology'"),
])
def test_inconsistent_file_is_rejected(mutate, message):
    data = _broken(mutate)
    with pytest.raises(ContainerError, match=message) as info:
        Container.from_bytes(data, origin="bad.npz")
    assert str(info.value).startswith("bad.npz: ")


def test_nonzero_padding_bits_are_rejected():
    def mutate(header, arrays):
        plane = arrays["layer1.plane0"].copy()   # 15 chunks * 12 bits = 180 bits, 4 padding
        plane[-1] |= 0x80
        arrays["layer1.plane0"] = plane
    with pytest.raises(ContainerError, match="padding bits"):
        Container.from_bytes(_broken(mutate))


def test_configurations_must_share_nout_and_fit_the_decryptor():
    container = random_container(10)
    other = XorConfig.from_matrix(np.ones((12, 8), dtype=np.uint8))
    with pytest.raises(ContainerError, match="share one nout"):
        Container(configs=container.configs + [other], layers=container.layers,
                  topology=container.topology, tensors=container.tensors)
    wide = XorConfig.from_matrix(np.eye(10, MAX_NIN + 1, dtype=np.uint8))
    with pytest.raises(ContainerError, match=f"nin > {MAX_NIN}"):
        Container(configs=[wide], layers=[], topology={"input_shape": [1], "ops": []})


@pytest.mark.parametrize("keys, message", [
    ({"kind": "conv3d"}, "kind must be"),
    ({"shape": (4, 4, 3)}, "has 4 dimensions"),
    ({"precision": "half"}, "precision must be"),
    ({"weight": np.zeros((4, 4, 3, 3), np.float32)}, "stores planes, not weights"),
    ({"planes": []}, "at least one plane"),
    ({"stride": 0}, "stride must be an integer >= 1"),
])
def test_layer_constructor_validates(keys, message):
    base = random_container(11).layers[1]
    arguments = dict(name="x", kind="conv2d", shape=base.shape, precision="xor",
                     planes=base.planes, alpha=base.alpha, stride=2, padding=1)
    arguments.update(keys)
    with pytest.raises(ContainerError, match=message):
        Layer(**arguments)


def test_shipped_container_loads_and_one_corrupted_byte_fails(tmp_path):
    container = Container.load(SHIPPED)
    meta = container.metadata
    assert meta["dataset"]["name"] == "digits" and meta["model"] == "mlp"
    # 2 hidden layers of 16384 weights, ceil(16384/10) = 1639 chunks of 8 bits each
    assert container.bits_per_weight("xor") == 1639 * 8 / 16384
    assert [(c.nin, c.nout, c.ntap) for c in container.configs] == [(8, 10, 2)]
    data = bytearray(open(SHIPPED, "rb").read())
    data[len(data) // 2] ^= 0x01
    broken = tmp_path / "broken.npz"
    broken.write_bytes(bytes(data))
    with pytest.raises(ContainerError, match="checksum mismatch"):
        Container.load(broken)
    run = subprocess.run([sys.executable, "-m", "flexor.eval", str(broken)],
                         capture_output=True, text=True)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("python -m flexor.eval: error: ") and "checksum" in run.stderr


def test_save_of_zip_without_trailer_is_reported_as_truncated():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("header.json", "{}")
    with pytest.raises(ContainerError, match="no checksum trailer"):
        Container.from_bytes(buffer.getvalue())
