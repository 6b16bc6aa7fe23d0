"""``python -m sim``: the shipped trained weights through the generated decryptor RTL."""

import numpy as np
import pytest

from flexor.cli import run_cli
from flexor.container import DIGITS_WEIGHTS, Container
from sim.__main__ import main
from sim.runner import TestbenchFailed
from sim.weights import run_weights

pytestmark = pytest.mark.rtl


def sim(argv, capsys):
    status = run_cli("python -m sim", main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_shipped_weights_with_stalls_on_icarus(tmp_path, capsys):
    status, out, err = sim(["--stall", 0.3, "--seed", 4, "--lanes", 2,
                            "--build-dir", tmp_path], capsys)
    assert status == 0, err
    assert "PASS" in out and "predictions identical" in out
    container = Container.load(DIGITS_WEIGHTS)
    planes = [plane.chunks for layer in container.layers for plane in layer.planes]
    assert f"{sum(planes)} chunks" in out
    beats = sum(-(-chunks // 2) for chunks in planes)   # two lanes, each plane starts a beat
    assert f"checked    {beats * 2 * container.configs[0].nout} decrypted bits" in out


def test_rtl_accuracy_equals_golden_and_recorded(tmp_path):
    run = run_weights(DIGITS_WEIGHTS, tmp_path, width=16, lanes=1)
    assert run.rtl_correct == run.golden_correct == run.recorded_correct
    assert run.predictions_equal
    # 8-bit chunks on 16-bit words: the output side is the limit, one beat per cycle.
    assert run.ideal_cycles == run.chunks and run.cycles <= run.ideal_cycles + 4


def test_one_flipped_encrypted_bit_is_caught_at_its_chunk(tmp_path):
    container = Container.load(DIGITS_WEIGHTS)
    plane = next(p for layer in container.layers for p in layer.planes)
    config = container.configs[plane.config]
    chunk = 100
    # An encrypted bit that reaches the output, and the lowest decrypted bit it flips.
    column = next(j for j in range(config.nin) if config.matrix[:, j].any())
    first_row = int(np.flatnonzero(config.matrix[:, column])[0])
    position = chunk * config.nin + column            # stream bit of the first stream layer
    with pytest.raises(TestbenchFailed,
                       match=rf"layer 0 \(.* plane 0\), chunk {chunk}, bit {first_row}: got"):
        run_weights(DIGITS_WEIGHTS, tmp_path, width=32, lanes=1,
                    flip=(position // 32, position % 32))


@pytest.mark.parametrize("argv,message", [
    (["--weights", "{missing}"], "no such file"),
    (["--weights", "{corrupt}"], "checksum mismatch: the file is corrupted"),
    (["--width", "24"], "width must be one of 8, 16, 32, 64, not 24"),
    (["--lanes", "0"], "argument --lanes: must be a positive integer, not '0'"),
    (["--stall", "1.5"], "--stall must be a probability in [0, 1), not '1.5'"),
    (["--simulator", "modelsim"], "invalid choice: 'modelsim'"),
])
def test_bad_input_one_line(tmp_path, capsys, argv, message):
    corrupt = tmp_path / "corrupt.npz"
    data = bytearray(DIGITS_WEIGHTS.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    argv = [a.format(missing=tmp_path / "missing.npz", corrupt=corrupt) for a in argv]
    status, out, err = sim(argv + ["--build-dir", tmp_path / "b"], capsys)
    assert status == 2
    assert err.startswith("python -m sim: error: ") and err.count("\n") == 1, err
    assert message in err


def test_missing_simulator_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    status, _, err = sim(["--build-dir", tmp_path / "b"], capsys)
    assert status == 2 and err.count("\n") == 1
    assert "Icarus Verilog is not installed" in err and "apt-get install" in err


def test_waves_are_written(tmp_path, capsys):
    status, _, err = sim(["--waves", "--build-dir", tmp_path], capsys)
    assert status == 0, err
    waves = list(tmp_path.rglob("*.fst")) + list(tmp_path.rglob("*.vcd"))
    assert waves and waves[0].stat().st_size > 1000
