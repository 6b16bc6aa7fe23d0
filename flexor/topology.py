"""The topology operations of a container, each one record: its keys, shape rule, NumPy function.

A container's ``topology`` is ``input_shape`` plus a list of operations, each a JSON object
``{"op": name, ...keys}`` (``docs/container.md``). :data:`OPS` holds, for every ``name``:

* ``keys``: the JSON types of the keys it takes besides ``op`` (the container's header schema);
* ``shape``: its per-sample output shape, checked (:meth:`flexor.container.Container` runs the
  whole network on shapes this way, so that a container that loads also runs);
* ``numpy``: the operation on a float64 batch (:mod:`flexor.inference`);
* ``layer``: whether it applies the weight layer ``op["layer"]``;
* ``since``: the first container format version that has it.

The torch models (:mod:`flexor.train.models`) hold the torch function of each operation in a
table checked against this one. Adding an operation is one entry here plus its torch function.
"""

import math
from typing import Callable, NamedTuple

import numpy as np

__all__ = ["Op", "OPS", "BATCHNORM_TENSORS", "ACTIVATION_BITS", "MAX_ACTIVATION", "is_shape"]

#: The tensors of a ``batchnorm`` op ``N``: ``N.mean``, ``N.var``, ``N.weight``, ``N.bias``.
BATCHNORM_TENSORS = ("mean", "var", "weight", "bias")
#: Activation widths of a ``quantize`` op and of the integer program.
ACTIVATION_BITS = range(1, 9)
#: Most values one activation may hold per sample (a bound against absurd headers, far above
#: any network the flow targets: ResNet-20 on CIFAR-10 peaks at 16 x 32 x 32 = 16384).
MAX_ACTIVATION = 2 ** 24


class Op(NamedTuple):
    """One topology operation.

    ``shape(check, op, shape, stack)`` returns the per-sample output shape for the per-sample
    input ``shape``; ``check`` reports what is wrong (``check.need(condition, what)``,
    ``check.parameter(key, minimum)``, ``check.activation(label, shape)``,
    ``check.batchnorm(name)`` returning the channels) and gives the ``check.container``.
    ``numpy(container, weights, op, h, stack)`` returns the output for the batch ``h``.
    ``stack`` holds what ``push`` saved.
    """
    keys: dict
    shape: Callable
    numpy: Callable
    layer: bool = False
    since: int = 1


def _image(check, shape):
    check.need(len(shape) == 3, "needs a (channels, height, width) input")
    return shape


def is_shape(shape):
    """Whether ``shape`` (from JSON) is a non-empty list of positive integers."""
    return isinstance(shape, list) and bool(shape) and all(
        isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)


def _reshape_shape(check, op, shape, stack):
    check.need(is_shape(op["shape"]) and math.prod(op["shape"]) == math.prod(shape),
               f"cannot reshape to {op['shape']!r}")
    return tuple(op["shape"])


def _linear_shape(check, op, shape, stack):
    layer = check.container.layers[op["layer"]]
    check.need(shape[-1] == layer.shape[1], f"layer {layer.name} takes {layer.shape[1]} inputs")
    return shape[:-1] + (layer.shape[0],)


def _linear(container, weights, op, h, stack):
    layer = container.layers[op["layer"]]
    y = h @ weights[op["layer"]].T
    return y if layer.bias is None else y + layer.bias.astype(np.float64)


