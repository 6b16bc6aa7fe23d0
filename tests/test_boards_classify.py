"""The classify application end to end without a board: its Verilog in Verilator behind a
pseudo-terminal (:mod:`boards.pty_sim`), driven by the real host tool, ``python -m boards
classify``, exactly as a board would be. The expected logits are the integer model's, which the
host tool computes from the container; the test checks the tool's verdict and recomputes the
accuracy itself.
"""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from amaranth.hdl import Fragment, UnusedElaboratable

from boards.__main__ import DEFAULT_CLASSIFY_WEIGHTS, PROG, main
from boards.classify import (ClassifyApp, ClassifyTop, check_classify_fits, classify_image,
                             engine_options, streamed_network)
from boards.image import MemoryTooSmall
from boards.platforms import board_by_name
from boards.pty_sim import SIMULATION_DIVISOR, SimulatedBoard, build_simulator
from flexor.cli import run_cli
from flexor.container import Container
from flexor.datasets import load_dataset, pixels
from flexor.integer import IntegerProgram

pytestmark = pytest.mark.rtl


@pytest.fixture(scope="module")
def network():
    return streamed_network(Container.load(DEFAULT_CLASSIFY_WEIGHTS))


ICEBREAKER = board_by_name("icebreaker")


def icebreaker_app(network, **kwargs):
    """The classify logic as the iCEBreaker builds it: the image memory on single-port blocks
    (the SPRAM's Amaranth stand-in here), the constant rows past 256 in logic."""
    return ClassifyApp(network=network, lanes=1, divisor=SIMULATION_DIVISOR,
                       engine_options=engine_options(ICEBREAKER, network), **kwargs)


@pytest.fixture(scope="module")
def simulator(network, tmp_path_factory):
    app = icebreaker_app(network)
    assert app.engine.single_port_buffers and app.engine.constant_logic_rows
    return build_simulator(app, tmp_path_factory.mktemp("classify"))


def host(port, count, tmp_path, *extra):
    """Run the host tool in its own process, as a user would; returns (status, out, report)."""
    output = tmp_path / f"run{count}.json"
    result = subprocess.run([sys.executable, "-m", "boards", "classify", "--board",
                             "icebreaker", "--port", port, "--count", str(count), "--timeout",
                             "10", "-o", str(output), *extra], capture_output=True, text=True,
                            timeout=600)
    report = json.loads(output.read_text()) if output.exists() else None
    return result.returncode, result.stdout + result.stderr, report


def integer_model_accuracy(count):
    container = Container.load(DEFAULT_CLASSIFY_WEIGHTS)
    split = load_dataset(container.metadata["dataset"])
    predicted = IntegerProgram.from_container(container).predict(pixels(split.x_test[:count]))
    return float(np.mean(predicted == split.y_test[:count]))


def test_twenty_images_classified_exactly_as_the_integer_model(simulator, tmp_path):
    with SimulatedBoard(simulator) as board:
        status, out, report = host(board.path, 20, tmp_path)
    assert status == 0, out
    assert report["same_logits"] == report["same_class"] == report["images"] == 20
    assert report["accuracy"] == integer_model_accuracy(20)
    assert "identical logits on 20 / 20" in out
    # The line carried exactly one request and one answer per image.
    assert board.stats.requests == board.stats.answers == 20


def test_a_dropped_byte_costs_one_resend_and_no_wrong_answer(simulator, tmp_path):
    # Byte 300 of the line is a pixel of the first request: that frame arrives one byte short.
    with SimulatedBoard(simulator, drop=300) as board:
        status, out, report = host(board.path, 4, tmp_path)
    assert status == 0, out
    assert report["resent"] == {"timeout": 0, "garbled": 0, "bad request": 1}
    assert report["same_logits"] == 4 and board.stats.requests == 5


