"""The *generated* decoder Verilog in cocotb (Icarus, and Verilator when installed), checked by
the independent testbench ``sim/tb_decoder.py`` against the sidecar's matrix."""

import json

import pytest

from flexor.cli import run_cli
from gen.__main__ import main as gen_main
from sim.decoder import check_decoder
from sim.runner import SimulatorMissing, TestbenchFailed, check_simulator

pytestmark = pytest.mark.rtl


def generate(tmp_path, *argv):
    path = tmp_path / "decoder.v"
    assert run_cli("python -m gen", gen_main, [*map(str, argv), "-o", str(path)]) == 0
    return path


@pytest.mark.parametrize("argv,vectors,checked", [
    (("--nin", 8, "--nout", 10), 256, 256),                                 # exhaustive
    (("--nin", 16, "--nout", 20, "--ntap", 3, "--seed", 7), 65536, 65536),  # exhaustive
    (("--nin", 12, "--nout", 20, "--ntap", "dense", "--seed", 1), 4096, 4096),  # exhaustive
    (("--nin", 40, "--nout", 64, "--ntap", 5, "--seed", 2), 3000, 3000),     # random
])
def test_combinational_decoder_on_icarus(tmp_path, argv, vectors, checked):
    path = generate(tmp_path, *argv)
    nout = json.loads(path.with_suffix(".json").read_text())["nout"]
    assert check_decoder(path, vectors=vectors, build_dir=tmp_path / "sim") == \
        (checked, checked * nout)


@pytest.mark.parametrize("seed,stall", [(0, 0.0), (3, 0.5)])
def test_registered_decoder_with_random_gaps_on_icarus(tmp_path, seed, stall):
    path = generate(tmp_path, "--nin", 12, "--nout", 20, "--seed", seed, "--registered")
    check_decoder(path, vectors=4096, seed=seed, stall=stall, build_dir=tmp_path / "sim")


def test_registered_decoder_on_verilator(tmp_path):
    try:
        check_simulator("verilator")
    except SimulatorMissing as error:
        pytest.skip(str(error))
    path = generate(tmp_path, "--nin", 10, "--nout", 20, "--ntap", 3, "--registered")
    check_decoder(path, simulator="verilator", vectors=1024, stall=0.3,
                  build_dir=tmp_path / "sim")


@pytest.mark.parametrize("registered", [False, True])
def test_testbench_catches_a_decoder_that_disagrees_with_its_sidecar(tmp_path, registered):
    path = generate(tmp_path, "--nin", 8, "--nout", 10, *(["--registered"] if registered else []))
    sidecar_path = path.with_suffix(".json")
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["matrix"][4][2] ^= 1
    sidecar_path.write_text(json.dumps(sidecar))
    with pytest.raises(TestbenchFailed, match="expected y=0x[0-9a-f]+, got 0x"):
        check_decoder(path, vectors=256, build_dir=tmp_path / "sim")