def _conv2d_shape(check, op, shape, stack):
    channels, height, width = _image(check, shape)
    layer = check.container.layers[op["layer"]]
    out, inputs, kh, kw = layer.shape
    padded = (height + 2 * layer.padding, width + 2 * layer.padding)
    check.need(channels == inputs, f"layer {layer.name} takes {inputs} channels")
    check.activation("padded input", (channels,) + padded)
    check.need(padded[0] >= kh and padded[1] >= kw,
               f"kernel {kh}x{kw} is larger than the padded image")
    return (out, (padded[0] - kh) // layer.stride + 1, (padded[1] - kw) // layer.stride + 1)


def _conv2d(container, weights, op, h, stack):
    """Cross-correlation like ``torch.nn.functional.conv2d`` (no groups or dilation)."""
    layer = container.layers[op["layer"]]
    weight = weights[op["layer"]]
    out, _, kh, kw = weight.shape
    x = np.pad(h, ((0, 0), (0, 0), (layer.padding, layer.padding),
                   (layer.padding, layer.padding)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    windows = windows[:, :, ::layer.stride, ::layer.stride]     # (N, C, H', W', kh, kw)
    y = np.einsum("nchwij,ocij->nohw", windows, weight, optimize=True)
    return y if layer.bias is None else y + layer.bias.astype(np.float64)[None, :, None, None]


def _batchnorm_shape(check, op, shape, stack):
    channels = check.batchnorm(op["name"])
    eps = op["eps"]
    check.need(isinstance(eps, (int, float)) and not isinstance(eps, bool) and
               math.isfinite(eps) and eps >= 0, f"eps must be a number >= 0, not {eps!r}")
    check.need(bool((check.container.tensors[f"{op['name']}.var"] + eps > 0).all()),
               "var + eps must be > 0 (inference divides by its square root)")
    check.need(shape[0] == channels, f"{channels} channels")
    return shape


def _batchnorm(container, weights, op, h, stack):
    mean, var, scale, shift = (container.tensors[f"{op['name']}.{part}"].astype(np.float64)
                               for part in BATCHNORM_TENSORS)
    axes = (1, -1) + (1,) * (h.ndim - 2)  # channel axis is 1, as in torch
    return ((h - mean.reshape(axes)) / np.sqrt(var.reshape(axes) + op["eps"])
            * scale.reshape(axes) + shift.reshape(axes))


def _quantize_shape(check, op, shape, stack):
    bits = op["bits"]
    check.need(isinstance(bits, int) and not isinstance(bits, bool) and bits in ACTIVATION_BITS,
               f"bits must be an integer in 1..8, not {bits!r}")
    tensor = check.container.tensors.get(f"{op['name']}.scale")
    check.need(tensor is not None, f"tensor {op['name']}.scale is missing")
    check.need(tensor.dtype == np.float32 and tensor.shape == (1,) and
               bool(np.isfinite(tensor).all()) and float(tensor[0]) > 0,
               f"tensor {op['name']}.scale must be one positive finite float32")
    return shape


def _quantize(container, weights, op, h, stack):
    # Round half up, as the integer program does: floor(x / s + 1/2), clamped to k bits.
    scale = float(container.tensors[f"{op['name']}.scale"][0])
    return np.clip(np.floor(h / scale + 0.5), 0, 2 ** op["bits"] - 1) * scale


def _maxpool2d_shape(check, op, shape, stack):
    channels, height, width = _image(check, shape)
    kernel = check.parameter("kernel", 1)
    check.need(kernel <= min(height, width), f"kernel {kernel} is larger than the image")
    return (channels, height // kernel, width // kernel)


def _maxpool2d(container, weights, op, h, stack):
    k = op["kernel"]
    n, c, height, width = h.shape
    h = h[:, :, :height - height % k, :width - width % k]
    return h.reshape(n, c, height // k, k, width // k, k).max(axis=(3, 5))


def _push_shape(check, op, shape, stack):
    stack.append(shape)
    return shape


def _push(container, weights, op, h, stack):
    stack.append(h)
    return h


def _add_shortcut_shape(check, op, shape, stack):
    _image(check, shape)
    stride, pad = check.parameter("stride", 1), check.parameter("pad_channels", 0)
    check.need(stack, "no saved activation (push) to add")
    saved = stack.pop()
    check.need(len(saved) == 3 and (saved[0] + 2 * pad, -(-saved[1] // stride),
                                    -(-saved[2] // stride)) == shape,
               f"the saved activation of shape {saved}, subsampled by {stride} and padded by "
               f"{pad} channels, does not match")
    return shape


def _add_shortcut(container, weights, op, h, stack):
    """ResNet option A: the saved input subsampled and zero-padded in channels."""
    shortcut = stack.pop()[:, :, ::op["stride"], ::op["stride"]]
    pad = op["pad_channels"]
    return h + np.pad(shortcut, ((0, 0), (pad, pad), (0, 0), (0, 0)))


def _same_shape(check, op, shape, stack):
    return shape


#: Every topology operation by name, in the order of ``docs/container.md``.
OPS = {
    "reshape": Op({"shape": (list,)}, _reshape_shape,
                  lambda container, weights, op, h, stack:
                      h.reshape((h.shape[0],) + tuple(op["shape"]))),
    "linear": Op({"layer": (int,)}, _linear_shape, _linear, layer=True),
    "conv2d": Op({"layer": (int,)}, _conv2d_shape, _conv2d, layer=True),
    "batchnorm": Op({"name": (str,), "eps": (float,)}, _batchnorm_shape, _batchnorm),
    "relu": Op({}, _same_shape, lambda container, weights, op, h, stack: np.maximum(h, 0.0)),
    "maxpool2d": Op({"kernel": (int,)}, _maxpool2d_shape, _maxpool2d),
    "flatten": Op({}, lambda check, op, shape, stack: (math.prod(shape),),
                  lambda container, weights, op, h, stack: h.reshape(h.shape[0], -1)),
    "global_avgpool": Op({}, lambda check, op, shape, stack: (_image(check, shape)[0],),
                         lambda container, weights, op, h, stack: h.mean(axis=(2, 3))),
    "push": Op({}, _push_shape, _push),
    "add_shortcut": Op({"stride": (int,), "pad_channels": (int,)}, _add_shortcut_shape,
                       _add_shortcut),
    "quantize": Op({"name": (str,), "bits": (int,)}, _quantize_shape, _quantize, since=2),
}
