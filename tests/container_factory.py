"""A small random container that uses every layer kind and topology operation.

Input 36 values, reshaped to 1x6x6: full conv 1->4 (3x3, pad 1), BN, ReLU, push; xor conv
4->4 (stride 2, q = 2, nin 12), ReLU, add_shortcut (stride 2); xor conv 4->8; max pool 3;
global average pool; xor linear 8->5, ReLU; full linear 5->3 with bias.
"""

import numpy as np

from flexor import XorConfig
from flexor.container import Container, Layer, Plane


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
