"""NumPy golden inference against naive loop models, decrypted-bit injection, and flexor.eval."""

import subprocess
import sys

import numpy as np
import pytest

from container_factory import naive_weight_bits, random_container, random_network
from flexor.container import Container
from flexor.datasets import load_digits
from flexor.golden import decrypt_reference
from flexor.inference import (decrypt_layer, evaluate, forward, layer_macs, layer_weights,
                              rebuild_weights)

SHIPPED = "weights/digits_mlp_0p8.npz"


def naive_weights(container, index):
    """Weight k of plane i is decrypted bit k % nout of chunk k // nout, by the row definition."""
    layer = container.layers[index]
    if layer.precision == "full":
        return layer.weight.astype(np.float64)
    flat = np.zeros(layer.n_weights)
    per_out = layer.n_weights // layer.shape[0]
    for i, plane in enumerate(layer.planes):
        config = container.configs[plane.config]
        stream = np.unpackbits(plane.packed, bitorder="little")
        for k in range(layer.n_weights):
            chunk, row = divmod(k, config.nout)
            bit = 0
            for j in config.taps(row):
                bit ^= int(stream[chunk * config.nin + j])
            flat[k] += float(layer.alpha[i, k // per_out]) * (1 if bit else -1)
    return flat.reshape(layer.shape)


def naive_conv2d(x, w, stride, padding):
    n, c, h, width = x.shape
    out, _, kh, kw = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (width + 2 * padding - kw) // stride + 1
    y = np.zeros((n, out, ho, wo))
    for b in range(n):
        for o in range(out):
            for i in range(ho):
                for j in range(wo):
                    patch = x[b, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    y[b, o, i, j] = (patch * w[o]).sum()
    return y


def naive_forward(container, x):
    """The random container's network written out by hand (see container_factory)."""
    w = [naive_weights(container, i) for i in range(len(container.layers))]
    t = container.tensors
    h = x.reshape(-1, 1, 6, 6).astype(np.float64)
    h = naive_conv2d(h, w[0], 1, 1)
    mean, var, scale, shift = (t[f"bn0.{p}"].astype(np.float64)[None, :, None, None]
                               for p in ("mean", "var", "weight", "bias"))
    h = np.maximum((h - mean) / np.sqrt(var + 1e-5) * scale + shift, 0)
    saved = h
    h = np.maximum(naive_conv2d(h, w[1], 2, 1), 0) + saved[:, :, ::2, ::2]
    h = naive_conv2d(h, w[2], 1, 1)
    h = h.max(axis=(2, 3))                                 # 3x3 max pool of a 3x3 map
    h = np.maximum(h @ w[3].T, 0)
    return h @ w[4].T + container.layers[4].bias


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weights_match_the_row_definition(seed):
    container = random_container(seed)
    for index, weight in enumerate(rebuild_weights(container)):
        np.testing.assert_array_equal(weight, naive_weights(container, index),
                                      err_msg=f"seed {seed} layer {index}")


@pytest.mark.parametrize("seed", [0, 1])
def test_forward_matches_a_hand_written_network(seed):
    container = random_container(seed)
    x = np.random.default_rng(seed + 50).normal(size=(5, 36))
    np.testing.assert_allclose(forward(container, x), naive_forward(container, x), rtol=1e-9,
                               atol=1e-9, err_msg=f"seed {seed}")


def test_layer_macs_by_formula():
    container = random_container(0)
    # conv0: 4 out channels on 6x6, 1*3*3 each; conv1: 4 on 3x3, 4*3*3; conv2: 8 on 3x3, 4*3*3
    assert layer_macs(container) == [4 * 36 * 9, 4 * 9 * 36, 8 * 9 * 36, 5 * 8, 3 * 5]


def test_injected_bits_replace_the_golden_planes():
    container = random_container(12)
    x = np.random.default_rng(12).normal(size=(4, 36))
    golden = {(li, pi): bits for li in range(len(container.layers))
              for pi, bits in enumerate(decrypt_layer(container, li))}
    same = evaluate(container, golden, data=(x, np.zeros(4, dtype=np.int64)))
    reference = evaluate(container, data=(x, np.zeros(4, dtype=np.int64)))
    assert np.array_equal(same.predictions, reference.predictions)
    flipped = golden[(3, 0)].copy()
    flipped[0, 0] ^= 1                                     # weight 0 of fc3: out 0, in 0
    weights = rebuild_weights(container, {(3, 0): flipped})
    expected = layer_weights(container, 3)
    expected[0, 0] = -expected[0, 0]
    np.testing.assert_array_equal(weights[3], expected)
    for index in (0, 1, 2, 4):
        np.testing.assert_array_equal(weights[index], layer_weights(container, index))


def test_decrypt_layer_uses_the_golden_model():
    container = random_container(13)
    for plane, bits in zip(container.layers[1].planes, decrypt_layer(container, 1)):
        expected = decrypt_reference(container.configs[plane.config], plane.bits)
        np.testing.assert_array_equal(bits, expected)


@pytest.mark.parametrize("decrypted, message", [
    ({(0, 0): np.zeros((1, 10))}, "not a .layer index, plane index."),
    ({(3, 1): np.zeros((4, 10))}, "not a .layer index, plane index."),
    ({(3, 0): np.zeros((4, 8), dtype=np.uint8)}, r"shape \(4, 10\)"),
    ({(3, 0): np.full((4, 10), 2)}, "0/1 integers"),
    ({(3, 0): np.zeros((4, 10), dtype=np.float32)}, "0/1 integers"),
])
def test_bad_injected_bits_are_rejected(decrypted, message):
    with pytest.raises(ValueError, match=message):
        rebuild_weights(random_container(14), decrypted)


def test_forward_checks_the_input_shape():
    with pytest.raises(ValueError, match=r"inputs must have shape \(N, 36\)"):
        forward(random_container(0), np.zeros((2, 35)))


def test_digits_split_is_fixed_and_disjoint():
    split = load_digits()
    assert split.x_train.shape == (1348, 64) and split.x_test.shape == (449, 64)
    assert split.x_test.dtype == np.float32 and 0 <= split.x_test.min() <= split.x_test.max() <= 1
    again = load_digits()
    assert np.array_equal(split.x_test, again.x_test)
    train_rows = {row.tobytes() for row in split.x_train}
    assert sum(row.tobytes() in train_rows for row in split.x_test) < 5  # digits has few dupes


def test_shipped_container_reproduces_its_recorded_accuracy():
    container = Container.load(SHIPPED)
    result = evaluate(container)
    assert result.correct == container.metadata["correct"]
    assert result.accuracy == container.metadata["accuracy"]
    assert len(result.labels) == container.metadata["test_samples"] == 449


def test_eval_cli_prints_accuracy_and_cost_table():
    run = subprocess.run([sys.executable, "-m", "flexor.eval"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    container = Container.load(SHIPPED)
    correct = container.metadata["correct"]
    assert f"({correct}/449 test samples" in run.stdout and "matches the recorded" in run.stdout
    # fc0 (64x128) and fc3 (128x10) are full precision: 9472 of 42240 MACs
    assert f"{100 * 9472 / 42240:.1f}% of the MACs" in run.stdout
    for name in ("fc0", "fc1", "fc2", "fc3"):
        assert f" {name} " in run.stdout


def test_eval_cli_errors_are_one_line(tmp_path):
    missing = tmp_path / "none.npz"
    run = subprocess.run([sys.executable, "-m", "flexor.eval", str(missing)],
                         capture_output=True, text=True)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == f"python -m flexor.eval: error: {missing}: no such file\n"


@pytest.mark.parametrize("seed", range(8))
def test_golden_weights_follow_the_layer_order_row_major_and_tiled(seed):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        container, _ = random_network(seed)
    for index, layer in enumerate(container.layers):
        expected = np.zeros(layer.shape)
        for p, plane in enumerate(layer.planes):
            bits = np.array(naive_weight_bits(layer, container.configs[plane.config], plane))
            expected += layer.alpha[p][:, None] * (2.0 * bits - 1.0)
        np.testing.assert_array_equal(layer_weights(container, index), expected,
                                      err_msg=f"seed {seed} layer {index} {layer.flatten}")
