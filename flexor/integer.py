"""The integer program: what an inference datapath computes, bit for bit.

``docs/integer-program.md`` is the normative contract; this module is its NumPy model, in exact
integer arithmetic (int64, no float anywhere in the forward pass). A program is a chain of fully
connected layers over unsigned activations. For layer ``l`` with input activations
``a[i]`` in ``0 .. 2**in_bits - 1`` and ``q`` bit-planes of binary weights ``b[p, o, i]``
(bit 1 means +1, bit 0 means -1)::

    acc[p, o] = sum_i (2*b[p, o, i] - 1) * a[i]                  # one accumulator per plane
    t[o]      = (sum_p mult[p, o] * acc[p, o] + offset[o]) >> shift  # arithmetic: floor
    hidden:     a_next[o] = min(max(t[o], 0), 2**out_bits - 1)    # the clamp is the ReLU
    last:       logits[o] = t[o];  class = the lowest o with the largest logit

The first layer's input is the raw 8-bit pixels. Rounding to nearest is the offset's job (the
derivation adds ``2**(shift-1)``), so the datapath only floors.

:func:`derive_program` computes ``mult``, ``offset`` and ``shift`` from a trained container's
float parameters (done once, at export; the container stores the result),
:meth:`IntegerProgram.from_container` builds the runnable program from a container, and
:func:`evaluate_integer` runs it on the recorded test split.
"""

import numpy as np

from .container import ContainerError, IntegerStep
from .datasets import load_dataset, pixels
from .golden import decrypt
from .inference import Evaluation
from .parameters import check_int
from .topology import BATCHNORM_TENSORS
from .weight_order import weights_from_chunks

__all__ = ["MULT_BITS", "MAX_SHIFT", "INPUT_BITS", "INPUT_SCALE", "IntegerLayer",
           "IntegerProgram", "signed_bits", "derive_program", "evaluate_integer"]

#: Width of the signed multipliers (``mult`` is in ``-(2**15 - 1) .. 2**15 - 1``): one iCE40
#: ``SB_MAC16`` operand.
MULT_BITS = 16
#: Largest right shift; with the bounds below every intermediate value fits in int64.
MAX_SHIFT = 48
#: Every ``sum_p mult * acc + offset`` must be below this in magnitude (int64 headroom).
_SUM_LIMIT = 2 ** 62
_MAX_ACTIVATION_BITS = 8
#: The first layer's input: raw 8-bit pixels, ``pixel / 255`` in the float model.
INPUT_BITS = 8
INPUT_SCALE = 1 / 255


def signed_bits(bound):
    """Bits of a two's-complement integer that holds every value in ``-bound .. bound``."""
    return int(bound).bit_length() + 1


def _int_array(name, value, shape):
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array, not {array.dtype}")
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, not {array.shape}")
    return array.astype(np.int64)


