"""Cycle-accurate verification of the generated Verilog with cocotb (Icarus or Verilator)."""
