"""The host tool against a Python stand-in of the board behind a pseudo-terminal
(:mod:`tests.board_model`): answers, comparison with the integer model, resends, errors."""

import numpy as np
import pytest

from boards.host import BoardError, BoardLink, classify_images
from flexor.integer import IntegerLayer, IntegerProgram
from tests.board_model import PtyBoardModel

BAUD = 1_000_000


def random_program(seed, sizes=(784, 16, 10)):
    rng = np.random.default_rng(seed)
    layers = []
    bits = [8, 2, None]
    for index, (inputs, outputs) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(IntegerLayer(
            weights=rng.integers(0, 2, (1, outputs, inputs)),
            mult=rng.integers(1, 2 ** 10, (1, outputs)), offset=rng.integers(-99, 99, outputs),
            shift=12, in_bits=bits[index], out_bits=bits[index + 1]))
    return IntegerProgram(layers)


@pytest.fixture
def program():
    return random_program(0)


def images(program, count, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, program.inputs)), rng.integers(0, 10, count)


def run(program, behaviour, count=5, **options):
    board = PtyBoardModel(program, behaviour)
    try:
        with BoardLink(board.path, baud=BAUD, classes=program.classes, **options) as link:
            x, y = images(program, count)
            return classify_images(link, x, y, program), board.requests
    finally:
        board.close()


def test_answers_equal_to_the_model_are_counted_as_agreeing(program):
    result, requests = run(program, "ok", count=6)
    assert requests == 6 and result.resent == {"timeout": 0, "garbled": 0, "bad request": 0}
    assert result.same_logits == result.same_class == 6 and not len(result.mismatches)
    x, y = images(program, 6)
    assert result.accuracy == np.mean(program.predict(x) == y) == result.model_accuracy


def test_a_wrong_board_is_caught_by_the_comparison(program):
    result, _ = run(program, "off by one", count=4)
    assert result.same_logits == 0 and list(result.mismatches) == [0, 1, 2, 3]


def test_a_lost_answer_is_resent_after_the_timeout(program):
    result, requests = run(program, "drop first", count=3, timeout=0.3)
    assert requests == 4 and result.resent["timeout"] == 1 and result.same_logits == 3


def test_silent_board_is_a_timeout_error(program):
    with pytest.raises(BoardError, match=r"no answer from the board on .* within 0.2 s "
                                         r"\(2 resends\)"):
        run(program, "silent", count=1, timeout=0.2, retries=2)


def test_garbled_answers_are_an_error_naming_the_fault(program):
    with pytest.raises(BoardError, match="garbled answers .*wrong CRC.*1000000 baud"):
        run(program, "garbled", count=1, timeout=0.5, retries=1)


def test_missing_port_is_an_error_naming_it(program, tmp_path):
    with pytest.raises(BoardError, match=f"no serial port {tmp_path}/ttyUSB9"):
        BoardLink(str(tmp_path / "ttyUSB9"), baud=BAUD, classes=10)
