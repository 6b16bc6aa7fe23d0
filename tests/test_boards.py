"""Board flow without FPGA tools: board table, size check, CLI, report parsing, programming.

The programmer is replaced by a stand-in script, through the environment variable the
amaranth-boards platform reads (``ICEPROG``, ``OPENFPGALOADER``), that records its arguments
and the bitstream it was given.
"""

import gc
import json
import os
import stat
import warnings

import numpy as np
import pytest
from amaranth.hdl import UnusedElaboratable

from boards.__main__ import PROG, main
from boards.build import TOOLCHAINS, bitstream_path, parse_build_reports
from boards.image import MemoryTooSmall, WeightImage, word_width
from boards.platforms import BOARDS, FAMILIES, Board, board_by_name
from boards.top import BoardTop
from flexor import RankWarning, XorConfig
from flexor.cli import run_cli
from flexor.network import StreamedNetwork


def run(argv, capsys):
    status = run_cli(PROG, main, argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def random_image(seed, *, nin=8, nout=10, chunks=(40, 17), width=32):
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankWarning)
        configs = [XorConfig.random(nin, nout, 3, seed)]
    layers = [(0, count, rng.integers(0, 2, (count, nin))) for count in chunks]
    return WeightImage.build(configs, layers, width=width)


# -- board table --------------------------------------------------------------------------------

# Initializable block RAM from the vendors' data sheets: iCE40 EBR 4 kbit, ECP5 EBR 18 kbit.
DATASHEET_RAM_BITS = {"icebreaker": 30 * 4096, "icestick": 16 * 4096,
                      "ulx3s-12f": 32 * 18 * 1024, "ulx3s-85f": 208 * 18 * 1024}


# Device and oscillator of each board from its schematic (the table reads both from the
# amaranth-boards platform).
SCHEMATIC = {"icebreaker": ("iCE40UP5K", 12e6), "icestick": ("iCE40HX1K", 12e6),
             "ulx3s-12f": ("LFE5U-12F", 25e6), "ulx3s-85f": ("LFE5U-85F", 25e6)}


@pytest.mark.parametrize("name", sorted(DATASHEET_RAM_BITS))
def test_board_table_matches_the_platform_and_the_data_sheet(name):
    board = board_by_name(name)
    platform = board.make_platform()
    assert (board.device, board.clock_hz) == SCHEMATIC[name]
    assert board.family.name == ("ice40" if name.startswith("ice") else "ecp5")
    assert board.ram_bits == DATASHEET_RAM_BITS[name]
    assert board.spram_blocks == (4 if name == "icebreaker" else 0)
    for index in board.leds.values():
        if index is not None:
            platform.request("led", index, dir="-")   # raises when the LED does not exist


def test_list_prints_every_board_with_device_clock_and_memory(capsys):
    status, out, err = run(["list"], capsys)
    assert status == 0 and err == ""
    for name, bits in DATASHEET_RAM_BITS.items():
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert BOARDS[name].device in line and f"{bits} bits" in line
        assert f"{BOARDS[name].clock_hz / 1e6:g} MHz" in line


def test_unknown_board_is_one_line_error(capsys):
    status, out, err = run(["build", "--board", "nexys"], capsys)
    assert status == 2 and out == ""
    assert err.startswith(f"{PROG}: error: ") and err.count("\n") == 1 and "icebreaker" in err


# -- weights that do not fit -------------------------------------------------------------------

def test_weights_larger_than_block_ram_are_refused_with_both_sizes():
    # 2500 words of 32 bits = 80000 bits: 20 blocks of 256 x 16 on an HX1K with 16.
    image = random_image(1, nin=16, chunks=(5000,))
    assert len(image.words) == 2500
    with pytest.raises(MemoryTooSmall) as info:
        image.check_fits(board_by_name("icestick"))
    message = str(info.value)
    assert "80000 bits" in message and "65536 bits" in message and "iCE40HX1K" in message
    image.check_fits(board_by_name("icebreaker"))    # 20 of 30 blocks


