"""Data sets with fixed splits, loaded with NumPy only so that inference needs no torch.

Every data set is named by a JSON-ready *spec* (a dict) that a container records in its metadata,
so :mod:`flexor.eval` reloads exactly the test split the network was trained against:

``{"name": "digits", "test_fraction": 0.25, "split_seed": 0}``
    scikit-learn's bundled 8x8 digits (1797 images, no network access). The split is a
    permutation drawn by ``numpy.random.default_rng(split_seed)``; the first
    ``round(test_fraction * 1797)`` indices of it form the test set, the rest the training set,
    both kept in ascending index order. Pixels 0..16 are scaled to 0..1; inputs are flat
    ``(N, 64)`` float32 rows.
``{"name": "cifar10"}``
    CIFAR-10 from a local ``cifar-10-batches-py`` folder (the "python version" archive,
    ``data_batch_1..5`` and ``test_batch``), never downloaded. Inputs are ``(N, 3, 32, 32)``
    float32, normalized per channel with :data:`CIFAR10_MEAN` / :data:`CIFAR10_STD`.
"""

import os
import pickle
from typing import NamedTuple

import numpy as np

__all__ = ["Split", "DIGITS", "CIFAR10", "CIFAR10_MEAN", "CIFAR10_STD", "load_dataset",
           "load_digits", "load_cifar10"]

DIGITS = {"name": "digits", "test_fraction": 0.25, "split_seed": 0}
CIFAR10 = {"name": "cifar10"}

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
        raise ValueError(f"digits test_fraction must be a float in (0, 1), not {fraction!r}")
    seed = spec.get("split_seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"digits split_seed must be a non-negative integer, not {seed!r}")
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise ValueError("the digits data set needs scikit-learn (pip install scikit-learn)") \
            from None
    data = sklearn_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = round(fraction * len(y))
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    return Split(x[train], y[train], x[test], y[test], spec)


def _read_cifar_batch(path):
    try:
        with open(path, "rb") as file:
            batch = pickle.load(file, encoding="bytes")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file (expected the CIFAR-10 python-version folder "
                         f"cifar-10-batches-py)") from None
    except (OSError, pickle.UnpicklingError, EOFError) as error:
        raise ValueError(f"{path}: not a CIFAR-10 batch ({error})") from None
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return images, np.asarray(batch[b"labels"], dtype=np.int64)


def _normalize_cifar(images):
    mean = np.array(CIFAR10_MEAN, dtype=np.float32)[:, None, None]
    std = np.array(CIFAR10_STD, dtype=np.float32)[:, None, None]
    return (images.astype(np.float32) / 255.0 - mean) / std


def load_cifar10(root, spec=None):
    """CIFAR-10 from ``root`` (a ``cifar-10-batches-py`` folder or its parent)."""
    if root is None:
        raise ValueError("cifar10 needs a data folder (--data-root DIR holding "
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
    """Load the split a spec (or a bare name, ``"digits"`` / ``"cifar10"``) describes."""
    if isinstance(spec, str):
        spec = {"digits": DIGITS, "cifar10": CIFAR10}.get(spec, {"name": spec})
    name = spec.get("name") if isinstance(spec, dict) else None
    if name == "digits":
        return load_digits(spec)
    if name == "cifar10":
        return load_cifar10(root, spec)
    raise ValueError(f"unknown data set {name!r} (known: digits, cifar10)")
