"""Test images and a container's weights through the generated engine RTL, every logit checked.

The flow behind ``python -m sim --infer``: generate the engine for the container's integer
program, stream the first ``count`` test images and, per image, the whole encrypted weight
stream through it (:mod:`sim.engine_harness`, at the simulator's own speed), compare every
logit and class with :class:`flexor.integer.IntegerProgram`, and report the RTL's accuracy next
to the integer and the float model's.
"""

from pathlib import Path
from typing import NamedTuple

import numpy as np

from flexor.cli import write_files_atomically
from flexor.container import Container
from flexor.datasets import load_dataset, pixels
from flexor.errors import InputError
from flexor.inference import evaluate
from flexor.network import StreamedNetwork
from flexor.sidecar import Sidecar, sidecar_path
from gen.engine import DEFAULT_ENGINE_TOP, engine_files

from .engine_harness import run_images

__all__ = ["InferRun", "run_inference"]

TOP = DEFAULT_ENGINE_TOP


class InferRun(NamedTuple):
    """What :func:`run_inference` measured (accuracies over the images run)."""
    images: int
    rtl_correct: int
    integer_correct: int
    float_correct: int
    cycles_per_image: int     # steady state: the largest gap between consecutive results
    cycle_bound: int          # hdl.InferenceEngine.cycle_bound()
    beats_per_image: int      # sum over layers of ceil(chunks / lanes)
    layers: int
    layer_overhead: int
    cycles: int
    seconds: float
    build_seconds: float


def run_inference(weights, build_dir, *, count=100, width=32, lanes=1, simulator="verilator",
                  stall=0.0, seed=0):
    """Run ``count`` test images of container ``weights`` through the engine RTL.

    Raises ``ValueError`` (``ContainerError``) for a container without a suitable integer
    program or bad parameters, :class:`~sim.runner.SimulatorMissing`, and
    :class:`~sim.runner.TestbenchFailed` at the first wrong logit (image, layer, output).
    """
    container = Container.load(weights)
    network = StreamedNetwork.from_container(container)
    split = load_dataset(container.metadata.get("dataset", "digits"))
    inputs, labels = split.x_test[:count], np.asarray(split.y_test[:count])
    if len(inputs) == 0:
        raise InputError("count must select at least one test image")
    images = pixels(inputs.reshape(len(inputs), -1))
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    verilog = build_dir / f"{TOP}.v"
    files = engine_files(network, str(verilog), width=width, lanes=lanes, top=TOP)
    write_files_atomically(files)
    sidecar = Sidecar.loads(files[sidecar_path(str(verilog))])
    run = run_images(sidecar, network, verilog, images, build_dir / simulator,
                     simulator=simulator, stall=stall, seed=seed)
    golden = evaluate(container, data=(inputs, labels))
    integer = network.program.predict(images)
    gaps = np.diff(run.result_cycles)
    return InferRun(
        images=run.images, rtl_correct=int((run.predictions == labels).sum()),
        integer_correct=int((integer == labels).sum()), float_correct=golden.correct,
        cycles_per_image=int(gaps.max()) if len(gaps) else run.cycles,
        cycle_bound=sidecar["cycle_bound"],
        beats_per_image=sum(-(-layer.chunks // lanes) for layer in network.layers),
        layers=len(network.layers), layer_overhead=sidecar["layer_overhead"],
        cycles=run.cycles, seconds=run.seconds, build_seconds=run.build_seconds)