def test_a_corrupted_weight_memory_is_caught_by_the_host(network, tmp_path):
    image = classify_image(network, 1)
    words = list(image.words)
    # Two encrypted bits of the last layer flip: with Ntap 2 each flips the weights of the rows
    # that XOR it in (inverting a whole chunk would change nothing: every row XORs two bits).
    index = image.layer_ends[1] + 5
    words[index] ^= 1 << 3 | 1 << 11
    app = icebreaker_app(network, image=image._replace(words=words))
    executable = build_simulator(app, tmp_path / "corrupt")
    with SimulatedBoard(executable) as board:
        status, out, report = host(board.path, 4, tmp_path)
    assert status == 1 and "MISMATCH" in out
    assert report["same_logits"] < 4 and report["mismatches"]


# -- the build's checks without tools ------------------------------------------------------------

def test_classify_top_elaborates_for_the_ulx3s(network):
    board = board_by_name("ulx3s-85f")
    plan = board.make_platform().prepare(ClassifyTop(network=network, board=board), "top")
    rtlil = plan.files["top.il"]
    assert "uart_0__rx" in rtlil and "uart_0__tx" in rtlil and "led_6" in rtlil


def test_classify_build_refuses_a_board_too_small_before_any_tool(tmp_path, capsys):
    build_dir = tmp_path / "build"
    with warnings.catch_warnings():
        # Refused on the weights alone, before any gateware object exists.
        warnings.simplefilter("error", UnusedElaboratable)
        status = run_cli(PROG, main, ["build", "--board", "icestick", "--app", "classify",
                                      "--build-dir", str(build_dir)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "95456 bits" in err and "65536 bits" in err and "iCE40HX1K" in err
    assert not build_dir.exists()


def test_engine_buffers_count_against_the_block_ram(network):
    # A UP5K with 25 blocks holds the 24 of the weights, but not the engine's buffers beside.
    board = ICEBREAKER._replace(ram_blocks=25, spram_blocks=0)
    app = ClassifyApp(network=network, lanes=1, divisor=SIMULATION_DIVISOR)
    app.image.check_fits(board)
    with pytest.raises(MemoryTooSmall) as info:
        check_classify_fits(board, app.image, app.engine)
    message = str(info.value)
    assert "needs 37 blocks" in message
    assert "weights 2983 x 32 bits: 24" in message and "has 25" in message
    for buffer, (depth, width) in app.engine.buffers.items():
        assert f"{buffer} {depth} x {width} bits" in message
    Fragment.get(app, None)       # elaborate it, as a build would (no unused warning)


def test_the_icebreaker_plan_fits_exactly_and_is_counted(network):
    """The iCEBreaker's plan: 24 + 1 + 2 + 3 = 30 of 30 blocks, 4 of 4 SPRAMs, 10 constant rows
    in logic; one block or one SPRAM fewer and the check refuses, naming the parts."""
    app = icebreaker_app(network)
    assert app.engine.buffers == {"image": (256, 16), "hidden": (32, 20), "constants": (256, 44)}
    assert app.engine.single_port_buffers == {"image": (256, 64)}
    assert app.engine.constant_logic_rows == 10
    check_classify_fits(ICEBREAKER, app.image, app.engine)
    with pytest.raises(MemoryTooSmall) as info:
        check_classify_fits(ICEBREAKER._replace(ram_blocks=29), app.image, app.engine)
    assert ("needs 30 blocks of 4096 bits of block RAM (weights 2983 x 32 bits: 24, image 256 x "
            "16 bits: 1, hidden 32 x 20 bits: 2, constants 256 x 44 bits: 3; 10 constant rows "
            "in logic) but the iCE40UP5K on icebreaker has 29") in str(info.value)
    with pytest.raises(MemoryTooSmall, match=r"needs 4 single-port RAM blocks of 16 bits "
                                             r"\(image 256 x 64 bits: 4\) but the iCE40UP5K on "
                                             r"icebreaker has 3"):
        check_classify_fits(ICEBREAKER._replace(spram_blocks=3), app.image, app.engine)
    Fragment.get(app, None)


def test_boards_without_spram_keep_the_default_engine(network):
    assert engine_options(board_by_name("ulx3s-85f"), network) == {}
