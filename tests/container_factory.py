"""A small random container that uses every layer kind and topology operation.

Input 36 values, reshaped to 1x6x6: full conv 1->4 (3x3, pad 1), BN, ReLU, push; xor conv
4->4 (stride 2, q = 2, nin 12), ReLU, add_shortcut (stride 2); xor conv 4->8; max pool 3;
global average pool; xor linear 8->5, ReLU; full linear 5->3 with bias.

Also: :func:`random_network`, a random all-encrypted MLP with a random integer program (row-major
and tiled layers), :func:`naive_weight_bits`, the weight order by its definition, walking the
chunks, and :func:`pixel_split`, Fashion-MNIST-like data for fast training tests.
"""

import numpy as np

from flexor import XorConfig
from flexor.container import Container, IntegerStep, Layer, Plane
from flexor.weight_order import chunk_count


def random_container(seed, *, metadata=None):
    """A consistent container with random bits and floats drawn from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    configs = [XorConfig.from_matrix(_matrix(rng, 10, 8)), XorConfig.from_matrix(
        _matrix(rng, 10, 12))]

    def floats(*shape):
        return rng.normal(size=shape).astype(np.float32)

    def xor_layer(name, kind, shape, config, q, **geometry):
        n = int(np.prod(shape))
        nin, nout = configs[config].nin, configs[config].nout
        planes = [Plane.from_bits(config, rng.integers(0, 2, size=(-(-n // nout), nin)))
                  for _ in range(q)]
        return Layer(name=name, kind=kind, shape=shape, precision="xor", planes=planes,
                     alpha=np.abs(floats(q, shape[0])) + 0.1, **geometry)

    layers = [
        Layer(name="conv0", kind="conv2d", shape=(4, 1, 3, 3), precision="full",
              weight=floats(4, 1, 3, 3), padding=1),
        xor_layer("conv1", "conv2d", (4, 4, 3, 3), 1, 2, stride=2, padding=1),
        xor_layer("conv2", "conv2d", (8, 4, 3, 3), 0, 1, padding=1),
        xor_layer("fc3", "linear", (5, 8), 0, 1),
        Layer(name="fc4", kind="linear", shape=(3, 5), precision="full", weight=floats(3, 5),
              bias=floats(3)),
    ]
    tensors = {"bn0.mean": floats(4), "bn0.var": np.abs(floats(4)) + 0.5,
               "bn0.weight": floats(4), "bn0.bias": floats(4)}
    ops = [{"op": "reshape", "shape": [1, 6, 6]}, {"op": "conv2d", "layer": 0},
           {"op": "batchnorm", "name": "bn0", "eps": 1e-5}, {"op": "relu"}, {"op": "push"},
           {"op": "conv2d", "layer": 1}, {"op": "relu"},
           {"op": "add_shortcut", "stride": 2, "pad_channels": 0},
           {"op": "conv2d", "layer": 2}, {"op": "maxpool2d", "kernel": 3},
           {"op": "global_avgpool"}, {"op": "linear", "layer": 3}, {"op": "relu"},
           {"op": "linear", "layer": 4}]
    return Container(configs=configs, layers=layers, topology={"input_shape": [36], "ops": ops},
                     tensors=tensors, metadata=metadata or {"seed": seed})


def pixel_split(seed, train=2000, test=500):
    """Fashion-MNIST-like data for fast training tests: 8-bit 28x28 images (``pixel / 255``) of
    10 classes, each a random class pattern plus noise, labelled with the fashion-mnist spec."""
    from flexor.datasets import FASHION_MNIST, Split
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 256, size=(10, 784))

    def draw(n):
        labels = rng.integers(0, 10, size=n)
        noise = rng.integers(-60, 61, size=(n, 784))
        images = np.clip(patterns[labels] + noise, 0, 255)
        return (images / 255).astype(np.float32), labels.astype(np.int64)

    return Split(*draw(train), *draw(test), dict(FASHION_MNIST))


def _matrix(rng, nout, nin):
    """Random rows of 1 to 3 taps (mixed row weights, unlike XorConfig.random)."""
    matrix = np.zeros((nout, nin), dtype=np.uint8)
    for row in matrix:
        row[rng.choice(nin, size=rng.integers(1, 4), replace=False)] = 1
    return matrix


def naive_decrypt(matrix, encrypted):
    """Decrypted chunk: bit r is the XOR of the encrypted bits that row r of the matrix taps."""
    return [sum(int(x) for x, tap in zip(encrypted, row) if tap) % 2 for row in matrix]


def naive_weight_bits(layer, config, plane):
    """``[out][m]`` weight bits, walking the chunks in storage order (the order's definition)."""
    out, m, nout = layer.shape[0], layer.row_length, config.nout
    weights = [[None] * m for _ in range(out)]
    chunks = [naive_decrypt(config.matrix, row) for row in plane.bits]
    if layer.flatten == "row-major":
        for k in range(out * m):
            weights[k // m][k % m] = chunks[k // nout][k % nout]
    else:
        tile, row_chunks = layer.tile, -(-m // nout)
        for j, chunk in enumerate(chunks):
            group, rest = divmod(j, row_chunks * tile)
            column_chunk, row_in_tile = divmod(rest, tile)
            row = group * tile + row_in_tile
            for i, bit in enumerate(chunk):
                column = column_chunk * nout + i
                if row < out and column < m:
                    weights[row][column] = bit
    assert all(bit is not None for row in weights for bit in row)
    return weights


def random_network(seed):
    """A random all-encrypted MLP with a random integer program, and random 8-bit images."""
    rng = np.random.default_rng(seed)
    nout = int(rng.integers(1, 11))
    depth = int(rng.integers(1, 4))
    sizes = [int(rng.integers(1, 21))] + [int(rng.integers(1, 9)) for _ in range(depth)]
    configs, layers, steps, ops, tensors = [], [], [], [], {}
    in_bits = 8
    for index in range(depth):
        nin = int(rng.integers(1, 9))
        matrix = rng.integers(0, 2, size=(nout, nin)).astype(np.uint8)
        configs.append(XorConfig.from_matrix(matrix))
        out, m = sizes[index + 1], sizes[index]
        tiled = bool(rng.integers(0, 2))
        order = {"flatten": "tiled", "tile": int(rng.integers(1, 6))} if tiled else {}
        chunks = chunk_count(order.get("flatten", "row-major"), out, m, nout, order.get("tile"))
        q = int(rng.integers(1, 4))
        planes = [Plane.from_bits(index, rng.integers(0, 2, size=(chunks, nin)))
                  for _ in range(q)]
        layers.append(Layer(name=f"fc{index}", kind="linear", shape=(out, m), precision="xor",
                            planes=planes, alpha=np.ones((q, out), np.float32), **order))
        ops.append({"op": "linear", "layer": index})
        last = index == depth - 1
        out_bits = None if last else int(rng.integers(1, 9))
        if not last:
            ops.append({"op": "quantize", "name": f"act{index}", "bits": out_bits})
            tensors[f"act{index}.scale"] = np.ones(1, np.float32)
        acc_bound = m * (2 ** in_bits - 1)
        shift = int(rng.integers(0, 20))
        steps.append(IntegerStep(
            layer=index, mult=rng.integers(-2 ** 15 + 1, 2 ** 15, size=(q, out)).astype(np.int16),
            offset=rng.integers(-acc_bound * 2 ** 14, acc_bound * 2 ** 14 + 1,
                                size=out).astype(np.int64),
            shift=shift, in_bits=in_bits, out_bits=out_bits))
        in_bits = out_bits
    container = Container(configs=configs, layers=layers, tensors=tensors,
                          topology={"input_shape": [sizes[0]], "ops": ops}, integer=steps)
    images = rng.integers(0, 256, size=(12, sizes[0]))
    images[0], images[1] = 0, 255                                   # the extremes
    return Container.from_bytes(container.to_bytes()), images
