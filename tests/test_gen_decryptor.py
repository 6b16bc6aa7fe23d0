"""``python -m gen --decryptor``: port names, sidecar contents, reproducibility, one-line errors."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flexor import XorConfig
from flexor.container import Container

# Random matrices of these sizes are often rank-deficient; that is not what is tested here.

ROOT = Path(__file__).resolve().parent.parent
AXI_PORTS = {
    "clk": ("input", 1), "rst": ("input", 1),
    "s_desc_tdata": ("input", 40), "s_desc_tvalid": ("input", 1), "s_desc_tready": ("output", 1),
    "s_axis_tvalid": ("input", 1), "s_axis_tready": ("output", 1), "s_axis_tlast": ("input", 1),
    "m_axis_tvalid": ("output", 1), "m_axis_tready": ("input", 1), "m_axis_tlast": ("output", 1),
    "error": ("output", 2),
}


def run_gen(*args, cwd):
    return subprocess.run([sys.executable, "-m", "gen", *args], cwd=cwd, capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def module_ports(verilog_text, top):
    """``{name: (direction, width)}`` of module ``top``, read from the Verilog text itself."""
    body = verilog_text.split(f"module {top}(", 1)[1].split("endmodule", 1)[0]
    ports = {}
    for direction, msb, name in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);",
                                           body, re.M):
        ports[name] = (direction, int(msb) + 1 if msb else 1)
    return ports


@pytest.mark.parametrize("args, width, lanes, nins", [
    (["--nin", "12", "--nout", "20", "--width", "32", "--lanes", "2"], 32, 2, [12]),
    (["--nin", "19", "--nin", "16", "--nin", "7", "--nout", "20", "--width", "64",
      "--lanes", "4"], 64, 4, [19, 16, 7]),
])
def test_cli_writes_axi_ports_and_sidecar(tmp_path, args, width, lanes, nins):
    result = run_gen("--decryptor", *args, "-o", "decryptor.v", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "decryptor.v").read_text()
    sidecar = json.loads((tmp_path / "decryptor.json").read_text())
    expected = dict(AXI_PORTS, s_axis_tdata=("input", width),
                    m_axis_tdata=("output", 20 * lanes),
                    m_axis_tuser=("output", lanes.bit_length()))
    assert module_ports(text, sidecar["top"]) == expected
    assert {p["name"]: (p["direction"], p["width"]) for p in sidecar["ports"]} == expected
    assert (sidecar["kind"], sidecar["width"], sidecar["lanes"], sidecar["nout"]) == \
        ("decryptor", width, lanes, 20)
    assert sidecar["descriptor"]["fields"] == {"chunks": {"lsb": 0, "width": 32},
                                               "config": {"lsb": 32, "width": 8}}
    latency = sidecar["latency"]
    assert (latency["descriptor"], latency["word"], latency["word_start"],
            sidecar["layer_gap"], sidecar["pipeline"]) == (3, 2, 0, 0, False)
    # First beat: max(3, words - 1 + 2), words = ceil(lanes * nin / width).
    assert latency["first_beat"] == [max(3, -(-lanes * nin // width) + 1) for nin in nins]
    # Configuration k is the random matrix for (nin_k, 20, ntap 2, seed 0 + k).
    for k, (nin, config) in enumerate(zip(nins, sidecar["configs"])):
        want = XorConfig.random(nin, 20, 2, k)
        assert config["index"] == k
        assert XorConfig.from_dict({key: v for key, v in config.items() if key != "index"}) \
            == want
    again = run_gen("--decryptor", *args, "-o", "again.v", cwd=tmp_path)
    assert again.returncode == 0
    assert (tmp_path / "again.v").read_text() == text.replace("decryptor.v", "again.v")
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "decryptor.json").read_bytes()


def test_matrix_files_become_configurations_in_order(tmp_path):
    assert run_gen("--nin", "9", "--nout", "20", "--seed", "4", "-o", "a.v", cwd=tmp_path) \
        .returncode == 0
    result = run_gen("--decryptor", "--matrix", "a.json", "--nin", "12", "--nout", "20",
                     "--width", "16", "-o", "d.v", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sidecar = json.loads((tmp_path / "d.json").read_text())
    assert sidecar["nin"] == [9, 12] and sidecar["lanes"] == 1
    assert sidecar["configs"][0]["matrix"] == XorConfig.load(tmp_path / "a.json").matrix.tolist()


@pytest.mark.parametrize("args, message", [
    (["--decryptor", "--nin", "12", "--nout", "20", "--width", "24"],
     "width must be one of 8, 16, 32, 64, not 24"),
    (["--decryptor", "--nin", "12", "--nout", "20", "--lanes", "0"],
     "argument --lanes: must be a positive integer, not '0'"),
    (["--decryptor", "--nin", "12", "--nin", "70", "--nout", "20"],
     "configs[1] has nin 70, more than the supported 64"),
    (["--decryptor", "--matrix", "m20.json", "--matrix", "m16.json"],
     "configs must share one nout: configs[1] has nout 16, configs[0] has 20"),
    (["--decryptor", "--nout", "20"], "--nin, --matrix or --weights is required"),
    (["--decryptor", "--weights", "missing.npz"], "missing.npz: no such file"),
    (["--decryptor", "--weights", "weights/digits_mlp_0p8.npz", "--nin", "8"],
     "--weights gives the configurations: drop --nin/--matrix"),
    (["--decryptor", "--nin", "12", "--nout", "20", "--registered"],
     "--registered applies to the bare decoder, not --decryptor"),
    (["--nin", "8", "--nin", "9", "--nout", "20"],
     "--nin and --matrix may be repeated only with --decryptor"),
    (["--nin", "8", "--nout", "20", "--width", "32"], "--width applies only with --decryptor or --engine"),
])
def test_cli_errors_are_one_line(tmp_path, args, message):
    for nout in (16, 20):
        (tmp_path / f"m{nout}.json").write_text(XorConfig.random(8, nout, 2, 0).dumps())
    result = run_gen(*args, "-o", "bad.v", cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "warning" not in line]
    assert lines == [f"python -m gen: error: {message}"]
    assert not list(tmp_path.glob("bad*"))


def test_configurations_from_a_container(tmp_path):
    weights = ROOT / "weights" / "digits_mlp_0p8.npz"
    result = run_gen("--decryptor", "--weights", str(weights), "--lanes", "2", "-o", "w.v",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sidecar = json.loads((tmp_path / "w.json").read_text())
    assert [c["matrix"] for c in sidecar["configs"]] == \
        [c.matrix.tolist() for c in Container.load(weights).configs]