def test_build_cli_refuses_big_weights_before_running_any_tool(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("boards.__main__.load_image",
                        lambda path, lanes: random_image(2, nin=16, chunks=(5000,)))
    build_dir = tmp_path / "build"
    status, out, err = run(["build", "--board", "icestick", "--build-dir", str(build_dir)],
                           capsys)
    assert status == 2 and out == "" and err.count("\n") == 1
    assert "80000 bits" in err and "65536 bits" in err
    assert not build_dir.exists()


def test_classify_build_refuses_an_image_memory_deeper_than_a_spram(tmp_path, capsys,
                                                                   monkeypatch):
    # 8193 one-pixel image words, two slots: 32768 words, twice an SB_SPRAM256KA's depth.
    network = StreamedNetwork.random(0, sizes=(8193, 1), nout=1, nins=(1,), tiles=(1,),
                                     hidden_bits=())
    monkeypatch.setattr("boards.__main__.load_network", lambda path: network)
    monkeypatch.setattr("boards.__main__.build_environment", lambda board, toolchain: {})
    build_dir = tmp_path / "build"
    with warnings.catch_warnings():
        # The engine refuses in its constructor: the half-built top, application and engine
        # warn when collected that they were never elaborated.
        warnings.simplefilter("ignore", UnusedElaboratable)
        status, out, err = run(["build", "--board", "icebreaker", "--app", "classify",
                                "--build-dir", str(build_dir)], capsys)
        gc.collect()
    assert status == 2 and out == "" and err.count("\n") == 1
    assert err == (f"{PROG}: error: the image memory has 32768 words, more than a single-port "
                   f"block's 16384\n")
    assert not build_dir.exists()


def test_a_board_of_a_known_family_is_one_entry(tmp_path):
    """Device, clock and family come from the platform; the family gives geometry, tools,
    bitstream name and report cells, with no table to extend."""
    bitsy = Board("bitsy", "amaranth_boards.icebreaker_bitsy:ICEBreakerBitsyPlatform",
                  ram_blocks=30, leds={"pass": None, "fail": None, "running": None},
                  classify_leds={"busy": None, "error": None, "label": ()}, spram_blocks=4)
    assert (bitsy.device, bitsy.clock_hz, bitsy.family) == ("iCE40UP5K", 12e6, FAMILIES["ice40"])
    assert bitsy.ram_bits == DATASHEET_RAM_BITS["icebreaker"]
    assert bitstream_path(bitsy, tmp_path) == tmp_path / "top.bin"
    assert set(FAMILIES["ice40"].tools) <= {tool.lower().replace("_", "-")
                                            for tool in TOOLCHAINS["yowasp"]}


@pytest.mark.parametrize("lanes, nin, width", [(1, 8, 32), (4, 8, 32), (5, 8, 64), (3, 16, 64),
                                               (9, 8, 64)])
def test_word_width_feeds_the_lanes(lanes, nin, width):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankWarning)
        assert word_width([XorConfig.random(nin, 10, 2, 0)], lanes) == width


# -- the top on every board --------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_top_elaborates_for_every_board(name):
    board = board_by_name(name)
    plan = board.make_platform().prepare(
        BoardTop(image=random_image(3), lanes=2, leds=board.leds), "top")
    rtlil = plan.files["top.il"]
    assert "uart_0__tx" in rtlil and "led_" in rtlil
    assert ("button_0__i" in rtlil) == (name != "icestick")


# -- report parsing ----------------------------------------------------------------------------

# Excerpts of real logs (nextpnr-ice40 0.8 and Yosys 0.70 from YoWASP; Yosys 0.23 from Debian).
NEXTPNR_ICE40_LOG = """\
Info: Device utilisation:
Info: \t         ICESTORM_LC:    1140/   5280    21%
Info: \t        ICESTORM_RAM:       8/     30    26%
Info: \t               SB_IO:       5/     39    12%
Info: \t      ICESTORM_SPRAM:       2/      4    50%
Info: \t        ICESTORM_DSP:       1/      8    12%
Info: Max frequency for clock 'cd_sync.clk': 22.31 MHz (PASS at 12.00 MHz)
Info: Max frequency for clock 'cd_sync.clk': 19.94 MHz (PASS at 12.00 MHz)
"""
YOSYS_070_LOG = """\
2.50. Printing statistics.

=== top ===
       29 cells
       12   SB_RAM40_4K
      219   SB_CARRY
        2   SB_DFF
       11   SB_DFFE
      231   SB_DFFESR
       57   SB_DFFSR
     1348   SB_LUT4
"""
YOSYS_023_LOG = """\
2.47. Printing statistics.

=== top ===

   Number of cells:                 98
     SB_CARRY                       27
     SB_DFFE                         9
     SB_DFFSR                       23
     SB_LUT4                        62
"""


@pytest.mark.parametrize("yosys_log, luts, flip_flops", [(YOSYS_070_LOG, 1348, 301),
                                                         (YOSYS_023_LOG, 62, 32)])
def test_build_report_takes_post_route_fmax_and_cell_counts(tmp_path, yosys_log, luts,
                                                            flip_flops):
    (tmp_path / "top.tim").write_text(NEXTPNR_ICE40_LOG)
    (tmp_path / "top.rpt").write_text("1.1. Printing statistics.\n   999 SB_LUT4\n" + yosys_log)
    figures = parse_build_reports(board_by_name("icebreaker"), tmp_path)
    assert figures == {"logic_cells": [1140, 5280], "ram_blocks": [8, 30], "luts": luts,
                       "flip_flops": flip_flops, "fmax_mhz": 19.94, "spram": [2, 4],
                       "dsp": [1, 8], "timing_met": True}


