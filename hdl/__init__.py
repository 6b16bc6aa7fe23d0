"""Amaranth gateware for FleXOR: the XOR-gate network, the weight-streaming decryptor and
the inference engine behind it."""

from .decryptor import Decryptor
from .engine import InferenceEngine, Requantizer
from .single_port import SharedPortMemory, SinglePortRam
from .xor_network import XorNetwork, XorStage

__all__ = ["XorNetwork", "XorStage", "Decryptor", "InferenceEngine", "Requantizer",
           "SinglePortRam", "SharedPortMemory"]
