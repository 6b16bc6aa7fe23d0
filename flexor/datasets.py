"""Data sets with fixed splits, loaded with NumPy only so that inference needs no torch.

Every data set is named by a JSON-ready *spec* (a dict) that a container records in its metadata,
so :mod:`flexor.eval` reloads exactly the test split the network was trained against:

``{"name": "digits", "test_fraction": 0.25, "split_seed": 0}``
    scikit-learn's bundled 8x8 digits (1797 images, no network access). The split is a
    permutation drawn by ``numpy.random.default_rng(split_seed)``; the first
    ``round(test_fraction * 1797)`` indices of it form the test set, the rest the training set,
    both kept in ascending index order. Pixels 0..16 are scaled to 0..1; inputs are flat
    ``(N, 64)`` float32 rows.
``{"name": "fashion-mnist"}``
    Fashion-MNIST (60,000 training and 10,000 test images of 28x28, 10 classes) from the four
    IDX files ``train-images-idx3-ubyte.gz`` ... that Debian's package ``dataset-fashion-mnist``
    installs in :data:`FASHION_MNIST_ROOT` (``--data-root DIR`` points elsewhere). The files'
    own split and order. Inputs are flat ``(N, 784)`` float32 rows ``pixel / 255``, so that
    ``round(x * 255)`` gives back the raw 8-bit pixels the integer program takes
    (:func:`pixels`).
``{"name": "cifar10"}``
    CIFAR-10 from a local ``cifar-10-batches-py`` folder (the "python version" archive,
    ``data_batch_1..5`` and ``test_batch``), never downloaded. Inputs are ``(N, 3, 32, 32)``
    float32, normalized per channel with :data:`CIFAR10_MEAN` / :data:`CIFAR10_STD`.
"""

import gzip
import math
import os
import pickle
import zlib
from typing import NamedTuple

import numpy as np

from .errors import InputError

__all__ = ["Split", "DIGITS", "FASHION_MNIST", "CIFAR10", "CIFAR10_MEAN", "CIFAR10_STD",
           "FASHION_MNIST_ROOT", "DATASETS", "load_dataset", "load_digits", "load_fashion_mnist",
           "load_cifar10", "pixels"]

DIGITS = {"name": "digits", "test_fraction": 0.25, "split_seed": 0}
FASHION_MNIST = {"name": "fashion-mnist"}
CIFAR10 = {"name": "cifar10"}
#: Names accepted by :func:`load_dataset` (and the training CLI's ``--dataset``).
DATASETS = ("digits", "fashion-mnist", "cifar10")
#: Where ``apt-get install dataset-fashion-mnist`` puts the IDX files.
FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
#: File and IDX magic (unsigned bytes, 3 or 1 dimensions) of each part.
_FASHION_MNIST_FILES = {"x_train": ("train-images-idx3-ubyte.gz", 2051),
                        "y_train": ("train-labels-idx1-ubyte.gz", 2049),
                        "x_test": ("t10k-images-idx3-ubyte.gz", 2051),
                        "y_test": ("t10k-labels-idx1-ubyte.gz", 2049)}

