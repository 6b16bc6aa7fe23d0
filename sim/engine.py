"""Run :mod:`sim.tb_engine` (cocotb) on a generated engine: the Python entry for tests."""

from flexor.stream import layers_to_json

from .runner import run_generated

__all__ = ["check_engine"]


def check_engine(verilog, network, images, *, simulator="icarus", seed=0, stall=None,
                 reset_at=None, build_dir=None):
    """Simulate ``verilog`` (generated for ``network``) on ``images`` in cocotb: every output of
    every layer and every result checked against the integer model as it appears.

    ``stall``: chance per cycle that ``desc``/``data``/``image`` valid or ``result`` ready is
    withheld; ``reset_at``: cycle of a reset, after which everything is sent again. Raises
    :class:`~sim.runner.TestbenchFailed` with the first mismatch (image, layer, output).
    """
    stimulus = {"layers": layers_to_json(network.stream_layers()),
                "images": [[int(p) for p in image] for image in images], "seed": seed,
                "stall": stall or {}, "reset_at": reset_at}
    run_generated(verilog, "sim.tb_engine", stimulus, build_dir=build_dir, simulator=simulator)
