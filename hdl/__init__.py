"""Amaranth gateware for FleXOR: the XOR-gate network and the weight-streaming decryptor."""

from .decryptor import Decryptor
from .xor_network import XorNetwork, XorStage

__all__ = ["XorNetwork", "XorStage", "Decryptor"]
