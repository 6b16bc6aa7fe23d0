"""python -m gen --engine: reproducible Verilog + sidecar from the shipped container, one-line
errors for what the engine refuses."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "fmnist_mlp.npz"
DIGITS = WEIGHTS.parent / "digits_mlp_0p8.npz"


def gen(*args, cwd):
    return subprocess.run([sys.executable, "-m", "gen", *args], cwd=cwd, capture_output=True,
                          text=True)


def test_engine_files_are_reproducible_and_describe_the_network(tmp_path):
    first = gen("--engine", "--weights", str(WEIGHTS), "--lanes", "2", "-o", "a.v", cwd=tmp_path)
    second = gen("--engine", "--weights", str(WEIGHTS), "--lanes", "2", "-o", "a2.v",
                 cwd=tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert (tmp_path / "a.v").read_bytes() == (tmp_path / "a2.v").read_bytes()
    sidecar = json.loads((tmp_path / "a.json").read_text())
    assert sidecar["kind"] == "engine" and sidecar["lanes"] == 2 and sidecar["width"] == 32
    assert [layer["outputs"] for layer in sidecar["layers"]] == [128, 128, 10]
    assert sidecar["inputs"] == 784 and sidecar["classes"] == 10
    ports = {port["name"]: port["width"] for port in sidecar["ports"]}
    assert ports["m_res_tdata"] == sidecar["result"]["width"]
    assert ports["s_img_tdata"] == 8 and ports["s_desc_tdata"] == 40


@pytest.mark.parametrize("args, message", [
    (["--weights", str(WEIGHTS), "--lanes", "3"], "tile 4 must be a multiple of lanes 3"),
    (["--weights", str(DIGITS)], "no integer program"),
    ([], "--engine needs --weights CONTAINER"),
    (["--weights", str(WEIGHTS), "--decryptor"], "exclude each other"),
    (["--weights", str(WEIGHTS), "--width", "12"], "width must be one of 8, 16, 32, 64"),
])
def test_refusals_are_one_line(tmp_path, args, message):
    result = gen("--engine", *args, "-o", "e.v", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "e.v").exists()
