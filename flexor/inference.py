"""NumPy golden inference: decrypt a container's bit-planes, rebuild the weights, run the network.

No torch anywhere: this is the reference the hardware flow checks against. Entry points::

    from flexor.container import Container
    from flexor.inference import evaluate
    container = Container.load("weights/digits_mlp_0p8.npz")
    result = evaluate(container)                    # decrypts with flexor.golden.decrypt
    result.accuracy, result.predictions             # float, (N,) int64
    # Hardware in the loop: feed the bits that came OUT of the RTL decryptor instead.
    result = evaluate(container, decrypted={(li, pi): bits_from_rtl})   # (chunks, nout) 0/1

``decrypted`` maps ``(layer index, plane index)`` (positions in ``container.layers`` and in
``layer.planes``) to the decrypted 0/1 bits of shape ``(chunks, nout)``; planes not in the map
are decrypted by the golden model. Rebuilt weights are ``sum_i alpha[i, out] * (2*y_i - 1)`` over
planes, each weight's bit taken from the decrypted stream at the position its layer's weight order
gives (:func:`flexor.weight_order.weights_from_chunks`). The forward pass runs in float64.
"""

from typing import NamedTuple

import numpy as np

from .datasets import load_dataset
from .golden import decrypt
from .topology import OPS
from .weight_order import weights_from_chunks

__all__ = ["decrypt_layer", "layer_weights", "rebuild_weights", "forward", "layer_macs",
           "evaluate", "Evaluation"]


class Evaluation(NamedTuple):
    """Result of :func:`evaluate`."""

    accuracy: float
    correct: int
    predictions: np.ndarray
    labels: np.ndarray


def decrypt_layer(container, layer_index):
    """Golden-model decryption of every plane of one layer: list of ``(chunks, nout)`` bits."""
    layer = container.layers[layer_index]
    return [decrypt(container.configs[plane.config], plane.bits) for plane in layer.planes]


def _check_decrypted(container, layer_index, plane_index, bits):
    layer = container.layers[layer_index]
    plane = layer.planes[plane_index]
    shape = (plane.chunks, container.configs[plane.config].nout)
    bits = np.asarray(bits)
    if bits.shape != shape:
        raise ValueError(f"decrypted bits of layer {layer_index} plane {plane_index} must have "
                         f"shape {shape}, not {bits.shape}")
    if not (np.issubdtype(bits.dtype, np.integer) or bits.dtype == np.bool_) or \
            (bits.size and (bits.min() < 0 or bits.max() > 1)):
        raise ValueError(f"decrypted bits of layer {layer_index} plane {plane_index} must be "
                         f"0/1 integers")
    return bits.astype(np.uint8)


def layer_weights(container, layer_index, planes=None):
    """Float64 weights of one layer, from ``planes`` (decrypted bits per plane) or the golden
    model; a full-precision layer returns its stored weights."""
    layer = container.layers[layer_index]
    if layer.precision == "full":
        return layer.weight.astype(np.float64)
    if planes is None:
        planes = decrypt_layer(container, layer_index)
    out = layer.shape[0]
    signs = np.stack([2.0 * weights_from_chunks(bits, layer.flatten, out, layer.row_length,
                                                layer.tile) - 1.0 for bits in planes])
    weight = (layer.alpha.astype(np.float64)[:, :, None] * signs).sum(axis=0)
    return weight.reshape(layer.shape)


def rebuild_weights(container, decrypted=None):
    """Weights of every layer; ``decrypted`` as in the module docstring replaces planes."""
    decrypted = dict(decrypted or {})
    for key in decrypted:
        if not (isinstance(key, tuple) and len(key) == 2 and 0 <= key[0] < len(container.layers)
                and 0 <= key[1] < container.layers[key[0]].q):
            raise ValueError(f"decrypted key {key!r} is not a (layer index, plane index) of an "
                             f"encrypted plane")
    weights = []
    for li, layer in enumerate(container.layers):
        golden = decrypt_layer(container, li)
        planes = [_check_decrypted(container, li, pi, decrypted[(li, pi)])
                  if (li, pi) in decrypted else golden[pi] for pi in range(layer.q)]
        weights.append(layer_weights(container, li, planes))
    return weights


def forward(container, inputs, weights=None):
    """Logits for a batch of ``inputs`` (float, batch first), with ``weights`` from
    :func:`rebuild_weights` (default: golden decryption)."""
    if weights is None:
        weights = rebuild_weights(container)
    h = np.asarray(inputs, dtype=np.float64)
    expected = tuple(container.topology["input_shape"])
    if h.shape[1:] != expected:
        raise ValueError(f"inputs must have shape (N, {', '.join(map(str, expected))}), "
                         f"not {h.shape}")
    stack = []
    for op in container.topology["ops"]:
        h = OPS[op["op"]].numpy(container, weights, op, h, stack)
    return h


def layer_macs(container):
    """Multiply-accumulates per input sample of every layer, by tracing one zero input."""
    macs = [0] * len(container.layers)
    weights = [np.zeros(layer.shape) for layer in container.layers]
    h = np.zeros((1,) + tuple(container.topology["input_shape"]))
    stack = []
    for op in container.topology["ops"]:
        h = OPS[op["op"]].numpy(container, weights, op, h, stack)
        if OPS[op["op"]].layer:
            # Each output value costs one MAC per weight of its output channel.
            layer = container.layers[op["layer"]]
            macs[op["layer"]] = h[0].size * (layer.n_weights // layer.shape[0])
    return macs


def evaluate(container, decrypted=None, data=None, *, data_root=None, batch_size=1000):
    """Accuracy of the container's network on its test split.

    Parameters
    ----------
    container : Container
    decrypted : dict, optional
        ``{(layer index, plane index): (chunks, nout) 0/1 bits}`` replacing golden decryption.
    data : (inputs, labels), optional
        Test data; default: the split named by ``container.metadata["dataset"]``.
    data_root : str, optional
        Folder of data sets that are not bundled (CIFAR-10).
    batch_size : int
        Samples per forward pass (bounds memory for convolutional models).
    """
    if data is None:
        split = load_dataset(container.metadata.get("dataset", "digits"), root=data_root)
        data = (split.x_test, split.y_test)
    inputs, labels = data
    weights = rebuild_weights(container, decrypted)
    predictions = np.concatenate([
        forward(container, inputs[start:start + batch_size], weights).argmax(axis=1)
        for start in range(0, len(inputs), batch_size)])
    labels = np.asarray(labels)
    correct = int((predictions == labels).sum())
    return Evaluation(correct / len(labels), correct, predictions, labels)
