"""Minimized XOR networks: Paar's programs compute their matrix, are deterministic, save XOR2s
on dense rows, keep the flat form where they would not save LUTs, and are proven (also when the
proof must refute them) through ``python -m gen --minimize``."""

import json

import numpy as np
import pytest

import flexor
from flexor import XorConfig
from flexor.cli import run_cli
from flexor.xor_minimize import XorProgram, flat_program, minimized_program, paar_program
from gen.__main__ import main
from gen.equivalence import prove_generated, prove_linear
from gen.verilog import decoder_files
from tests.test_equivalence import assert_real_counterexample, flip_entry


SPECS = [(16, 20, "dense", 1), (64, 80, "dense", 1), (16, 20, 8, 1), (130, 20, "dense", 2),
         (8, 10, 2, 0), (1, 3, 1, 0)]


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_paar_program_computes_the_matrix(spec):
    config = XorConfig.random(*spec)
    program = paar_program(config)
    assert (program.matrix() == config.matrix).all()
    x = np.random.default_rng(5).integers(0, 2, (64, config.nin), dtype=np.uint8)
    assert (program.evaluate(x) == flexor.decrypt(config, x)).all()
    assert program == paar_program(config)          # deterministic
    assert program.xor2_count <= flat_program(config).xor2_count


def test_dense_rows_share_and_sparse_rows_stay_flat():
    dense = XorConfig.random(64, 80, "dense", 1)
    program, minimized = minimized_program(dense)
    assert minimized and program.xor2_count < 0.5 * flat_program(dense).xor2_count
    sparse = XorConfig.random(64, 80, 4, 1)
    program, minimized = minimized_program(sparse)
    assert not minimized and program == flat_program(sparse)


def test_program_matrix_sees_a_wrong_gate():
    """The checker the tests rely on is not vacuous: one input of one gate moved."""
    program = paar_program(XorConfig.random(16, 20, "dense", 1))
    a, b = program.gates[0]
    broken = XorProgram(program.nin, ((a, (b + 1) % program.nin),) + program.gates[1:],
                        program.rows)
    assert not (broken.matrix() == program.matrix()).all()


@pytest.mark.formal
@pytest.mark.parametrize("registered", [False, True], ids=["comb", "registered"])
def test_minimized_decoder_is_proven_and_a_flip_refuted(registered):
    config = XorConfig.random(64, 80, "dense", 1)
    files = decoder_files(config, "d.v", registered=registered, minimize=True)
    verilog, sidecar = files["d.v"], json.loads(files["d.json"])
    assert sidecar["xor2"] == {"minimize": True, "built": 972, "naive": 2464, "shared": True}
    proof = prove_generated(verilog, sidecar)
    assert proof.proven and "GF(2)" in proof.claim, proof
    for seed in range(3):
        wrong, built = flip_entry(sidecar, seed)
        assert_real_counterexample(prove_linear(verilog, wrong), wrong["matrix"], built,
                                   f"flip seed={seed}")


@pytest.mark.formal
def test_linear_proof_catches_broken_verilog():
    """A bug in the minimized Verilog itself: one shared gate's XOR made an OR."""
    config = XorConfig.random(16, 20, "dense", 1)
    files = decoder_files(config, "d.v", minimize=True)
    verilog, sidecar = files["d.v"], json.loads(files["d.json"])
    line = next(line for line in verilog.splitlines() if "assign" in line and " ^ " in line)
    broken = verilog.replace(line, line.replace(" ^ ", " | ", 1), 1)
    assert prove_linear(broken, sidecar) is None       # not XOR-only: declines, no verdict
    proof = prove_generated(broken, sidecar)
    assert proof.verdict == "counterexample", proof


@pytest.mark.formal
def test_cli_minimize_prints_counts_and_proves(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["--nin", "64", "--nout", "80", "--ntap", "dense", "--seed", "1", "--minimize",
            "--prove", "-o", "d.v"]
    assert run_cli("python -m gen", main, argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("xor2 972 (naive 2464)") and out[1].startswith("proven: "), out
    argv = ["--nin", "64", "--nout", "80", "--ntap", "4", "--minimize", "-o", "s.v"]
    assert run_cli("python -m gen", main, argv) == 0
    assert "flat form kept" in capsys.readouterr().out
    assert (tmp_path / "s.v").read_text() == \
        decoder_files(XorConfig.random(64, 80, 4, 0), "s.v")["s.v"]   # exactly today's RTL
