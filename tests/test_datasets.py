"""Fashion-MNIST loading from IDX files: format, errors that name the package and the option."""

import gzip

import numpy as np
import pytest

from flexor.datasets import FASHION_MNIST_ROOT, load_dataset, pixels

NAMES = {"train-images-idx3-ubyte.gz": 2051, "train-labels-idx1-ubyte.gz": 2049,
         "t10k-images-idx3-ubyte.gz": 2051, "t10k-labels-idx1-ubyte.gz": 2049}


def _idx(magic, array):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fake(root, seed=0, counts=(5, 3), **overrides):
    rng = np.random.default_rng(seed)
    data = {}
    for prefix, count in zip(("train", "t10k"), counts):
        data[f"{prefix}-images-idx3-ubyte.gz"] = rng.integers(0, 256, size=(count, 28, 28))
        data[f"{prefix}-labels-idx1-ubyte.gz"] = rng.integers(0, 10, size=count)
    for name, array in data.items():
        payload = overrides.get(name, _idx(NAMES[name], array))
        with gzip.open(root / name, "wb") as file:
            file.write(payload)
    return data


def test_fake_idx_files_load_as_pixels_over_255(tmp_path):
    data = write_fake(tmp_path)
    split = load_dataset("fashion-mnist", root=str(tmp_path))
    assert split.x_train.shape == (5, 784) and split.x_train.dtype == np.float32
    assert np.array_equal(pixels(split.x_test),
                          data["t10k-images-idx3-ubyte.gz"].reshape(3, 784))
    assert np.array_equal(split.y_train, data["train-labels-idx1-ubyte.gz"])
    assert split.spec == {"name": "fashion-mnist"}


def test_missing_files_name_the_debian_package_and_the_option(tmp_path):
    with pytest.raises(ValueError) as info:
        load_dataset("fashion-mnist", root=str(tmp_path))
    message = str(info.value)
    assert "\n" not in message and "dataset-fashion-mnist" in message and "--data-root" in message


@pytest.mark.parametrize("name, payload, message", [
    ("t10k-labels-idx1-ubyte.gz", _idx(2051, np.zeros((3, 28, 28))), "not an IDX file of magic"),
    ("train-images-idx3-ubyte.gz", _idx(2051, np.zeros((5, 28, 27))), "must be 28x28"),
    ("train-images-idx3-ubyte.gz", _idx(2051, np.zeros((5, 28, 28)))[:-1], "holds 3919 bytes"),
    ("train-labels-idx1-ubyte.gz", _idx(2049, np.zeros(4)), "as many labels"),
    ("train-labels-idx1-ubyte.gz", _idx(2049, np.full(5, 10)), "as many labels (0..9)"),
])
def test_broken_files_are_one_line_errors(tmp_path, name, payload, message):
    write_fake(tmp_path, **{name: payload})
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_dataset("fashion-mnist", root=str(tmp_path))


def test_not_gzip_is_one_line(tmp_path):
    write_fake(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"plain")
    with pytest.raises(ValueError, match="not a gzipped IDX file"):
        load_dataset("fashion-mnist", root=str(tmp_path))


def test_pixels_refuses_inputs_that_are_not_8_bit():
    with pytest.raises(ValueError, match="not 8-bit pixels"):
        pixels(np.array([[0.5]], dtype=np.float32))


def test_the_installed_data_set_has_the_published_sizes():
    import os
    if not os.path.exists(os.path.join(FASHION_MNIST_ROOT, "t10k-images-idx3-ubyte.gz")):
        pytest.skip("dataset-fashion-mnist is not installed (make setup installs it)")
    split = load_dataset("fashion-mnist")
    assert (len(split.y_train), len(split.y_test)) == (60000, 10000)
    assert np.bincount(split.y_test).tolist() == [1000] * 10
