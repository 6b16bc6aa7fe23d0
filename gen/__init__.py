"""Verilog generation: ``python -m gen`` and the functions behind it."""

from .verilog import decoder_files, sidecar_path, to_verilog

__all__ = ["decoder_files", "sidecar_path", "to_verilog"]