def _bits_parameter(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    return check_int(name, value, maximum=_MAX_ACTIVATION_BITS)


class IntegerLayer:
    """One fully connected layer of the integer program.

    Parameters
    ----------
    weights : (q, out, in) array of 0/1
        Binary weights per bit-plane, bit 1 = +1.
    mult : (q, out) integer array
        Signed multiplier per plane and output, ``|mult| < 2**(MULT_BITS-1)``.
    offset : (out,) integer array
        Signed offset added before the shift (batch norm, bias and rounding folded in).
    shift : int
        Arithmetic right shift, ``0 .. MAX_SHIFT``.
    in_bits : int
        Width of the unsigned input activations, 1..8.
    out_bits : int or None
        Width of the unsigned output activations (hidden layer, clamped), or ``None`` for the
        last layer, whose ``t`` are the logits.

    Raises ``ValueError`` or ``TypeError`` naming the parameter, including when an intermediate
    sum could leave int64 (the bound is computed from the worst-case input, not sampled).
    """

    def __init__(self, *, weights, mult, offset, shift, in_bits, out_bits):
        weights = np.asarray(weights)
        if weights.ndim != 3 or 0 in weights.shape:
            raise ValueError(f"weights must be a non-empty (q, out, in) array, not shape "
                             f"{weights.shape}")
        if not (np.issubdtype(weights.dtype, np.integer) or weights.dtype == np.bool_) or \
                weights.min() < 0 or weights.max() > 1:
            raise ValueError("weights must hold 0/1 integers")
        self.weights = weights.astype(np.uint8)
        q, out, _ = weights.shape
        self.mult = _int_array("mult", mult, (q, out))
        limit = 2 ** (MULT_BITS - 1) - 1
        if np.abs(self.mult).max() > limit:
            raise ValueError(f"mult must be within +-{limit} ({MULT_BITS}-bit signed), not "
                             f"{int(np.abs(self.mult).max())}")
        self.offset = _int_array("offset", offset, (out,))
        self.shift = check_int("shift", shift, minimum=0, maximum=MAX_SHIFT)
        self.in_bits = _bits_parameter("in_bits", in_bits)
        self.out_bits = _bits_parameter("out_bits", out_bits, allow_none=True)
        if np.abs(self.offset).max() >= _SUM_LIMIT or self.sum_bound >= _SUM_LIMIT:
            raise ValueError(f"mult * acc + offset can reach {self.sum_bound}, beyond the "
                             f"contract's bound of 2**62")

    @property
    def q(self):
        """Bit-planes."""
        return self.weights.shape[0]

    @property
    def outputs(self):
        return self.weights.shape[1]

    @property
    def inputs(self):
        return self.weights.shape[2]

    @property
    def acc_bound(self):
        """Largest ``|acc|``: every input at its maximum, every sign alike."""
        return self.inputs * (2 ** self.in_bits - 1)

    @property
    def acc_bits(self):
        """Signed width of one accumulator."""
        return signed_bits(self.acc_bound)

    @property
    def sum_bound(self):
        """Largest ``|sum_p mult * acc + offset|`` over all outputs and inputs."""
        per_output = np.abs(self.mult).sum(axis=0) * self.acc_bound + np.abs(self.offset)
        return int(per_output.max())

    @property
    def sum_bits(self):
        """Signed width of ``sum_p mult * acc + offset`` (and of the logits of a last layer)."""
        return signed_bits(self.sum_bound)

    def run(self, activations):
        """``(N, in)`` integer activations -> ``(N, out)`` int64: next activations or logits."""
        a = np.asarray(activations)
        if not np.issubdtype(a.dtype, np.integer) or a.ndim != 2 or a.shape[1] != self.inputs:
            raise ValueError(f"activations must be an (N, {self.inputs}) integer array, not "
                             f"{a.dtype} of shape {a.shape}")
        if a.size and (a.min() < 0 or a.max() >= 2 ** self.in_bits):
            raise ValueError(f"activations must be in 0..{2 ** self.in_bits - 1}")
        a = a.astype(np.int64)
        signs = 2 * self.weights.astype(np.int64) - 1                # (q, out, in)
        acc = np.einsum("ni,poi->npo", a, signs)                      # exact in int64
        t = (acc * self.mult[None]).sum(axis=1) + self.offset[None]
        t = t >> self.shift
        if self.out_bits is None:
            return t
        return np.clip(t, 0, 2 ** self.out_bits - 1)


class IntegerProgram:
    """A chain of :class:`IntegerLayer`: raw pixels in, integer logits and a class out.

    Parameters
    ----------
    layers : list of IntegerLayer
        Each layer's ``inputs`` and ``in_bits`` equal the previous layer's ``outputs`` and
        ``out_bits``; only the last has ``out_bits = None``.
    """

    def __init__(self, layers):
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("an integer program needs at least one layer")
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, IntegerLayer):
                raise TypeError(f"layers[{index}] must be an IntegerLayer, not {layer!r}")
            last = index == len(self.layers) - 1
            if (layer.out_bits is None) != last:
                raise ValueError(f"layers[{index}]: out_bits must be None exactly on the last "
                                 f"layer, not {layer.out_bits!r}")
            if index:
                previous = self.layers[index - 1]
                if (layer.inputs, layer.in_bits) != (previous.outputs, previous.out_bits):
                    raise ValueError(
                        f"layers[{index}] takes {layer.inputs} inputs of {layer.in_bits} bits, "
                        f"but layers[{index - 1}] gives {previous.outputs} of "
                        f"{previous.out_bits} bits")

    @property
    def input_bits(self):
        return self.layers[0].in_bits

    @property
    def inputs(self):
        return self.layers[0].inputs

    @property
    def classes(self):
        return self.layers[-1].outputs

    @classmethod
    def from_container(cls, container):
        """The program a container stores, its weights decrypted from the planes in each layer's
        weight order; :class:`~flexor.container.ContainerError` (one line) when the container
        has none or when it does not make a valid program."""
        if container.integer is None:
            raise ContainerError("the container has no integer program (it needs every layer "
                                 "encrypted and quantized activations; export stores it then)")
        layers = []
        for number, step in enumerate(container.integer):
            layer = container.layers[step.layer]
            weights = np.stack([
                weights_from_chunks(decrypt(container.configs[plane.config], plane.bits),
                                    layer.flatten, layer.shape[0], layer.row_length, layer.tile)
                for plane in layer.planes])
            try:
                layers.append(IntegerLayer(weights=weights, mult=step.mult, offset=step.offset,
                                           shift=step.shift, in_bits=step.in_bits,
                                           out_bits=step.out_bits))
            except (TypeError, ValueError) as error:
                raise ContainerError(f"integer step {number}: {error}") from None
        return cls(layers)

    def run_layers(self, inputs):
        """Every layer's output for ``(N, inputs)`` integer inputs: a list of int64 arrays, the
        last one the logits."""
        outputs, h = [], inputs
        for layer in self.layers:
            h = layer.run(h)
            outputs.append(h)
        return outputs

    def logits(self, inputs):
        """``(N, classes)`` int64 logits."""
        return self.run_layers(inputs)[-1]

    def predict(self, inputs):
        """``(N,)`` classes: the lowest index among the largest logits."""
        return self.logits(inputs).argmax(axis=1)  # numpy's argmax returns the first maximum


