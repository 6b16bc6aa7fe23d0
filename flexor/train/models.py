"""Networks described once as a container topology and run by torch and NumPy alike.

An :class:`Architecture` lists weight layers, batch norms and the topology operations of
``docs/container.md``. :class:`OpNet` executes exactly those operations in torch, and
:meth:`OpNet.export` writes them unchanged into the container, so the NumPy golden inference
runs the same graph as training: there is no second model definition to drift apart.

Models: ``mlp`` (digits: 64 -> 128 -> 128 -> 128 -> 10; Fashion-MNIST: 784 -> W -> W -> 10,
its recipe's ``extra`` giving ``inputs``, ``depth`` and ``width``), ``cnn`` (digits: three 3x3
convolutions, max pool, global average pool, linear) and ``resnet20`` (CIFAR-10, He et al.
2016 with option-A shortcuts, 16/32/64 channels, as in the FleXOR paper).

With ``activation_bits = k`` every ReLU of an MLP becomes a ``quantize`` op of ``k`` bits (a
learned step, :class:`~flexor.train.layers.ActivationQuantizer`; its clamp at 0 is the ReLU).
"""

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..container import FLATTEN, Container
from ..errors import InputError
from ..topology import BATCHNORM_TENSORS, OPS
from ..xor_config import XorConfig
from .layers import (ActivationQuantizer, BinaryConv2d, BinaryLinear, FlexorConv2d,
                     FlexorLinear, FullConv2d, FullLinear)

__all__ = ["Architecture", "LayerSpec", "OpNet", "MODELS", "build_model", "from_container",
           "predict", "SCHEMES"]

#: Weight schemes: full precision, binary weights (BWN), FleXOR-encrypted weights.
SCHEMES = ("fp", "bwn", "flexor")
BATCHNORM_EPS = 1e-5
#: Seed of the random XOR configurations: for Ntap 2 at Nout 10 it gives the largest rank
#: possible (nin - 1, since every row has even weight) for nin 4, 6 and 8.
DEFAULT_CONFIG_SEED = 2


class LayerSpec(NamedTuple):
    """A weight layer of an :class:`Architecture`."""

    name: str
    kind: str
    in_features: int
    out_features: int
    kernel_size: int = None
    stride: int = 1
    padding: int = 0
    bias: bool = False


class Architecture:
    """Weight layers, batch norms and topology operations, built up in forward order."""

    def __init__(self, input_shape):
        self.input_shape = list(input_shape)
        self.layers = []
        self.norms = {}      # batch-norm name -> channels
        self.quantizers = {}  # quantize op name -> bits
        self.ops = []

    def op(self, operation, /, **keys):
        self.ops.append({"op": operation, **keys})

    def linear(self, in_features, out_features, *, bias=False):
        self._weight(LayerSpec(f"fc{len(self.layers)}", "linear", in_features, out_features,
                               bias=bias))

    def conv2d(self, in_channels, out_channels, kernel_size, *, stride=1, padding=0):
        self._weight(LayerSpec(f"conv{len(self.layers)}", "conv2d", in_channels, out_channels,
                               kernel_size, stride, padding))

    def _weight(self, spec):
        self.op(spec.kind, layer=len(self.layers))
        self.layers.append(spec)

    def batchnorm(self, channels):
        name = f"bn{len(self.norms)}"
        self.norms[name] = channels
        self.op("batchnorm", name=name, eps=BATCHNORM_EPS)

    def activation(self, bits=None):
        """A ReLU, or with ``bits`` a ``quantize`` op of that many bits (learned step)."""
        if bits is None:
            self.op("relu")
            return
        name = f"act{len(self.quantizers)}"
        self.quantizers[name] = bits
        self.op("quantize", name=name, bits=bits)

    def topology(self):
        return {"input_shape": self.input_shape, "ops": [dict(op) for op in self.ops]}


def mlp(width=128, depth=2, inputs=64, classes=10, activation_bits=None):
    """Linear - BN - ReLU (or ``quantize``) blocks: one input layer of ``width`` outputs,
    ``depth`` hidden layers, one output layer."""
    arch = Architecture([inputs])
    features = inputs
    for _ in range(depth + 1):
        arch.linear(features, width)
        arch.batchnorm(width)
        arch.activation(activation_bits)
        features = width
    arch.linear(width, classes, bias=True)
    return arch


