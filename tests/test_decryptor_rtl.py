"""The generated decryptor Verilog in cocotb (Icarus; one Verilator build), beat for beat against
the golden model, under stalls, gaps and a mid-layer reset, and at full rate without stalls."""

import numpy as np
import pytest

from flexor.cli import run_cli, write_files_atomically
from gen.__main__ import main as gen_main
from gen.decryptor import decryptor_files
from sim.decryptor import check_decryptor, load_decryptor_sidecar
from sim.runner import SimulatorMissing, check_simulator
from tests.stream_stimulus import make_configs

pytestmark = pytest.mark.rtl

STALLS = {"desc": 0.3, "data": 0.3, "out": 0.3}

# name: (nins, width, lanes, stall, reset_at)
CASES = {
    "cli-example": ((12,), 32, 2, STALLS, 40),
    "mixed-nin-over-width": ((19, 16, 7), 8, 1, {"desc": 0.2, "data": 0.4, "out": 0.3}, 90),
    "wide-four-lanes": ((12, 40), 64, 4, {"desc": 0.5, "data": 0.1, "out": 0.5}, None),
    "three-lanes-16": ((40, 7), 16, 3, {"desc": 0.1, "data": 0.3, "out": 0.6}, None),
}


def make_layers(configs, width, lanes, seed):
    """1 chunk; counts that are not multiples of lanes; a layer ending exactly on a word."""
    rng = np.random.default_rng(seed)
    exact = width // int(np.gcd(width, configs[0].nin))
    counts = [(0, 1), (len(configs) - 1, 2 * lanes + 1), (0, exact)]
    counts += [(k % len(configs), int(rng.integers(1, 30))) for k in range(2 * len(configs) + 2)]
    return [(k, c, rng.integers(0, 2, (c, configs[k].nin), dtype=np.uint8)) for k, c in counts]


PIPELINE = pytest.mark.parametrize(
    "pipeline", [False, True],
    ids=["plain", "pipelined"])


def generate(tmp_path, nins, width, lanes, pipeline=False):
    configs = make_configs(*nins)
    verilog = str(tmp_path / "decryptor.v")
    write_files_atomically(decryptor_files(configs, verilog, width=width, lanes=lanes,
                                           pipeline=pipeline))
    return configs, verilog


@PIPELINE
@pytest.mark.parametrize("name", CASES)
def test_icarus_under_stalls_and_reset(tmp_path, name, pipeline):
    nins, width, lanes, stall, reset_at = CASES[name]
    seed = sum(map(ord, name))
    configs, verilog = generate(tmp_path, nins, width, lanes, pipeline)
    layers = make_layers(configs, width, lanes, seed)
    result = check_decryptor(verilog, layers, seed=seed, stall=stall, reset_at=reset_at,
                             build_dir=tmp_path / "icarus")
    assert result["layers"] == len(layers)


@PIPELINE
@pytest.mark.parametrize("nin, width, lanes", [(7, 32, 4), (12, 32, 2), (40, 16, 3), (19, 8, 2)])
def test_icarus_full_rate(tmp_path, nin, width, lanes, pipeline):
    """No stalls: back-to-back beats when lanes*nin <= width, else back-to-back words."""
    configs, verilog = generate(tmp_path, (nin,), width, lanes, pipeline)
    layers = make_layers(configs, width, lanes, seed=nin)
    result = check_decryptor(verilog, layers, build_dir=tmp_path / "icarus")
    if lanes * nin <= width:
        first = result["beat_cycles"][0]
        assert result["beat_cycles"] == list(range(first, first + result["beats"]))
    else:
        first = result["word_cycles"][0]
        assert result["word_cycles"] == list(range(first, first + result["words"]))


# The two reproductions, as a new user runs them: (gen arguments, index of the
# configuration the first layer uses, cycles from the first word to the first beat that the
# plain decryptor was measured to take: ceil(lanes * nin / width) words, then 2 cycles).
FIRST_BEAT = {
    "40-50-w8-l3": (["--nin", "40", "--nout", "50", "--width", "8", "--lanes", "3"], 0, 16),
    "1+64-dense-w8-l5": (["--nin", "1", "--nin", "64", "--nout", "3", "--ntap", "dense",
                          "--width", "8", "--lanes", "5"], 1, 41),
}


@PIPELINE
@pytest.mark.parametrize("name", FIRST_BEAT)
def test_first_beat_comes_when_the_sidecar_says(tmp_path, capsys, name, pipeline):
    """The first beat of a layer whose first beat needs many words: the sidecar's
    ``latency.first_beat`` is the cycle it is measured at (descriptor and first word offered in
    cycle 0, nothing stalled), and for the plain decryptor the issue's figure."""
    args, index, measured = FIRST_BEAT[name]
    verilog = str(tmp_path / "d.v")
    argv = ["--decryptor", *args, "-o", verilog] + (["--pipeline"] if pipeline else [])
    assert run_cli("python -m gen", gen_main, argv) == 0, capsys.readouterr()
    sidecar, configs = load_decryptor_sidecar(verilog)
    lanes = sidecar["lanes"]
    rng = np.random.default_rng(1)
    layers = [(index, 2 * lanes, rng.integers(0, 2, (2 * lanes, configs[index].nin),
                                              dtype=np.uint8))]
    result = check_decryptor(verilog, layers, build_dir=tmp_path / "icarus")
    latency = sidecar["latency"]
    assert result["word_cycles"][0] == latency["word_start"]
    assert result["beat_cycles"][0] == latency["first_beat"][index], (result, latency)
    if not pipeline:
        assert result["beat_cycles"][0] - result["word_cycles"][0] == measured


@PIPELINE
def test_verilator_under_stalls_and_reset(tmp_path, pipeline):
    try:
        check_simulator("verilator")
    except SimulatorMissing as error:
        pytest.skip(str(error))
    nins, width, lanes, stall, reset_at = CASES["mixed-nin-over-width"]
    configs, verilog = generate(tmp_path, nins, width, lanes, pipeline)
    check_decryptor(verilog, make_layers(configs, width, lanes, seed=5), seed=5, stall=stall,
                    reset_at=reset_at, simulator="verilator", build_dir=tmp_path / "verilator")