#: Per-channel statistics of the CIFAR-10 training set, the values the usual recipes use.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class Split(NamedTuple):
    """A data set's fixed train/test split; ``x_*`` float32 inputs, ``y_*`` int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    spec: dict


def load_digits(spec=None):
    """The digits split described by ``spec`` (default :data:`DIGITS`); needs scikit-learn."""
    spec = dict(DIGITS if spec is None else spec)
    fraction = spec.get("test_fraction")
    if not isinstance(fraction, float) or not 0 < fraction < 1:
        raise InputError(f"digits test_fraction must be a float in (0, 1), not {fraction!r}")
    seed = spec.get("split_seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"digits split_seed must be a non-negative integer, not {seed!r}")
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise InputError("the digits data set needs scikit-learn (pip install scikit-learn)") \
            from None
    data = sklearn_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = round(fraction * len(y))
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    return Split(x[train], y[train], x[test], y[test], spec)


def _read_idx(path, magic):
    """One gzipped IDX file of unsigned bytes: images ``(count, 784)`` or labels ``(count,)``."""
    try:
        with gzip.open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (install the Debian package "
                         f"dataset-fashion-mnist, or point --data-root DIR at a folder holding "
                         f"the four IDX .gz files)") from None
    except (OSError, EOFError, zlib.error) as error:
        raise InputError(f"{path}: not a gzipped IDX file ({error})") from None
    dims = magic & 0xFF
    header = 4 + 4 * dims
    if len(data) < header or int.from_bytes(data[:4], "big") != magic:
        raise InputError(f"{path}: not an IDX file of magic {magic}")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    if (dims == 3 and shape[1:] != (28, 28)) or len(data) != header + math.prod(shape):
        raise InputError(f"{path}: declares shape {shape} but holds {len(data) - header} bytes "
                         f"(images must be 28x28)")
    array = np.frombuffer(data, dtype=np.uint8, offset=header)
    return array.reshape(shape[0], -1) if dims == 3 else array


def load_fashion_mnist(root=None, spec=None):
    """Fashion-MNIST from ``root`` (default :data:`FASHION_MNIST_ROOT`)."""
    root = FASHION_MNIST_ROOT if root is None else root
    parts = {key: _read_idx(os.path.join(root, name), magic)
             for key, (name, magic) in _FASHION_MNIST_FILES.items()}
    for split in ("train", "test"):
        images, labels = parts[f"x_{split}"], parts[f"y_{split}"]
        if len(images) != len(labels) or not len(labels) or labels.max() > 9:
            raise InputError(f"{root}: the {split} split needs as many labels (0..9) as "
                             f"images, not {len(labels)} for {len(images)}")
    return Split(parts["x_train"].astype(np.float32) / np.float32(255),
                 parts["y_train"].astype(np.int64),
                 parts["x_test"].astype(np.float32) / np.float32(255),
                 parts["y_test"].astype(np.int64), dict(FASHION_MNIST if spec is None else spec))


def pixels(inputs):
    """The raw 8-bit pixels (int64) behind float inputs ``pixel / 255``; ``ValueError`` when
    the inputs are not such values (the integer program takes only raw pixels)."""
    inputs = np.asarray(inputs)
    values = np.rint(inputs.astype(np.float64) * 255)
    if values.size and (values.min() < 0 or values.max() > 255 or
                        np.abs(values / 255 - inputs).max() > 1e-6):
        raise InputError("inputs are not 8-bit pixels scaled by 1/255")
    return values.astype(np.int64)


def _read_cifar_batch(path):
    try:
        with open(path, "rb") as file:
            batch = pickle.load(file, encoding="bytes")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (expected the CIFAR-10 python-version folder "
                         f"cifar-10-batches-py)") from None
    except (OSError, pickle.UnpicklingError, EOFError) as error:
        raise InputError(f"{path}: not a CIFAR-10 batch ({error})") from None
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return images, np.asarray(batch[b"labels"], dtype=np.int64)


def _normalize_cifar(images):
    mean = np.array(CIFAR10_MEAN, dtype=np.float32)[:, None, None]
    std = np.array(CIFAR10_STD, dtype=np.float32)[:, None, None]
    return (images.astype(np.float32) / 255.0 - mean) / std


def load_cifar10(root, spec=None):
    """CIFAR-10 from ``root`` (a ``cifar-10-batches-py`` folder or its parent)."""
    if root is None:
        raise InputError("cifar10 needs a data folder (--data-root DIR holding "
                         "cifar-10-batches-py)")
    if os.path.isdir(os.path.join(root, "cifar-10-batches-py")):
        root = os.path.join(root, "cifar-10-batches-py")
    parts = [_read_cifar_batch(os.path.join(root, f"data_batch_{i}")) for i in range(1, 6)]
    x_test, y_test = _read_cifar_batch(os.path.join(root, "test_batch"))
    x_train = np.concatenate([images for images, _ in parts])
    y_train = np.concatenate([labels for _, labels in parts])
    return Split(_normalize_cifar(x_train), y_train, _normalize_cifar(x_test), y_test,
                 dict(CIFAR10 if spec is None else spec))


def load_dataset(spec, root=None):
    """Load the split a spec (or a bare name of :data:`DATASETS`) describes; ``root`` is the
    data folder of the sets that are not bundled (``--data-root``)."""
    if isinstance(spec, str):
        spec = {"digits": DIGITS, "fashion-mnist": FASHION_MNIST,
                "cifar10": CIFAR10}.get(spec, {"name": spec})
    name = spec.get("name") if isinstance(spec, dict) else None
    if name == "digits":
        return load_digits(spec)
    if name == "fashion-mnist":
        return load_fashion_mnist(root, spec)
    if name == "cifar10":
        return load_cifar10(root, spec)
    raise InputError(f"unknown data set {name!r} (known: {', '.join(DATASETS)})")
