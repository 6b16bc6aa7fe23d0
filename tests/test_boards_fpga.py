"""Real bitstreams of the self-test with the shipped weights (marker ``fpga``: YoWASP tools).

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
