"""FPGA board tops, bitstream builds and programming through amaranth-boards."""
