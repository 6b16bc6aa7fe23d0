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
"""

import numpy as np

__all__ = ["MULT_BITS", "MAX_SHIFT", "IntegerLayer", "IntegerProgram", "signed_bits"]

#: Width of the signed multipliers (``mult`` is in ``-(2**15 - 1) .. 2**15 - 1``): one iCE40
#: ``SB_MAC16`` operand.
MULT_BITS = 16
#: Largest right shift; with the bounds below every intermediate value fits in int64.
MAX_SHIFT = 48
#: Every ``sum_p mult * acc + offset`` must be below this in magnitude (int64 headroom).
_SUM_LIMIT = 2 ** 62
_MAX_ACTIVATION_BITS = 8


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
    if type(value) is not int:
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not 1 <= value <= _MAX_ACTIVATION_BITS:
        raise ValueError(f"{name} must be in 1..{_MAX_ACTIVATION_BITS}, not {value!r}")
    return value


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
        if type(shift) is not int or not 0 <= shift <= MAX_SHIFT:
            raise ValueError(f"shift must be an integer in 0..{MAX_SHIFT}, not {shift!r}")
        self.shift = shift
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
