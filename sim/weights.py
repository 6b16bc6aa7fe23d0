"""Stream a container's trained encrypted weights through the generated decryptor RTL.

The flow behind ``python -m sim``: generate the decryptor for the container's configuration
table, turn every bit-plane of every layer into one layer of the documented stream, run it in
cocotb (the testbench checks every beat against the golden model as it goes), rebuild the
decrypted bits per plane from the beats that came *out of the RTL*, and run the NumPy inference
on them.
"""

from typing import NamedTuple

import numpy as np

from flexor import unpack_bits
from flexor.cli import write_files_atomically
from flexor.container import Container
from flexor.errors import InputError
from flexor.inference import evaluate
from flexor.stream import Layer, check_stream_parameters
from gen.decryptor import DEFAULT_DECRYPTOR_TOP, decryptor_files

from .decryptor import check_decryptor
from .runner import prepare_build_dir

__all__ = ["WeightsRun", "stream_layers", "planes_from_beats", "run_weights"]

TOP = DEFAULT_DECRYPTOR_TOP


class WeightsRun(NamedTuple):
    """What :func:`run_weights` measured.

    ``ideal_cycles`` is the cycle count at the rate limit: per stream layer the larger of its
    output beats and its input words (one of each per cycle at most).
    """
    layers: int          # layers of the container with encrypted planes
    stream_layers: int   # bit-planes streamed (one stream layer each)
    chunks: int
    bits_checked: int    # decrypted bits compared with the golden model (every beat, all lanes)
    beats: int
    words: int
    cycles: int
    ideal_cycles: int
    seconds: float       # wall time of the simulation loop (build excluded)
    test_samples: int
    rtl_correct: int     # test samples classified right with the weights out of the RTL
    golden_correct: int  # ... with the golden model's decryption
    recorded_correct: int  # ... as recorded in the container at training time (or None)
    predictions_equal: bool


def stream_layers(container):
    """One stream layer per bit-plane, in layer then plane order.

    Returns ``(layers, keys, names)``: :class:`flexor.stream.Layer` list, the
    ``(layer index, plane index)`` of each, and a label per stream layer for messages.
    """
    layers, keys, names = [], [], []
    for li, layer in enumerate(container.layers):
        for pi, plane in enumerate(layer.planes):
            layers.append(Layer(plane.config, plane.bits))
            keys.append((li, pi))
            names.append(f"{layer.name} plane {pi}")
    return layers, keys, names


def planes_from_beats(beat_data, layers, configs, lanes):
    """Cut the received beats (``tdata`` as ints, in order) back into ``(chunks, nout)`` bits per
    stream layer, using only the protocol: ``ceil(chunks / lanes)`` beats per layer, chunk ``i``
    of a beat in bits ``[i*nout, (i+1)*nout)``."""
    nout = configs[0].nout
    beat_bits = lanes * nout
    beat_bytes = -(-beat_bits // 8)
    planes, position = [], 0
    for layer in layers:
        count = -(-layer.chunks // lanes)
        packed = np.frombuffer(b"".join(value.to_bytes(beat_bytes, "little")
                                        for value in beat_data[position:position + count]),
                               dtype=np.uint8).reshape(count, beat_bytes)
        position += count
        bits = unpack_bits(packed, beat_bits).reshape(-1, nout)
        planes.append(bits[:layer.chunks])
    if position != len(beat_data):
        raise ValueError(f"received {len(beat_data)} beats, the layers need {position}")
    return planes


def run_weights(weights, build_dir, *, width=32, lanes=1, simulator="icarus", stall=0.0, seed=0,
                waves=False, flip=None):
    """Run the whole flow on container file ``weights``; return a :class:`WeightsRun`.

    Raises ``ValueError`` (with ``ContainerError``) for a bad container or parameters the
    container's configurations cannot use, :class:`~sim.runner.SimulatorMissing`, and
    :class:`~sim.runner.TestbenchFailed` at the first wrong bit or ``last`` (with the stream
    layer's name, chunk, bit and cycle). ``flip=(word, bit)`` corrupts the stream on purpose.
    """
    container = Container.load(weights)
    configs, width, lanes = check_stream_parameters(container.configs, width, lanes)
    layers, keys, names = stream_layers(container)
    if not layers:
        raise InputError(f"{weights}: the container has no encrypted layers to stream")
    build_dir = prepare_build_dir(build_dir)
    verilog = build_dir / f"{TOP}.v"
    write_files_atomically(decryptor_files(configs, str(verilog), width=width, lanes=lanes,
                                           top=TOP))
    result = check_decryptor(verilog, layers, simulator=simulator, seed=seed,
                             stall={"desc": stall, "data": stall, "out": stall}, names=names,
                             flip=flip, build_dir=build_dir / simulator, waves=waves)
    beat_data = [int(value, 16) for value in result["beat_data"]]
    rtl = dict(zip(keys, planes_from_beats(beat_data, layers, configs, lanes)))
    rtl_eval = evaluate(container, decrypted=rtl)
    golden_eval = evaluate(container)
    nout = configs[0].nout
    ideal = sum(max(-(-layer.chunks // lanes),
                    -(-layer.chunks * configs[layer.config].nin // width)) for layer in layers)
    return WeightsRun(
        layers=len({li for li, _ in keys}), stream_layers=len(layers),
        chunks=sum(layer.chunks for layer in layers),
        bits_checked=len(beat_data) * lanes * nout, beats=result["beats"],
        words=result["words"], cycles=result["cycles"], ideal_cycles=ideal,
        seconds=result["seconds"], test_samples=len(golden_eval.labels),
        rtl_correct=rtl_eval.correct, golden_correct=golden_eval.correct,
        recorded_correct=container.metadata.get("correct"),
        predictions_equal=bool(np.array_equal(rtl_eval.predictions, golden_eval.predictions)))
