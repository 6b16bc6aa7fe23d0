"""Trainable layers: FleXOR-encrypted weights and the binary-weight (BWN) baseline.

FleXOR (Lee et al., NeurIPS 2020): a layer of ``n`` weights holds, per bit-plane, real-valued
*encrypted* weights ``x`` of shape ``(chunks, nin)``, ``chunks = ceil(n / nout)``. Forward, the
XOR network is exact: with ``s = sign(x)`` (``sign(0) = +1``, bit 1 = +1),
``y_r = (-1)^(n_r - 1) * prod_{j in row r} s_j``, which is the XOR of the sign bits. Backward,
XOR is replaced by its tanh stand-in, giving the paper's

    dy_r/dx_i = S_tanh * (-1)^(n_r-1) * (1 - tanh^2(S_tanh x_i)) * prod_{j in row r, j != i} s_j

Since ``s_i^2 = 1``, ``(-1)^(n_r-1) prod_{j != i} s_j = y_r * s_i``, so the whole Jacobian
product is ``dL/dx = S_tanh (1 - tanh^2(S_tanh x)) * s * ((dL/dy * y) @ M)``: one matrix product
per plane, for any matrix (rows of any weight). The layer weight is
``sum_i alpha[i, out] * y_i`` with ``alpha`` learned per output channel (init 0.2, the paper's).
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..container import FLATTEN, Layer, Plane
from ..weight_order import check_order, chunk_count, weight_positions
from ..xor_config import XorConfig

__all__ = ["xor_decrypt", "FlexorLinear", "FlexorConv2d", "BinaryLinear", "BinaryConv2d",
           "FullLinear", "FullConv2d", "ActivationQuantizer", "ALPHA_INIT"]

#: The paper's initial scaling factor.
ALPHA_INIT = 0.2


def _sign(x):
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


class _XorDecrypt(torch.autograd.Function):
    """Exact XOR of signs forward, the tanh surrogate backward (see the module docstring)."""

    @staticmethod
    def forward(ctx, encrypted, matrix, s_tanh):
        signs = _sign(encrypted)
        negatives = (1.0 - signs) / 2.0                       # 1 where the sign is -1
        parity = (matrix.sum(dim=1) - 1.0) + negatives @ matrix.T
        # parity holds small exact integers, so the remainder is exactly 0 or 1.
        y = 1.0 - 2.0 * torch.remainder(parity, 2.0)
        ctx.save_for_backward(encrypted, matrix, signs, y)
        ctx.s_tanh = float(s_tanh)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        encrypted, matrix, signs, y = ctx.saved_tensors
        s = ctx.s_tanh
        slope = s * (1.0 - torch.tanh(s * encrypted) ** 2)
        return slope * signs * ((grad_y * y) @ matrix), None, None


def xor_decrypt(encrypted, matrix, s_tanh):
    """Decrypt ``(..., nin)`` real encrypted weights to ``(..., nout)`` +-1 through ``matrix``."""
    return _XorDecrypt.apply(encrypted, matrix, s_tanh)


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return value


class _Geometry:
    """Shared shape bookkeeping: ``weight_shape``, ``forward`` through ``weight()``."""

    def _init_geometry(self, kind, in_features, out_features, kernel_size, stride, padding, bias):
        self.kind = kind
        self.in_features = _check_positive("in_features", in_features)
        self.out_features = _check_positive("out_features", out_features)
        self.stride = _check_positive("stride", stride)
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be a non-negative integer, not {padding!r}")
        self.padding = padding
        if kind == "linear":
            self.weight_shape = (out_features, in_features)
        else:
            k = _check_positive("kernel_size", kernel_size)
            self.weight_shape = (out_features, in_features, k, k)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x):
        weight = self.weight()
        if self.kind == "linear":
            return F.linear(x, weight, self.bias)
        return F.conv2d(x, weight, self.bias, stride=self.stride, padding=self.padding)

    def _bias_array(self):
        return None if self.bias is None else self.bias.detach().cpu().numpy().astype(np.float32)

    def _init_order(self, flatten, tile, nout):
        """Chunk geometry of a binary layer in weight order ``flatten``: ``chunks`` and the
        ``positions`` buffer (decrypted-bit index of every weight, ``(out, m)``)."""
        check_order(flatten, tile)
        self.flatten, self.tile = flatten, tile
        out, m = self.out_features, math.prod(self.weight_shape[1:])
        self.chunks = chunk_count(flatten, out, m, nout, tile)
        positions = weight_positions(flatten, out, m, nout, tile)
        self.register_buffer("positions", torch.from_numpy(positions), persistent=False)

    def _layer_record(self, name, precision, **arrays):
        order = {"flatten": self.flatten, "tile": self.tile} if precision == "xor" else {}
        return Layer(name=name, kind=self.kind, shape=self.weight_shape, precision=precision,
                     bias=self._bias_array(), stride=self.stride, padding=self.padding,
                     **order, **arrays)


class _FullPrecision(_Geometry, nn.Module):
    """Float weights (the paper keeps the first and last layer like this)."""

    def __init__(self, kind, in_features, out_features, kernel_size=None, *, stride=1,
                 padding=0, bias=True):
        super().__init__()
        self._init_geometry(kind, in_features, out_features, kernel_size, stride, padding, bias)
        self.real = nn.Parameter(torch.empty(self.weight_shape))
        nn.init.kaiming_uniform_(self.real, a=math.sqrt(5))  # torch's own default init

    def weight(self):
        return self.real

    def export(self, name, add_config):
        """The container :class:`~flexor.container.Layer`; ``add_config(XorConfig)`` returns
        the configuration's index in the container's table."""
        return self._layer_record(name, "full",
                                  weight=self.real.detach().cpu().numpy().astype(np.float32))


class _Binary(_Geometry, nn.Module):
    """BWN baseline: ``alpha_out * sign(w)``, ``alpha_out = mean |w|`` over the output channel,
    straight-through gradient for ``|w| <= 1``. Exported as an identity XOR configuration
    (``nin = nout``), so it runs through the same container and golden model at 1 bit/weight.
    """

    def __init__(self, kind, in_features, out_features, kernel_size=None, *, stride=1,
                 padding=0, bias=False, nout=10, flatten=FLATTEN, tile=None):
        super().__init__()
        self._init_geometry(kind, in_features, out_features, kernel_size, stride, padding, bias)
        self.nout = _check_positive("nout", nout)
        self._init_order(flatten, tile, self.nout)
        self.real = nn.Parameter(torch.empty(self.weight_shape))
        nn.init.kaiming_uniform_(self.real, a=math.sqrt(5))

    def _alpha(self):
        return self.real.abs().reshape(self.out_features, -1).mean(dim=1)

    def weight(self):
        w = self.real
        hard = _sign(w)
        # Straight-through estimator, clipped: identity gradient where |w| <= 1.
        clipped = torch.clamp(w, -1.0, 1.0)
        signs = clipped + (hard - clipped).detach()
        shape = (-1,) + (1,) * (w.dim() - 1)
        return self._alpha().reshape(shape) * signs

    def export(self, name, add_config):
        config = add_config(XorConfig.from_matrix(np.eye(self.nout, dtype=np.uint8)))
        signs = (self.real.detach().cpu().numpy() >= 0).astype(np.uint8)
        bits = np.zeros(self.chunks * self.nout, np.uint8)       # unused positions stay 0
        bits[self.positions.numpy()] = signs.reshape(self.out_features, -1)
        alpha = self._alpha().detach().cpu().numpy().astype(np.float32)[None, :]
        return self._layer_record(name, "xor", alpha=alpha,
                                  planes=[Plane.from_bits(config, bits.reshape(self.chunks, -1))])


class _Flexor(_Geometry, nn.Module):
    """FleXOR layer: ``q`` planes of encrypted weights decrypted through one XOR matrix.

    Parameters
    ----------
    config : XorConfig
        The XOR configuration (all planes share it).
    q : int
        Bit-planes; bits/weight = ``q * nin / nout``.
    init_std : float
        Standard deviation of the normal initialization of the encrypted weights.
    flatten, tile
        Weight order of the decrypted chunks (:mod:`flexor.weight_order`): each weight reads
        its bit at :func:`~flexor.weight_order.weight_positions`, the one implementation.
    """

    def __init__(self, kind, in_features, out_features, kernel_size=None, *, config, q=1,
                 stride=1, padding=0, bias=False, init_std=0.01, flatten=FLATTEN, tile=None):
        super().__init__()
        self._init_geometry(kind, in_features, out_features, kernel_size, stride, padding, bias)
        self.q = _check_positive("q", q)
        if not isinstance(config, XorConfig):
            raise TypeError(f"config must be an XorConfig, not {config!r}")
        self.config = config
        self.nout, self.nin = config.nout, config.nin
        self.register_buffer("matrix", torch.tensor(config.matrix, dtype=torch.float32))
        self.register_buffer("s_tanh", torch.tensor(1.0))
        self._init_order(flatten, tile, self.nout)
        self.encrypted = nn.Parameter(torch.randn(self.q, self.chunks, self.nin) * init_std)
        # Later planes start smaller so they refine the first instead of duplicating it.
        self.alpha = nn.Parameter(torch.tensor(
            [[ALPHA_INIT * 0.5 ** i] * out_features for i in range(self.q)]))

    def weight(self):
        y = xor_decrypt(self.encrypted, self.matrix, float(self.s_tanh))  # (q, chunks, nout)
        y = y.reshape(self.q, -1)[:, self.positions]                      # (q, out, m)
        return (self.alpha[:, :, None] * y).sum(dim=0).reshape(self.weight_shape)

    def export(self, name, add_config):
        config = add_config(self.config)
        bits = (self.encrypted.detach().cpu().numpy() >= 0).astype(np.uint8)
        return self._layer_record(name, "xor",
                                  alpha=self.alpha.detach().cpu().numpy().astype(np.float32),
                                  planes=[Plane.from_bits(config, b) for b in bits])


class ActivationQuantizer(nn.Module):
    """Quantization-aware ``k``-bit unsigned activation, the training side of the topology's
    ``quantize`` op: ``a = clamp(floor(x / s + 1/2), 0, 2**k - 1) * s``.

    The clamp at 0 is the ReLU. Round half up (``floor(x + 1/2)``), not PyTorch's half-to-even,
    so that the float model, the NumPy golden model and the integer program round alike.
    Gradients: straight-through for the rounding (identity inside the clipping range, zero
    outside); the step ``s`` is learned as in LSQ (Esser et al., ICLR 2020) with its gradient
    scaled by ``1 / sqrt(features * (2**k - 1))``, and initialized from the first training batch
    to LSQ's ``2 * mean|x| / sqrt(2**k - 1)``. The clipping level is ``(2**k - 1) * s``.
    """

    def __init__(self, bits):
        super().__init__()
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
            raise ValueError(f"activation bits must be an integer in 1..8, not {bits!r}")
        self.bits = bits
        self.levels = 2 ** bits - 1
        self.scale = nn.Parameter(torch.ones(1))
        self.register_buffer("initialized", torch.tensor(False))

    def forward(self, x):
        if self.training and not bool(self.initialized):
            with torch.no_grad():
                self.scale.fill_(max(2 * float(x.abs().mean()) / math.sqrt(self.levels), 1e-4))
                self.initialized.fill_(True)
        gradient_scale = 1.0 / math.sqrt(x[0].numel() * self.levels)
        # The value is exactly the stored step (the golden model uses that), the gradient g.
        scaled = self.scale * gradient_scale
        scale = (scaled - scaled.detach()) + self.scale.detach()
        v = torch.clamp(x / scale, 0.0, float(self.levels))
        return (v + (torch.floor(v + 0.5) - v).detach()) * scale

    def scale_array(self):
        return self.scale.detach().cpu().numpy().astype(np.float32).reshape(1)


class FullLinear(_FullPrecision):
    """Full-precision ``linear`` layer (parameters as in :class:`_FullPrecision`)."""

    def __init__(self, in_features, out_features, **kwargs):
        super().__init__("linear", in_features, out_features, **kwargs)


class FullConv2d(_FullPrecision):
    """Full-precision ``conv2d`` layer with a square ``kernel_size``."""

    def __init__(self, in_channels, out_channels, kernel_size, **kwargs):
        super().__init__("conv2d", in_channels, out_channels, kernel_size, **kwargs)


class BinaryLinear(_Binary):
    """BWN ``linear`` layer (see :class:`_Binary`)."""

    def __init__(self, in_features, out_features, **kwargs):
        super().__init__("linear", in_features, out_features, **kwargs)


class BinaryConv2d(_Binary):
    """BWN ``conv2d`` layer (see :class:`_Binary`)."""

    def __init__(self, in_channels, out_channels, kernel_size, **kwargs):
        super().__init__("conv2d", in_channels, out_channels, kernel_size, **kwargs)


class FlexorLinear(_Flexor):
    """FleXOR ``linear`` layer (parameters as in :class:`_Flexor`)."""

    def __init__(self, in_features, out_features, **kwargs):
        super().__init__("linear", in_features, out_features, **kwargs)


class FlexorConv2d(_Flexor):
    """FleXOR ``conv2d`` layer with a square ``kernel_size``."""

    def __init__(self, in_channels, out_channels, kernel_size, **kwargs):
        super().__init__("conv2d", in_channels, out_channels, kernel_size, **kwargs)
