"""Equivalence proofs of generated decoders (gen.equivalence, python -m gen --prove / --check).

Every wrong-matrix test checks that the counterexample really is one, against the NumPy golden
model: the sidecar's edited matrix must give ``expected``, the matrix the Verilog was built from
must give ``got``.
"""

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import flexor
from flexor import XorConfig
from flexor.cli import run_cli
from flexor.container import Container
from flexor.xor_config import dumps_config_json
from gen.__main__ import main
from gen.equivalence import Proof, check_decoder_file, prove_decoder, reference_verilog
from gen.verilog import decoder_files

pytestmark = pytest.mark.formal

# The configurations the README, the Makefile demo and the paper's per-layer table (Nin 19/16/7
# at Nout 20) use, plus edge cases: a 1-bit input, dense rows, wider sparse rows.
CONFIGURATIONS = {
    "8-10-t2": (8, 10, 2, 0),
    "16-20-t3-s7": (16, 20, 3, 7),
    "19-20-t2": (19, 20, 2, 0),
    "7-20-t2": (7, 20, 2, 0),
    "16-20-dense": (16, 20, "dense", 3),
    "1-3-t1": (1, 3, 1, 0),
    "32-40-t8": (32, 40, 8, 5),
}
WIDE = {"256-320-t16": (256, 320, 16, 1), "128-160-dense": (128, 160, "dense", 1)}
SHIPPED_WEIGHTS = "weights/digits_mlp_0p8.npz"


def generated(config, registered):
    """``(verilog text, sidecar dict)`` of the decoder for ``config``."""
    files = decoder_files(config, "decoder.v", registered=registered)
    return files["decoder.v"], json.loads(files["decoder.json"])


def flip_entry(sidecar, seed):
    """Sidecar with one matrix entry flipped (chosen by ``seed``) and the original matrix."""
    rng = np.random.default_rng(seed)
    matrix = np.array(sidecar["matrix"], dtype=np.uint8)
    row, column = rng.integers(matrix.shape[0]), rng.integers(matrix.shape[1])
    edited = matrix.copy()
    edited[row, column] ^= 1
    return {**sidecar, "matrix": edited.tolist()}, matrix


def assert_real_counterexample(proof, wrong_matrix, built_matrix, context):
    """The counterexample's x decrypts to ``expected`` under the sidecar, ``got`` under the RTL."""
    assert proof.verdict == "counterexample", f"{context}: {proof}"
    cex = proof.counterexample
    nin = built_matrix.shape[1]
    x = np.array([cex.x >> j & 1 for j in range(nin)], dtype=np.uint8)
    as_int = lambda bits: sum(int(b) << r for r, b in enumerate(bits))  # noqa: E731
    assert as_int(flexor.decrypt(wrong_matrix, x)) == cex.expected, context
    assert as_int(flexor.decrypt(built_matrix, x)) == cex.got, context
    assert cex.expected != cex.got and cex.differing_bits(), context


def test_reference_is_one_xor_per_row():
    config = XorConfig.from_matrix([[1, 0, 1], [0, 0, 0], [0, 1, 0]])
    assert reference_verilog(config).splitlines()[1:4] == [
        "  assign y[0] = x[0] ^ x[2];", "  assign y[1] = 1'b0;", "  assign y[2] = x[1];"]


@pytest.mark.parametrize("registered", [False, True], ids=["comb", "registered"])
@pytest.mark.parametrize("name", [*CONFIGURATIONS,
                                  *(pytest.param(name, marks=pytest.mark.slow) for name in WIDE)])
def test_generated_decoder_is_proven(name, registered):
    config = XorConfig.random(*{**CONFIGURATIONS, **WIDE}[name])
    proof = prove_decoder(*generated(config, registered))
    assert proof.proven, f"{name} registered={registered}: {proof}"


@pytest.mark.parametrize("registered", [False, True], ids=["comb", "registered"])
def test_shipped_weights_decoders_are_proven(registered):
    """Every XOR configuration the shipped container uses, as its loader returns them."""
    configs = Container.load(SHIPPED_WEIGHTS).configs
    assert configs, f"{SHIPPED_WEIGHTS} has no XOR configuration"
    for index, config in enumerate(configs):
        proof = prove_decoder(*generated(config, registered))
        assert proof.proven, f"{SHIPPED_WEIGHTS} configs[{index}] ({config}): {proof}"


