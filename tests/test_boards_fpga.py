"""Real bitstreams of the self-test with the shipped weights, and of the classify application on
the iCEBreaker (marker ``fpga``: YoWASP tools).

Each build takes 30 to 60 s (plus about a minute per tool the first time YoWASP compiles it).
"""

import json

import pytest

from boards.__main__ import PROG, load_image, main
from boards.platforms import board_by_name, ram_blocks
from flexor.cli import run_cli

pytestmark = pytest.mark.fpga

# Bitstream sizes: the UP5K's is fixed (104090 bytes); ecppack --compress leaves some 100 kB+.
MINIMUM_BITSTREAM_BYTES = {"icebreaker": 104090, "ulx3s-85f": 50_000}


@pytest.mark.parametrize("name", ["icebreaker", "ulx3s-85f"])
def test_build_gives_bitstream_and_report(tmp_path, capsys, name):
    board = board_by_name(name)
    build_dir = tmp_path / name
    assert run_cli(PROG, main, ["build", "--board", name, "--build-dir", str(build_dir)]) == 0
    out = capsys.readouterr().out
    report = json.loads((build_dir / "report.json").read_text())
    assert (build_dir / report["bitstream"].rsplit("/", 1)[-1]).stat().st_size >= \
        MINIMUM_BITSTREAM_BYTES[name]
    used, available = report["logic_cells"]
    assert 0 < used <= available and report["luts"] > 0 and report["flip_flops"] > 0
    image = load_image(report["weights"], report["lanes"])
    # The weight ROM went to block RAM, not logic: at least the blocks its words need.
    assert report["ram_blocks"][0] >= ram_blocks(board, width=image.width,
                                                 depth=len(image.words))
    # The design must close timing at the board's own clock.
    assert report["fmax_mhz"] > board.clock_hz / 1e6
    assert report["weights_per_second"] == pytest.approx(report["fmax_mhz"] * 1e6 * image.nout)
    for label in ("logic cells", "RAM blocks", "Fmax", "weights/s"):
        assert label in out


def test_icebreaker_classify_fits_the_up5k_and_meets_12_mhz(tmp_path, capsys):
    """The Fashion-MNIST classifier on the iCEBreaker: every EBR and SPRAM block used as the fit
    check counted them, timing met at the board's 12 MHz. About 2 minutes of CPU (Yosys ~1.5,
    nextpnr ~0.5), more when the cores are shared."""
    board = board_by_name("icebreaker")
    build_dir = tmp_path / "classify"
    assert run_cli(PROG, main, ["build", "--board", "icebreaker", "--app", "classify",
                                "--build-dir", str(build_dir)]) == 0
    out = capsys.readouterr().out
    report = json.loads((build_dir / "report.json").read_text())
    assert (build_dir / "top.bin").stat().st_size >= MINIMUM_BITSTREAM_BYTES["icebreaker"]
    used, available = report["logic_cells"]
    assert 0 < used <= available == 5280
    budget = sum(entry["blocks"] for entry in report["memory_budget"].values())
    assert report["ram_blocks"] == [budget, board.ram_blocks]
    assert report["spram"] == [sum(entry["blocks"] for entry in
                                   report["single_port_budget"].values()), board.spram_blocks]
    assert report["timing_met"] and report["fmax_mhz"] > board.clock_hz / 1e6
    for label in ("logic cells", "RAM blocks", "SPRAM", "Fmax", "images/s"):
        assert label in out
