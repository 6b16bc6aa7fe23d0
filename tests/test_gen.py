"""``python -m gen``: outputs, sidecar, reproducibility and bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from flexor import XorConfig
from flexor.cli import run_cli
from gen.__main__ import main
from gen.verilog import to_verilog
from sim.runner import SimulatorMissing, check_simulator

ROOT = Path(__file__).resolve().parent.parent


def gen(argv, capsys):
    status = run_cli("python -m gen", main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_writes_verilog_and_sidecar(tmp_path, capsys):
    status, out, _ = gen(["--nin", 8, "--nout", 10, "-o", tmp_path / "decoder.v"], capsys)
    assert status == 0 and "decoder.v" in out
    text = (tmp_path / "decoder.v").read_text()
    assert "module xor_decoder(" in text
    assert "input [7:0] x;" in text and "output [9:0] y;" in text
    sidecar = json.loads((tmp_path / "decoder.json").read_text())
    assert sidecar["top"] == "xor_decoder"
    assert (sidecar["nin"], sidecar["nout"], sidecar["ntap"], sidecar["seed"]) == (8, 10, 2, 0)
    assert sidecar["matrix"] == XorConfig.random(8, 10, 2, 0).matrix.tolist()
    assert sidecar["ports"] == [{"name": "x", "direction": "input", "width": 8},
                                {"name": "y", "direction": "output", "width": 10}]
    assert sidecar["tools"]["amaranth"].startswith("0.5")


def test_registered_variant_ports(tmp_path, capsys):
    status, _, _ = gen(["--nin", 5, "--nout", 7, "--registered", "--top", "dec",
                        "-o", tmp_path / "r.v"], capsys)
    assert status == 0
    text = (tmp_path / "r.v").read_text()
    assert "module dec(" in text
    for port in ("input clk;", "input rst;", "input [4:0] x;", "input x_valid;",
                 "output x_ready;", "output [6:0] y;", "output y_valid;", "input y_ready;"):
        assert port in text
    sidecar = json.loads((tmp_path / "r.json").read_text())
    assert sidecar["registered"] is True and sidecar["latency"] == 1


def test_same_arguments_give_byte_identical_files_across_processes(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        subprocess.run([sys.executable, "-m", "gen", "--nin", "16", "--nout", "20", "--ntap",
                        "3", "--seed", "7", "--registered", "-o", str(tmp_path / name / "d.v")],
                       cwd=ROOT, check=True, capture_output=True)
    for file in ("d.v", "d.json"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    text = (tmp_path / "a" / "d.v").read_text() + (tmp_path / "a" / "d.json").read_text()
    assert str(tmp_path) not in text and "src =" not in text


def test_matrix_from_earlier_sidecar_reproduces_it(tmp_path, capsys):
    gen(["--nin", 9, "--nout", 11, "--ntap", 3, "--seed", 5, "-o", tmp_path / "a.v"], capsys)
    status, _, _ = gen(["--matrix", tmp_path / "a.json", "-o", tmp_path / "b.v"], capsys)
    assert status == 0
    assert (tmp_path / "a.v").read_text() == (tmp_path / "b.v").read_text()
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a["matrix"] == b["matrix"] and b["seed"] == 5


def test_matrix_from_bare_json(tmp_path, capsys):
    (tmp_path / "m.json").write_text("[[1, 0, 1], [0, 1, 1]]")
    status, _, _ = gen(["--matrix", tmp_path / "m.json", "--nin", 3, "-o", tmp_path / "d.v"],
                       capsys)
    assert status == 0
    sidecar = json.loads((tmp_path / "d.json").read_text())
    assert sidecar["matrix"] == [[1, 0, 1], [0, 1, 1]] and sidecar["seed"] is None


def test_rank_warning_is_one_line_and_output_still_written(tmp_path, capsys):
    status, _, err = gen(["--nin", 8, "--nout", 10, "-o", tmp_path / "d.v"], capsys)
    assert status == 0
    assert err.count("\n") == 1 and "warning: XOR matrix 10x8 (ntap 2, seed 0) has GF(2) rank 7 < nin 8" in err


@pytest.mark.parametrize("argv,message", [
    (["--nin", "0", "--nout", "10"], "argument --nin: must be a positive integer, not '0'"),
    (["--nin", "-3", "--nout", "10"], "argument --nin: must be a positive integer, not '-3'"),
    (["--nin", "8.5", "--nout", "10"], "argument --nin: must be a positive integer, not '8.5'"),
    (["--nin", "8", "--nout", "x"], "argument --nout: must be a positive integer, not 'x'"),
    (["--nin", "1025", "--nout", "10"], "argument --nin: must be at most 1024, not '1025'"),
    (["--nin", "8", "--nout", "10", "--ntap", "9"], "--ntap 9 must be <= --nin 8"),
    (["--nin", "8", "--nout", "10", "--ntap", "0"], "--ntap: must be a positive integer, not '0'"),
    (["--nin", "8", "--nout", "10", "--seed", "-1"],
     "--seed: must be a non-negative integer, not '-1'"),
    (["--nout", "10"], "--nin is required unless --matrix is given"),
    (["--nin", "8", "--nout", "10", "--top", "1bad"],
     "--top must be a Verilog identifier, not '1bad'"),
    (["--matrix", "{missing}"], "missing.json: no such file"),
    (["--matrix", "{notjson}"], "not valid JSON"),
    (["--matrix", "{ragged}"], "rectangular"),
    (["--matrix", "{twos}"], "matrix entries must be 0 or 1, not 2"),
    (["--matrix", "{twos_sidecar}"], "'nin' is 4 but the matrix has 3"),
    (["--matrix", "{good}", "--nout", "3"], "--nout 3 disagrees with the 2 of --matrix"),
    (["--nin", "8", "--nout", "10", "--frobnicate"], "unrecognized arguments: --frobnicate"),
])
def test_bad_input_one_line_exit_2_no_output(tmp_path, capsys, argv, message):
    files = {"missing": "", "notjson": "{", "ragged": "[[0, 1], [1]]", "twos": "[[0, 2]]",
             "twos_sidecar": '{"nin": 4, "matrix": [[0, 1, 1]]}', "good": "[[0, 1], [1, 1]]"}
    for name, content in files.items():
        if name != "missing":
            (tmp_path / f"{name}.json").write_text(content)
    argv = [a.format(**{n: tmp_path / f"{n}.json" for n in files}) for a in argv]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    status, out, err = gen(argv + ["-o", out_dir / "d.v"], capsys)
    assert status == 2
    assert err.startswith("python -m gen: error: ") and err.count("\n") == 1, err
    assert message in err
    assert os.listdir(out_dir) == []


def test_output_files_get_the_usual_permissions(tmp_path, capsys):
    old = os.umask(0o022)
    try:
        gen(["--nin", 4, "--nout", 5, "-o", tmp_path / "d.v"], capsys)
    finally:
        os.umask(old)
    assert (tmp_path / "d.v").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d.json").stat().st_mode & 0o777 == 0o644


def test_missing_output_directory(tmp_path, capsys):
    status, _, err = gen(["--nin", 8, "--nout", 10, "-o", tmp_path / "no" / "d.v"], capsys)
    assert status == 2 and "output directory" in err and "does not exist" in err
    assert not (tmp_path / "no").exists()


def test_real_process_exit_status_and_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "gen", "--nin", "0", "--nout", "10", "-o",
                             str(tmp_path / "d.v")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "python -m gen: error: argument --nin: must be a positive integer, not '0'"]
    assert list(tmp_path.iterdir()) == []


def test_help_names_every_option_with_its_default():
    result = subprocess.run([sys.executable, "-m", "gen", "--help"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0
    for text in ("--nin", "--nout", "--ntap", "(default: 2)", "--seed", "(default: 0)",
                 "--matrix", "--top", "(default: xor_decoder", "--registered", "-o"):
        assert text in result.stdout


class _StuckSwitch(wiring.Component):
    """A combinational output set under a ``Switch`` on a register that never leaves its
    initial value: what the pipelined decryptor's ``need`` of a one-configuration table is."""

    y: Out(4)

    def elaborate(self, platform):
        m = Module()
        config = Signal()
        m.d.sync += config.eq(config)
        with m.Switch(config):
            with m.Case(0):
                m.d.comb += self.y.eq(5)
        return m


