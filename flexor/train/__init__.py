"""FleXOR training in PyTorch (the optional ``train`` extra): layers, models, recipes, CLI.

``python -m flexor.train --help`` trains a network and writes an encrypted-weight container;
see ``docs/results.md`` and the README for the commands that produced the shipped weights.
"""

try:
    import torch  # noqa: F401  (fail here with an install hint, not deep inside a layer)
except ImportError as error:
    raise ImportError("flexor.train needs PyTorch: pip install 'torch==2.13.0' "
                      "(the CPU build) or the project's [train] extra") from error

from .layers import (BinaryConv2d, BinaryLinear, FlexorConv2d, FlexorLinear, FullConv2d,
                     FullLinear, xor_decrypt)
from .models import MODELS, SCHEMES, OpNet, build_model, from_container, predict
from .recipes import RECIPES, Recipe
from .trainer import TrainResult, train

__all__ = [
    "FlexorLinear", "FlexorConv2d", "BinaryLinear", "BinaryConv2d", "FullLinear", "FullConv2d",
    "xor_decrypt", "OpNet", "build_model", "from_container", "predict", "MODELS", "SCHEMES",
    "Recipe", "RECIPES",
    "train", "TrainResult",
]
