"""FPGA boards: the decryptor self-test, its bitstream builds and flashing (``python -m boards``).

Imports ``hdl`` and ``flexor``; needs the ``fpga`` extra (amaranth-boards, YoWASP tools) to build.
"""