@pytest.mark.rtl
@pytest.mark.parametrize("generation", ["-g2012", "-g2005"])
def test_logic_under_a_switch_on_a_constant_register_is_defined_in_icarus(tmp_path, generation):
    """Amaranth's own ``verilog.convert`` writes such logic as an ``always @*`` block that Icarus
    never runs under ``-g2012`` (cocotb's mode), so ``y`` stays X there; ``to_verilog`` must
    give text that every simulator evaluates from time 0."""
    try:
        check_simulator("icarus")
    except SimulatorMissing as error:
        pytest.skip(str(error))
    (tmp_path / "top.v").write_text(to_verilog(_StuckSwitch(), "stuck"))
    (tmp_path / "tb.v").write_text(
        "module tb; reg clk = 0, rst = 0; wire [3:0] y;\n"
        "  stuck dut(.clk(clk), .rst(rst), .y(y));\n"
        "  initial begin #1 $display(\"y=%b\", y); clk = 1; #1 $display(\"y=%b\", y); end\n"
        "endmodule\n")
    subprocess.run(["iverilog", generation, "-o", "sim", "-s", "tb", "tb.v", "top.v"],
                   cwd=tmp_path, check=True)
    shown = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, check=True, capture_output=True,
                           text=True).stdout.split()
    assert shown == ["y=0101", "y=0101"]
