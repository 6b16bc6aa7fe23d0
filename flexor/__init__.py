"""FleXOR algorithm package: XOR configurations, the NumPy golden model, the weight container.

Pure math and data only: nothing here imports Amaranth or cocotb (torch only in ``flexor.train``).
"""

from .golden import decrypt, decrypt_packed, decrypt_reference, encrypt, pack_bits, unpack_bits
from .xor_config import DENSE, RankWarning, XorConfig, gf2_rank

__all__ = [
    "XorConfig", "RankWarning", "DENSE", "gf2_rank",
    "decrypt", "decrypt_reference", "decrypt_packed", "encrypt", "pack_bits", "unpack_bits",
]