def test_build_report_says_when_timing_fails_at_the_board_clock(tmp_path):
    # Only the last (post-route) line counts: here it fails while the first one passed.
    (tmp_path / "top.tim").write_text(NEXTPNR_ICE40_LOG.replace(
        "19.94 MHz (PASS at 12.00 MHz)", "11.20 MHz (FAIL at 12.00 MHz)"))
    (tmp_path / "top.rpt").write_text(YOSYS_070_LOG)
    figures = parse_build_reports(board_by_name("icebreaker"), tmp_path)
    assert figures["fmax_mhz"] == 11.20 and figures["timing_met"] is False


def test_build_report_without_fmax_names_the_log(tmp_path):
    (tmp_path / "top.tim").write_text(NEXTPNR_ICE40_LOG.replace("Max frequency", "Max freq"))
    (tmp_path / "top.rpt").write_text(YOSYS_070_LOG)
    with pytest.raises(ValueError, match="top.tim: no a Max frequency line"):
        parse_build_reports(board_by_name("icebreaker"), tmp_path)


# -- programming -------------------------------------------------------------------------------

def stand_in(tmp_path, status=0):
    """A programmer that records its arguments and a copy of each file argument."""
    script = tmp_path / "programmer"
    record = tmp_path / "calls.json"
    script.write_text(f"""#!/usr/bin/env python3
import json, os, sys
calls = json.load(open({str(record)!r})) if os.path.exists({str(record)!r}) else []
files = {{a: open(a, 'rb').read().hex() for a in sys.argv[1:] if os.path.isfile(a)}}
calls.append({{"argv": sys.argv[1:], "files": files}})
json.dump(calls, open({str(record)!r}, 'w'))
sys.exit({status})
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, record


@pytest.mark.parametrize("name, variable, suffix, options", [
    ("icebreaker", "ICEPROG", ".bin", []),
    ("icestick", "ICEPROG", ".bin", []),
    ("ulx3s-85f", "OPENFPGALOADER", ".bit", ["-b", "ulx3s", "-m"]),
])
def test_program_calls_the_platform_programmer_with_the_bitstream(tmp_path, capsys, monkeypatch,
                                                                  name, variable, suffix, options):
    script, record = stand_in(tmp_path)
    monkeypatch.setenv(variable, str(script))
    build_dir = tmp_path / "build"
    build_dir.mkdir()
    bitstream = bytes(range(256)) * 4
    (build_dir / f"top{suffix}").write_bytes(bitstream)
    status, _, err = run(["program", "--board", name, "--build-dir", str(build_dir)], capsys)
    assert (status, err) == (0, ""), err
    [call] = json.loads(record.read_text())
    assert call["argv"][:-1] == options
    assert call["files"] == {call["argv"][-1]: bitstream.hex()}
    assert call["argv"][-1].endswith(suffix)


def test_program_without_programmer_is_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ICEPROG", str(tmp_path / "no-such-iceprog"))
    (tmp_path / "top.bin").write_bytes(b"\0")
    status, _, err = run(["program", "--board", "icebreaker", "--build-dir", str(tmp_path)],
                           capsys)
    assert status == 2 and err.count("\n") == 1
    assert "no-such-iceprog" in err and "not found" in err and "ICEPROG" in err


def test_program_without_board_is_one_line_error(tmp_path, capsys, monkeypatch):
    script, _ = stand_in(tmp_path, status=2)         # what iceprog does without a board
    monkeypatch.setenv("ICEPROG", str(script))
    (tmp_path / "top.bin").write_bytes(b"\0")
    status, _, err = run(["program", "--board", "icebreaker", "--build-dir", str(tmp_path)],
                           capsys)
    assert status == 2 and err.count("\n") == 1
    assert "status 2" in err and "connected" in err


def test_program_without_bitstream_says_to_build_first(tmp_path, capsys):
    status, _, err = run(["program", "--board", "ulx3s-85f", "--build-dir", str(tmp_path)],
                           capsys)
    assert status == 2 and "python -m boards build --board ulx3s-85f" in err
    assert not os.listdir(tmp_path)


def test_system_toolchain_without_yosys_is_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("boards.__main__.load_image", lambda path, lanes: random_image(4))
    monkeypatch.setenv("PATH", str(tmp_path))           # nothing to run in there
    monkeypatch.delenv("YOSYS", raising=False)
    status, _, err = run(["build", "--board", "icebreaker", "--toolchain", "system",
                            "--build-dir", str(tmp_path / "build")], capsys)
    assert status == 2 and err.count("\n") == 1
    assert "yosys not found" in err and "--toolchain yowasp" in err
