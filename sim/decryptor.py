"""Run :mod:`sim.tb_decryptor` on a generated decryptor: the Python entry for tests, benchmarks."""

from flexor.cli import CliError
from flexor.sidecar import Sidecar, sidecar_path
from flexor.stream import as_layer, layers_to_json

from .runner import run_generated

__all__ = ["load_decryptor_sidecar", "check_decryptor"]


def load_decryptor_sidecar(verilog):
    """The sidecar of ``verilog`` and its configuration table; ``CliError`` when unreadable."""
    path = sidecar_path(str(verilog))
    try:
        sidecar = Sidecar.load(path)
        configs = sidecar.configs
    except (ValueError, KeyError, TypeError) as error:
        raise CliError(f"cannot read decryptor sidecar {path}: {error}") from None
    return sidecar, configs


def check_decryptor(verilog, layers, *, simulator="icarus", seed=0, stall=None, reset_at=None,
                    names=None, flip=None, build_dir=None, waves=False):
    """Simulate ``verilog`` streaming ``layers`` and compare every beat with the golden model.

    Parameters
    ----------
    layers : list
        ``(config index, chunks, bits)`` or :class:`flexor.stream.Layer` per layer.
    stall : dict, optional
        Chance per cycle that ``desc``/``data`` valid or ``out`` ready is withheld.
    reset_at : int, optional
        Cycle at which to pulse ``rst`` mid-stream and start over.
    names : list of str, optional
        A label per layer for failure messages.
    flip : tuple of int, optional
        ``(word, bit)``: invert that bit of that data word on the wire (the golden beats stay
        those of ``layers``), to show that corruption is caught.

    Returns the testbench's result: ``beats``, ``words``, ``layers``, ``cycles`` (until the last
    beat), the cycle of every output beat and accepted word, and ``beat_data``, the ``tdata`` of
    every beat as hex. Raises
    :class:`~sim.runner.TestbenchFailed` with the first mismatch.
    """
    _, configs = load_decryptor_sidecar(verilog)
    layers = [as_layer(configs, layer) for layer in layers]
    stimulus = {"layers": layers_to_json(layers), "seed": seed, "stall": stall or {},
                "reset_at": reset_at, "names": names,
                "flip": None if flip is None else {"word": flip[0], "bit": flip[1]}}
    return run_generated(verilog, "sim.tb_decryptor", stimulus, build_dir=build_dir,
                         simulator=simulator, waves=waves)