@pytest.mark.parametrize("registered", [False, True], ids=["comb", "registered"])
@pytest.mark.parametrize("name", ["8-10-t2", "16-20-t3-s7", "16-20-dense"])
def test_flipped_matrix_entry_gives_a_real_counterexample(name, registered):
    verilog, sidecar = generated(XorConfig.random(*CONFIGURATIONS[name]), registered)
    for seed in range(3):
        wrong, built = flip_entry(sidecar, seed)
        assert_real_counterexample(prove_decoder(verilog, wrong), wrong["matrix"], built,
                                   f"{name} registered={registered} flip seed={seed}")


@settings(max_examples=6)
@given(data=st.data(), nin=st.integers(1, 12), nout=st.integers(1, 12),
       registered=st.booleans())
def test_any_matrix_proven_and_any_flip_caught(data, nin, nout, registered):
    """Arbitrary matrices, all-zero rows included; one flipped entry is always caught."""
    rows = data.draw(st.lists(st.lists(st.integers(0, 1), min_size=nin, max_size=nin),
                              min_size=nout, max_size=nout), label="matrix")
    verilog, sidecar = generated(XorConfig.from_matrix(rows), registered)
    assert prove_decoder(verilog, sidecar).proven
    seed = data.draw(st.integers(0, 2**32 - 1), label="flip seed")
    wrong, built = flip_entry(sidecar, seed)
    assert_real_counterexample(prove_decoder(verilog, wrong), wrong["matrix"], built,
                               f"flip seed={seed}")


def test_hand_broken_verilog_is_caught():
    """A bug in the Verilog itself (one tap moved), not in the sidecar."""
    config = XorConfig.random(8, 10, 2, 0)
    verilog, sidecar = generated(config, registered=False)
    # Amaranth writes each row's first tap as its own assign: rewire the first one to x[7].
    first = next(line for line in verilog.splitlines() if " = x[" in line)
    broken = verilog.replace(first, first.split(" = ")[0] + " = x[7];", 1)
    assert broken != verilog
    proof = prove_decoder(broken, sidecar)
    assert proof.verdict == "counterexample", proof
    x = np.array([proof.counterexample.x >> j & 1 for j in range(8)], dtype=np.uint8)
    expected = flexor.decrypt(config, x)
    assert sum(int(b) << r for r, b in enumerate(expected)) == proof.counterexample.expected


def cli(argv, capsys):
    status = run_cli("python -m gen", main, argv)
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_prove_and_check_flipped_sidecar(tmp_path, capsys, monkeypatch):
    """The issue's acceptance commands, verbatim."""
    monkeypatch.chdir(tmp_path)
    status, out, _ = cli(["--nin", "16", "--nout", "20", "--ntap", "3", "--seed", "7",
                          "-o", "d.v", "--prove"], capsys)
    assert status == 0 and "proven" in out.splitlines()[-1], out
    assert check_decoder_file("d.v").proven
    sidecar = json.loads((tmp_path / "d.json").read_text())
    wrong, built = flip_entry(sidecar, seed=11)
    (tmp_path / "d.json").write_text(dumps_config_json(wrong))
    status, out, err = cli(["--check", "d.v"], capsys)
    assert status == 1 and out.startswith("counterexample: x = 0x"), (out, err)
    assert_real_counterexample(check_decoder_file("d.v"), wrong["matrix"], built, "cli flip")


def test_cli_failed_proof_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("gen.__main__.prove_generated",
                        lambda *args, **kwargs: Proof("inconclusive", "test", 0.0, detail="x"))
    status, out, _ = cli(["--nin", "4", "--nout", "5", "-o", "d.v", "--prove"], capsys)
    assert status == 1 and out.startswith("inconclusive"), out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", ["no-verilog", "no-sidecar", "bad-json", "garbage-verilog",
                                  "wrong-width", "check-with-output"])
def test_cli_check_errors_are_one_line(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli(["--nin", "4", "--nout", "5", "-o", "d.v"], capsys)[0] == 0
    argv = ["--check", "d.v"]
    if case == "no-verilog":
        argv = ["--check", "missing.v"]
    elif case == "no-sidecar":
        (tmp_path / "d.json").unlink()
    elif case == "bad-json":
        (tmp_path / "d.json").write_text("{ not json")
    elif case == "garbage-verilog":
        (tmp_path / "d.v").write_text("module xor_decoder(input x; endmodule garbage")
    elif case == "wrong-width":
        sidecar = json.loads((tmp_path / "d.json").read_text())
        sidecar["matrix"] = [row + [0] for row in sidecar["matrix"]]
        sidecar["nin"] = 5
        (tmp_path / "d.json").write_text(json.dumps(sidecar))
    else:
        argv += ["-o", "e.v"]
    status, out, err = cli(argv, capsys)
    assert status == 2 and out == "", (out, err)
    assert len(err.splitlines()) == 1 and err.startswith("python -m gen: error: "), err