def digits_cnn(classes=10):
    """A small CNN for 8x8 digits: 16, 32, 32 channels of 3x3 convolutions."""
    arch = Architecture([64])
    arch.op("reshape", shape=[1, 8, 8])
    width = 1
    for block, channels in enumerate((16, 32, 32)):
        arch.conv2d(width, channels, 3, padding=1)
        arch.batchnorm(channels)
        arch.op("relu")
        if block == 1:
            arch.op("maxpool2d", kernel=2)
        width = channels
    arch.op("global_avgpool")
    arch.linear(width, classes, bias=True)
    return arch


def resnet20(classes=10):
    """ResNet-20 for 32x32 images: 3 stages of 3 basic blocks, option-A (zero-pad) shortcuts."""
    arch = Architecture([3, 32, 32])
    arch.conv2d(3, 16, 3, padding=1)
    arch.batchnorm(16)
    arch.op("relu")
    width = 16
    for stage, channels in enumerate((16, 32, 64)):
        for block in range(3):
            stride = 2 if stage > 0 and block == 0 else 1
            arch.op("push")
            arch.conv2d(width, channels, 3, stride=stride, padding=1)
            arch.batchnorm(channels)
            arch.op("relu")
            arch.conv2d(channels, channels, 3, padding=1)
            arch.batchnorm(channels)
            arch.op("add_shortcut", stride=stride, pad_channels=(channels - width) // 2)
            arch.op("relu")
            width = channels
    arch.op("global_avgpool")
    arch.linear(width, classes, bias=True)
    return arch


MODELS = {"mlp": mlp, "cnn": digits_cnn, "resnet20": resnet20}


class _BatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over axis 1 for inputs of any rank (what the topology's op means)."""

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"batchnorm expects (N, C, ...), not {tuple(input.shape)}")


def _push(net, op, x, stack):
    stack.append(x)
    return x


def _add_shortcut(net, op, x, stack):
    shortcut = stack.pop()[:, :, ::op["stride"], ::op["stride"]]
    pad = op["pad_channels"]
    return x + F.pad(shortcut, (0, 0, 0, 0, pad, pad))


#: The torch function ``(net, op, x, stack) -> x`` of every operation of
#: :data:`flexor.topology.OPS`, in which the NumPy one and the shape rule live.
TORCH_OPS = {
    "reshape": lambda net, op, x, stack: x.reshape((x.shape[0],) + tuple(op["shape"])),
    "linear": lambda net, op, x, stack: net.weights[op["layer"]](x),
    "conv2d": lambda net, op, x, stack: net.weights[op["layer"]](x),
    "batchnorm": lambda net, op, x, stack: net.norms[op["name"]](x),
    "relu": lambda net, op, x, stack: F.relu(x),
    "maxpool2d": lambda net, op, x, stack: F.max_pool2d(x, op["kernel"]),
    "flatten": lambda net, op, x, stack: x.flatten(1),
    "global_avgpool": lambda net, op, x, stack: x.mean(dim=(2, 3)),
    "push": _push,
    "add_shortcut": _add_shortcut,
    "quantize": lambda net, op, x, stack: net.quantizers[op["name"]](x),
}
if TORCH_OPS.keys() != OPS.keys():
    raise ImportError(f"TORCH_OPS and flexor.topology.OPS differ in "
                      f"{sorted(OPS.keys() ^ TORCH_OPS.keys())}")

_CLASSES = {("fp", "linear"): FullLinear, ("fp", "conv2d"): FullConv2d,
            ("bwn", "linear"): BinaryLinear, ("bwn", "conv2d"): BinaryConv2d,
            ("flexor", "linear"): FlexorLinear, ("flexor", "conv2d"): FlexorConv2d}


class OpNet(nn.Module):
    """Runs an :class:`Architecture`'s operations with one torch module per weight layer.

    Parameters
    ----------
    arch : Architecture
    schemes : list of str
        Weight scheme of every layer (:data:`SCHEMES`).
    layer_options : list of dict
        Extra keyword arguments per layer (``config``, ``q``, ``flatten``, ``tile`` for FleXOR;
        ``nout``, ``flatten``, ``tile`` for BWN).
    """

    def __init__(self, arch, schemes, layer_options):
        super().__init__()
        if len(schemes) != len(arch.layers) or len(layer_options) != len(arch.layers):
            raise ValueError(f"need one scheme and one option set per layer "
                             f"({len(arch.layers)}), not {len(schemes)} and "
                             f"{len(layer_options)}")
        self.arch = arch
        self.schemes = list(schemes)
        modules = []
        for spec, scheme, options in zip(arch.layers, schemes, layer_options):
            geometry = {"bias": spec.bias}
            if spec.kind == "conv2d":
                geometry.update(stride=spec.stride, padding=spec.padding)
                shape = (spec.in_features, spec.out_features, spec.kernel_size)
            else:
                shape = (spec.in_features, spec.out_features)
            modules.append(_CLASSES[scheme, spec.kind](*shape, **geometry, **options))
        self.weights = nn.ModuleList(modules)
        self.norms = nn.ModuleDict({name: _BatchNorm(channels, eps=BATCHNORM_EPS)
                                    for name, channels in arch.norms.items()})
        self.quantizers = nn.ModuleDict({name: ActivationQuantizer(bits)
                                         for name, bits in arch.quantizers.items()})

    def set_s_tanh(self, value):
        """Set the tanh slope of every FleXOR layer."""
        for module in self.weights:
            if isinstance(module, (FlexorLinear, FlexorConv2d)):
                module.s_tanh.fill_(value)

    def forward(self, x):
        stack = []
        for op in self.arch.ops:
            if op["op"] not in TORCH_OPS:
                raise ValueError(f"unknown topology operation {op['op']!r}")
            x = TORCH_OPS[op["op"]](self, op, x, stack)
        return x

    def export(self, metadata):
        """A :class:`~flexor.container.Container` of the trained weights (eval-mode BN stats)."""
        configs = []

        def add_config(config):
            if config not in configs:
                configs.append(config)
            return configs.index(config)

        layers = [module.export(spec.name, add_config)
                  for spec, module in zip(self.arch.layers, self.weights)]
        tensors = {}
        for name, norm in self.norms.items():
            for part, value in zip(BATCHNORM_TENSORS, (norm.running_mean, norm.running_var,
                                                       norm.weight, norm.bias)):
                tensors[f"{name}.{part}"] = value.detach().cpu().numpy().astype("float32")
        for name, quantizer in self.quantizers.items():
            tensors[f"{name}.scale"] = quantizer.scale_array()
        return Container(configs=configs, layers=layers, topology=self.arch.topology(),
                         tensors=tensors, metadata=metadata)


def build_model(model, *, scheme="flexor", nin=(8,), nout=10, ntap=2,
                config_seed=DEFAULT_CONFIG_SEED, q=1, fp_ends=True, flatten=FLATTEN, tile=None,
                activation_bits=None, model_options=None):
    """Build an :class:`OpNet`.

    Parameters
    ----------
    model : str
        A key of :data:`MODELS`.
    scheme : str
        ``fp``, ``bwn`` or ``flexor`` for the layers that are quantized.
    nin : sequence of int
        FleXOR ``nin``: one value for every quantized layer, or one per quantized layer in order
        (mixed precision).
    nout, ntap, config_seed : int
        XOR configuration of every ``nin``: ``XorConfig.random(nin, nout, ntap, config_seed)``.
        ``nout`` is also the chunk of a BWN layer's identity configuration.
    q : int
        FleXOR bit-planes per layer.
    fp_ends : bool
        Keep the first and last layer full precision (the paper's default).
    flatten, tile
        Weight order of every encrypted layer (:mod:`flexor.weight_order`).
    activation_bits : int, optional
        ``k``-bit quantized activations instead of ReLUs (``mlp`` only).
    model_options : dict, optional
        Keyword arguments of the model builder (``mlp``: ``inputs``, ``depth``, ``width``).
    """
    if model not in MODELS:
        raise InputError(f"model must be one of {sorted(MODELS)}, not {model!r}")
    if scheme not in SCHEMES:
        raise InputError(f"scheme must be one of {list(SCHEMES)}, not {scheme!r}")
    options = dict(model_options or {})
    if activation_bits is not None:
        if model != "mlp":
            raise InputError(f"quantized activations are implemented for the mlp, not {model!r}")
        options["activation_bits"] = activation_bits
    arch = MODELS[model](**options)
    count = len(arch.layers)
    quantized = [not (fp_ends and i in (0, count - 1)) and scheme != "fp" for i in range(count)]
    n_quantized = sum(quantized)
    nin = list(nin)
    if scheme == "flexor" and len(nin) not in (1, n_quantized):
        raise InputError(f"nin needs 1 value or one per quantized layer ({n_quantized}), "
                         f"not {len(nin)}")
    per_layer = iter(nin * n_quantized if len(nin) == 1 else nin)
    schemes, layer_options = [], []
    for is_quantized in quantized:
        if not is_quantized:
            schemes.append("fp")
            layer_options.append({})
        elif scheme == "bwn":
            schemes.append("bwn")
            layer_options.append({"nout": nout, "flatten": flatten, "tile": tile})
        else:
            config = XorConfig.random(next(per_layer), nout, ntap, config_seed)
            schemes.append("flexor")
            layer_options.append({"config": config, "q": q, "flatten": flatten, "tile": tile})
    return OpNet(arch, schemes, layer_options)


def from_container(container):
    """An eval-ready :class:`OpNet` holding a container's weights, for running it in torch.

    Encrypted layers come back as FleXOR layers whose encrypted weights are the stored bits as
    +-1 (a BWN layer, stored with an identity configuration, becomes such a layer too).
    """
    arch = Architecture(container.topology["input_shape"])
    arch.ops = [dict(op) for op in container.topology["ops"]]
    schemes, options = [], []
    for layer in container.layers:
        geometry = {}
        if layer.kind == "conv2d":
            geometry = {"kernel_size": layer.shape[2], "stride": layer.stride,
                        "padding": layer.padding}
        arch.layers.append(LayerSpec(layer.name, layer.kind, layer.shape[1], layer.shape[0],
                                     bias=layer.bias is not None, **geometry))
        if layer.precision == "full":
            schemes.append("fp")
            options.append({})
        else:
            if len({plane.config for plane in layer.planes}) != 1:
                raise ValueError(f"layer {layer.name}: planes with different configurations "
                                 f"cannot be loaded into one FleXOR layer")
            schemes.append("flexor")
            options.append({"config": container.configs[layer.planes[0].config], "q": layer.q,
                            "flatten": layer.flatten, "tile": layer.tile})
    for op in arch.ops:
        if op["op"] == "batchnorm":
            arch.norms[op["name"]] = len(container.tensors[f"{op['name']}.mean"])
        if op["op"] == "quantize":
            arch.quantizers[op["name"]] = op["bits"]
    net = OpNet(arch, schemes, options)
    with torch.no_grad():
        for layer, module in zip(container.layers, net.weights):
            if layer.precision == "full":
                module.real.copy_(torch.from_numpy(layer.weight))
            else:
                bits = np.stack([plane.bits for plane in layer.planes]).astype(np.float32)
                module.encrypted.copy_(torch.from_numpy(2 * bits - 1))
                module.alpha.copy_(torch.from_numpy(layer.alpha))
            if layer.bias is not None:
                module.bias.copy_(torch.from_numpy(layer.bias))
        for name, norm in net.norms.items():
            for part, target in zip(BATCHNORM_TENSORS, (norm.running_mean, norm.running_var,
                                                        norm.weight, norm.bias)):
                target.copy_(torch.from_numpy(container.tensors[f"{name}.{part}"]))
        for name, quantizer in net.quantizers.items():
            quantizer.scale.copy_(torch.from_numpy(container.tensors[f"{name}.scale"]))
            quantizer.initialized.fill_(True)
    return net.eval()


def predict(model, inputs, batch_size=1000):
    """Eval-mode class predictions for a float tensor of inputs."""
    model.eval()
    with torch.no_grad():
        return torch.cat([model(inputs[i:i + batch_size]).argmax(dim=1)
                          for i in range(0, len(inputs), batch_size)])
