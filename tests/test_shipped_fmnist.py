"""The shipped Fashion-MNIST container: what the hardware reads, float and integer accuracy."""

import os
import subprocess
import sys

import pytest

from flexor.container import Container
from flexor.datasets import FASHION_MNIST_ROOT
from flexor.inference import evaluate
from flexor.integer import IntegerProgram, evaluate_integer
from retrain import retrain_recorded

SHIPPED = "weights/fmnist_mlp.npz"
pytestmark = pytest.mark.skipif(
    not os.path.exists(os.path.join(FASHION_MNIST_ROOT, "t10k-images-idx3-ubyte.gz")),
    reason="dataset-fashion-mnist is not installed (make setup installs it)")


def test_shipped_container_is_what_the_hardware_needs():
    container = Container.load(SHIPPED)
    assert container.version == 2
    assert [layer.shape for layer in container.layers][0][1] == 784
    assert {(layer.precision, layer.flatten, layer.tile) for layer in container.layers} == \
        {("xor", "tiled", 4)}
    kbit = sum(layer.stored_bits for layer in container.layers) / 1000
    weights = sum(layer.n_weights for layer in container.layers)
    assert kbit <= 100 < weights / 1000, (kbit, weights)    # would not fit at 1 bit/weight
    program = IntegerProgram.from_container(container)
    assert program.inputs == 784 and program.input_bits == 8 and program.classes == 10


def test_shipped_container_float_and_integer_accuracy():
    container = Container.load(SHIPPED)
    golden = evaluate(container)
    assert golden.correct == container.metadata["correct"]
    exact = evaluate_integer(container)
    agree = (exact.predictions == golden.predictions).mean()
    assert agree >= 0.995 and abs(exact.accuracy - golden.accuracy) <= 0.003, agree


def test_eval_cli_prints_float_and_integer_accuracy_and_the_memory_table():
    run = subprocess.run([sys.executable, "-m", "flexor.eval", SHIPPED], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    container = Container.load(SHIPPED)
    exact = evaluate_integer(container)
    assert f"({container.metadata['correct']}/10000 test samples" in run.stdout
    assert f"integer program: accuracy {100 * exact.accuracy:.2f}% ({exact.correct}/10000" \
        in run.stdout
    for layer in container.layers:
        assert f" {layer.name}  " in run.stdout and f" {layer.stored_bytes} " in run.stdout
    assert "full-precision layers hold 0.0% of the MACs" in run.stdout


@pytest.mark.slow
def test_shipped_container_is_reproduced_by_its_recorded_command(tmp_path):
    pytest.importorskip("torch")
    # Same machine: the same bytes (measured). Float kernels differ across CPUs, so across
    # machines only the accuracy is compared, with a tolerance of one point.
    shipped, retrained = retrain_recorded(tmp_path, SHIPPED)
    assert abs(retrained.metadata["correct"] - shipped.metadata["correct"]) <= 100
    assert retrained.metadata["command"] == shipped.metadata["command"]