def _round_half_up(x):
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5)


def _layer_blocks(container):
    """``(layer index, batchnorm op or None, quantize op or None)`` per weight layer, in the
    topology's order; ``ValueError`` for a topology the integer program cannot run."""
    ops, blocks, position = container.topology["ops"], [], 0
    while position < len(ops):
        op = ops[position]
        if op["op"] != "linear":
            raise ValueError(f"topology op {position} ({op['op']}): the integer program runs "
                             f"linear - [batchnorm] - quantize blocks only")
        block = [op["layer"], None, None]
        position += 1
        for slot, name in ((1, "batchnorm"), (2, "quantize")):
            if position < len(ops) and ops[position]["op"] == name:
                block[slot] = ops[position]
                position += 1
        blocks.append(tuple(block))
    return blocks


def derive_program(container, *, input_bits=INPUT_BITS, input_scale=INPUT_SCALE):
    """The integer program of a trained container (``docs/integer-program.md``, derivation).

    Per layer, with ``s_in`` the input step (``input_scale``, then the previous ``quantize``
    step), ``alpha`` the plane scales, ``b`` the bias, batch norm ``g = weight / sqrt(var + eps)``
    and ``beta - g * mean`` (identity without one), and ``s_out`` the ``quantize`` step::

        m[p, o] = g[o] * alpha[p, o] * s_in / s_out       c[o] = (beta[o] + g[o] * (b[o] - mean[o])) / s_out
        shift   = the largest in 0..MAX_SHIFT with every round(m * 2**shift) within +-(2**15 - 1)
                  (and the sum within 2**62)
        mult    = round(m * 2**shift)                     offset = round(c * 2**shift) + 2**(shift - 1)

    so that ``(sum_p mult * acc + offset) >> shift = floor(sum_p m * acc + c + 1/2)`` up to the
    rounding of ``mult`` and ``offset``: the float model's ``floor(x / s_out + 1/2)``. The last
    layer has no ``s_out``; its logits are scaled so that the largest ``|mult|`` is
    ``2**15 - 1`` at ``shift = 0`` (argmax does not depend on a common positive scale).
    ``round`` is round half up. Raises ``ValueError`` naming the layer when the container
    cannot have an integer program (a full-precision layer, float activations, other ops).

    Returns a list of :class:`~flexor.container.IntegerStep`.
    """
    blocks = _layer_blocks(container)
    limit = 2 ** (MULT_BITS - 1) - 1
    steps, s_in, in_bits = [], float(input_scale), input_bits
    for number, (index, norm, quantize) in enumerate(blocks):
        layer = container.layers[index]
        last = number == len(blocks) - 1
        if layer.precision != "xor":
            raise ValueError(f"layer {layer.name} is full precision: the integer program needs "
                             f"every layer encrypted")
        if quantize is None and not last:
            raise ValueError(f"layer {layer.name} has float activations: the integer program "
                             f"needs a quantize op after every hidden layer")
        out = layer.shape[0]
        alpha = layer.alpha.astype(np.float64)
        bias = np.zeros(out) if layer.bias is None else layer.bias.astype(np.float64)
        if norm is None:
            gain, mean, beta = np.ones(out), np.zeros(out), np.zeros(out)
        else:
            parts = {part: container.tensors[f"{norm['name']}.{part}"].astype(np.float64)
                     for part in BATCHNORM_TENSORS}
            gain = parts["weight"] / np.sqrt(parts["var"] + norm["eps"])
            mean, beta = parts["mean"], parts["bias"]
        m = gain[None, :] * alpha * s_in                   # per unit of the output step
        c = beta + gain * (bias - mean)
        if last:
            s_out = np.abs(m).max() / limit if np.abs(m).max() > 0 else 1.0
        else:
            s_out = float(container.tensors[f"{quantize['name']}.scale"][0])
        m, c = m / s_out, c / s_out
        acc_bound = layer.row_length * (2 ** in_bits - 1)
        for shift in range(0 if last else MAX_SHIFT, -1, -1):
            mult = _round_half_up(m * 2.0 ** shift)
            offset = _round_half_up(c * 2.0 ** shift) + (2 ** (shift - 1) if shift else 0)
            bound = (np.abs(mult).sum(axis=0) * acc_bound + np.abs(offset)).max()
            if np.abs(mult).max() <= limit and bound < _SUM_LIMIT:
                break
        else:
            raise ValueError(f"layer {layer.name}: multipliers beyond +-{limit} even at shift 0")
        steps.append(IntegerStep(layer=index, mult=mult.astype(np.int16),
                                 offset=offset.astype(np.int64), shift=shift, in_bits=in_bits,
                                 out_bits=None if last else quantize["bits"]))
        s_in, in_bits = s_out, None if last else quantize["bits"]
    return steps


def evaluate_integer(container, data=None, *, data_root=None):
    """Accuracy of the container's integer program on its test split (raw pixels in).

    Returns a :class:`flexor.inference.Evaluation`; ``data`` is ``(float inputs pixel / 255,
    labels)`` as in :func:`flexor.inference.evaluate`.
    """
    program = IntegerProgram.from_container(container)
    if data is None:
        split = load_dataset(container.metadata.get("dataset", "digits"), root=data_root)
        data = (split.x_test, split.y_test)
    inputs, labels = data
    predictions = np.concatenate([program.predict(pixels(inputs[i:i + 1000]))
                                  for i in range(0, len(inputs), 1000)])
    labels = np.asarray(labels)
    correct = int((predictions == labels).sum())
    return Evaluation(correct / len(labels), correct, predictions, labels)
